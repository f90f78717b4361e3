// Implementation pending; see metrics.h.
#include "worker/pipeline/metrics.h"
