#include "common/flags.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sweepq {
namespace {

TEST(FlagsTest, DashedFlagNamesBecomeUnderscoredButValuesAndPositionalsStay) {
  const char* argv[] = {"prog",       "--tls-cert=a-b.pem", "--lease-ttl-ms",
                        "5",          "team-x",             "--",
                        "--not-a-flag"};
  std::vector<std::string> out =
      NormalizeFlagSpelling(7, const_cast<char**>(argv));
  EXPECT_THAT(out, ::testing::ElementsAre("prog", "--tls_cert=a-b.pem",
                                          "--lease_ttl_ms", "5", "team-x",
                                          "--", "--not-a-flag"));
}

}  // namespace
}  // namespace sweepq
