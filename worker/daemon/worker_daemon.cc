#include "worker/daemon/worker_daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "worker/daemon/backoff.h"
#include "worker/daemon/spool.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::sweepq::v1;

bool IsAuthError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnauthenticated ||
         s.code() == absl::StatusCode::kPermissionDenied;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerDaemon>> WorkerDaemon::Create(
    WorkerOptions options) {
  for (const std::string& dir :
       {options.work_dir, options.spool_dir, options.work_dir + "/runs"}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot create ", dir, ": ", ec.message()));
    }
  }
  const std::string lock_path = options.work_dir + "/.lock";
  const int lock_fd =
      open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open ", lock_path, ": ", strerror(errno)));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    close(lock_fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "another sweepq-worker uses the work directory ", options.work_dir,
        " (pass --work-dir to run a second one)"));
  }
  ClientOptions client_options;
  client_options.server = options.server;
  client_options.token = options.token;
  client_options.tls_ca_file = options.tls_ca_file;
  client_options.rpc_timeout = options.rpc_timeout;
  auto client = CoordinatorClient::Connect(client_options);
  if (!client.ok()) {
    close(lock_fd);
    return client.status();
  }
  return std::unique_ptr<WorkerDaemon>(
      new WorkerDaemon(std::move(options), std::move(*client), lock_fd));
}

WorkerDaemon::WorkerDaemon(WorkerOptions options,
                           std::unique_ptr<CoordinatorClient> client,
                           int lock_fd)
    : options_(std::move(options)),
      client_(std::move(client)),
      lock_fd_(lock_fd) {}

WorkerDaemon::~WorkerDaemon() { close(lock_fd_); }

bool WorkerDaemon::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

bool WorkerDaemon::SleepUnlessDraining(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&draining_), d);
  return !draining_;
}

void WorkerDaemon::Drain() {
  absl::MutexLock lock(&mu_);
  if (draining_) return;
  draining_ = true;
  LOG(INFO) << "worker " << options_.worker_id << ": draining: " << active_.size()
            << " run(s) in progress finish, nothing more is leased";
  for (CallCanceller* lease : leases_) lease->Cancel();
}

void WorkerDaemon::Abort() {
  Drain();
  absl::MutexLock lock(&mu_);
  if (aborting_) return;
  aborting_ = true;
  LOG(WARNING) << "worker " << options_.worker_id << ": stopping "
               << active_.size()
               << " run(s) now; they finish FAILED (retryable)";
  for (Attempt* attempt : active_) attempt->Abort();
}

void WorkerDaemon::Fatal(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (fatal_.ok()) fatal_ = status;
  }
  LOG(ERROR) << "worker " << options_.worker_id << ": " << status
             << "; stopping";
  Drain();
}

absl::StatusOr<v1::RegisterWorkerResponse> WorkerDaemon::Register() {
  v1::RegisterWorkerRequest request;
  request.set_worker_id(options_.worker_id);
  request.set_host(options_.host);
  request.set_slots(static_cast<uint32_t>(options_.slots.size()));
  for (const auto& [name, dir] : options_.datasets) request.add_datasets(name);
  request.set_version(options_.version);
  return client_->RegisterWorker(request);
}

void WorkerDaemon::TripBreaker(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (tripped_) return;
  tripped_ = true;
  next_probe_ = absl::Now() + options_.probe_interval;
  LOG(ERROR) << "worker " << options_.worker_id
             << ": circuit breaker tripped: " << reason
             << "; leasing stopped (runs in progress finish). Fix the host, "
             << "then `sweepq workers clear " << options_.worker_id
             << "` resumes it";
}

bool WorkerDaemon::WaitWhileTripped() {
  while (true) {
    absl::Time probe_at;
    {
      absl::MutexLock lock(&mu_);
      if (!tripped_) return true;
      probe_at = next_probe_;
    }
    if (!SleepUnlessDraining(std::max(absl::ZeroDuration(),
                                      probe_at - absl::Now()))) {
      return false;
    }
    {
      // One slot probes per interval; the others wait for its verdict.
      absl::MutexLock lock(&mu_);
      if (!tripped_) return true;
      if (absl::Now() < next_probe_) continue;
      next_probe_ = absl::Now() + options_.probe_interval;
    }
    auto registered = Register();
    if (!registered.ok()) continue;
    const v1::Worker& w = registered->worker();
    if (w.state() == v1::WORKER_STATE_ACTIVE && w.consecutive_failures() == 0) {
      absl::MutexLock lock(&mu_);
      if (tripped_) {
        tripped_ = false;
        consecutive_failures_ = 0;
        LOG(INFO) << "worker " << options_.worker_id
                  << ": cleared by a teammate; leasing again";
      }
      return true;
    }
  }
}

void WorkerDaemon::OnAttemptEnd(const std::string& tag,
                                const AttemptResult& result) {
  if (result.end != AttemptResult::End::kFinished) return;
  uint32_t failures;
  {
    absl::MutexLock lock(&mu_);
    if (result.outcome == v1::OUTCOME_SUCCEEDED) {
      consecutive_failures_ = 0;
      return;
    }
    if (result.outcome != v1::OUTCOME_FAILED || result.aborted) return;
    failures = ++consecutive_failures_;
  }
  if (options_.max_consecutive_failures > 0 &&
      failures >= options_.max_consecutive_failures) {
    std::string last = result.reason.substr(0, result.reason.find('\n'));
    TripBreaker(absl::StrCat(failures, " consecutive failed runs (last: ", tag,
                             ": ", last, ")"));
  }
}

void WorkerDaemon::SlotLoop(const Slot& slot) {
  const std::string who =
      absl::StrCat("worker ", options_.worker_id, " slot ", slot.Describe());
  Backoff backoff(absl::Milliseconds(200), options_.max_backoff);
  bool failing = false;
  // A run the last FinishRun granted: it is ours, so it runs even if a
  // drain began meanwhile (a drain lets leased runs finish).
  std::optional<v1::LeaseResponse> handed;
  while (handed.has_value() || !draining()) {
    if (handed.has_value()) {
      handed = RunAttempt(slot, *std::move(handed));
      continue;
    }
    if (!WaitWhileTripped()) return;
    CallCanceller canceller;
    {
      absl::MutexLock lock(&mu_);
      if (draining_) return;
      leases_.insert(&canceller);
    }
    auto lease = client_->Lease(options_.worker_id, options_.lease_wait,
                                &canceller);
    {
      absl::MutexLock lock(&mu_);
      leases_.erase(&canceller);
    }
    if (!lease.ok()) {
      const absl::Status& s = lease.status();
      if (draining()) return;
      if (s.code() == absl::StatusCode::kFailedPrecondition &&
          absl::StrContains(s.message(), "quarantined")) {
        TripBreaker(absl::StrCat("the coordinator quarantined this worker: ",
                                 s.message()));
        continue;
      }
      if (IsAuthError(s)) {
        Fatal(absl::Status(s.code(),
                           absl::StrCat("the coordinator refused the worker "
                                        "token (", s.message(), ")")));
        return;
      }
      if (s.code() == absl::StatusCode::kNotFound) {
        // The coordinator does not know this worker (a new database):
        // register again.
        LOG(WARNING) << who << ": " << s << "; registering again";
        auto registered = Register();
        if (!registered.ok()) LOG(WARNING) << who << ": " << registered.status();
      } else if (!failing) {
        LOG(WARNING) << who << ": " << s << "; retrying with backoff";
      }
      failing = true;
      SleepUnlessDraining(backoff.Next());
      continue;
    }
    if (failing) LOG(INFO) << who << ": coordinator reachable again";
    failing = false;
    backoff.Reset();
    if (!lease->granted()) {
      if (lease->directive() == v1::DIRECTIVE_DRAIN) {
        {
          absl::MutexLock lock(&mu_);
          if (!drain_directive_logged_) {
            LOG(INFO) << "worker " << options_.worker_id
                      << ": drained by a teammate; idle until `sweepq workers "
                      << "clear " << options_.worker_id << "`";
          }
          drain_directive_logged_ = true;
        }
        SleepUnlessDraining(options_.probe_interval);
      }
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      drain_directive_logged_ = false;
    }
    handed = RunAttempt(slot, *std::move(lease));
  }
}

std::optional<v1::LeaseResponse> WorkerDaemon::RunAttempt(
    const Slot& slot, v1::LeaseResponse lease) {
  Attempt::Env env;
  env.client = client_.get();
  env.options = &options_;
  env.slot = slot;
  env.on_drain = [this] {
    absl::MutexLock lock(&mu_);
    if (!drain_directive_logged_) {
      LOG(INFO) << "worker " << options_.worker_id
                << ": drained by a teammate; the runs in progress finish";
    }
    drain_directive_logged_ = true;
  };
  env.want_next_lease = [this] {
    absl::MutexLock lock(&mu_);
    return !draining_ && !tripped_;
  };
  Attempt attempt(std::move(env), std::move(lease));
  {
    absl::MutexLock lock(&mu_);
    active_.insert(&attempt);
    if (aborting_) attempt.Abort();
  }
  AttemptResult result = attempt.Run();
  {
    absl::MutexLock lock(&mu_);
    active_.erase(&attempt);
  }
  OnAttemptEnd(attempt.tag(), result);
  return std::move(result.next_lease);
}

void WorkerDaemon::ReplayOrphans(const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    auto spool = EventSpool::Reopen(dir);
    if (!spool.ok()) {
      LOG(WARNING) << spool.status();
      continue;
    }
    Backoff backoff(absl::Milliseconds(200), options_.max_backoff);
    size_t sent = 0;
    bool keep = false;
    while (true) {
      auto batch = (*spool)->Oldest();
      if (!batch.ok() || !batch->has_value()) break;
      auto acked = client_->ReportEvents(**batch);
      if (acked.ok()) {
        ++sent;
        (*spool)->Ack((**batch).batch_seq()).IgnoreError();
        continue;
      }
      if (IsTransient(acked.status())) {
        if (SleepUnlessDraining(backoff.Next())) continue;
        keep = true;  // try again at the next start
        break;
      }
      // The lease of that attempt is gone: its events cannot be stored.
      LOG(INFO) << "spool " << dir << ": " << acked.status()
                << "; discarding " << (*spool)->pending() << " batch(es)";
      break;
    }
    if (sent > 0) {
      LOG(INFO) << "spool " << dir << ": replayed " << sent
                << " batch(es) left by an earlier daemon";
    }
    if (!keep) (*spool)->RemoveAll().IgnoreError();
  }
}

absl::Status WorkerDaemon::Run() {
  Backoff backoff(absl::Milliseconds(200), options_.max_backoff);
  absl::StatusOr<v1::RegisterWorkerResponse> registered;
  bool warned = false;
  while (true) {
    if (draining()) return absl::OkStatus();
    registered = Register();
    if (registered.ok()) break;
    if (!IsTransient(registered.status())) {
      return absl::Status(
          registered.status().code(),
          absl::StrCat("the coordinator at ", options_.server,
                       " refused registration: ",
                       registered.status().message()));
    }
    if (!warned) {
      LOG(WARNING) << "worker " << options_.worker_id << ": cannot reach "
                   << options_.server << " (" << registered.status()
                   << "); retrying with backoff";
    }
    warned = true;
    SleepUnlessDraining(backoff.Next());
  }
  std::vector<std::string> slots;
  for (const Slot& s : options_.slots) slots.push_back(s.Describe());
  std::vector<std::string> datasets;
  for (const auto& [name, dir] : options_.datasets) {
    datasets.push_back(absl::StrCat(name, "=", dir));
  }
  LOG(INFO) << "worker " << options_.worker_id << " registered with "
            << options_.server << ": slots [" << absl::StrJoin(slots, ", ")
            << "], data sets [" << absl::StrJoin(datasets, ", ")
            << "], lease TTL " << registered->lease_ttl_ms() << " ms";
  const v1::Worker& me = registered->worker();
  if (me.state() == v1::WORKER_STATE_QUARANTINED) {
    TripBreaker(absl::StrCat("the coordinator has this worker quarantined (",
                             me.quarantine_reason(), ")"));
  }

  const std::vector<std::string> orphans =
      EventSpool::ListDirs(options_.spool_dir);
  std::thread replay([this, orphans] { ReplayOrphans(orphans); });
  std::vector<std::thread> threads;
  for (const Slot& slot : options_.slots) {
    threads.emplace_back([this, slot] { SlotLoop(slot); });
  }
  for (std::thread& t : threads) t.join();
  replay.join();
  LOG(INFO) << "worker " << options_.worker_id << ": stopped";
  absl::MutexLock lock(&mu_);
  return fatal_;
}

}  // namespace sweepq::worker
