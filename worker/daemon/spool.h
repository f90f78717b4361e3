// EventSpool: the durable queue of one attempt's event batches between the
// child's stdout and the coordinator.
//
// Every batch is written to disk (and fsync'd) before it is sent, so that a
// coordinator outage never holds up the child and nothing read from the
// child is lost; a batch file is deleted once the coordinator acked it.
// Resending a batch is harmless: it keeps its batch_seq, and the
// coordinator stores a batch's events and points once.
//
// Layout: <root>/run-<run>-attempt-<attempt>-<lease id hex>/<seq>.batch,
// one file per batch holding a binary ReportEventsRequest (lease and
// batch_seq filled), <seq> zero-padded to 20 digits so that names sort in
// order. Files are written as <seq>.tmp, fsync'd and renamed.
//
// Thread safety: all methods may be called concurrently (one thread
// appends, another sends and acks).
#ifndef SWEEPQ_WORKER_DAEMON_SPOOL_H_
#define SWEEPQ_WORKER_DAEMON_SPOOL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::worker {

class EventSpool {
 public:
  // Creates the (empty) spool directory of `lease` under `root`.
  // INTERNAL naming the path when it cannot be created.
  static absl::StatusOr<std::unique_ptr<EventSpool>> Create(
      const std::string& root, const sweepq::v1::LeaseRef& lease);

  // Opens a spool left behind by an earlier daemon (for replay). Unfinished
  // .tmp files are deleted; a batch file that does not parse is deleted with
  // a warning. INTERNAL when the directory cannot be read.
  static absl::StatusOr<std::unique_ptr<EventSpool>> Reopen(
      const std::string& dir);

  // The spool directories under `root` (none if it does not exist).
  static std::vector<std::string> ListDirs(const std::string& root);

  const std::string& dir() const { return dir_; }

  // Stamps the lease (of Create) and the next batch_seq (1, 2, ...) on
  // `batch` and writes it durably. Returns the batch_seq. INTERNAL naming the file on
  // a write or fsync failure (the batch is then not queued).
  absl::StatusOr<uint64_t> Append(sweepq::v1::ReportEventsRequest batch);

  // The oldest batch not yet acked, read back from its file, or nullopt.
  absl::StatusOr<std::optional<sweepq::v1::ReportEventsRequest>> Oldest();

  // Deletes the batch's file (the coordinator has it).
  absl::Status Ack(uint64_t batch_seq);

  // Batches written and not yet acked.
  size_t pending() const;

  // Deletes the directory and everything in it.
  absl::Status RemoveAll();

 private:
  EventSpool(std::string dir, sweepq::v1::LeaseRef lease)
      : dir_(std::move(dir)), lease_(std::move(lease)) {}
  std::string PathOf(uint64_t seq, const char* suffix) const;

  const std::string dir_;
  // The attempt's lease (empty for a reopened spool: its batches carry it).
  const sweepq::v1::LeaseRef lease_;
  mutable absl::Mutex mu_;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<uint64_t> unacked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_DAEMON_SPOOL_H_
