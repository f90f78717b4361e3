// Implementation pending; see loss.h.
#include "worker/pipeline/loss.h"
