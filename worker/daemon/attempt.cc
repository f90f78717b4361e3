#include "worker/daemon/attempt.h"

#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "google/protobuf/util/json_util.h"
#include "worker/daemon/backoff.h"

extern char** environ;

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::sweepq::v1;

// A batch is sealed (spooled, then sent) at the first of these.
constexpr size_t kMaxBatchEvents = 256;
constexpr size_t kMaxBatchPoints = 5000;
constexpr size_t kMaxBatchBytes = 1 << 20;
constexpr absl::Duration kFlushInterval = absl::Milliseconds(200);
// A stdout "line" longer than this is cut (and recorded as invalid).
constexpr size_t kMaxLineBytes = 1 << 20;
// After the child exited, how long its stdout may stay open (something
// outside its process group holding the pipe) before the reader stops.
constexpr absl::Duration kReaderDrainAfterExit = absl::Seconds(5);
constexpr int kStderrTailLines = 20;
constexpr size_t kStderrTailBytes = 6 << 10;
constexpr size_t kMaxReasonBytes = 16 << 10;
// Abort() gives events and FinishRun this long after the grace period.
constexpr absl::Duration kAbortFlushSlack = absl::Seconds(5);
// Upload errors other than "unreachable" are retried this often.
constexpr int kMaxUploadErrors = 5;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

bool IsLostLease(const absl::Status& s) {
  return s.code() == absl::StatusCode::kFailedPrecondition ||
         s.code() == absl::StatusCode::kNotFound;
}

std::string MakeTag(const v1::LeaseResponse& lease, const Slot& slot) {
  return absl::StrCat("run ", lease.lease().run_id(), " attempt ",
                      lease.lease().attempt(), " (", slot.Describe(), ")");
}

std::string AttemptDir(const WorkerOptions& options,
                       const v1::LeaseResponse& lease) {
  return absl::StrCat(options.work_dir, "/runs/run-", lease.lease().run_id(),
                      "/attempt-", lease.lease().attempt());
}

// The last `lines` lines of a file, at most `max_bytes` from its end.
std::string TailOfFile(const std::string& path, int lines, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff start =
      std::max<std::streamoff>(0, size - static_cast<std::streamoff>(max_bytes));
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (start > 0) {
    size_t nl = text.find('\n');
    text = nl == std::string::npos ? text : text.substr(nl + 1);
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::deque<std::string> kept;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    kept.emplace_back(line);
    if (static_cast<int>(kept.size()) > lines) kept.pop_front();
  }
  return absl::StrJoin(kept, "\n");
}

// The daemon's environment without its token, plus the slot's GPU and the
// run's identity.
std::vector<std::string> ChildEnvironment(const Slot& slot,
                                          const v1::LeaseRef& lease) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    if (absl::StartsWith(entry, "SWEEPQ_WORKER_TOKEN=") ||
        absl::StartsWith(entry, "CUDA_VISIBLE_DEVICES=") ||
        absl::StartsWith(entry, "SWEEPQ_RUN_ID=") ||
        absl::StartsWith(entry, "SWEEPQ_ATTEMPT=")) {
      continue;
    }
    env.emplace_back(entry);
  }
  env.push_back(absl::StrCat("CUDA_VISIBLE_DEVICES=", slot.cuda_visible_devices));
  env.push_back(absl::StrCat("SWEEPQ_RUN_ID=", lease.run_id()));
  env.push_back(absl::StrCat("SWEEPQ_ATTEMPT=", lease.attempt()));
  return env;
}

// True when `path` names a regular file inside `dir`.
bool IsFileInside(const std::string& path, const std::string& dir) {
  std::error_code ec;
  const fs::path file = fs::weakly_canonical(path, ec);
  if (ec) return false;
  const fs::path root = fs::weakly_canonical(dir, ec);
  if (ec) return false;
  const std::string f = file.string(), r = root.string() + "/";
  return absl::StartsWith(f, r) && fs::is_regular_file(file, ec);
}

bool ValidArtifactName(const std::string& name) {
  return !name.empty() && name.size() <= 256 && name != "." && name != ".." &&
         name.find('/') == std::string::npos;
}

// Whether an upload that failed with `s` is worth another try: always when
// the coordinator was unreachable, a few times for other passing errors
// (and a hash mismatch), never for a refusal.
bool RetryUpload(const absl::Status& s, int* errors) {
  if (s.code() == absl::StatusCode::kUnavailable ||
      s.code() == absl::StatusCode::kDeadlineExceeded) {
    return true;
  }
  return (IsTransient(s) || s.code() == absl::StatusCode::kDataLoss) &&
         ++*errors < kMaxUploadErrors;
}

// Identity of a file's current version: files are replaced atomically
// (temp file + rename), so a new version has a new inode. "" if missing.
std::string FileVersion(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "";
  return absl::StrCat(st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec);
}

size_t ApproxBytes(const v1::RunEvent& e) {
  return e.payload_json().size() + e.kind().size() + 16;
}

}  // namespace

Attempt::Attempt(Env env, v1::LeaseResponse lease)
    : env_(std::move(env)),
      lease_(std::move(lease)),
      tag_(MakeTag(lease_, env_.slot)),
      attempt_dir_(AttemptDir(*env_.options, lease_)),
      out_dir_(attempt_dir_ + "/out"),
      stderr_path_(attempt_dir_ + "/stderr.log") {}

Attempt::~Attempt() = default;

bool Attempt::lost() const {
  absl::MutexLock lock(&mu_);
  return stop_ == Stop::kLost;
}

bool Attempt::GaveUp() const { return aborting_ && absl::Now() >= give_up_at_; }

bool Attempt::SleepUnlessStopped(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  const absl::Time until = std::min(absl::Now() + d, give_up_at_);
  auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ == Stop::kLost;
  };
  mu_.AwaitWithDeadline(absl::Condition(&stopped), until);
  return stop_ != Stop::kLost && !GaveUp();
}

void Attempt::RequestStop(Stop stop, const std::string& why) {
  absl::MutexLock lock(&mu_);
  if (stop_ != Stop::kNone) return;  // the first reason stands
  stop_ = stop;
  stop_reason_ = why;
  LOG(INFO) << tag_ << ": stopping sweepq-train: " << why;
}

void Attempt::MarkLost(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (stop_ == Stop::kLost) return;
  LOG(WARNING) << tag_ << ": lease lost (" << status.message()
               << "); killing sweepq-train, reporting nothing more";
  stop_ = Stop::kLost;
  if (child_ != nullptr && !child_exited_) child_->Signal(SIGKILL);
}

void Attempt::Abort() {
  {
    absl::MutexLock lock(&mu_);
    aborting_ = true;
    give_up_at_ = absl::Now() + env_.options->grace_period + kAbortFlushSlack;
  }
  RequestStop(Stop::kAbort,
              absl::StrCat("worker ", env_.options->worker_id,
                           " is shutting down (second SIGTERM)"));
}

void Attempt::HandleDirective(v1::Directive directive) {
  switch (directive) {
    case v1::DIRECTIVE_CANCEL:
      RequestStop(Stop::kCancel, "the run was cancelled");
      break;
    case v1::DIRECTIVE_PRUNE:
      RequestStop(Stop::kPrune, "the run was pruned");
      break;
    case v1::DIRECTIVE_DRAIN:
      if (env_.on_drain) env_.on_drain();
      break;
    default:
      break;
  }
}

// ---- Heartbeats ----

void Attempt::HeartbeatLoop() {
  const int64_t interval_ms =
      lease_.heartbeat_interval_ms() > 0 ? lease_.heartbeat_interval_ms() : 10'000;
  const absl::Duration interval = absl::Milliseconds(std::max<int64_t>(interval_ms, 50));
  Backoff backoff(absl::Milliseconds(100), interval);
  absl::Time next = absl::Now() + interval;
  bool failing = false;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return heartbeat_done_ || stop_ == Stop::kLost;
      };
      mu_.AwaitWithDeadline(absl::Condition(&done), next);
      if (done()) return;
    }
    auto beat = env_.client->Heartbeat(env_.options->worker_id, lease_.lease());
    if (beat.ok()) {
      if (failing) LOG(INFO) << tag_ << ": heartbeats reach the coordinator again";
      failing = false;
      backoff.Reset();
      HandleDirective(beat->directive());
      next = absl::Now() + interval;
    } else if (IsLostLease(beat.status())) {
      MarkLost(beat.status());
      return;
    } else {
      if (!failing) {
        LOG(WARNING) << tag_ << ": heartbeat failed (" << beat.status()
                     << "); the run continues, retrying";
      }
      failing = true;
      next = absl::Now() + std::min(backoff.Next(), interval);
    }
  }
}

// ---- Reading the child's events ----

void Attempt::Seal(v1::ReportEventsRequest* pending) {
  if (pending->events_size() == 0 && pending->points_size() == 0) return;
  if (lost()) {
    pending->Clear();
    return;
  }
  absl::StatusOr<uint64_t> seq = spool_->Append(std::move(*pending));
  pending->Clear();
  if (!seq.ok()) {
    LOG(ERROR) << tag_ << ": " << seq.status();
    RequestStop(Stop::kLocalFailure,
                absl::StrCat("the worker cannot spool events: ",
                             seq.status().message()));
    return;
  }
  absl::MutexLock lock(&mu_);
  ++appended_;
}

void Attempt::ReadLoop(int fd) {
  const v1::RunConfig& config = lease_.run().config();
  const int64_t checkpoint_every =
      config.train().has_checkpoint_every_epochs() &&
              config.train().checkpoint_every_epochs() > 0
          ? config.train().checkpoint_every_epochs()
          : 1;
  v1::ReportEventsRequest pending;
  size_t pending_bytes = 0;
  absl::Time seal_at = absl::InfiniteFuture();
  absl::Time exited_at = absl::InfiniteFuture();
  std::string buffer;
  bool skipping = false;  // inside an over-long line

  auto handle_line = [&](absl::string_view line) {
    ChildEvent event = ParseChildLine(line, NowMs());
    std::optional<std::string> checkpoint;
    {
      absl::MutexLock lock(&mu_);
      ++events_read_;
      if (event.error.has_value()) last_error_ = event.error;
      if (event.artifact.has_value()) {
        named_artifacts_[event.artifact->name] = event.artifact->path;
      }
      if (event.start_epoch.has_value()) start_epoch_ = event.start_epoch;
      if (event.checkpoint.has_value() && event.checkpoint->kind == "last" &&
          event.checkpoint->epoch % checkpoint_every == 0) {
        checkpoint = event.checkpoint->path;
      }
    }
    if (event.start_epoch.has_value()) {
      LOG(INFO) << tag_ << ": sweepq-train started at epoch "
                << *event.start_epoch;
    }
    if (event.kind == kInvalidOutputKind) {
      LOG(WARNING) << tag_ << ": sweepq-train wrote a stdout line that is "
                   << "not an event; kept as an '" << kInvalidOutputKind
                   << "' event";
    }
    pending_bytes += ApproxBytes(event.event);
    *pending.add_events() = std::move(event.event);
    for (auto& p : event.points) *pending.add_points() = std::move(p);
    if (seal_at == absl::InfiniteFuture()) seal_at = absl::Now() + kFlushInterval;
    if (checkpoint.has_value() || event.error.has_value() ||
        static_cast<size_t>(pending.events_size()) >= kMaxBatchEvents ||
        static_cast<size_t>(pending.points_size()) >= kMaxBatchPoints ||
        pending_bytes >= kMaxBatchBytes) {
      Seal(&pending);
      pending_bytes = 0;
      seal_at = absl::InfiniteFuture();
    }
    if (checkpoint.has_value()) {
      absl::MutexLock lock(&mu_);
      checkpoint_to_upload_ = std::move(checkpoint);  // the newest wins
    }
  };

  char chunk[64 << 10];
  while (true) {
    const absl::Time now = absl::Now();
    if (seal_at <= now) {
      Seal(&pending);
      pending_bytes = 0;
      seal_at = absl::InfiniteFuture();
    }
    {
      absl::MutexLock lock(&mu_);
      if (child_exited_ && exited_at == absl::InfiniteFuture()) exited_at = now;
    }
    if (now >= exited_at + kReaderDrainAfterExit) {
      LOG(WARNING) << tag_ << ": stdout still open after sweepq-train exited; "
                   << "stopped reading";
      break;
    }
    const absl::Time wake =
        std::min({seal_at, now + absl::Milliseconds(500),
                  exited_at + kReaderDrainAfterExit});
    struct pollfd p = {fd, POLLIN, 0};
    const int timeout_ms = static_cast<int>(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(wake - now)) + 1);
    const int ready = poll(&p, 1, timeout_ms);
    if (ready < 0 && errno != EINTR) {
      LOG(ERROR) << tag_ << ": poll on sweepq-train's stdout: " << strerror(errno);
      break;
    }
    if (ready <= 0) continue;
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      LOG(ERROR) << tag_ << ": read of sweepq-train's stdout: " << strerror(errno);
      break;
    }
    if (n == 0) break;  // EOF: the child (and its group) closed stdout
    buffer.append(chunk, static_cast<size_t>(n));
    size_t start = 0, nl;
    while ((nl = buffer.find('\n', start)) != std::string::npos) {
      if (!skipping) {
        handle_line(absl::string_view(buffer).substr(start, nl - start));
      }
      skipping = false;
      start = nl + 1;
    }
    buffer.erase(0, start);
    if (buffer.size() > kMaxLineBytes) {
      if (!skipping) handle_line(buffer);
      buffer.clear();
      skipping = true;
    }
  }
  if (!buffer.empty() && !skipping) handle_line(buffer);
  Seal(&pending);
}

// ---- Sending ----

absl::Status Attempt::UploadOnce(const std::string& name,
                                 const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    LOG(WARNING) << tag_ << ": artifact " << name << " (" << path
                 << ") does not exist; not uploaded";
    return absl::OkStatus();
  }
  const std::string version = FileVersion(path);
  {
    absl::MutexLock lock(&mu_);
    auto it = uploaded_.find(name);
    if (it != uploaded_.end() && it->second == version) return absl::OkStatus();
  }
  auto uploaded = env_.client->UploadFile(lease_.lease(), name, path);
  if (!uploaded.ok()) {
    if (IsLostLease(uploaded.status())) MarkLost(uploaded.status());
    return uploaded.status();
  }
  {
    // The version seen before the upload: if the file was replaced
    // meanwhile, the next call sends the new one.
    absl::MutexLock lock(&mu_);
    uploaded_[name] = version;
  }
  LOG(INFO) << tag_ << ": uploaded " << name << " (" << uploaded->size()
            << " bytes, sha256 " << uploaded->sha256().substr(0, 12) << ")";
  return absl::OkStatus();
}

bool Attempt::UploadWithRetries(const std::string& name,
                                const std::string& path) {
  Backoff backoff(absl::Milliseconds(200), env_.options->max_backoff);
  int errors = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_ == Stop::kLost || GaveUp()) return false;
    }
    const absl::Status s = UploadOnce(name, path);
    if (s.ok()) return true;
    if (IsLostLease(s)) return false;
    if (!RetryUpload(s, &errors)) {
      LOG(ERROR) << tag_ << ": cannot upload " << name << ": " << s
                 << "; giving up on this artifact";
      return true;
    }
    LOG(WARNING) << tag_ << ": upload of " << name << " failed (" << s
                 << "); retrying";
    if (!SleepUnlessStopped(backoff.Next())) return false;
  }
}

void Attempt::SendLoop() {
  // One StreamEvents call carries the attempt's batches (and then its
  // finish); after a failure the next Send() opens a new one and the
  // spool's oldest batch is resent.
  events_ = env_.client->NewEventStream();
  Backoff backoff(absl::Milliseconds(100), env_.options->max_backoff);
  bool unreachable = false;
  int checkpoint_errors = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ == Stop::kLost || spool_->pending() > 0 ||
               checkpoint_to_upload_.has_value() || sender_closing_;
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready), give_up_at_);
      if (stop_ == Stop::kLost) return;
      if (GaveUp()) {
        LOG(WARNING) << tag_ << ": shutting down with " << spool_->pending()
                     << " event batches undelivered";
        return;
      }
    }
    // One call per turn: the oldest event batch first, else the newest
    // checkpoint; a failing upload never holds events back.
    absl::StatusOr<std::optional<v1::ReportEventsRequest>> batch =
        spool_->Oldest();
    if (!batch.ok()) {
      LOG(ERROR) << tag_ << ": " << batch.status();
      RequestStop(Stop::kLocalFailure,
                  absl::StrCat("the worker cannot read its event spool: ",
                               batch.status().message()));
      return;
    }
    absl::Status sent;
    if (batch->has_value()) {
      const v1::ReportEventsRequest& request = **batch;
      auto acked = events_->Send(request);
      sent = acked.status();
      if (acked.ok()) {
        absl::Status removed = spool_->Ack(request.batch_seq());
        if (!removed.ok()) LOG(WARNING) << tag_ << ": " << removed;
        HandleDirective(acked->directive());
      } else if (IsLostLease(sent)) {
        MarkLost(sent);
        return;
      } else if (!IsTransient(sent)) {
        // Refused for good (e.g. over a limit): resending cannot help, and
        // it must not block the batches behind it.
        LOG(ERROR) << tag_ << ": batch " << request.batch_seq()
                   << " refused (" << sent << "); dropped";
        absl::Status removed = spool_->Ack(request.batch_seq());
        if (!removed.ok()) LOG(WARNING) << tag_ << ": " << removed;
        continue;
      }
    } else {
      std::optional<std::string> checkpoint;
      {
        absl::MutexLock lock(&mu_);
        checkpoint.swap(checkpoint_to_upload_);
        if (!checkpoint.has_value()) {
          if (sender_closing_) return;  // everything delivered
          continue;
        }
      }
      sent = UploadOnce("last.ckpt", *checkpoint);
      if (sent.ok()) {
        // The best checkpoint goes along (when it changed), so that a
        // resumed attempt still holds the best epoch's model.
        sent = UploadOnce("best.ckpt", out_dir_ + "/best.ckpt");
      }
      if (IsLostLease(sent)) return;
      if (!sent.ok()) {
        if (RetryUpload(sent, &checkpoint_errors)) {
          absl::MutexLock lock(&mu_);
          // Retry it unless a newer checkpoint came meanwhile.
          if (!checkpoint_to_upload_.has_value()) {
            checkpoint_to_upload_ = std::move(checkpoint);
          }
        } else {
          LOG(ERROR) << tag_ << ": cannot upload last.ckpt: " << sent
                     << "; skipped until the next checkpoint";
          checkpoint_errors = 0;
          continue;
        }
      } else {
        checkpoint_errors = 0;
      }
    }
    if (sent.ok()) {
      if (unreachable) {
        LOG(INFO) << tag_ << ": coordinator reachable again; replaying "
                  << spool_->pending() << " spooled batches";
      }
      unreachable = false;
      backoff.Reset();
      continue;
    }
    if (!unreachable) {
      LOG(WARNING) << tag_ << ": cannot reach the coordinator (" << sent
                   << "); spooling events to " << spool_->dir()
                   << " and retrying";
    }
    unreachable = true;
    SleepUnlessStopped(backoff.Next());
  }
}

// ---- Start, supervise, finish ----

absl::Status Attempt::FetchWithRetries(const v1::Artifact& from,
                                       const std::string& dest) {
  Backoff backoff(absl::Milliseconds(200), env_.options->max_backoff);
  int corrupt = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_ != Stop::kNone) {
        return absl::CancelledError("stopped before the run started");
      }
    }
    absl::Status fetched = env_.client->FetchArtifact(
        env_.options->worker_id, lease_.lease(), from, dest);
    if (fetched.ok()) return fetched;
    if (fetched.code() == absl::StatusCode::kFailedPrecondition) {
      MarkLost(fetched);
      return fetched;
    }
    const bool retry =
        IsTransient(fetched) ||
        (fetched.code() == absl::StatusCode::kDataLoss && ++corrupt < 3);
    if (!retry) return fetched;
    LOG(WARNING) << tag_ << ": download of " << from.name() << " failed ("
                 << fetched << "); retrying";
    if (!SleepUnlessStopped(backoff.Next())) {
      return absl::CancelledError("stopped before the run started");
    }
  }
}

absl::Status Attempt::Prepare(std::vector<std::string>* argv,
                              std::string* resume) {
  const WorkerOptions& options = *env_.options;
  const v1::Run& run = lease_.run();
  std::error_code ec;
  fs::remove_all(attempt_dir_, ec);
  fs::create_directories(out_dir_, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", out_dir_, ": ", ec.message()));
  }
  const std::string& dataset = run.config().data().dataset();
  auto data_dir = options.datasets.find(dataset);
  if (data_dir == options.datasets.end()) {
    std::vector<std::string> held;
    for (const auto& [name, dir] : options.datasets) held.push_back(name);
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", options.worker_id, " does not hold data set '",
                     dataset, "' (it has: ", absl::StrJoin(held, ", "), ")"));
  }

  resume->clear();
  if (lease_.has_resume_from() && !lease_.resume_from().sha256().empty()) {
    const std::string dest = attempt_dir_ + "/resume.ckpt";
    absl::Status fetched = FetchWithRetries(lease_.resume_from(), dest);
    if (fetched.ok()) {
      *resume = dest;
      LOG(INFO) << tag_ << ": resuming from " << lease_.resume_from().name()
                << " of attempt " << lease_.resume_from().attempt() << " ("
                << lease_.resume_from().size() << " bytes, SHA-256 verified)";
      // sweepq-train takes the earlier best.ckpt from beside --resume
      // (docs/train-events.md); without it the best epoch's model is lost.
      v1::Artifact best;
      best.set_name("best.ckpt");
      best.set_attempt(lease_.resume_from().attempt());
      absl::Status got = env_.client->FetchArtifact(
          env_.options->worker_id, lease_.lease(), best,
          attempt_dir_ + "/best.ckpt");
      if (!got.ok() && got.code() != absl::StatusCode::kNotFound) {
        LOG(WARNING) << tag_ << ": cannot download best.ckpt of attempt "
                     << best.attempt() << " (" << got << ")";
      }
    } else if (lost() || fetched.code() == absl::StatusCode::kCancelled) {
      return fetched;
    } else {
      LOG(WARNING) << tag_ << ": cannot download the checkpoint to resume from ("
                   << fetched << "); starting from scratch";
    }
  }

  google::protobuf::util::JsonPrintOptions json_options;
  json_options.preserve_proto_field_names = true;
  json_options.add_whitespace = true;
  std::string json;
  auto printed = google::protobuf::util::MessageToJsonString(run.config(), &json,
                                                             json_options);
  if (!printed.ok()) {
    return absl::InternalError(absl::StrCat("cannot write the run's config as JSON: ",
                                            printed.ToString()));
  }
  const std::string config_path = attempt_dir_ + "/run_config.json";
  {
    std::ofstream out(config_path, std::ios::trunc);
    out << json << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", config_path));
  }

  *argv = {options.train_binary, "--config", config_path, "--data",
           data_dir->second,     "--out",    out_dir_,    "--cache-dir",
           options.work_dir + "/cache"};
  uint32_t threads = options.threads_per_slot;
  if (threads == 0 && !env_.slot.gpu && options.slots.size() > 1 &&
      run.config().threads() == 0) {
    // CPU slots share the cores: a config that leaves threads at its
    // default (all cores) gets its share instead of oversubscribing.
    threads = std::max<uint32_t>(
        1, std::thread::hardware_concurrency() /
               static_cast<uint32_t>(options.slots.size()));
  }
  if (threads > 0) {
    argv->push_back("--threads");
    argv->push_back(std::to_string(threads));
  }
  if (run.config().has_job()) return FetchJobSources(argv);
  return absl::OkStatus();
}

absl::Status Attempt::FetchJobSources(std::vector<std::string>* argv) {
  const std::string dir = attempt_dir_ + "/sources";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  std::vector<std::string> paths;
  for (int64_t source : lease_.run().config().job().source_runs()) {
    v1::Artifact best;
    best.set_run_id(source);
    best.set_name("best.ckpt");
    const std::string dest = absl::StrCat(dir, "/run", source, ".ckpt");
    absl::Status fetched = FetchWithRetries(best, dest);
    if (absl::IsNotFound(fetched)) {
      permanent_prepare_error_ = true;
      return absl::NotFoundError(absl::StrCat(
          "source run ", source, " has no best.ckpt (", fetched.message(),
          ")"));
    }
    RETURN_IF_ERROR(fetched);
    paths.push_back(dest);
  }
  LOG(INFO) << tag_ << ": fetched the best.ckpt of " << paths.size()
            << " source run(s) (SHA-256 verified)";
  argv->push_back("--models");
  argv->push_back(absl::StrJoin(paths, ","));
  return absl::OkStatus();
}

void Attempt::Supervise() {
  absl::MutexLock lock(&mu_);
  bool termed = false, killed = false;
  absl::Time kill_at = absl::InfiniteFuture();
  while (!child_exited_) {
    if (stop_ == Stop::kLost && !killed) {
      child_->Signal(SIGKILL);
      killed = true;
    } else if (stop_ != Stop::kNone && !termed) {
      child_->Signal(SIGTERM);
      termed = true;
      kill_at = absl::Now() + env_.options->grace_period;
    }
    if (!killed && absl::Now() >= kill_at) {
      LOG(WARNING) << tag_ << ": sweepq-train did not stop within "
                   << env_.options->grace_period << " of SIGTERM; SIGKILL";
      child_->Signal(SIGKILL);
      killed = true;
    }
    const Stop seen = stop_;
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return child_exited_ || stop_ != seen;
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed),
                          killed ? absl::InfiniteFuture() : kill_at);
  }
}

AttemptResult Attempt::Decide() {
  AttemptResult result;
  absl::MutexLock lock(&mu_);
  switch (stop_) {
    case Stop::kLost:
      result.end = AttemptResult::End::kLost;
      return result;
    case Stop::kCancel:
      result.outcome = v1::OUTCOME_CANCELLED;
      result.reason = stop_reason_;
      return result;
    case Stop::kPrune:
      result.outcome = v1::OUTCOME_PRUNED;
      result.reason = stop_reason_;
      return result;
    case Stop::kAbort:
    case Stop::kLocalFailure:
      result.outcome = v1::OUTCOME_FAILED;
      result.retryable = true;
      result.reason = stop_reason_;
      result.aborted = stop_ == Stop::kAbort;
      return result;
    case Stop::kNone:
      break;
  }
  return result;  // decided from the exit status by the caller
}

absl::StatusOr<v1::FinishRunResponse> Attempt::SendFinish(
    const v1::FinishRunRequest& request) {
  // The first try goes as a message on the attempt's event stream (no call
  // of its own); a retry, or an attempt that never streamed, calls
  // FinishRun.
  std::unique_ptr<EventStreamClient> events = std::move(events_);
  if (events != nullptr) {
    absl::StatusOr<std::optional<v1::FinishRunResponse>> finished =
        env_.client->FinishOnStream(*events, request);
    if (!finished.ok()) return finished.status();
    if (finished->has_value()) {
      finished_via_ = "on the event stream";
      return **std::move(finished);
    }
    LOG(INFO) << tag_ << ": the coordinator took the finish message for an "
              << "empty batch (it predates finishes on the stream); calling "
              << "FinishRun";
  }
  finished_via_ = "by FinishRun";
  return env_.client->FinishRun(request);
}

AttemptResult Attempt::Finish(AttemptResult result) {
  if (result.reason.size() > kMaxReasonBytes) {
    result.reason.resize(kMaxReasonBytes);
  }
  if (result.end != AttemptResult::End::kLost) {
    v1::FinishRunRequest request;
    *request.mutable_lease() = lease_.lease();
    request.set_worker_id(env_.options->worker_id);
    request.set_outcome(result.outcome);
    request.set_retryable(result.retryable);
    request.set_reason(result.reason);
    // A lost reply makes the retry fail as "not current", and a lease the
    // first call granted then expires and is requeued: rare and harmless.
    request.set_lease_next(result.outcome == v1::OUTCOME_SUCCEEDED &&
                           env_.want_next_lease && env_.want_next_lease());
    Backoff backoff(absl::Milliseconds(100), env_.options->max_backoff);
    bool retried = false;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stop_ == Stop::kLost) {
          result.end = AttemptResult::End::kLost;
          break;
        }
        if (GaveUp()) {
          LOG(WARNING) << tag_ << ": could not report the end of the run before "
                       << "shutting down; its lease will expire";
          result.end = AttemptResult::End::kUnreported;
          break;
        }
      }
      auto finished = SendFinish(request);
      if (finished.ok()) {
        result.end = AttemptResult::End::kFinished;
        if (finished->next().granted()) {
          result.next_lease = std::move(*finished->mutable_next());
        }
        LOG(INFO) << tag_ << ": finished " << v1::Outcome_Name(result.outcome)
                  << (result.outcome == v1::OUTCOME_FAILED
                          ? absl::StrCat(result.retryable ? " (retryable)"
                                                          : " (not retryable)")
                          : "")
                  << " " << finished_via_ << " -> "
                  << v1::RunState_Name(finished->state())
                  << (result.next_lease.has_value()
                          ? absl::StrCat("; the answer leased run ",
                                         result.next_lease->lease().run_id(),
                                         " next")
                          : "");
        break;
      }
      if (IsTransient(finished.status())) {
        retried = true;
        SleepUnlessStopped(backoff.Next());
        continue;
      }
      if (IsLostLease(finished.status()) && !retried) {
        MarkLost(finished.status());
        result.end = AttemptResult::End::kLost;
      } else {
        // After a lost reply the first FinishRun may have landed.
        LOG(WARNING) << tag_ << ": FinishRun: " << finished.status();
        result.end = AttemptResult::End::kUnreported;
      }
      break;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    heartbeat_done_ = true;
  }
  absl::Status removed = spool_->RemoveAll();
  if (!removed.ok()) LOG(WARNING) << tag_ << ": " << removed;
  const bool keep = env_.options->keep_work_dirs ||
                    (result.end == AttemptResult::End::kFinished &&
                     result.outcome == v1::OUTCOME_FAILED);
  if (!keep) {
    std::error_code ec;
    fs::remove_all(attempt_dir_, ec);
    fs::remove(fs::path(attempt_dir_).parent_path(), ec);  // if empty
  }
  return result;
}

void Attempt::UploadFinalArtifacts() {
  std::map<std::string, std::string> files;
  std::error_code ec;
  for (const char* name : kStandardArtifacts) {
    const std::string path = out_dir_ + "/" + name;
    if (fs::is_regular_file(path, ec)) files[name] = path;
  }
  std::map<std::string, std::string> named;
  {
    absl::MutexLock lock(&mu_);
    named = named_artifacts_;
  }
  for (const auto& [name, path] : named) {
    if (!ValidArtifactName(name) || !IsFileInside(path, out_dir_)) {
      LOG(WARNING) << tag_ << ": artifact event names '" << name << "' at "
                   << path << ", not a file inside " << out_dir_
                   << "; not uploaded";
      continue;
    }
    files[name] = path;
  }
  for (const auto& [name, path] : files) {
    if (!UploadWithRetries(name, path)) return;
  }
}

absl::StatusOr<ExitStatus> Attempt::RunChild(
    const std::vector<std::string>& argv) {
  {
    absl::MutexLock lock(&mu_);
    child_exited_ = false;
    start_epoch_.reset();
    last_error_.reset();
  }
  ChildSpec spec;
  spec.argv = argv;
  spec.env = ChildEnvironment(env_.slot, lease_.lease());
  spec.stderr_path = stderr_path_;
  spec.cwd = attempt_dir_;
  spec.on_exit = [this] {
    absl::MutexLock lock(&mu_);
    child_exited_ = true;
  };
  ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child,
                   ChildProcess::Start(spec));
  LOG(INFO) << tag_ << ": started sweepq-train (pid " << child->pid()
            << "): " << absl::StrJoin(argv, " ");
  {
    absl::MutexLock lock(&mu_);
    child_ = child.get();
  }
  const int fd = child->stdout_fd();
  std::thread reader([this, fd] { ReadLoop(fd); });
  Supervise();
  reader.join();
  const ExitStatus status = child->exit_status();
  {
    absl::MutexLock lock(&mu_);
    child_ = nullptr;
  }
  child.reset();
  int64_t events;
  {
    absl::MutexLock lock(&mu_);
    events = events_read_;
  }
  LOG(INFO) << tag_ << ": sweepq-train ended with " << status.Describe()
            << " (" << events << " events read so far)";
  return status;
}

bool Attempt::RefusedToStart(const ExitStatus& status) const {
  absl::MutexLock lock(&mu_);
  return stop_ == Stop::kNone && !status.signaled &&
         (status.code == 2 || status.code == 3) && !start_epoch_.has_value();
}

AttemptResult Attempt::Run() {
  LOG(INFO) << tag_ << ": leased (data set '"
            << lease_.run().config().data().dataset() << "', "
            << lease_.run().config().train().epochs() << " epochs)";
  auto spool = EventSpool::Create(env_.options->spool_dir, lease_.lease());
  if (!spool.ok()) {
    // Without a spool nothing can be reported safely: fail at once (the
    // breaker counts it; a full or read-only disk is a host problem).
    AttemptResult result;
    result.outcome = v1::OUTCOME_FAILED;
    result.retryable = true;
    result.reason = std::string(spool.status().message());
    LOG(ERROR) << tag_ << ": " << result.reason;
    v1::FinishRunRequest request;
    *request.mutable_lease() = lease_.lease();
    request.set_worker_id(env_.options->worker_id);
    request.set_outcome(result.outcome);
    request.set_retryable(true);
    request.set_reason(result.reason);
    result.end = env_.client->FinishRun(request).ok()
                     ? AttemptResult::End::kFinished
                     : AttemptResult::End::kUnreported;
    return result;
  }
  spool_ = std::move(*spool);
  std::thread heartbeat([this] { HeartbeatLoop(); });

  std::vector<std::string> argv;
  std::string resume;
  absl::Status prepared = Prepare(&argv, &resume);
  AttemptResult result;
  std::optional<ExitStatus> status;
  if (!prepared.ok()) {
    result = Decide();
    if (result.end != AttemptResult::End::kLost &&
        result.outcome == v1::OUTCOME_UNSPECIFIED) {
      result.outcome = v1::OUTCOME_FAILED;
      result.retryable = !permanent_prepare_error_;
      result.reason = absl::StrCat("cannot start the run: ", prepared.message());
      LOG(ERROR) << tag_ << ": " << result.reason;
    }
  } else {
    std::thread sender([this] { SendLoop(); });
    std::vector<std::string> with_resume = argv;
    if (!resume.empty()) with_resume.insert(with_resume.end(), {"--resume", resume});
    absl::StatusOr<ExitStatus> ended = RunChild(with_resume);
    if (ended.ok() && !resume.empty() && RefusedToStart(*ended)) {
      // A checkpoint the child cannot use (another version wrote it, or it
      // does not match) must not fail the run for good: start over.
      LOG(WARNING) << tag_ << ": sweepq-train refused to start from "
                   << "the checkpoint (" << ended->Describe()
                   << "); starting from epoch 1 instead";
      ended = RunChild(argv);
    }
    {
      absl::MutexLock lock(&mu_);
      sender_closing_ = true;
    }
    sender.join();
    if (!ended.ok()) {
      result.outcome = v1::OUTCOME_FAILED;
      result.retryable = true;
      result.reason = std::string(ended.status().message());
      LOG(ERROR) << tag_ << ": " << result.reason;
    } else {
      status = *ended;
    }
    AttemptResult decided = Decide();
    if (decided.end == AttemptResult::End::kLost ||
        decided.outcome != v1::OUTCOME_UNSPECIFIED) {
      result = decided;
    }
  }

  if (status.has_value() && result.end != AttemptResult::End::kLost &&
      result.outcome == v1::OUTCOME_UNSPECIFIED) {
    if (status->success()) {
      result.outcome = v1::OUTCOME_SUCCEEDED;
    } else {
      std::optional<ChildEvent::Error> error;
      {
        absl::MutexLock lock(&mu_);
        error = last_error_;
      }
      result.outcome = v1::OUTCOME_FAILED;
      if (status->signaled) {
        result.retryable = true;  // a crash, OOM kill, ...
        result.reason = absl::StrCat("sweepq-train was killed by ",
                                     status->Describe());
      } else {
        result.retryable = status->code == 2 || status->code == 3
                               ? false
                               : (error.has_value() ? error->retryable : true);
        result.reason = absl::StrCat("sweepq-train exited with status ",
                                     status->code);
      }
      if (error.has_value() && !error->message.empty()) {
        absl::StrAppend(&result.reason, ": ", error->message);
      }
      const std::string tail =
          TailOfFile(stderr_path_, kStderrTailLines, kStderrTailBytes);
      if (!tail.empty()) {
        absl::StrAppend(&result.reason, "\nlast lines of stderr:\n", tail);
      }
      LOG(WARNING) << tag_ << ": " << result.reason;
    }
  }

  if (result.end != AttemptResult::End::kLost &&
      (result.outcome == v1::OUTCOME_SUCCEEDED ||
       result.outcome == v1::OUTCOME_PRUNED)) {
    UploadFinalArtifacts();
  }
  if (lost()) result.end = AttemptResult::End::kLost;
  result = Finish(std::move(result));
  heartbeat.join();
  return result;
}

}  // namespace sweepq::worker
