#include "worker/pipeline/optim.h"
#include "gtest/gtest.h"
