// End to end: `sweepq plot` (the real binary) against a real sweepq-server
// on loopback. The test plays the worker through the WorkerService API:
// one run finishes three epochs with metric points and `epoch` events that
// carry a confusion matrix, one is still running with two epochs of
// metrics, one is still queued. The PNGs are decoded by an independent
// decoder (Debian's python3-pil).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/plot/style.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sweepq/v1/coordinator.grpc.pb.h"
#include "tests/client/cli_runner.h"
#include "tests/testing/grpc_context.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_dir.h"

namespace sweepq {
namespace {

namespace v1 = ::sweepq::v1;
using testing::CliResult;
using ::testing::HasSubstr;

const std::string kCli = std::string(SWEEPQ_BINARY_DIR) + "/client/sweepq";
const std::string kUnset = "\x01unset";
constexpr int kClasses = 18;

constexpr char kSweep[] = R"(name: plot-e2e
method: grid
metric: {name: val_f1, goal: maximize}
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 3}
parameters:
  optimizer.lr: {values: [0.003, 0.001, 0.0003]}
)";

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
  return ::sweepq::testing::AuthorizedContext(token, 10);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// An 18-class confusion matrix: class 0 always right (a row that is 100%
// diagonal) when `pure_first_row`, else every row has some mistakes.
std::string ConfusionJson(bool pure_first_row) {
  std::vector<std::string> rows;
  for (int r = 0; r < kClasses; ++r) {
    std::vector<std::string> cells;
    for (int c = 0; c < kClasses; ++c) {
      int count = r == c ? 40 + r : ((r + c) % 5 == 0 ? 3 : 0);
      if (pure_first_row && r == 0 && c != 0) count = 0;
      cells.push_back(absl::StrCat(count));
    }
    rows.push_back(absl::StrCat("[", absl::StrJoin(cells, ","), "]"));
  }
  return absl::StrCat("[", absl::StrJoin(rows, ","), "]");
}

// Decodes a PNG with python3-pil: returns "FORMAT MODE WIDTH HEIGHT" and
// then, per colour asked for, how many pixels have it exactly.
std::vector<std::string> DecodeWithPil(const std::string& path,
                                       const std::vector<plot::Color>& colors) {
  const char* script =
      "import collections, sys\n"
      "from PIL import Image\n"
      "Image.open(sys.argv[1]).verify()\n"
      "im = Image.open(sys.argv[1]); im.load()\n"
      "print(im.format, im.mode, im.size[0], im.size[1])\n"
      "counts = collections.Counter(im.getdata())\n"
      "for i in range(2, len(sys.argv), 3):\n"
      "    print(counts[tuple(int(v) for v in sys.argv[i:i + 3])])\n";
  std::vector<std::string> argv = {"/usr/bin/python3", "-c", script, path};
  for (const plot::Color& c : colors) {
    argv.push_back(absl::StrCat(c.r));
    argv.push_back(absl::StrCat(c.g));
    argv.push_back(absl::StrCat(c.b));
  }
  CliResult r = testing::RunProcess(argv);
  EXPECT_EQ(r.exit_code, 0)
      << "python3-pil could not decode " << path << ": " << r.err;
  return absl::StrSplit(r.out, '\n', absl::SkipEmpty());
}

class CliPlotTest : public ::testing::Test {
 protected:
  // One server and one scenario for the whole suite: the tests only read.
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::string db = dir_->Join("sweepq.db");
    auto tokens = testing::CreateTeam(db, "plot");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    member_ = tokens->member;
    worker_token_ = tokens->worker;
    server_ = new testing::ServerProcess(
        {"--db=" + db, "--artifacts=" + dir_->Join("artifacts"),
         "--lease_ttl_ms=600000"});
    ASSERT_NE(server_->port(), 0) << "sweepq-server did not start";
    auto channel = grpc::CreateChannel(server_->address(),
                                       grpc::InsecureChannelCredentials());
    auto team = v1::TeamService::NewStub(channel);
    auto worker = v1::WorkerService::NewStub(channel);

    v1::SubmitSweepRequest submit;
    submit.set_spec_yaml(kSweep);
    submit.set_idempotency_key("plot-e2e");
    v1::SubmitSweepResponse submitted;
    grpc::Status status =
        team->SubmitSweep(Ctx(member_).get(), submit, &submitted);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(submitted.run_ids_size(), 3);

    v1::RegisterWorkerRequest reg;
    reg.set_worker_id("w1");
    reg.set_host("test-host");
    reg.set_slots(2);
    reg.add_datasets("mask");
    v1::RegisterWorkerResponse registered;
    status = worker->RegisterWorker(Ctx(worker_token_).get(), reg, &registered);
    ASSERT_TRUE(status.ok()) << status.error_message();

    // The finished run: val_f1 0.5, 0.8, 0.7 (best epoch 2, whose matrix
    // has a 100% row), a confusion matrix and per-class F1 every epoch.
    v1::LeaseResponse first = Lease(worker.get());
    finished_ = first.run().run_id();
    const std::vector<double> f1 = {0.5, 0.8, 0.7};
    for (int epoch = 1; epoch <= 3; ++epoch) {
      std::vector<std::string> per_class;
      for (int c = 0; c < kClasses; ++c) {
        per_class.push_back(absl::StrCat(0.3 + 0.035 * c));
      }
      std::string payload = absl::StrCat(
          R"({"event":"epoch","time_ms":)", NowMs(), R"(,"epoch":)", epoch,
          R"(,"step":)", epoch * 10, R"(,"metrics":{"val_f1":)", f1[epoch - 1],
          R"(,"train_loss":)", 2.0 / epoch, R"(},"per_class_f1":[)",
          absl::StrJoin(per_class, ","), R"(],"confusion":)",
          ConfusionJson(epoch == 2), "}");
      Report(worker.get(), first.lease(), epoch, f1[epoch - 1], payload);
    }
    Finish(worker.get(), first.lease());

    // The running run: two epochs of metrics, no confusion matrix.
    v1::LeaseResponse second = Lease(worker.get());
    running_ = second.run().run_id();
    Report(worker.get(), second.lease(), 1, 0.4, "");
    Report(worker.get(), second.lease(), 2, 0.6, "");

    for (int64_t id : submitted.run_ids()) {
      if (id != finished_ && id != running_) queued_ = id;
    }
    ASSERT_GT(queued_, 0);
  }

  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    server_ = nullptr;
    dir_ = nullptr;
  }

  static v1::LeaseResponse Lease(v1::WorkerService::Stub* worker) {
    v1::LeaseRequest request;
    request.set_worker_id("w1");
    v1::LeaseResponse response;
    grpc::Status status =
        worker->Lease(Ctx(worker_token_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(response.granted());
    return response;
  }

  // Reports one epoch's metric points and, if given, its `epoch` event.
  static void Report(v1::WorkerService::Stub* worker, const v1::LeaseRef& lease,
                     int64_t epoch, double f1, const std::string& epoch_event) {
    static uint64_t batch = 0;
    v1::ReportEventsRequest request;
    *request.mutable_lease() = lease;
    request.set_batch_seq(++batch);
    const std::map<std::string, double> values = {
        {"train_loss", 2.0 / static_cast<double>(epoch)},
        {"val_loss", 2.2 / static_cast<double>(epoch)},
        {"val_f1", f1}};
    for (const auto& [name, value] : values) {
      auto* p = request.add_points();
      p->set_name(name);
      p->set_step(epoch);
      p->set_value(value);
      p->set_wall_time_ms(NowMs());
    }
    if (!epoch_event.empty()) {
      auto* e = request.add_events();
      e->set_kind("epoch");
      e->set_payload_json(epoch_event);
      e->set_time_ms(NowMs());
    }
    v1::ReportEventsResponse response;
    grpc::Status status =
        worker->ReportEvents(Ctx(worker_token_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  static void Finish(v1::WorkerService::Stub* worker,
                     const v1::LeaseRef& lease) {
    v1::FinishRunRequest request;
    *request.mutable_lease() = lease;
    request.set_worker_id("w1");
    request.set_outcome(v1::OUTCOME_SUCCEEDED);
    v1::FinishRunResponse response;
    grpc::Status status =
        worker->FinishRun(Ctx(worker_token_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Runs `sweepq ARGS` logged in through the environment.
  CliResult Cli(std::vector<std::string> args) {
    std::map<std::string, std::string> env = {
        {"XDG_CONFIG_HOME", dir_->Join("config")},
        {"SWEEPQ_SERVER", server_->address()},
        {"SWEEPQ_TOKEN", member_},
        {"SWEEPQ_TEAM", kUnset},
        {"SWEEPQ_TLS_CA", kUnset}};
    args.insert(args.begin(), kCli);
    return testing::RunProcess(args, env);
  }

  std::string Id(int64_t id) { return absl::StrCat(id); }

  static testing::TempDir* dir_;
  static testing::ServerProcess* server_;
  static std::string member_;
  static std::string worker_token_;
  static int64_t finished_;
  static int64_t running_;
  static int64_t queued_;
};

testing::TempDir* CliPlotTest::dir_ = nullptr;
testing::ServerProcess* CliPlotTest::server_ = nullptr;
std::string CliPlotTest::member_;
std::string CliPlotTest::worker_token_;
int64_t CliPlotTest::finished_ = 0;
int64_t CliPlotTest::running_ = 0;
int64_t CliPlotTest::queued_ = 0;

TEST_F(CliPlotTest, CurvesOfAFinishedAndARunningRunDecodeAtTheAskedSize) {
  const std::string out = dir_->Join("curves.png");
  CliResult r = Cli({"plot", Id(finished_), Id(running_), "--metrics",
                     "val_f1,train_loss", "-o", out, "--width", "900",
                     "--height", "600"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("wrote " + out));
  EXPECT_THAT(r.out, HasSubstr("2 runs; val_f1, train_loss"));
  std::vector<std::string> decoded = DecodeWithPil(
      out, {plot::SeriesColor(0), plot::SeriesColor(1), plot::SeriesColor(2)});
  ASSERT_EQ(decoded.size(), 4u);
  EXPECT_EQ(decoded[0], "PNG RGB 900 600");
  // A line per run in each of the two panels; no third run.
  EXPECT_GT(std::stoi(decoded[1]), 300) << "the finished run's lines";
  EXPECT_GT(std::stoi(decoded[2]), 150) << "the running run's lines";
  EXPECT_EQ(std::stoi(decoded[3]), 0);
}

TEST_F(CliPlotTest, DefaultMetricsAreDrawnAtTheDefaultSize) {
  const std::string out = dir_->Join("default.png");
  CliResult r = Cli({"plot", Id(finished_), "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("1 run; val_f1, train_loss, val_loss"));
  std::vector<std::string> decoded = DecodeWithPil(out, {});
  ASSERT_EQ(decoded.size(), 1u);
  EXPECT_EQ(decoded[0], "PNG RGB 1200 800");
}

TEST_F(CliPlotTest, ConfusionOfTheBestEpochWithPerClassF1) {
  const std::string out = dir_->Join("cm.png");
  CliResult r = Cli({"plot", Id(finished_), "--confusion", "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("at epoch 2, 18 classes"));
  std::vector<std::string> decoded =
      DecodeWithPil(out, {plot::HeatColor(1.0), plot::SeriesColor(1)});
  ASSERT_EQ(decoded.size(), 3u);
  EXPECT_EQ(decoded[0], "PNG RGB 1400 1000");
  // Epoch 2's first row is all diagonal: a cell in the darkest colour
  // (beyond the top of the colour bar, which has it too).
  EXPECT_GT(std::stoi(decoded[1]), 300);
  EXPECT_GT(std::stoi(decoded[2]), 1000) << "per-class F1 bars";

  // Epoch 3 has no such row: only the colour bar's top is that dark.
  const std::string third = dir_->Join("cm3.png");
  r = Cli({"plot", Id(finished_), "--confusion", "--epoch", "3", "-o", third,
           "--width", "1000", "--height", "700"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("at epoch 3"));
  decoded = DecodeWithPil(third, {plot::HeatColor(1.0)});
  ASSERT_EQ(decoded.size(), 2u);
  EXPECT_EQ(decoded[0], "PNG RGB 1000 700");
  EXPECT_LT(std::stoi(decoded[1]), 100);
}

TEST_F(CliPlotTest, UnknownRunExitsThreeNamingIt) {
  CliResult r = Cli({"plot", "999999", "-o", dir_->Join("x.png")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("run 999999"));
}

TEST_F(CliPlotTest, RunWithoutMetricsSaysSo) {
  CliResult r = Cli({"plot", Id(queued_), "-o", dir_->Join("none.png")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("run ", queued_,
                                            " has no metrics yet (it is "
                                            "queued)")));
  // Beside a run that has some, it is left out with a note.
  const std::string out = dir_->Join("some.png");
  r = Cli({"plot", Id(finished_), Id(queued_), "-o", out});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("drawing the others"));
  EXPECT_EQ(DecodeWithPil(out, {}).size(), 1u);
}

TEST_F(CliPlotTest, RunWithoutConfusionMatrixSaysSo) {
  CliResult r =
      Cli({"plot", Id(running_), "--confusion", "-o", dir_->Join("c.png")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("has no confusion matrix"));
  r = Cli({"plot", Id(finished_), "--confusion", "--epoch", "9", "-o",
           dir_->Join("c.png")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("no confusion matrix for epoch 9"));
}

TEST_F(CliPlotTest, UnwritableOutputFailsBeforeFetching) {
  const std::string missing = dir_->Join("no/such/dir/p.png");
  CliResult r = Cli({"plot", Id(finished_), "-o", missing});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("cannot write " + missing));
  r = Cli({"plot", Id(finished_), "-o", "/etc/passwd/p.png"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not a directory"));
  r = Cli({"plot", Id(finished_), "-o", dir_->path()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("is a directory"));
}

TEST_F(CliPlotTest, UsageErrors) {
  CliResult r = Cli({"plot", Id(finished_), "--metrics", "val_f2", "-o",
                     dir_->Join("m.png")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("no run has a metric named 'val_f2'"));
  EXPECT_THAT(r.err, HasSubstr("val_f1"));
  r = Cli({"plot", Id(finished_), Id(running_), "--confusion"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = Cli({"plot", "twelve"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = Cli({"plot", Id(finished_), "--width", "5"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = Cli({"plot", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("sweepq plot 12 --confusion -o cm.png"));
}

}  // namespace
}  // namespace sweepq
