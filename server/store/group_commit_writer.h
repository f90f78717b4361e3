// GroupCommitWriter: the single writer of a SQLite database, committing many
// callers' writes in one transaction.
#ifndef SWEEPQ_SERVER_STORE_GROUP_COMMIT_WRITER_H_
#define SWEEPQ_SERVER_STORE_GROUP_COMMIT_WRITER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/store/sqlite_db.h"

namespace sweepq::store {

// Owns the write connection and commits the write operations callers submit
// in groups, LevelDB-style: operations queue up in arrival order; the
// operation at the front of the queue leads a group, which takes everything
// queued behind it (up to a maximum) and runs it as one transaction: BEGIN
// IMMEDIATE, the operations one after the other, one COMMIT. A failing
// operation gets its own error and loses only its own changes: one that
// failed before changing anything (nearly every failure) has none; if one
// failed after changing rows, the group is rolled back and runs again with
// each operation inside its own SAVEPOINT, so that its changes are undone
// alone. No operation of the group is reported done before the COMMIT, so
// "done with OK" means the change is in the database (durable as the
// connection's synchronous pragma makes it). One fsync and one lock
// round trip are shared by every write that arrived while the previous
// group was committing.
//
// Two ways in:
//  * Run() blocks its caller until its operation is committed. When the
//    caller's operation leads a group, the caller runs the group on its own
//    thread (a lone writer commits without any thread hand-off).
//  * Submit() queues an operation and returns at once; `done` is called
//    after the commit. A group led by a submitted operation runs on the
//    writer's own thread. This is what the gRPC callback handlers use: no
//    server thread is parked while its write waits for the disk, and while
//    one group commits the next one gathers every request that arrives.
//
// Thread safety: Run() and Submit() may be called from any thread,
// concurrently. Only the current group's leader touches the connection, so
// operations run one at a time, in queue order.
class GroupCommitWriter {
 public:
  // A write operation: reads and writes through the given connection
  // (within the group's transaction; it must not BEGIN or COMMIT itself)
  // and returns OK to keep its changes or an error to undo them.
  //
  // It may run twice in one group (when another operation of the group
  // fails after writing; see the class comment), the first run's changes
  // rolled back: each run must start over, setting its outputs rather
  // than adding to what an earlier run left (clear a vector it fills,
  // reset an optional it may leave empty), and doing nothing outside the
  // database. Only what the last run did counts.
  using Op = absl::FunctionRef<absl::Status(Database&)>;
  // An operation that Submit() keeps until its group runs.
  using AsyncOp = std::function<absl::Status(Database&)>;
  // Called once with what Run() would have returned for the operation.
  using Done = absl::AnyInvocable<void(absl::Status)>;

  // Takes `db`, which must not be used by anyone else from now on, and
  // starts the writer thread. A group holds at most `max_group_ops` (>= 1)
  // operations. With `run_every_group_twice` (for tests) every group is
  // rolled back after its first pass and runs again, as if an op had
  // failed after writing: the ops' contract (see Op) put to work on every
  // write.
  GroupCommitWriter(std::unique_ptr<Database> db, size_t max_group_ops,
                    bool run_every_group_twice = false);

  // Shutdown(), then closes the connection.
  ~GroupCommitWriter();

  // Refuses new work (Run() and Submit() calls made from now on fail with
  // UNAVAILABLE), waits until every queued operation is committed and the
  // writer thread has called every `done` it owes, and stops that thread.
  // The connection stays open until destruction. Idempotent.
  void Shutdown();

  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Runs `op` in the next group (on this thread or the leader's) and waits
  // until the group is committed. Returns the status of `op` if it failed (its
  // changes undone), the commit's error if the group could not be
  // committed (nothing of the group is kept), else OK. `op` may be called
  // twice (see Op); it may capture the caller's locals by reference. While
  // this thread leads a group it also calls the `done` of the submitted
  // operations in it before returning.
  absl::Status Run(Op op);

  // Queues `op` for the next group and returns; `done` is called exactly
  // once, with the status Run() would have returned, after the group is
  // committed (or at once with UNAVAILABLE when the writer is shutting
  // down). `op` and `done` run on the thread leading the group (the
  // writer's own, or a Run() caller's); whatever `op` refers to must stay
  // valid until `done` is called. `done` may call Run() or Submit().
  void Submit(AsyncOp op, Done done);

  // Runs `ops` on `db` as one group (see the class comment) on the calling
  // thread and returns one status per op. Exposed for tests of the grouping
  // itself; `db` must have no transaction open. `twice`: see the
  // constructor's `run_every_group_twice`.
  static std::vector<absl::Status> RunGroup(Database& db,
                                            absl::Span<const Op> ops,
                                            bool twice = false);

 private:
  struct Pending;

  // Sets `error` on the statuses that are OK.
  static void FailKept(const absl::Status& error,
                       std::vector<absl::Status>& statuses);
  // Sets the statuses once SQLite rolled back the group's transaction by
  // itself (disk full, I/O error) after an op ended with `cause`.
  static void MarkLost(const Database& db, const absl::Status& cause,
                       std::vector<absl::Status>& statuses);

  // Runs the group at the front of the queue on this thread, completes its
  // operations (the submitted ones' `done` with mu_ released), and returns
  // with mu_ held again.
  void LeadGroup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The writer thread: leads every group whose first operation was
  // submitted, until the destructor stops it.
  void WriterLoop();

  const size_t max_group_ops_;
  const bool run_every_group_twice_;
  std::unique_ptr<Database> db_;  // used only by the current leader

  absl::Mutex mu_;
  // Queued and running operations in arrival order; the front ones form
  // the current or next group. Submitted entries are owned by the queue.
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // a group is running
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_thread_;
};

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_GROUP_COMMIT_WRITER_H_
