// WalCheckpointer: checkpoints a WAL-mode SQLite database on a thread and
// connection of its own, so that the writer never stalls on one.
#ifndef SWEEPQ_SERVER_STORE_WAL_CHECKPOINTER_H_
#define SWEEPQ_SERVER_STORE_WAL_CHECKPOINTER_H_

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/sqlite_db.h"

namespace sweepq::store {

// A checkpoint copies the pages committed to the write-ahead log back into
// the database file and syncs both, which SQLite otherwise does inside the
// COMMIT that crosses its size threshold: every write queued behind that
// commit then waits for two fsyncs. Here the writer only calls Request()
// (from its commit hook, see Database::SetWalCommitHook) and this thread
// runs PRAGMA wal_checkpoint(PASSIVE): it copies what no reader still needs
// without blocking the writer or the readers, and the writer restarts the
// log once everything was copied. Requests made while one runs are merged
// into the next.
//
// Thread safety: Request() and the waits may be called from any thread.
class WalCheckpointer {
 public:
  // Takes `db`, a read-write connection to the file (used only by this
  // object's thread from now on), and starts the thread.
  explicit WalCheckpointer(std::unique_ptr<Database> db);
  // Lets a checkpoint in progress finish, stops the thread and closes the
  // connection. Requests still pending are dropped (the next opening of
  // the file or its last close checkpoints).
  ~WalCheckpointer();

  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Asks for a checkpoint soon and returns at once.
  void Request();

  // Checkpoints finished so far (successful or not; failures are logged).
  int64_t completed();
  // Waits until more than `seen` checkpoints finished; false on timeout.
  bool WaitForCompleted(int64_t seen, absl::Duration timeout);

 private:
  void Loop();

  std::unique_ptr<Database> db_;  // used only by the thread
  absl::Mutex mu_;
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_WAL_CHECKPOINTER_H_
