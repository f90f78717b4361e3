#include "worker/pipeline/metrics.h"
#include "gtest/gtest.h"
