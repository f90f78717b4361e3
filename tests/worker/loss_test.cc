#include "worker/pipeline/loss.h"
#include "gtest/gtest.h"
