#include "server/store/group_commit_writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace sweepq::store {

struct GroupCommitWriter::Pending {
  explicit Pending(Op op) : op(op) {}
  Op op;
  absl::Status status;    // written by the group's leader before `finished`
  bool finished = false;  // guarded by the writer's mu_
  absl::CondVar cv;       // signalled when finished or when made leader
};

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Database> db,
                                     size_t max_group_ops)
    : max_group_ops_(max_group_ops < 1 ? 1 : max_group_ops),
      db_(std::move(db)) {}

GroupCommitWriter::~GroupCommitWriter() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty();
  };
  mu_.Await(absl::Condition(&idle));
}

absl::Status GroupCommitWriter::Run(Op op) {
  Pending self(op);
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError("the database writer is shutting down");
  }
  queue_.push_back(&self);
  while (!self.finished && queue_.front() != &self) self.cv.Wait(&mu_);
  if (self.finished) return self.status;  // a leader ran it in its group

  // This caller leads: it runs the queue's front (itself first) as a group.
  std::vector<Pending*> group;
  for (Pending* p : queue_) {
    if (group.size() == max_group_ops_) break;
    group.push_back(p);
  }
  std::vector<Op> ops;
  ops.reserve(group.size());
  for (Pending* p : group) ops.push_back(p->op);
  mu_.Unlock();
  std::vector<absl::Status> statuses = RunGroup(*db_, ops);
  mu_.Lock();
  for (size_t i = 0; i < group.size(); ++i) {
    queue_.pop_front();
    group[i]->status = std::move(statuses[i]);
    group[i]->finished = true;
    if (group[i] != &self) group[i]->cv.Signal();  // may be gone after this
  }
  if (!queue_.empty()) queue_.front()->cv.Signal();  // the next leader
  return self.status;
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
