#include "client/format.h"

#include <cmath>

#include "gtest/gtest.h"

namespace sweepq::client {
namespace {

namespace v1 = ::sweepq::v1;

TEST(FormatTest, StateNamesRoundTrip) {
  for (int s = v1::RUN_STATE_QUEUED; s <= v1::RUN_STATE_PRUNED; ++s) {
    auto state = static_cast<v1::RunState>(s);
    EXPECT_EQ(ParseStateName(StateName(state)), state);
  }
  EXPECT_EQ(ParseStateName("FAILED"), v1::RUN_STATE_FAILED);
  EXPECT_EQ(ParseStateName("RUN_STATE_RUNNING"), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(ParseStateName("canceled"), v1::RUN_STATE_CANCELLED);
  EXPECT_FALSE(ParseStateName("done").has_value());
}

TEST(FormatTest, Durations) {
  EXPECT_EQ(FormatDuration(-1), "-");
  EXPECT_EQ(FormatDuration(999), "0s");
  EXPECT_EQ(FormatDuration(42'000), "42s");
  EXPECT_EQ(FormatDuration(192'000), "3m12s");
  EXPECT_EQ(FormatDuration(3'840'000), "1h04m");
  EXPECT_EQ(FormatDuration(183'600'000), "2d03h");
}

TEST(FormatTest, MetricsAndBytes) {
  EXPECT_EQ(FormatMetric(0.81234), "0.8123");
  EXPECT_EQ(FormatMetric(0.0003), "3.00e-04");
  EXPECT_EQ(FormatMetric(0), "0.0000");
  EXPECT_EQ(FormatMetric(std::nan("")), "nan");
  EXPECT_EQ(FormatMetric(-INFINITY), "-inf");
  EXPECT_EQ(FormatMetricRaw(0.1), "0.1");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(45 << 20), "45.0 MiB");
}

TEST(FormatTest, TimesAndAges) {
  EXPECT_EQ(FormatTime(0), "-");
  EXPECT_EQ(FormatTime(1'700'000'000'000), "2023-11-14 22:13:20Z");
  EXPECT_EQ(FormatAgo(1'000, 61'000), "1m ago");
  EXPECT_EQ(FormatAgo(0, 61'000), "-");
}

TEST(VaryingParamsTest, KeepsKeysThatDifferOrAreMissingSomewhere) {
  std::map<std::string, std::string> a = {{"optimizer.name", "\"radam\""},
                                          {"seed", "1"},
                                          {"scheduler.name", "\"cosine\""}};
  std::map<std::string, std::string> b = {{"optimizer.name", "\"adamw\""},
                                          {"seed", "1"},
                                          {"scheduler.name", "\"cosine\""}};
  std::map<std::string, std::string> c = {{"optimizer.name", "\"adamw\""},
                                          {"seed", "1"}};
  EXPECT_EQ(VaryingParams({&a, &b}),
            std::vector<std::string>({"optimizer.name"}));
  EXPECT_EQ(VaryingParams({&a, &b, &c}),
            std::vector<std::string>({"optimizer.name", "scheduler.name"}));
  EXPECT_TRUE(VaryingParams({&a}).empty());
  EXPECT_TRUE(VaryingParams({}).empty());
}

TEST(ParamTitlesTest, LastTwoSegmentsLongerOnlyWhenTheyCollide) {
  EXPECT_EQ(ParamTitles({"optimizer.lr", "augment.cutmix.mode", "seed",
                         "data.age_bounds"}),
            std::vector<std::string>(
                {"optimizer.lr", "cutmix.mode", "seed", "data.age_bounds"}));
  EXPECT_EQ(ParamTitles({"a.x.p", "b.x.p"}),
            std::vector<std::string>({"a.x.p", "b.x.p"}));
}

TEST(FormatTest, ProgressBarAndEditDistance) {
  EXPECT_EQ(ProgressBar(5, 10, 12), "[#####.....]");
  EXPECT_EQ(ProgressBar(20, 10, 6), "[####]");
  EXPECT_EQ(ProgressBar(1, 0, 6), "[....]");
  EXPECT_EQ(EditDistance("--topp", "--top"), 1u);
  EXPECT_EQ(EditDistance("bord", "board"), 1u);
}

TEST(FormatTest, RunDurationUsesNowWhileRunning) {
  v1::Run run;
  EXPECT_EQ(RunDurationMs(run, 5000), -1);
  run.set_started_at_ms(1000);
  EXPECT_EQ(RunDurationMs(run, 5000), 4000);
  run.set_finished_at_ms(3000);
  EXPECT_EQ(RunDurationMs(run, 5000), 2000);
}

}  // namespace
}  // namespace sweepq::client
