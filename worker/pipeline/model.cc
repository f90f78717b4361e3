// Implementation pending; see model.h.
#include "worker/pipeline/model.h"
