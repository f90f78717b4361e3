#include "tests/worker/daemon/harness.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sweepq::testing {
namespace {

namespace v1 = ::sweepq::v1;

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

// (state, parent pid) of /proc/<pid>/stat.
bool ReadStat(pid_t pid, char* state, pid_t* parent) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text;
  if (!std::getline(in, text)) return false;
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return false;
  std::istringstream rest(text.substr(paren + 2));
  rest >> *state >> *parent;
  return static_cast<bool>(rest);
}

}  // namespace

std::string WorkerBinary() {
  return std::string(SWEEPQ_BINARY_DIR) + "/worker/sweepq-worker";
}
std::string FakeTrainBinary() {
  return std::string(SWEEPQ_BINARY_DIR) +
         "/tests/worker/daemon/fake-sweepq-train";
}
std::string RealTrainBinary() {
  return std::string(SWEEPQ_BINARY_DIR) + "/worker/sweepq-train";
}
std::string MakeDatasetBinary() {
  return std::string(SWEEPQ_BINARY_DIR) + "/worker/sweepq-make-dataset";
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return children;
  while (struct dirent* entry = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(atoi(entry->d_name));
    char state;
    pid_t ppid;
    if (pid > 0 && ReadStat(pid, &state, &ppid) && ppid == parent &&
        state != 'Z') {
      children.push_back(pid);
    }
  }
  closedir(proc);
  return children;
}

bool Alive(pid_t pid) {
  char state;
  pid_t ppid;
  return ReadStat(pid, &state, &ppid) && state != 'Z';
}

WorkerProcess::WorkerProcess(std::string log_path,
                             const std::vector<std::string>& args,
                             const std::vector<std::string>& env)
    : log_path_(std::move(log_path)) {
  // env(1) adds the variables, sh redirects stderr, and both exec, so the
  // pid is the worker's.
  std::vector<std::string> argv = {"/usr/bin/env"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {"/bin/sh", "-c",
                           "exec \"$@\" 2>>'" + log_path_ + "'", "sh",
                           WorkerBinary()});
  argv.insert(argv.end(), args.begin(), args.end());
  process_ = std::make_unique<Subprocess>(argv);
}

std::string WorkerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool WorkerProcess::LogContains(const std::string& needle) const {
  return absl::StrContains(Log(), needle);
}

int WorkerProcess::Wait() {
  const int raw = process_->Wait();
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

TeamClient::TeamClient(const std::string& address, std::string member_token,
                       const std::string& tls_ca_file)
    : token_(std::move(member_token)) {
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!tls_ca_file.empty()) {
    std::ifstream in(tls_ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(ssl);
  }
  stub_ = v1::TeamService::NewStub(grpc::CreateChannel(address, credentials));
}

std::unique_ptr<grpc::ClientContext> TeamClient::Ctx() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", "Bearer " + token_);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

absl::StatusOr<v1::SubmitSweepResponse> TeamClient::Submit(
    const std::string& yaml) {
  v1::SubmitSweepRequest req;
  req.set_spec_yaml(yaml);
  v1::SubmitSweepResponse resp;
  absl::Status s = FromGrpc(stub_->SubmitSweep(Ctx().get(), req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<v1::Run> TeamClient::GetRun(int64_t run_id) {
  v1::GetRunRequest req;
  req.set_run_id(run_id);
  v1::Run run;
  absl::Status s = FromGrpc(stub_->GetRun(Ctx().get(), req, &run));
  if (!s.ok()) return s;
  return run;
}

v1::RunState TeamClient::StateOf(int64_t run_id) {
  auto run = GetRun(run_id);
  return run.ok() ? run->state() : v1::RUN_STATE_UNSPECIFIED;
}

absl::StatusOr<std::vector<v1::LeaderboardEntry>> TeamClient::Board(
    int64_t sweep_id) {
  v1::LeaderboardRequest req;
  req.set_sweep_id(sweep_id);
  v1::LeaderboardResponse resp;
  absl::Status s = FromGrpc(stub_->Leaderboard(Ctx().get(), req, &resp));
  if (!s.ok()) return s;
  return std::vector<v1::LeaderboardEntry>(resp.entries().begin(),
                                           resp.entries().end());
}

absl::StatusOr<std::vector<v1::Artifact>> TeamClient::Artifacts(int64_t run_id) {
  v1::ListArtifactsRequest req;
  req.set_run_id(run_id);
  v1::ListArtifactsResponse resp;
  absl::Status s = FromGrpc(stub_->ListArtifacts(Ctx().get(), req, &resp));
  if (!s.ok()) return s;
  return std::vector<v1::Artifact>(resp.artifacts().begin(),
                                   resp.artifacts().end());
}

absl::StatusOr<std::string> TeamClient::Download(int64_t run_id,
                                                 const std::string& name,
                                                 uint32_t attempt) {
  v1::DownloadArtifactRequest req;
  req.set_run_id(run_id);
  req.set_name(name);
  req.set_attempt(attempt);
  auto ctx = Ctx();
  auto reader = stub_->DownloadArtifact(ctx.get(), req);
  std::string data;
  v1::ArtifactChunk chunk;
  while (reader->Read(&chunk)) data += chunk.data();
  absl::Status s = FromGrpc(reader->Finish());
  if (!s.ok()) return s;
  return data;
}

absl::StatusOr<v1::RunState> TeamClient::Cancel(int64_t run_id) {
  v1::CancelRunRequest req;
  req.set_run_id(run_id);
  v1::CancelRunResponse resp;
  absl::Status s = FromGrpc(stub_->CancelRun(Ctx().get(), req, &resp));
  if (!s.ok()) return s;
  return resp.state();
}

absl::StatusOr<std::vector<v1::Worker>> TeamClient::Workers() {
  v1::ListWorkersResponse resp;
  absl::Status s = FromGrpc(
      stub_->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &resp));
  if (!s.ok()) return s;
  return std::vector<v1::Worker>(resp.workers().begin(), resp.workers().end());
}

absl::Status TeamClient::ClearWorker(const std::string& id) {
  v1::ClearWorkerRequest req;
  req.set_worker_id(id);
  v1::ClearWorkerResponse resp;
  return FromGrpc(stub_->ClearWorker(Ctx().get(), req, &resp));
}

absl::StatusOr<std::vector<v1::WatchRunResponse>> TeamClient::History(
    int64_t run_id) {
  v1::WatchRunRequest req;
  req.set_run_id(run_id);
  auto ctx = Ctx();
  auto reader = stub_->WatchRun(ctx.get(), req);
  std::vector<v1::WatchRunResponse> items;
  v1::WatchRunResponse item;
  while (reader->Read(&item)) items.push_back(item);
  absl::Status s = FromGrpc(reader->Finish());
  if (!s.ok()) return s;
  return items;
}

}  // namespace sweepq::testing
