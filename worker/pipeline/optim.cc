// Implementation pending; see optim.h.
#include "worker/pipeline/optim.h"
