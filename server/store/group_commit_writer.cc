#include "server/store/group_commit_writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "glog/logging.h"

namespace sweepq::store {

struct GroupCommitWriter::Pending {
  explicit Pending(Op op) : op(op) {}
  Op op;
  absl::Status status;  // written by the writer thread before `done`
  absl::Notification done;
};

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Database> db,
                                     size_t max_group_ops)
    : max_group_ops_(max_group_ops < 1 ? 1 : max_group_ops),
      db_(std::move(db)),
      thread_([this] { Loop(); }) {}

GroupCommitWriter::~GroupCommitWriter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    queued_.Signal();
  }
  thread_.join();
}

absl::Status GroupCommitWriter::Run(Op op) {
  Pending pending(op);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the database writer is shutting down");
    }
    queue_.push_back(&pending);
    queued_.Signal();
  }
  pending.done.WaitForNotification();
  return pending.status;
}

void GroupCommitWriter::Loop() {
  std::vector<Pending*> group;
  std::vector<Op> ops;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (queue_.empty() && !stopping_) queued_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping, and everything is done
      while (!queue_.empty() && group.size() < max_group_ops_) {
        group.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    ops.clear();
    for (Pending* pending : group) ops.push_back(pending->op);
    std::vector<absl::Status> statuses = RunGroup(*db_, ops);
    for (size_t i = 0; i < group.size(); ++i) {
      group[i]->status = std::move(statuses[i]);
      group[i]->done.Notify();  // `group[i]` may be gone after this
    }
    group.clear();
  }
}

std::vector<absl::Status> GroupCommitWriter::RunGroup(
    Database& db, absl::Span<const Op> ops) {
  std::vector<absl::Status> statuses(ops.size());
  auto fail_kept = [&](const absl::Status& error, size_t end) {
    // The ops that had succeeded lose their changes with the transaction.
    for (size_t i = 0; i < end; ++i) {
      if (statuses[i].ok()) statuses[i] = error;
    }
  };

  Transaction transaction(&db);
  absl::Status begun = transaction.Begin(Transaction::Mode::kImmediate);
  if (!begun.ok()) {
    fail_kept(begun, ops.size());
    return statuses;
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    Savepoint savepoint(&db);
    absl::Status status = savepoint.Begin();
    if (status.ok()) {
      status = ops[i](db);
      if (status.ok()) {
        status = savepoint.Release();
      } else {
        absl::Status undone = savepoint.Rollback();
        if (!undone.ok()) LOG(ERROR) << "rollback to savepoint: " << undone;
      }
    }
    statuses[i] = status;
    // Some errors (disk full, I/O) make SQLite roll back the whole
    // transaction; the ops before this one lost their changes, and the
    // ones after must not run outside a transaction.
    if (!db.InTransaction()) {
      absl::Status lost = absl::UnavailableError(absl::StrCat(
          "the write transaction on ", db.path(), " was rolled back: ",
          status.ok() ? "unknown error" : status.message()));
      fail_kept(lost, ops.size());
      return statuses;
    }
  }
  absl::Status committed = transaction.Commit();
  if (!committed.ok()) fail_kept(committed, ops.size());
  return statuses;
}

}  // namespace sweepq::store
