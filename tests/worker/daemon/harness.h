// Helpers for the worker daemon's end-to-end tests: the real sweepq-worker
// as a process with its log in a file, a teammate's view of the coordinator
// (TeamService with the member token), and polling with a deadline.
#ifndef SWEEPQ_TESTS_WORKER_DAEMON_HARNESS_H_
#define SWEEPQ_TESTS_WORKER_DAEMON_HARNESS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "sweepq/v1/coordinator.grpc.pb.h"
#include "tests/testing/subprocess.h"

namespace sweepq::testing {

// Paths of the binaries built with the tests.
std::string WorkerBinary();
std::string FakeTrainBinary();
std::string RealTrainBinary();
std::string MakeDatasetBinary();

// Calls `condition` every 20 ms until it returns true or `timeout` passed;
// returns its last answer.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);

// Direct children of `parent` (from /proc).
std::vector<pid_t> ChildrenOf(pid_t parent);
// True while `pid` exists and is not a zombie.
bool Alive(pid_t pid);

// sweepq-worker with `args`, stderr appended to `log_path`, and `env`
// ("NAME=VALUE") added to the test's environment. SIGKILLed on destruction
// unless stopped.
class WorkerProcess {
 public:
  WorkerProcess(std::string log_path, const std::vector<std::string>& args,
                const std::vector<std::string>& env = {});

  pid_t pid() const { return process_->pid(); }
  // The log so far.
  std::string Log() const;
  bool LogContains(const std::string& needle) const;
  // The sweepq-train children running now.
  std::vector<pid_t> Children() const { return ChildrenOf(pid()); }
  void Signal(int sig) { process_->Kill(sig); }
  // Waits for the exit; returns its code, or 128 + signal.
  int Wait();

 private:
  std::string log_path_;
  std::unique_ptr<Subprocess> process_;
};

// The coordinator as a teammate sees it.
class TeamClient {
 public:
  // Plaintext, or TLS when `tls_ca_file` (PEM) is given.
  TeamClient(const std::string& address, std::string member_token,
             const std::string& tls_ca_file = "");

  absl::StatusOr<sweepq::v1::SubmitSweepResponse> Submit(const std::string& yaml);
  absl::StatusOr<sweepq::v1::Run> GetRun(int64_t run_id);
  absl::StatusOr<std::vector<sweepq::v1::LeaderboardEntry>> Board(
      int64_t sweep_id);
  absl::StatusOr<std::vector<sweepq::v1::Artifact>> Artifacts(int64_t run_id);
  absl::StatusOr<std::string> Download(int64_t run_id, const std::string& name,
                                       uint32_t attempt = 0);
  absl::StatusOr<sweepq::v1::RunState> Cancel(int64_t run_id);
  absl::StatusOr<std::vector<sweepq::v1::Worker>> Workers();
  absl::Status ClearWorker(const std::string& id);
  // Every metric point and event of a finished run, in order.
  absl::StatusOr<std::vector<sweepq::v1::WatchRunResponse>> History(
      int64_t run_id);

  // The run's state, or UNSPECIFIED when the call fails (server down).
  sweepq::v1::RunState StateOf(int64_t run_id);

 private:
  std::unique_ptr<grpc::ClientContext> Ctx() const;
  std::string token_;
  std::unique_ptr<sweepq::v1::TeamService::Stub> stub_;
};

}  // namespace sweepq::testing

#endif  // SWEEPQ_TESTS_WORKER_DAEMON_HARNESS_H_
