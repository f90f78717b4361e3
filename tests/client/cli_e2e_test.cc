// End to end: the real `sweepq` binary against a real `sweepq-server` on
// loopback, with a temporary XDG_CONFIG_HOME. The test itself plays the
// worker through the WorkerService API (register, lease, report metrics,
// upload an artifact, finish) so that runs reach the board.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/json.h"
#include "common/crypto.h"
#include "gtest/gtest.h"
#include "sweepq/v1/coordinator.grpc.pb.h"
#include "tests/client/cli_runner.h"
#include "tests/client/fake_worker.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_dir.h"

namespace sweepq {
namespace {

namespace v1 = ::sweepq::v1;
using client::JsonValue;
using testing::CliResult;

const std::string kCli = std::string(SWEEPQ_BINARY_DIR) + "/client/sweepq";
const std::string kUnset = "\x01unset";

constexpr char kBoardSweep[] = R"(name: e2e-board
method: grid
metric: {name: val_f1, goal: maximize}
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  scheduler: {name: cosine}
  train: {epochs: 3}
parameters:
  optimizer.name: {values: [radam, adamw]}
  augment.cutmix.mode: {values: [vertical, box]}
)";

using ::sweepq::testing::FakeWorker;

FakeWorker::Options WorkerNamed(const std::string& id) {
  FakeWorker::Options options;
  options.id = id;
  return options;
}

// Reports one epoch: train_loss, val_loss, val_acc, val_f1, lr,
// epoch_time at step `epoch`.
void ReportEpoch(FakeWorker& worker, const v1::LeaseRef& lease, int64_t epoch,
                 double f1) {
  worker.Report(lease, epoch,
                {{"train_loss", 1.0 / static_cast<double>(epoch)},
                 {"val_loss", 1.2 / static_cast<double>(epoch)},
                 {"val_acc", f1 + 0.1},
                 {"val_f1", f1},
                 {"lr", 0.0003},
                 {"epoch_time", 12.5}});
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

class CliE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string db = dir_.Join("sweepq.db");
    auto tokens = testing::CreateTeam(db, "e2e");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    member_ = tokens->member;
    worker_token_ = tokens->worker;
    server_ = std::make_unique<testing::ServerProcess>(std::vector<std::string>{
        "--db=" + db, "--artifacts=" + dir_.Join("artifacts"),
        "--lease_ttl_ms=600000"});
    if (server_->port() != 0) address_ = server_->address();
    ASSERT_FALSE(address_.empty()) << "sweepq-server did not start";
  }

  // Runs sweepq with the test's config directory and none of the caller's
  // SWEEPQ_* variables.
  CliResult Cli(std::vector<std::string> args,
                std::map<std::string, std::string> env = {},
                const std::string& stdin_text = "") {
    std::map<std::string, std::string> full = {
        {"XDG_CONFIG_HOME", dir_.Join("config")},
        {"SWEEPQ_SERVER", kUnset},
        {"SWEEPQ_TOKEN", kUnset},
        {"SWEEPQ_TEAM", kUnset},
        {"SWEEPQ_TLS_CA", kUnset}};
    for (const auto& [k, v] : env) full[k] = v;
    args.insert(args.begin(), kCli);
    return testing::RunProcess(args, full, stdin_text);
  }

  void Login() {
    CliResult r = Cli(
        {"login", "--server", address_, "--team", "e2e", "--token", member_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir_.Join(name);
    std::ofstream(path) << text;
    return path;
  }

  int64_t Submit(const std::string& yaml) {
    CliResult r = Cli({"submit", WriteFile("sweep.yaml", yaml)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::smatch m;
    EXPECT_TRUE(
        std::regex_search(r.out, m, std::regex("submitted sweep (\\d+)")))
        << r.out;
    return m.empty() ? 0 : std::stoll(m[1]);
  }

  // Submits kBoardSweep and has a worker finish three of its four runs:
  // the first 0.7 at epoch 2, the second 0.82 at epoch 3 (with an
  // artifact), the third failed after one epoch at 0.4.
  void RunBoardScenario() {
    Login();
    sweep_id_ = Submit(kBoardSweep);
    ASSERT_GT(sweep_id_, 0);
    FakeWorker worker(address_, worker_token_, WorkerNamed("w1"));
    const std::vector<std::vector<double>> curves = {
        {0.5, 0.7, 0.65}, {0.6, 0.8, 0.82}, {0.4}};
    for (size_t i = 0; i < curves.size(); ++i) {
      v1::LeaseResponse leased = worker.Lease();
      run_ids_.push_back(leased.run().run_id());
      for (size_t e = 0; e < curves[i].size(); ++e) {
        ReportEpoch(worker, leased.lease(), static_cast<int64_t>(e + 1),
                    curves[i][e]);
      }
      if (i == 1) {
        artifact_.clear();
        // 3 MiB and a bit: several download chunks, not a round number.
        for (uint32_t k = 0; k < (3u << 20) + 123; ++k) {
          artifact_.push_back(static_cast<char>((k * 7919u) >> 3));
        }
        worker.Upload(leased.lease(), "best.ckpt", artifact_);
      }
      if (i == 2) {
        worker.Finish(leased.lease(), v1::OUTCOME_FAILED, "CUDA out of memory");
      } else {
        worker.Finish(leased.lease(), v1::OUTCOME_SUCCEEDED);
      }
    }
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::string address_;
  std::string member_;
  std::string worker_token_;
  int64_t sweep_id_ = 0;
  std::vector<int64_t> run_ids_;
  std::string artifact_;
};

TEST_F(CliE2eTest, LoginChecksTheTokenAndWritesAPrivateConfig) {
  CliResult bad = Cli({"login", "--server", address_, "--team", "e2e",
                       "--token", "not-a-token"});
  EXPECT_EQ(bad.exit_code, 4) << bad.err;
  EXPECT_NE(bad.err.find("token rejected"), std::string::npos) << bad.err;
  struct stat st;
  const std::string path = dir_.Join("config/sweepq/config.yaml");
  EXPECT_NE(stat(path.c_str(), &st), 0) << "a rejected login saved a file";

  // --token - reads it from stdin.
  CliResult ok =
      Cli({"login", "--server", address_, "--team", "e2e", "--token", "-"}, {},
          member_ + "\n");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  EXPECT_NE(text.str().find(member_), std::string::npos);

  CliResult runs = Cli({"runs"});
  EXPECT_EQ(runs.exit_code, 0) << runs.err;
  EXPECT_NE(runs.out.find("no runs yet"), std::string::npos);

  // The environment overrides the file: a wrong token from SWEEPQ_TOKEN.
  CliResult overridden = Cli({"runs"}, {{"SWEEPQ_TOKEN", "wrong"}});
  EXPECT_EQ(overridden.exit_code, 4);
}

TEST_F(CliE2eTest, NotLoggedInIsAnAuthErrorThatSaysWhatToDo) {
  CliResult r = Cli({"board"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("run sweepq login"), std::string::npos) << r.err;
}

TEST_F(CliE2eTest, DryRunPrintsTheVaryingParametersAndSubmitsNothing) {
  Login();
  CliResult r = Cli({"submit", WriteFile("s.yaml", kBoardSweep), "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 7u) << r.out;
  EXPECT_NE(lines[0].find("sweep e2e-board, 4 runs (grid; ranked by val_f1, "
                          "maximize"),
            std::string::npos)
      << lines[0];
  // Columns in path order (augment.cutmix.mode < optimizer.name); rows in
  // the sweep's grid order (the last parameter varies fastest).
  EXPECT_EQ(lines[1], "#  cutmix.mode  optimizer.name");
  EXPECT_EQ(lines[2], "0  vertical     radam");
  EXPECT_EQ(lines[3], "1  box          radam");
  EXPECT_EQ(lines[5], "3  box          adamw");
  EXPECT_EQ(lines[6], "dry run: nothing submitted");
  // scheduler.name is in the base config, not swept: no column.
  EXPECT_EQ(r.out.find("scheduler"), std::string::npos);
  CliResult runs = Cli({"runs", "--format", "json"});
  ASSERT_EQ(runs.exit_code, 0);
  auto json = JsonValue::Parse(runs.out);
  ASSERT_TRUE(json.ok()) << runs.out;
  EXPECT_TRUE(json->items().empty());
}

TEST_F(CliE2eTest, SubmitPrintsIdsAndAnIdempotencyKeyCreatesOneSweep) {
  Login();
  std::string path = WriteFile("s.yaml", kBoardSweep);
  CliResult first =
      Cli({"submit", path, "--priority", "5", "--idempotency-key", "k-1"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("submitted sweep 1 (e2e-board): 4 runs, ids 1-4"),
            std::string::npos)
      << first.out;
  CliResult again =
      Cli({"submit", path, "--idempotency-key", "k-1", "--format", "json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  auto json = JsonValue::Parse(again.out);
  ASSERT_TRUE(json.ok()) << again.out;
  EXPECT_TRUE(json->Find("existing")->bool_value());
  EXPECT_EQ(json->Find("sweep_id")->number_value(), 1);
  // Without a key each submit is new (the nonce differs).
  CliResult other = Cli({"submit", path});
  EXPECT_NE(other.out.find("submitted sweep 2"), std::string::npos)
      << other.out;
  CliResult runs = Cli({"runs", "--sweep", "1", "--format", "json"});
  auto list = JsonValue::Parse(runs.out);
  ASSERT_TRUE(list.ok()) << runs.out;
  ASSERT_EQ(list->items().size(), 4u);
  EXPECT_EQ(list->items()[0].Find("priority")->number_value(), 5);
  EXPECT_EQ(list->items()[0].Find("state")->string_value(), "queued");
}

TEST_F(CliE2eTest, BoardRanksRunsInTableJsonAndCsv) {
  ASSERT_NO_FATAL_FAILURE(RunBoardScenario());
  CliResult table = Cli({"board"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  std::cout << "---- sweepq board ----\n" << table.out;
  std::vector<std::string> lines = Lines(table.out);
  ASSERT_EQ(lines.size(), 5u) << table.out;
  EXPECT_EQ(lines[0], "team board: val_f1 (higher is better), 3 runs");
  EXPECT_EQ(lines[1].rfind("rank  run  val_f1  val_acc  epoch  "
                           "cutmix.mode  optimizer.name  state",
                           0),
            0u)
      << lines[1];
  EXPECT_TRUE(std::regex_search(
      lines[2], std::regex(absl::StrCat("^ +1 +", run_ids_[1],
                                        " +0\\.8200 +0\\.9200 +3 +box +radam "
                                        "+succeeded .* w1$"))))
      << lines[2];
  EXPECT_TRUE(std::regex_search(
      lines[3], std::regex(absl::StrCat("^ +2 +", run_ids_[0],
                                        " +0\\.7000 +0\\.8000 +2 +vertical "
                                        "+radam +succeeded"))))
      << lines[3];
  EXPECT_TRUE(std::regex_search(
      lines[4],
      std::regex(absl::StrCat("^ +3 +", run_ids_[2], " +0\\.4000 .* failed"))))
      << lines[4];
  for (const auto& line : lines) EXPECT_LE(CodePoints(line), 100u) << line;
  EXPECT_EQ(table.out.find('\x1b'), std::string::npos) << "colour off a TTY";

  CliResult json_out = Cli({"board", "--format", "json"});
  ASSERT_EQ(json_out.exit_code, 0) << json_out.err;
  std::cout << "---- sweepq board --format json (first entry) ----\n"
            << json_out.out.substr(0, json_out.out.find("  },") + 4) << "\n";
  auto json = JsonValue::Parse(json_out.out);
  ASSERT_TRUE(json.ok()) << json.status() << json_out.out;
  ASSERT_EQ(json->items().size(), 3u);
  const JsonValue& best = json->items()[0];
  EXPECT_EQ(best.Find("rank")->number_value(), 1);
  EXPECT_EQ(best.Find("run_id")->number_value(), run_ids_[1]);
  EXPECT_EQ(best.Find("sweep_id")->number_value(), sweep_id_);
  EXPECT_EQ(best.Find("metric")->string_value(), "val_f1");
  EXPECT_EQ(best.Find("goal")->string_value(), "maximize");
  EXPECT_DOUBLE_EQ(best.Find("best_value")->number_value(), 0.82);
  EXPECT_EQ(best.Find("best_step")->number_value(), 3);
  EXPECT_DOUBLE_EQ(best.Find("metrics")->Find("val_acc")->number_value(), 0.92);
  EXPECT_EQ(best.Find("params")->Find("optimizer.name")->string_value(),
            "radam");
  EXPECT_EQ(best.Find("params")->Find("augment.cutmix.mode")->string_value(),
            "box");
  EXPECT_EQ(best.Find("state")->string_value(), "succeeded");
  EXPECT_EQ(best.Find("worker_id")->string_value(), "w1");
  EXPECT_TRUE(best.Find("duration_ms")->is_number());
  EXPECT_EQ(json->items()[2].Find("state")->string_value(), "failed");

  CliResult csv = Cli({"board", "--format", "csv", "--top", "2"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  std::vector<std::string> rows = Lines(csv.out);
  ASSERT_EQ(rows.size(), 3u) << csv.out;
  // The top two are both radam: only cutmix.mode differs between them.
  EXPECT_EQ(rows[0],
            "rank,run,val_f1,val_acc,epoch,cutmix.mode,state,time,worker");
  EXPECT_TRUE(std::regex_match(
      rows[1], std::regex(absl::StrCat("1,", run_ids_[1],
                                       ",0\\.82,0\\.9[0-9]*,3,box,succeeded,"
                                       "[0-9]+,w1"))))
      << rows[1];

  // A sweep board with --metric that no run optimises is empty, not an error.
  CliResult other_metric = Cli({"board", "--metric", "val_loss"});
  EXPECT_EQ(other_metric.exit_code, 0);
  EXPECT_NE(other_metric.out.find("no runs have reported val_loss"),
            std::string::npos);
}

TEST_F(CliE2eTest, RunsShowAndArtifactsDescribeTheRuns) {
  ASSERT_NO_FATAL_FAILURE(RunBoardScenario());
  CliResult failed = Cli({"runs", "--state", "failed"});
  ASSERT_EQ(failed.exit_code, 0) << failed.err;
  ASSERT_EQ(Lines(failed.out).size(), 2u) << failed.out;
  EXPECT_NE(failed.out.find("failed"), std::string::npos);

  CliResult all = Cli({"runs", "--sweep", std::to_string(sweep_id_)});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::cout << "---- sweepq runs ----\n" << all.out;
  EXPECT_EQ(Lines(all.out).size(), 5u) << all.out;

  const std::string best = std::to_string(run_ids_[1]);
  CliResult show = Cli({"show", best});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  std::cout << "---- sweepq show " << best << " ----\n" << show.out;
  EXPECT_NE(show.out.find("run " + best + "  succeeded"), std::string::npos);
  EXPECT_NE(show.out.find("best        val_f1 0.8200 at epoch 3"),
            std::string::npos)
      << show.out;
  EXPECT_NE(show.out.find("val_acc 0.9200"), std::string::npos);
  EXPECT_NE(show.out.find("best.ckpt"), std::string::npos);
  EXPECT_NE(show.out.find("attempts"), std::string::npos);
  EXPECT_NE(show.out.find(" w1 "), std::string::npos);
  EXPECT_NE(show.out.find("    name: radam"), std::string::npos);
  EXPECT_NE(show.out.find("augment.cutmix.mode=box"), std::string::npos);

  CliResult show_failed = Cli({"show", std::to_string(run_ids_[2])});
  EXPECT_NE(show_failed.out.find("error       CUDA out of memory"),
            std::string::npos)
      << show_failed.out;

  CliResult json_out = Cli({"show", best, "--format", "json"});
  auto json = JsonValue::Parse(json_out.out);
  ASSERT_TRUE(json.ok()) << json_out.out;
  EXPECT_EQ(
      json->Find("config")->Find("optimizer")->Find("name")->string_value(),
      "radam");
  EXPECT_EQ(
      json->Find("attempts")->items()[0].Find("worker_id")->string_value(),
      "w1");
  EXPECT_EQ(json->Find("attempts")->items()[0].Find("outcome")->string_value(),
            "succeeded");
  EXPECT_DOUBLE_EQ(
      json->Find("metrics_at_best")->Find("val_acc")->number_value(), 0.92);

  CliResult ls = Cli({"artifacts", "ls", best, "--format", "json"});
  auto artifacts = JsonValue::Parse(ls.out);
  ASSERT_TRUE(artifacts.ok()) << ls.out;
  ASSERT_EQ(artifacts->items().size(), 1u);
  EXPECT_EQ(artifacts->items()[0].Find("name")->string_value(), "best.ckpt");
  EXPECT_EQ(artifacts->items()[0].Find("size")->number_value(),
            static_cast<double>(artifact_.size()));
  EXPECT_EQ(artifacts->items()[0].Find("sha256")->string_value(),
            Sha256Hex(artifact_));

  const std::string target = dir_.Join("downloaded.ckpt");
  CliResult get = Cli({"artifacts", "get", best, "best.ckpt", "-o", target});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_NE(get.out.find("verified"), std::string::npos);
  std::stringstream bytes;
  bytes << std::ifstream(target, std::ios::binary).rdbuf();
  EXPECT_TRUE(bytes.str() == artifact_) << "download differs";
  // No partial file is left next to it.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    if (entry.path().string().find(".sweepq-part-") != std::string::npos) {
      ++files;
    }
  }
  EXPECT_EQ(files, 0);
  CliResult again = Cli({"artifacts", "get", best, "best.ckpt", "-o", target});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("--force"), std::string::npos);
  CliResult missing =
      Cli({"artifacts", "get", best, "nope.bin", "-o", dir_.Join("nope.bin")});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
}

TEST_F(CliE2eTest, WatchReplaysAFinishedRunAndExitsByItsOutcome) {
  ASSERT_NO_FATAL_FAILURE(RunBoardScenario());
  CliResult ok = Cli({"watch", std::to_string(run_ids_[1])});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  std::cout << "---- sweepq watch " << run_ids_[1] << " ----\n" << ok.out;
  for (const char* epoch : {"epoch 1/3", "epoch 2/3", "epoch 3/3"}) {
    EXPECT_EQ(Count(ok.out, epoch), 1u) << ok.out;
  }
  EXPECT_NE(ok.out.find("val_f1 0.8200 *"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("-- running on w1"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("run " + std::to_string(run_ids_[1]) + " succeeded"),
            std::string::npos);
  CliResult failed = Cli({"watch", std::to_string(run_ids_[2])});
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_NE(failed.err.find("CUDA out of memory"), std::string::npos);
}

TEST_F(CliE2eTest, WatchFollowsALiveRunUntilItEnds) {
  Login();
  int64_t sweep = Submit(R"(name: live
method: grid
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 4}
parameters:
  seed: {values: [1]}
)");
  ASSERT_GT(sweep, 0);
  FakeWorker worker(address_, worker_token_, WorkerNamed("w-live"));
  v1::LeaseResponse leased = worker.Lease();
  const std::string run = std::to_string(leased.run().run_id());
  // The watcher starts before any metric exists and sees them arrive.
  setenv("XDG_CONFIG_HOME", dir_.Join("config").c_str(), 1);
  testing::Subprocess watch({kCli, "watch", run});
  std::string line;
  ASSERT_TRUE(watch.ReadLine(&line));
  EXPECT_NE(line.find("watching run " + run), std::string::npos) << line;
  for (int epoch = 1; epoch <= 4; ++epoch) {
    ReportEpoch(worker, leased.lease(), epoch, 0.1 * epoch);
  }
  worker.Finish(leased.lease(), v1::OUTCOME_SUCCEEDED);
  std::string out = watch.ReadAll();
  int raw = watch.Wait();
  EXPECT_TRUE(WIFEXITED(raw) && WEXITSTATUS(raw) == 0) << out;
  for (const char* epoch :
       {"epoch 1/4", "epoch 2/4", "epoch 3/4", "epoch 4/4"}) {
    EXPECT_EQ(Count(out, epoch), 1u) << out;
  }
  EXPECT_NE(out.find("eta"), std::string::npos) << out;
  EXPECT_NE(out.find("-- succeeded"), std::string::npos) << out;
}

// On a terminal (script(1) provides one) tables are coloured unless
// NO_COLOR is set, and watch draws a live progress line with an ETA.
TEST_F(CliE2eTest, TerminalGetsColourAndALiveProgressLineUnlessNoColor) {
  const std::string script = "/usr/bin/script";
  if (access(script.c_str(), X_OK) != 0) GTEST_SKIP() << "no script(1)";
  ASSERT_NO_FATAL_FAILURE(RunBoardScenario());
  auto on_tty = [&](const std::string& command,
                    std::map<std::string, std::string> env) {
    env["TERM"] = "xterm";
    env["XDG_CONFIG_HOME"] = dir_.Join("config");
    for (const char* var :
         {"SWEEPQ_SERVER", "SWEEPQ_TOKEN", "SWEEPQ_TEAM", "SWEEPQ_TLS_CA"}) {
      env.emplace(var, kUnset);
    }
    return testing::RunProcess(
        {script, "-qec", kCli + " " + command, "/dev/null"}, env);
  };
  CliResult colored = on_tty("board", {{"NO_COLOR", kUnset}});
  ASSERT_EQ(colored.exit_code, 0) << colored.out << colored.err;
  EXPECT_NE(colored.out.find("\x1b[1mrank"), std::string::npos) << colored.out;
  EXPECT_NE(colored.out.find("\x1b[32msucceeded\x1b[0m"), std::string::npos);
  CliResult plain = on_tty("board", {{"NO_COLOR", "1"}});
  ASSERT_EQ(plain.exit_code, 0);
  EXPECT_EQ(plain.out.find("\x1b["), std::string::npos) << plain.out;
  CliResult flag = on_tty("board --no-color", {{"NO_COLOR", kUnset}});
  EXPECT_EQ(flag.out.find("\x1b["), std::string::npos) << flag.out;

  // watch on a terminal: the run's four epochs arrive while it watches.
  // (The scenario's last queued run is cancelled so the worker gets ours.)
  ASSERT_EQ(Cli({"cancel", "--sweep", std::to_string(sweep_id_)}).exit_code, 0);
  int64_t sweep = Submit(R"(name: tty
method: grid
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 4}
parameters:
  seed: {values: [1]}
)");
  ASSERT_GT(sweep, 0);
  FakeWorker worker(address_, worker_token_, WorkerNamed("w-tty"));
  v1::LeaseResponse leased = worker.Lease();
  setenv("XDG_CONFIG_HOME", dir_.Join("config").c_str(), 1);
  setenv("NO_COLOR", "1", 1);
  testing::Subprocess watch(
      {script, "-qec", kCli + " watch " + std::to_string(leased.run().run_id()),
       "/dev/null"});
  std::string line;
  ASSERT_TRUE(watch.ReadLine(&line));
  for (int epoch = 1; epoch <= 4; ++epoch) {
    ReportEpoch(worker, leased.lease(), epoch, 0.1 * epoch);
  }
  worker.Finish(leased.lease(), v1::OUTCOME_SUCCEEDED);
  std::string out = watch.ReadAll();
  int raw = watch.Wait();
  unsetenv("NO_COLOR");
  EXPECT_TRUE(WIFEXITED(raw) && WEXITSTATUS(raw) == 0) << out;
  EXPECT_NE(out.find("\r\x1b[K"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("\\[#+\\.*\\] [0-4]/4 epochs")))
      << out;
  for (const char* epoch :
       {"epoch 1/4", "epoch 2/4", "epoch 3/4", "epoch 4/4"}) {
    EXPECT_EQ(Count(out, epoch), 1u) << out;
  }
}

TEST_F(CliE2eTest, CancelAndRetry) {
  ASSERT_NO_FATAL_FAILURE(RunBoardScenario());
  const std::string failed = std::to_string(run_ids_[2]);
  CliResult not_failed = Cli({"retry", std::to_string(run_ids_[1])});
  EXPECT_EQ(not_failed.exit_code, 1) << not_failed.err;
  EXPECT_NE(not_failed.err.find("FAILED_PRECONDITION"), std::string::npos);

  CliResult retry = Cli({"retry", failed});
  ASSERT_EQ(retry.exit_code, 0) << retry.err;
  EXPECT_NE(retry.out.find("run " + failed + " queued again"),
            std::string::npos)
      << retry.out;

  // It fails again; --sweep S --failed retries every failed run.
  FakeWorker worker(address_, worker_token_, WorkerNamed("w2"));
  v1::LeaseResponse leased = worker.Lease();
  ASSERT_EQ(std::to_string(leased.run().run_id()), failed);
  worker.Finish(leased.lease(), v1::OUTCOME_FAILED, "again");
  CliResult sweep_retry =
      Cli({"retry", "--sweep", std::to_string(sweep_id_), "--failed"});
  ASSERT_EQ(sweep_retry.exit_code, 0) << sweep_retry.err;
  EXPECT_NE(sweep_retry.out.find("run " + failed + " queued again"),
            std::string::npos);
  CliResult usage = Cli({"retry", "--sweep", std::to_string(sweep_id_)});
  EXPECT_EQ(usage.exit_code, 2);

  // The never-leased fourth run is still queued: cancel it.
  CliResult queued = Cli({"runs", "--state", "queued", "--format", "json"});
  auto list = JsonValue::Parse(queued.out);
  ASSERT_TRUE(list.ok()) << queued.out;
  ASSERT_EQ(list->items().size(), 2u) << queued.out;
  const std::string fourth = list->items()[0].Find("run_id")->number_text();
  CliResult cancel = Cli({"cancel", fourth});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_EQ(cancel.out, "run " + fourth + " cancelled\n");

  CliResult sweep_cancel =
      Cli({"cancel", "--sweep", std::to_string(sweep_id_)});
  ASSERT_EQ(sweep_cancel.exit_code, 0) << sweep_cancel.err;
  EXPECT_NE(sweep_cancel.out.find("1 queued run cancelled"), std::string::npos)
      << sweep_cancel.out;
  // Every run is final now, with cancelled ones: watch --sweep says so.
  CliResult watch = Cli({"watch", "--sweep", std::to_string(sweep_id_)});
  EXPECT_EQ(watch.exit_code, 1) << watch.err;
  EXPECT_NE(watch.out.find("2 succeeded, 2 cancelled"), std::string::npos)
      << watch.out;
}

TEST_F(CliE2eTest, WorkersListDrainAndClear) {
  Login();
  FakeWorker worker(address_, worker_token_, WorkerNamed("gpu-node-3"));
  CliResult list = Cli({"workers", "--format", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto json = JsonValue::Parse(list.out);
  ASSERT_TRUE(json.ok()) << list.out;
  ASSERT_EQ(json->items().size(), 1u);
  EXPECT_EQ(json->items()[0].Find("worker_id")->string_value(), "gpu-node-3");
  EXPECT_EQ(json->items()[0].Find("state")->string_value(), "active");
  CliResult drain = Cli({"workers", "drain", "gpu-node-3"});
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  EXPECT_NE(drain.out.find("is draining"), std::string::npos);
  CliResult table = Cli({"workers"});
  EXPECT_NE(table.out.find("draining"), std::string::npos) << table.out;
  CliResult clear = Cli({"workers", "clear", "gpu-node-3"});
  EXPECT_EQ(clear.exit_code, 0) << clear.err;
  CliResult unknown = Cli({"workers", "drain", "nope"});
  EXPECT_EQ(unknown.exit_code, 3) << unknown.err;
}

TEST_F(CliE2eTest, ErrorPathsHaveDistinctExitCodesAndSentences) {
  Login();
  CliResult unknown_run = Cli({"show", "999"});
  EXPECT_EQ(unknown_run.exit_code, 3);
  EXPECT_NE(unknown_run.err.find("run 999 not found"), std::string::npos)
      << unknown_run.err;

  CliResult bad_token = Cli({"board"}, {{"SWEEPQ_TOKEN", "bogus"}});
  EXPECT_EQ(bad_token.exit_code, 4);
  EXPECT_NE(bad_token.err.find("token rejected \u2014 run sweepq login"),
            std::string::npos)
      << bad_token.err;

  CliResult worker_token = Cli({"runs"}, {{"SWEEPQ_TOKEN", worker_token_}});
  EXPECT_EQ(worker_token.exit_code, 4);
  EXPECT_NE(worker_token.err.find("member token"), std::string::npos);

  CliResult mistyped = Cli({"submit", WriteFile("bad.yaml", R"(method: grid
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 3}
  optimizer: {lrr: 0.1}
parameters:
  seed: {values: [1, 2]}
)")});
  EXPECT_EQ(mistyped.exit_code, 2);
  EXPECT_NE(mistyped.err.find("bad.yaml: config.optimizer.lrr: unknown field "
                              "\"lrr\""),
            std::string::npos)
      << mistyped.err;

  CliResult syntax = Cli({"submit", WriteFile("syntax.yaml",
                                              "method: grid\nconfig:\n"
                                              "  data: {dataset: mask\n")});
  EXPECT_EQ(syntax.exit_code, 2);
  EXPECT_NE(syntax.err.find("syntax.yaml: YAML syntax error at line"),
            std::string::npos)
      << syntax.err;

  CliResult bad_value = Cli({"submit", WriteFile("value.yaml", R"(method: grid
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 3}
parameters:
  optimizer.name: {values: [radam, radamm]}
)")});
  EXPECT_EQ(bad_value.exit_code, 2);
  EXPECT_NE(bad_value.err.find("optimizer.name"), std::string::npos)
      << bad_value.err;
  EXPECT_NE(bad_value.err.find("radamm"), std::string::npos);

  CliResult no_file = Cli({"submit", dir_.Join("missing.yaml")});
  EXPECT_EQ(no_file.exit_code, 3);

  CliResult usage = Cli({"board", "--format", "xml"});
  EXPECT_EQ(usage.exit_code, 2);
  CliResult typo = Cli({"bord"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.err.find("did you mean board?"), std::string::npos);

  // The coordinator goes away: exit 5 and the sentence.
  server_->process().Kill(SIGTERM);
  server_->process().Wait();
  CliResult down = Cli({"runs"});
  EXPECT_EQ(down.exit_code, 5);
  EXPECT_NE(down.err.find("cannot reach the coordinator at " + address_ +
                          " \u2014 is sweepq-server running? (UNAVAILABLE)"),
            std::string::npos)
      << down.err;
}

TEST_F(CliE2eTest, EveryCommandHasHelpWithAnExample) {
  for (const char* command :
       {"login", "config", "submit", "runs", "show", "watch", "board", "cancel",
        "retry", "workers", "artifacts", "example-sweep"}) {
    CliResult r = Cli({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.out.find("Usage: sweepq " + std::string(command)),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("Example:\n  "), std::string::npos) << r.out;
  }
  CliResult main_help = Cli({"--help"});
  EXPECT_NE(main_help.out.find("Exit codes"), std::string::npos);
}

TEST_F(CliE2eTest, ExampleSweepRoundTripsThroughSubmit) {
  Login();
  CliResult example = Cli({"example-sweep"});
  ASSERT_EQ(example.exit_code, 0);
  CliResult dry = Cli({"submit", "-", "--dry-run"}, {}, example.out);
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("4 runs"), std::string::npos) << dry.out;
}

// TLS is one flag away: the server with --tls-cert/--tls-key, the CLI with
// --tls-ca. Without the CA the CLI cannot connect and says so.
TEST(CliTlsTest, LoginAndListOverTlsWithTheCaAndFailWithoutIt) {
  testing::TempDir dir;
  const std::string cert = dir.Join("cert.pem");
  const std::string key = dir.Join("key.pem");
  absl::Status made = testing::MakeSelfSignedCertificate(cert, key);
  ASSERT_TRUE(made.ok()) << made;
  const std::string db = dir.Join("sweepq.db");
  auto tokens = testing::CreateTeam(db, "tls");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  const std::string member = tokens->member;
  testing::ServerProcess server({"--db=" + db,
                                 "--artifacts=" + dir.Join("artifacts"),
                                 "--tls-cert=" + cert, "--tls-key=" + key});
  ASSERT_GT(server.port(), 0) << "sweepq-server did not start with TLS";
  const std::map<std::string, std::string> env = {
      {"XDG_CONFIG_HOME", dir.Join("config")},
      {"SWEEPQ_SERVER", kUnset},
      {"SWEEPQ_TOKEN", kUnset},
      {"SWEEPQ_TEAM", kUnset},
      {"SWEEPQ_TLS_CA", kUnset}};
  const std::string address = "localhost:" + std::to_string(server.port());

  CliResult plain = testing::RunProcess(
      {kCli, "login", "--server", address, "--team", "tls", "--token", member,
       "--timeout", "3"},
      env);
  EXPECT_EQ(plain.exit_code, 5) << plain.out << plain.err;

  CliResult login = testing::RunProcess(
      {kCli, "login", "--server", address, "--team", "tls", "--token", member,
       "--tls-ca", cert},
      env);
  ASSERT_EQ(login.exit_code, 0) << login.err;
  CliResult runs = testing::RunProcess({kCli, "runs", "--format", "json"}, env);
  EXPECT_EQ(runs.exit_code, 0) << runs.err;
}

}  // namespace
}  // namespace sweepq
