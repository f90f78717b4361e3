#include "worker/pipeline/model.h"
#include "gtest/gtest.h"
