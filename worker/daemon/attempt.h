// Attempt: one leased attempt of a run on one slot, from the lease to
// FinishRun.
//
//   1. Heartbeats the lease every heartbeat interval (its own thread).
//   2. Downloads the checkpoint named by LeaseResponse.resume_from (size
//      and SHA-256 verified) and writes the run's config as JSON.
//   3. Starts sweepq-train (docs/train-events.md) with CUDA_VISIBLE_DEVICES
//      of the slot, its own work directory and --resume when resuming. A
//      child that refuses the checkpoint (exit 2 or 3 before its `start`
//      event) is started again from epoch 1 rather than failing the run.
//   4. A reader thread parses the child's stdout into batches and appends
//      each to the attempt's EventSpool before anything is sent; it never
//      waits for the network, so an unreachable coordinator cannot stall
//      the child on a full pipe.
//   5. A sender thread sends the spooled batches in order (retrying with
//      backoff until acked), and uploads last.ckpt every
//      train.checkpoint_every_epochs epochs.
//   6. When the child exits: success → every event acked, artifacts
//      uploaded, FinishRun(SUCCEEDED); failure → FinishRun(FAILED) with the
//      exit status or signal, the last error event and the last lines of
//      stderr, retryable as the contract says. The finish goes as a
//      message on the sender's event stream once its batches are acked
//      (ReportEventsRequest.finish; no call of its own); a retry, or a
//      coordinator that predates finish messages, uses the FinishRun call.
//
// Directives: CANCEL / PRUNE (heartbeat or report reply) → SIGTERM, SIGKILL
// after the grace period, FinishRun(CANCELLED / PRUNED). A write answered
// FAILED_PRECONDITION or NOT_FOUND means the lease is lost (expired and
// maybe re-leased elsewhere): the child is SIGKILLed at once and nothing
// more is written for this attempt.
//
// Thread safety: Run() on one thread (the slot's, which must live until it
// returns: the child's parent-death signal is tied to it); Abort() from any
// thread.
#ifndef SWEEPQ_WORKER_DAEMON_ATTEMPT_H_
#define SWEEPQ_WORKER_DAEMON_ATTEMPT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "sweepq/v1/coordinator.pb.h"
#include "worker/daemon/child_process.h"
#include "worker/daemon/coordinator_client.h"
#include "worker/daemon/events.h"
#include "worker/daemon/options.h"
#include "worker/daemon/spool.h"

namespace sweepq::worker {

// Standard files of --out uploaded after a successful run (when present).
inline constexpr const char* kStandardArtifacts[] = {
    "best.ckpt",     "last.ckpt",     "config.json",
    "metrics.csv",   "confusion.csv", "confusion.png"};

// How an attempt ended, as far as the coordinator knows.
struct AttemptResult {
  enum class End {
    // FinishRun was acked with `outcome`.
    kFinished,
    // The lease was lost; nothing was finished.
    kLost,
    // FinishRun could not be delivered (coordinator unreachable while
    // shutting down, or refused); the lease will expire.
    kUnreported,
  };
  End end = End::kUnreported;
  sweepq::v1::Outcome outcome = sweepq::v1::OUTCOME_UNSPECIFIED;
  bool retryable = false;
  std::string reason;
  // Ended by Abort() (not the run's fault: the breaker ignores it).
  bool aborted = false;
  // The slot's next run, granted with the FinishRun answer (Env's
  // want_next_lease); the slot runs it without a Lease call.
  std::optional<sweepq::v1::LeaseResponse> next_lease;
};

class Attempt {
 public:
  // What the attempt uses of its daemon; all must outlive the Attempt.
  struct Env {
    CoordinatorClient* client = nullptr;
    const WorkerOptions* options = nullptr;
    Slot slot;
    // Called (from any of the attempt's threads) on a DRAIN directive.
    std::function<void()> on_drain;
    // Asked before a successful run's FinishRun: true to have that call
    // also lease the slot's next run (FinishRunRequest.lease_next).
    std::function<bool()> want_next_lease;
  };

  Attempt(Env env, sweepq::v1::LeaseResponse lease);
  ~Attempt();
  Attempt(const Attempt&) = delete;
  Attempt& operator=(const Attempt&) = delete;

  // Runs the attempt to its end; see the file comment.
  AttemptResult Run();

  // Stops the child (SIGTERM, SIGKILL after the grace period) and finishes
  // the attempt FAILED and retryable; gives up on undelivered events and
  // uploads after the grace period plus 5 s.
  void Abort();

  // "run 12 attempt 2 (gpu 0)": the prefix of this attempt's log lines.
  const std::string& tag() const { return tag_; }

 private:
  enum class Stop { kNone, kCancel, kPrune, kAbort, kLocalFailure, kLost };

  // Thread bodies.
  void HeartbeatLoop();
  void ReadLoop(int fd);
  void SendLoop();

  // Makes the work directory, fetches the checkpoint to resume from (its
  // path in *resume, "" when none) and writes the config; fills *argv
  // (without --resume).
  absl::Status Prepare(std::vector<std::string>* argv, std::string* resume);
  // Starts the child with `argv` and supervises it (reader thread,
  // directives, grace period) until it exited.
  absl::StatusOr<ExitStatus> RunChild(const std::vector<std::string>& argv);
  // True when the child ended with status 2 or 3 before its `start` event
  // and nobody asked it to stop: it refused its command line or checkpoint.
  bool RefusedToStart(const ExitStatus& status) const;
  // Downloads `from` (of the leased run, or of one of the leased job's
  // source runs when from.run_id() names one) to `dest`, retrying
  // transient failures and corrupt transfers (twice) with backoff; marks
  // the lease lost on FAILED_PRECONDITION.
  absl::Status FetchWithRetries(const sweepq::v1::Artifact& from,
                                const std::string& dest);

  // For a job (run config has `job`): downloads each source run's
  // best.ckpt into <attempt>/sources/ and appends `--models A,B,...` to
  // argv. A source without best.ckpt (NOT_FOUND) fails the job for good.
  absl::Status FetchJobSources(std::vector<std::string>* argv);
  void Supervise();
  AttemptResult Decide();
  void UploadFinalArtifacts();
  // Uploads `path` as artifact `name` once; OK also when the file is
  // missing or unchanged since its last upload. Marks the lease lost on
  // FAILED_PRECONDITION / NOT_FOUND.
  absl::Status UploadOnce(const std::string& name, const std::string& path);
  // UploadOnce with retries; false when the lease was lost or we gave up.
  bool UploadWithRetries(const std::string& name, const std::string& path);
  AttemptResult Finish(AttemptResult result);
  // Sends the finish: on events_ the first time (see
  // ReportEventsRequest.finish), by FinishRun after that or when the
  // coordinator predates finish messages; says which in finished_via_.
  absl::StatusOr<sweepq::v1::FinishRunResponse> SendFinish(
      const sweepq::v1::FinishRunRequest& request);

  // Seals the reader's pending batch into the spool.
  void Seal(sweepq::v1::ReportEventsRequest* pending);
  void HandleDirective(sweepq::v1::Directive directive);
  void RequestStop(Stop stop, const std::string& why);
  void MarkLost(const absl::Status& status);
  // Sleeps up to `d`; returns false early when the attempt must stop
  // writing (lost lease, or the abort deadline passed).
  bool SleepUnlessStopped(absl::Duration d);
  bool GaveUp() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool lost() const;

  const Env env_;
  const sweepq::v1::LeaseResponse lease_;
  const std::string tag_;
  const std::string attempt_dir_;
  const std::string out_dir_;
  const std::string stderr_path_;
  std::unique_ptr<EventSpool> spool_;
  // The attempt's event stream: opened and used by the sender thread, then
  // (after it is joined) carries the finish on the attempt's thread.
  std::unique_ptr<EventStreamClient> events_;
  // How the finish that was answered went (for its log line); written and
  // read on the attempt's thread.
  std::string finished_via_;
  // Set by Prepare when its failure cannot be cured by a retry (a job's
  // source run without a model). Written and read on the attempt's thread.
  bool permanent_prepare_error_ = false;

  mutable absl::Mutex mu_;
  Stop stop_ ABSL_GUARDED_BY(mu_) = Stop::kNone;
  std::string stop_reason_ ABSL_GUARDED_BY(mu_);
  bool aborting_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time give_up_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  ChildProcess* child_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool child_exited_ ABSL_GUARDED_BY(mu_) = false;
  // Sender work: batches appended (generation), a checkpoint to upload.
  uint64_t appended_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<std::string> checkpoint_to_upload_ ABSL_GUARDED_BY(mu_);
  bool sender_closing_ ABSL_GUARDED_BY(mu_) = false;
  bool heartbeat_done_ ABSL_GUARDED_BY(mu_) = false;
  // What the child told us.
  std::optional<ChildEvent::Error> last_error_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> named_artifacts_ ABSL_GUARDED_BY(mu_);
  std::optional<int64_t> start_epoch_ ABSL_GUARDED_BY(mu_);
  // Identity (inode, size, mtime) of each artifact name's last upload, so a
  // file unchanged since (last.ckpt after the final epoch) is not resent.
  std::map<std::string, std::string> uploaded_ ABSL_GUARDED_BY(mu_);
  int64_t events_read_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_DAEMON_ATTEMPT_H_
