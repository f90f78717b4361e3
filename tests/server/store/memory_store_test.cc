// Runs the Store contract suite against InMemoryStore.
#include "server/store/memory_store.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/server/store/store_contract.h"

namespace sweepq::store {
namespace {

INSTANTIATE_TEST_SUITE_P(
    InMemory, StoreContractTest,
    ::testing::Values(StoreFactory([](const std::string& /*temp_dir*/) {
      return std::unique_ptr<Store>(std::make_unique<InMemoryStore>());
    })),
    [](const ::testing::TestParamInfo<StoreFactory>&) {
      return std::string("memory");
    });

}  // namespace
}  // namespace sweepq::store
