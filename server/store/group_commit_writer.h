// GroupCommitWriter: the single writer of a SQLite database, committing many
// callers' writes in one transaction.
#ifndef SWEEPQ_SERVER_STORE_GROUP_COMMIT_WRITER_H_
#define SWEEPQ_SERVER_STORE_GROUP_COMMIT_WRITER_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/store/sqlite_db.h"

namespace sweepq::store {

// Owns the write connection and commits the write operations callers submit
// in groups, LevelDB-style: callers queue up; the caller at the front of the
// queue becomes the group's leader, takes everything queued behind it (up
// to a maximum) and runs it as one group on its own thread: BEGIN
// IMMEDIATE, each operation inside its own SAVEPOINT (a failing operation is
// rolled back alone and gets its own error), one COMMIT; then it wakes the
// followers and hands leadership to the next caller in the queue. Callers
// block until their operation is committed, so OK means the change is in
// the database (durable as the connection's synchronous pragma makes it).
// One fsync and one lock round trip are shared by every write that arrived
// while the previous group was committing, and a lone writer commits on its
// own thread without waking anyone: no dedicated writer thread, so no
// thread hand-off on the hot path.
//
// Thread safety: Run() may be called from any thread, concurrently. Only
// the current leader touches the connection, so operations run one at a
// time.
class GroupCommitWriter {
 public:
  // A write operation: reads and writes through the given connection
  // (within the group's transaction; it must not BEGIN or COMMIT itself)
  // and returns OK to keep its changes or an error to undo them.
  using Op = absl::FunctionRef<absl::Status(Database&)>;

  // Takes `db`, which must not be used by anyone else from now on. A group holds at most `max_group_ops` (>= 1)
  // operations.
  GroupCommitWriter(std::unique_ptr<Database> db, size_t max_group_ops);

  // Waits for the operations in progress, then closes the connection.
  // Run() calls that start meanwhile fail with UNAVAILABLE.
  ~GroupCommitWriter();

  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Runs `op` in the next group (on this thread or the leader's) and waits
  // until the group is committed. Returns the status of `op` if it failed (its
  // changes undone), the commit's error if the group could not be
  // committed (nothing of the group is kept), else OK. `op` may be called
  // at most once; it may capture the caller's locals by reference.
  absl::Status Run(Op op);

  // Runs `ops` on `db` as one group (see the class comment) on the calling
  // thread and returns one status per op. Exposed for tests of the grouping
  // itself; `db` must have no transaction open.
  static std::vector<absl::Status> RunGroup(Database& db,
                                            absl::Span<const Op> ops);

 private:
  struct Pending;

  const size_t max_group_ops_;
  std::unique_ptr<Database> db_;  // used only by the current leader

  absl::Mutex mu_;
  // Waiting and running callers; the front one leads the current group.
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_GROUP_COMMIT_WRITER_H_
