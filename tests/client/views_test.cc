// Golden output of the board and runs views, and their JSON field names.
#include "client/views.h"

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace sweepq::client {
namespace {

namespace v1 = ::sweepq::v1;

constexpr int64_t kNow = 1'700'000'600'000;

v1::LeaderboardEntry Entry(uint32_t rank, int64_t run_id, double f1, double acc,
                           int64_t step, const std::string& opt,
                           const std::string& seed, v1::RunState state) {
  v1::LeaderboardEntry e;
  e.set_rank(rank);
  v1::Run* r = e.mutable_run();
  r->set_run_id(run_id);
  r->set_sweep_id(3);
  r->set_metric("val_f1");
  r->set_goal(v1::GOAL_MAXIMIZE);
  r->set_has_best(true);
  r->set_best_value(f1);
  r->set_best_step(step);
  r->set_best_attempt(1);
  r->set_state(state);
  r->set_worker_id("gpu-node-1");
  r->set_started_at_ms(kNow - 600'000);
  if (state == v1::RUN_STATE_SUCCEEDED) r->set_finished_at_ms(kNow - 8'000);
  (*r->mutable_params())["optimizer.name"] = "\"" + opt + "\"";
  (*r->mutable_params())["scheduler.name"] = "\"cosine\"";
  (*r->mutable_params())["seed"] = seed;
  (*e.mutable_metrics_at_best())["val_f1"] = f1;
  (*e.mutable_metrics_at_best())["val_acc"] = acc;
  return e;
}

std::vector<v1::LeaderboardEntry> Board() {
  return {
      Entry(1, 21, 0.81234, 0.9012, 7, "radam", "1", v1::RUN_STATE_SUCCEEDED),
      Entry(2, 23, 0.7911, 0.885, 9, "adamw", "1", v1::RUN_STATE_SUCCEEDED),
      Entry(3, 22, 0.75, 0.87, 3, "radam", "2", v1::RUN_STATE_RUNNING)};
}

TEST(BoardViewTest, TableShowsOnlyTheVaryingParameters) {
  // Scores right-aligned, scheduler.name (the same everywhere) left out.
  const char* kGolden =
      "rank  run  val_f1  val_acc  epoch  optimizer.name  seed  state        "
      "time  worker\n"
      "   1   21  0.8123   0.9012      7  radam           1     succeeded   "
      "9m52s  gpu-node-1\n"
      "   2   23  0.7911   0.8850      9  adamw           1     succeeded   "
      "9m52s  gpu-node-1\n"
      "   3   22  0.7500   0.8700      3  radam           2     running    "
      "10m00s  gpu-node-1\n";
  EXPECT_EQ(BoardTable(Board(), kNow).Render(TableOptions()), kGolden);
}

TEST(BoardViewTest, NarrowTerminalTruncatesParametersNotScores) {
  auto entries = Board();
  (*entries[0].mutable_run()->mutable_params())["model.torchscript"] =
      "\"/models/efficientnet_b3_pretrained_imagenet_v2.pt\"";
  TableOptions options;
  options.max_width = 80;
  std::string rendered = BoardTable(entries, kNow).Render(options);
  for (absl::string_view line : absl::StrSplit(rendered, '\n')) {
    EXPECT_LE(DisplayWidth(line), 80u) << line;
  }
  EXPECT_NE(rendered.find("0.8123"), std::string::npos);
  EXPECT_NE(rendered.find("\u2026"), std::string::npos) << rendered;
}

TEST(BoardViewTest, CsvHasFullPrecisionAndEveryColumn) {
  std::string csv = BoardTable(Board(), kNow).RenderCsv();
  std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0],
            "rank,run,val_f1,val_acc,epoch,optimizer.name,seed,state,time,"
            "worker");
  EXPECT_EQ(lines[1], "1,21,0.81234,0.9012,7,radam,1,succeeded,592,gpu-node-1");
}

TEST(BoardViewTest, JsonFieldNamesAreStable) {
  JsonValue json = BoardJson(Board(), kNow);
  ASSERT_TRUE(json.is_array());
  ASSERT_EQ(json.items().size(), 3u);
  const JsonValue& first = json.items()[0];
  std::vector<std::string> keys;
  for (const auto& [k, v] : first.members()) keys.push_back(k);
  EXPECT_EQ(keys, std::vector<std::string>(
                      {"rank", "run_id", "sweep_id", "metric", "goal",
                       "best_value", "best_step", "best_attempt", "metrics",
                       "params", "state", "duration_ms", "worker_id"}));
  EXPECT_EQ(first.Find("best_value")->number_value(), 0.81234);
  EXPECT_EQ(first.Find("metrics")->Find("val_acc")->number_value(), 0.9012);
  EXPECT_EQ(first.Find("params")->Find("optimizer.name")->string_value(),
            "radam");
  EXPECT_EQ(first.Find("params")->Find("seed")->number_value(), 1);
  EXPECT_EQ(first.Find("state")->string_value(), "succeeded");
  EXPECT_EQ(first.Find("duration_ms")->number_value(), 592'000);
}

TEST(BoardViewTest, CaptionSaysWhatIsRankedAndWhichWayIsBetter) {
  EXPECT_EQ(BoardCaption(0, "val_f1", v1::GOAL_MAXIMIZE, 3, 20),
            "team board: val_f1 (higher is better), 3 runs");
  EXPECT_EQ(BoardCaption(4, "val_loss", v1::GOAL_MINIMIZE, 20, 20),
            "sweep 4 board: val_loss (lower is better), top 20");
}

TEST(RunsViewTest, TableMarksCancellingRunsAndMissingValues) {
  v1::Run queued;
  queued.set_run_id(5);
  queued.set_sweep_id(2);
  queued.set_index(1);
  queued.set_state(v1::RUN_STATE_QUEUED);
  queued.set_max_attempts(3);
  queued.set_metric("val_f1");
  v1::Run running = queued;
  running.set_run_id(4);
  running.set_index(0);
  running.set_state(v1::RUN_STATE_RUNNING);
  running.set_cancel_requested(true);
  running.set_attempt(1);
  running.set_worker_id("w1");
  running.set_started_at_ms(kNow - 65'000);
  std::string rendered =
      RunsTable({queued, running}, kNow).Render(TableOptions());
  EXPECT_EQ(rendered,
            "run  sweep  #  state                 val_f1  epoch  try   time  "
            "worker\n"
            "  5      2  1  queued                     -      -  0/3      -  "
            "-\n"
            "  4      2  0  running (cancelling)       -      -  1/3  1m05s  "
            "w1\n");
}

TEST(RunsViewTest, JsonHasNullsForUnsetTimesAndBest) {
  v1::Run run;
  run.set_run_id(7);
  run.set_state(v1::RUN_STATE_QUEUED);
  JsonValue json = RunJson(run, kNow);
  EXPECT_TRUE(json.Find("best_value")->is_null());
  EXPECT_TRUE(json.Find("started_at_ms")->is_null());
  EXPECT_TRUE(json.Find("duration_ms")->is_null());
  EXPECT_EQ(json.Find("state")->string_value(), "queued");
  EXPECT_TRUE(json.Find("params")->is_object());
}

TEST(ShowViewTest, ConfigIsPrintedAsYamlLikeText) {
  JsonValue config = JsonValue::Object();
  JsonValue optimizer = JsonValue::Object();
  optimizer.Set("name", JsonValue::String("radam"))
      .Set("lr", JsonValue::Number(0.0003));
  JsonValue data = JsonValue::Object();
  data.Set("age_bounds", *JsonValue::Parse("[30, 60]"))
      .Set("csv", JsonValue::String("a: b.csv"));
  config.Set("optimizer", optimizer).Set("data", data);
  EXPECT_EQ(JsonToYamlText(config, 2),
            "  optimizer:\n"
            "    name: radam\n"
            "    lr: 0.0003\n"
            "  data:\n"
            "    age_bounds: [30, 60]\n"
            "    csv: \"a: b.csv\"\n");
}

// A job reports no training metric: `show` says what it does and where its
// result is instead of "no val_f1 reported yet", which a training run
// without one still gets.
TEST(ShowViewTest, AJobSaysWhatItDoesInsteadOfItsMissingBest) {
  TableOptions options;
  RunDetails job;
  job.run.set_run_id(5);
  job.run.set_sweep_id(4);
  job.run.set_state(v1::RUN_STATE_SUCCEEDED);
  job.run.set_metric("val_f1");
  job.run.mutable_config()->mutable_job()->set_kind("predict");
  job.run.mutable_config()->mutable_job()->add_source_runs(3);
  const std::string text = ShowText(job, kNow, options);
  EXPECT_NE(text.find("  job         predict with run 3 on the eval set "
                      "(submission: sweepq submission 5)\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("reported yet"), std::string::npos) << text;

  v1::JobConfig* config = job.run.mutable_config()->mutable_job();
  config->add_source_runs(4);
  config->set_split("val");
  EXPECT_NE(ShowText(job, kNow, options)
                .find("predict with runs 3, 4 (soft vote) on the validation "
                      "split (scored: pred_f1, pred_acc; sweepq watch 5)"),
            std::string::npos);
  config->Clear();
  config->set_kind("gradcam");
  config->add_source_runs(3);
  config->set_gradcam_class(7);
  EXPECT_NE(ShowText(job, kNow, options)
                .find("gradcam of run 3, class 7 (pictures: sweepq artifacts "
                      "ls 5)"),
            std::string::npos);

  RunDetails training;
  training.run.set_run_id(3);
  training.run.set_metric("val_f1");
  EXPECT_NE(ShowText(training, kNow, options)
                .find("  best        no val_f1 reported yet\n"),
            std::string::npos);
}

}  // namespace
}  // namespace sweepq::client
