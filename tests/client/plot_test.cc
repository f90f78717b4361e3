// Unit tests of client/plot.h: from streamed items to chart descriptions.
#include "client/plot.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sweepq::client {
namespace {

namespace v1 = ::sweepq::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::WatchRunResponse Point(const std::string& name, int64_t step, double value,
                           uint32_t attempt = 1) {
  v1::WatchRunResponse item;
  item.mutable_metric()->set_name(name);
  item.mutable_metric()->set_step(step);
  item.mutable_metric()->set_value(value);
  item.mutable_metric()->set_attempt(attempt);
  item.set_state(v1::RUN_STATE_RUNNING);
  return item;
}

v1::WatchRunResponse Event(const std::string& kind, const std::string& payload,
                           uint32_t attempt = 1, int64_t seq = 1) {
  v1::WatchRunResponse item;
  item.mutable_event()->set_kind(kind);
  item.mutable_event()->set_payload_json(payload);
  item.mutable_event()->set_attempt(attempt);
  item.mutable_event()->set_seq(seq);
  item.set_state(v1::RUN_STATE_RUNNING);
  return item;
}

std::string EpochPayload(int epoch, const std::string& confusion,
                         const std::string& f1 = "") {
  return absl::StrCat(R"({"event":"epoch","epoch":)", epoch,
                      R"(,"metrics":{"val_f1":0.5},"confusion":)", confusion,
                      f1.empty() ? "" : absl::StrCat(R"(,"per_class_f1":)", f1),
                      "}");
}

RunHistory History(int64_t run_id) {
  RunHistory h;
  h.run.set_run_id(run_id);
  h.run.set_metric("val_f1");
  return h;
}

TEST(PlotHistoryTest, NewestAttemptWinsAndOnlyEpochAndStartEventsAreKept) {
  RunHistory h = History(1);
  AddToHistory(Point("val_f1", 1, 0.5, 1), &h);
  AddToHistory(Point("val_f1", 2, 0.6, 1), &h);
  AddToHistory(Point("val_f1", 2, 0.65, 2), &h);  // resumed attempt
  AddToHistory(Point("val_f1", 2, 0.1, 1), &h);   // a late old one
  AddToHistory(Event("epoch", "{}"), &h);
  AddToHistory(Event("step", "{}"), &h);
  AddToHistory(Event("start", "{}"), &h);
  ASSERT_EQ(h.metrics["val_f1"].size(), 2u);
  EXPECT_DOUBLE_EQ(h.metrics["val_f1"][2].value(), 0.65);
  ASSERT_EQ(h.events.size(), 2u);
  EXPECT_EQ(h.run.state(), v1::RUN_STATE_RUNNING);
}

TEST(PlotMetricsTest, DefaultsAreTheUsualThreeThatExist) {
  RunHistory h = History(1);
  for (const char* name : {"val_loss", "val_f1", "lr", "step_loss"}) {
    AddToHistory(Point(name, 1, 1), &h);
  }
  EXPECT_THAT(EpochMetricNames({h}), ElementsAre("lr", "val_f1", "val_loss"));
  auto chosen = ChooseMetrics({h}, "");
  ASSERT_TRUE(chosen.ok());
  EXPECT_THAT(*chosen, ElementsAre("val_f1", "val_loss"));
  auto requested = ChooseMetrics({h}, "lr, val_f1,lr,step_loss");
  ASSERT_TRUE(requested.ok());
  EXPECT_THAT(*requested, ElementsAre("lr", "val_f1", "step_loss"));
}

TEST(PlotMetricsTest, UnknownMetricIsNamedWithTheAvailableOnes) {
  RunHistory h = History(1);
  AddToHistory(Point("val_acc", 1, 1), &h);
  auto chosen = ChooseMetrics({h}, "val_f1");
  ASSERT_FALSE(chosen.ok());
  EXPECT_THAT(chosen.status().message(), HasSubstr("'val_f1'"));
  EXPECT_THAT(chosen.status().message(), HasSubstr("they have val_acc"));
  // No default metric: every per-epoch one.
  auto fallback = ChooseMetrics({h}, "");
  ASSERT_TRUE(fallback.ok());
  EXPECT_THAT(*fallback, ElementsAre("val_acc"));
  EXPECT_FALSE(ChooseMetrics({History(2)}, "").ok());
}

TEST(PlotLabelsTest, LegendShowsTheParametersThatDiffer) {
  std::vector<v1::Run> runs(2);
  runs[0].set_run_id(12);
  (*runs[0].mutable_params())["optimizer.lr"] = "0.003";
  (*runs[0].mutable_params())["optimizer.name"] = "\"radam\"";
  runs[1].set_run_id(13);
  (*runs[1].mutable_params())["optimizer.lr"] = "0.001";
  (*runs[1].mutable_params())["optimizer.name"] = "\"radam\"";
  EXPECT_THAT(RunLabels(runs),
              ElementsAre("run 12 (lr=0.003)", "run 13 (lr=0.001)"));
  // A lone run shows all its swept parameters.
  EXPECT_THAT(RunLabels({runs[0]}),
              ElementsAre("run 12 (lr=0.003, name=radam)"));
  // Same last segment twice: longer names.
  (*runs[0].mutable_params())["scheduler.name"] = "\"cosine\"";
  (*runs[1].mutable_params())["optimizer.name"] = "\"adamw\"";
  (*runs[1].mutable_params())["scheduler.name"] = "\"step\"";
  EXPECT_EQ(RunLabels(runs)[0],
            "run 12 (lr=0.003, optimizer.name=radam, scheduler.name=cosine)");
  v1::Run bare;
  bare.set_run_id(7);
  EXPECT_THAT(RunLabels({bare}), ElementsAre("run 7"));
  (*bare.mutable_params())["data.very_long_parameter_name"] =
      "\"" + std::string(80, 'x') + "\"";
  EXPECT_EQ(RunLabels({bare})[0].size(), 72u);
}

TEST(PlotCurvesTest, APanelPerMetricAndALinePerRunThatHasIt) {
  RunHistory a = History(3), b = History(4);
  AddToHistory(Point("val_f1", 2, 0.7), &a);
  AddToHistory(Point("val_f1", 1, 0.5), &a);
  AddToHistory(Point("val_loss", 1, 1.5), &a);
  AddToHistory(Point("val_f1", 1, 0.4), &b);
  plot::LineChart chart = CurvesChart({a, b}, {"val_f1", "val_loss"});
  EXPECT_EQ(chart.title, "runs 3, 4");
  ASSERT_EQ(chart.panels.size(), 2u);
  EXPECT_EQ(chart.panels[0].title, "val_f1");
  EXPECT_EQ(chart.panels[0].x_title, "epoch");
  EXPECT_TRUE(chart.panels[0].integer_x);
  ASSERT_EQ(chart.panels[0].series.size(), 2u);
  EXPECT_EQ(chart.panels[0].series[0].name, "run 3");
  EXPECT_THAT(chart.panels[0].series[0].x, ElementsAre(1, 2));
  EXPECT_THAT(chart.panels[0].series[0].y, ElementsAre(0.5, 0.7));
  ASSERT_EQ(chart.panels[1].series.size(), 1u);
  EXPECT_THAT(chart.series_order, ElementsAre("run 3", "run 4"));
  EXPECT_EQ(CurvesChart({a}, {"val_f1"}).title, "run 3: learning curves");
}

TEST(PlotConfusionTest, ParsesTheEpochEvent) {
  v1::RunEvent event =
      Event("epoch", EpochPayload(4, "[[5,1],[0,3]]", "[0.9,null]"), 2).event();
  auto parsed = ParseEpochEvent(event);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_TRUE(parsed->has_value());
  const EpochConfusion& c = **parsed;
  EXPECT_EQ(c.epoch, 4);
  EXPECT_EQ(c.attempt, 2u);
  EXPECT_THAT(c.counts[0], ElementsAre(5, 1));
  ASSERT_EQ(c.per_class_f1.size(), 2u);
  EXPECT_TRUE(std::isnan(c.per_class_f1[1]));
  EXPECT_DOUBLE_EQ(c.metrics.at("val_f1"), 0.5);
  // No matrix (a full-data run): nothing, not an error.
  auto none = ParseEpochEvent(Event("epoch", R"({"epoch":1})").event());
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(PlotConfusionTest, MalformedEventsAreNamed) {
  auto not_square = ParseEpochEvent(
      Event("epoch", EpochPayload(1, "[[1,2],[3]]"), 1, 17).event());
  ASSERT_FALSE(not_square.ok());
  EXPECT_THAT(not_square.status().message(), HasSubstr("epoch event 17"));
  EXPECT_THAT(not_square.status().message(), HasSubstr("row 1"));
  auto bad_f1 = ParseEpochEvent(
      Event("epoch", EpochPayload(1, "[[1]]", "[1,2]")).event());
  ASSERT_FALSE(bad_f1.ok());
  EXPECT_THAT(bad_f1.status().message(), HasSubstr("per_class_f1"));
  EXPECT_FALSE(ParseEpochEvent(Event("epoch", "{not json").event()).ok());
  EXPECT_FALSE(
      ParseEpochEvent(Event("epoch", R"({"confusion":[[1]]})").event()).ok());
}

TEST(PlotConfusionTest, BestEpochElseLastElseTheOneAskedFor) {
  RunHistory h = History(5);
  AddToHistory(Event("epoch", EpochPayload(1, "[[1]]")), &h);
  AddToHistory(Event("epoch", EpochPayload(2, "[[2]]")), &h);
  AddToHistory(Event("epoch", EpochPayload(3, "[[3]]")), &h);
  auto last = SelectConfusion(h, 0);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->epoch, 3);
  h.run.set_has_best(true);
  h.run.set_best_step(2);
  auto best = SelectConfusion(h, 0);
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(best->epoch, 2);
  auto asked = SelectConfusion(h, 1);
  ASSERT_TRUE(asked.ok());
  EXPECT_DOUBLE_EQ(asked->counts[0][0], 1);
  auto missing = SelectConfusion(h, 9);
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(missing.status().message(), HasSubstr("epochs 1, 2, 3"));
  // A resumed attempt's matrix for the same epoch replaces the old one.
  AddToHistory(Event("epoch", EpochPayload(2, "[[20]]"), 2), &h);
  EXPECT_DOUBLE_EQ(SelectConfusion(h, 2)->counts[0][0], 20);
  auto none = SelectConfusion(History(6), 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(none.status()));
  EXPECT_THAT(none.status().message(), HasSubstr("run 6"));
}

TEST(PlotConfusionTest, ClassNames) {
  std::vector<std::string> mask = MaskTaskClassNames({30, 60});
  ASSERT_EQ(mask.size(), 18u);
  EXPECT_EQ(mask[0], "wear/male/<30");
  EXPECT_EQ(mask[1], "wear/male/30-59");
  EXPECT_EQ(mask[5], "wear/female/>=60");  // mask 0, gender 1, band 2
  EXPECT_EQ(mask[6 + 3 + 2], "incorrect/female/>=60");
  EXPECT_EQ(mask[17], "normal/female/>=60");

  RunHistory h = History(1);
  EXPECT_EQ(ClassNames(h, 18), mask);
  h.run.mutable_config()->mutable_data()->add_age_bounds(30);
  h.run.mutable_config()->mutable_data()->add_age_bounds(58);
  EXPECT_EQ(ClassNames(h, 18)[2], "wear/male/>=58");
  EXPECT_THAT(ClassNames(h, 3), ElementsAre("0", "1", "2"));
  // The start event's names win when they match the size.
  AddToHistory(Event("start", R"({"data":{"classes":["cat","dog","owl"]}})"),
               &h);
  EXPECT_THAT(ClassNames(h, 3), ElementsAre("cat", "dog", "owl"));
  EXPECT_EQ(ClassNames(h, 18)[0], "wear/male/<30");
}

TEST(PlotConfusionTest, ChartHasCountsNamesAndF1Bars) {
  RunHistory h = History(8);
  h.run.set_has_best(true);
  h.run.set_best_step(2);
  EpochConfusion c;
  c.epoch = 2;
  c.counts = {{3, 1}, {0, 4}};
  c.per_class_f1 = {0.8, 0.9};
  c.metrics["val_f1"] = 0.85;
  plot::HeatMap map = ConfusionChart(h, c);
  EXPECT_EQ(map.title,
            "run 8: confusion matrix at best epoch 2 (val_f1 0.8500)");
  EXPECT_THAT(map.row_labels, ElementsAre("0", "1"));
  EXPECT_TRUE(map.normalize_rows);
  EXPECT_THAT(map.row_bars, ElementsAre(0.8, 0.9));
  EXPECT_EQ(map.row_bar_title, "F1");
  EXPECT_EQ(map.row_title, "true class");
}

TEST(PlotPathTest, DefaultFileNames) {
  EXPECT_EQ(DefaultPlotPath({12}, false), "run-12-curves.png");
  EXPECT_EQ(DefaultPlotPath({12, 13}, false), "runs-12-13-curves.png");
  EXPECT_EQ(DefaultPlotPath({1, 2, 3, 4, 5}, false),
            "runs-1-2-3-4-etc-curves.png");
  EXPECT_EQ(DefaultPlotPath({12}, true), "run-12-confusion.png");
}

}  // namespace
}  // namespace sweepq::client
