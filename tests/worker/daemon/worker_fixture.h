// The fixture of the worker daemon's end-to-end tests: a team on a real
// sweepq-server (a fresh database under a temporary directory), real
// sweepq-worker processes, and helpers to read what the coordinator holds.
#ifndef SWEEPQ_TESTS_WORKER_DAEMON_WORKER_FIXTURE_H_
#define SWEEPQ_TESTS_WORKER_DAEMON_WORKER_FIXTURE_H_

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/daemon/harness.h"

namespace sweepq {

// A grid over the learning rate: one run per value.
inline std::string SweepYaml(int epochs, const std::vector<std::string>& lrs,
                             int max_attempts = 3) {
  return absl::StrCat(
      "name: daemon-e2e\nmethod: grid\nmetric: {name: val_f1, goal: maximize}\n"
      "max_attempts: ", max_attempts,
      "\nconfig:\n  data: {dataset: mask}\n  model: {name: small_cnn}\n"
      "  train: {epochs: ", epochs,
      "}\nparameters:\n  optimizer.lr: {values: [", absl::StrJoin(lrs, ", "),
      "]}\n");
}

// The whole file ("" if it cannot be read).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The value of "key": N in a flat JSON payload (-1 if absent).
inline int64_t IntField(const std::string& json, const std::string& key) {
  const std::string needle = "\"" + key + "\":";
  const size_t at = json.find(needle);
  if (at == std::string::npos) return -1;
  return std::stoll(json.substr(at + needle.size()));
}

// A team on a fresh sweepq-server database (tokens_), a `mask` data
// directory, and helpers: StartServer, StartWorker, Run, AwaitState,
// History, PointCounts, Events.
class WorkerE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tokens = sweepq::testing::CreateTeam(dir_.Join("sweepq.db"), "team");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = *tokens;
    std::ofstream(dir_.Join("worker.token")) << tokens_.worker << "\n";
    std::filesystem::create_directories(dir_.Join("data/mask"));
  }

  // `tls_ca`: talk to it over TLS with this CA (as localhost).
  void StartServer(std::vector<std::string> flags, int port = 0,
                   const std::string& tls_ca = "") {
    flags.push_back("--db=" + dir_.Join("sweepq.db"));
    flags.push_back("--artifacts=" + dir_.Join("artifacts"));
    if (port != 0) flags.push_back(absl::StrCat("--listen=127.0.0.1:", port));
    server_.reset();
    server_ = std::make_unique<testing::ServerProcess>(flags);
    ASSERT_NE(server_->port(), 0) << "sweepq-server did not start";
    team_ = std::make_unique<testing::TeamClient>(
        tls_ca.empty() ? server_->address()
                       : absl::StrCat("localhost:", server_->port()),
        tokens_.member, tls_ca);
  }

  std::string WorkDir(const std::string& id) { return dir_.Join("work-" + id); }

  std::unique_ptr<testing::WorkerProcess> StartWorker(
      const std::string& id, const std::vector<std::string>& extra = {},
      const std::vector<std::string>& env = {}) {
    std::vector<std::string> args = {
        "--server=" + server_->address(),
        "--token-file=" + dir_.Join("worker.token"),
        "--worker-id=" + id,
        "--data=mask=" + dir_.Join("data/mask"),
        "--work-dir=" + WorkDir(id),
        "--train-binary=" + train_binary_,
        "--grace-period-ms=2000",
        "--probe-interval-ms=300",
        "--max-backoff-ms=500"};
    bool slots = false;
    for (const auto& e : extra) slots |= absl::StartsWith(e, "--slots") ||
                                          absl::StartsWith(e, "--gpus");
    if (!slots) args.push_back("--slots=1");
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<testing::WorkerProcess>(dir_.Join("worker-" + id + ".log"),
                                           args, env);
  }

  v1::Run Run(int64_t id) {
    auto run = team_->GetRun(id);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : v1::Run();
  }

  bool StateIs(int64_t id, v1::RunState state) {
    return team_->StateOf(id) == state;
  }

  // Waits for the run to reach `state`; on timeout fails with the logs.
  void AwaitState(int64_t id, v1::RunState state, absl::Duration timeout,
                  const testing::WorkerProcess* worker = nullptr) {
    if (testing::WaitFor([&] { return StateIs(id, state); }, timeout)) return;
    ADD_FAILURE() << "run " << id << " is " << v1::RunState_Name(team_->StateOf(id))
                  << ", not " << v1::RunState_Name(state)
                  << (worker != nullptr ? "\nworker log:\n" + worker->Log() : "");
  }

  // (attempt, name, step) -> how many times the coordinator holds it.
  std::map<std::tuple<uint32_t, std::string, int64_t>, int> PointCounts(
      const std::vector<v1::WatchRunResponse>& history) {
    std::map<std::tuple<uint32_t, std::string, int64_t>, int> counts;
    for (const auto& item : history) {
      if (item.has_metric()) {
        ++counts[{item.metric().attempt(), item.metric().name(),
                  item.metric().step()}];
      }
    }
    return counts;
  }

  std::vector<v1::RunEvent> Events(const std::vector<v1::WatchRunResponse>& h,
                                   const std::string& kind) {
    std::vector<v1::RunEvent> out;
    for (const auto& item : h) {
      if (item.has_event() && item.event().kind() == kind) {
        out.push_back(item.event());
      }
    }
    return out;
  }

  std::vector<v1::WatchRunResponse> History(int64_t run_id) {
    auto history = team_->History(run_id);
    EXPECT_TRUE(history.ok()) << history.status();
    return history.ok() ? *history : std::vector<v1::WatchRunResponse>();
  }

  // The child program: the fake unless a test sets the real one.
  std::string train_binary_ = testing::FakeTrainBinary();
  testing::TempDir dir_;
  testing::TeamTokens tokens_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<testing::TeamClient> team_;
};

}  // namespace sweepq

#endif  // SWEEPQ_TESTS_WORKER_DAEMON_WORKER_FIXTURE_H_
