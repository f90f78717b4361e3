#include "server/store/group_commit_writer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/thread_name.h"
#include "glog/logging.h"

namespace sweepq::store {

struct GroupCommitWriter::Pending {
  // Run(): the caller's operation, which waits on its own stack.
  const Op* sync_op = nullptr;
  // Submit(): the operation and its completion, owned by this entry.
  AsyncOp async_op;
  Done done;
  // Set by the group's leader, under the writer's mu_.
  absl::Status status;
  bool finished = false;
};

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Database> db,
                                     size_t max_group_ops,
                                     bool run_every_group_twice)
    : max_group_ops_(max_group_ops < 1 ? 1 : max_group_ops),
      run_every_group_twice_(run_every_group_twice),
      db_(std::move(db)) {
  writer_thread_ = std::thread([this] { WriterLoop(); });
  NameThread(writer_thread_, "sweepq-writer");
}

GroupCommitWriter::~GroupCommitWriter() { Shutdown(); }

void GroupCommitWriter::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // The writer thread leaves once the queue is drained.
  if (writer_thread_.joinable()) writer_thread_.join();
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && !busy_;
  };
  mu_.Await(absl::Condition(&idle));
}

absl::Status GroupCommitWriter::Run(Op op) {
  Pending self;
  self.sync_op = &op;
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError("the database writer is shutting down");
  }
  queue_.push_back(&self);
  auto may_go = [this, &self]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return self.finished || (!busy_ && queue_.front() == &self);
  };
  mu_.Await(absl::Condition(&may_go));
  if (!self.finished) LeadGroup();  // its group starts with this caller's op
  return self.status;
}

void GroupCommitWriter::Submit(AsyncOp op, Done done) {
  auto pending = std::make_unique<Pending>();
  pending->async_op = std::move(op);
  pending->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(pending.release());
      return;
    }
  }
  pending->done(absl::UnavailableError("the database writer is shutting down"));
}

void GroupCommitWriter::LeadGroup() {
  busy_ = true;
  const size_t n = std::min(queue_.size(), max_group_ops_);
  std::vector<Pending*> group(queue_.begin(), queue_.begin() + n);
  std::vector<Op> ops;
  ops.reserve(n);
  for (Pending* p : group) {
    ops.push_back(p->sync_op != nullptr ? *p->sync_op : Op(p->async_op));
  }
  mu_.Unlock();
  std::vector<absl::Status> statuses =
      RunGroup(*db_, ops, run_every_group_twice_);
  mu_.Lock();
  std::vector<std::unique_ptr<Pending>> submitted;
  for (size_t i = 0; i < n; ++i) {
    queue_.pop_front();
    Pending* p = group[i];
    p->status = std::move(statuses[i]);
    p->finished = true;  // a Run() caller may return (and p vanish) now
    if (p->sync_op == nullptr) submitted.emplace_back(p);
  }
  busy_ = false;
  if (submitted.empty()) return;
  // Completions run unlocked so that they may start new writes, and after
  // busy_ is cleared so that the next group need not wait for them.
  mu_.Unlock();
  for (auto& p : submitted) p->done(std::move(p->status));
  mu_.Lock();
}

void GroupCommitWriter::WriterLoop() {
  absl::MutexLock lock(&mu_);
  // A group whose first operation is a Run() caller's is led by that caller.
  auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (busy_) return false;
    if (queue_.empty()) return stopping_;
    return queue_.front()->sync_op == nullptr;
  };
  while (true) {
    mu_.Await(absl::Condition(&has_work));
    if (queue_.empty()) return;  // stopping, and nothing left
    LeadGroup();
  }
}

std::vector<absl::Status> GroupCommitWriter::RunGroup(Database& db,
                                                      absl::Span<const Op> ops,
                                                      bool twice) {
  std::vector<absl::Status> statuses(ops.size());
  Transaction transaction(&db);
  absl::Status begun = transaction.Begin(Transaction::Mode::kImmediate);
  if (!begun.ok()) {
    FailKept(begun, statuses);
    return statuses;
  }
  if (ops.size() == 1 && !twice) {
    // Alone in its group, the op needs no savepoint: on failure the
    // transaction (the destructor) rolls back exactly its changes.
    statuses[0] = ops[0](db);
    if (statuses[0].ok()) statuses[0] = transaction.Commit();
    return statuses;
  }
  // First without savepoints: they cost every op a SAVEPOINT, a RELEASE
  // and a copy of each page it touches (about a tenth of the writer's time
  // per write in the trial shape of bench/coordinator_bench), while a
  // failing op nearly always fails before it writes (a stale lease, a
  // validation error) and then has nothing to undo.
  bool undo_alone = false;
  for (size_t i = 0; i < ops.size(); ++i) {
    const int64_t changes_before = db.ChangeCount();
    statuses[i] = ops[i](db);
    if (!db.InTransaction()) {
      MarkLost(db, statuses[i], statuses);
      return statuses;
    }
    if (!statuses[i].ok() && db.ChangeCount() != changes_before) {
      // It failed after changing rows, and only a savepoint taken before
      // it could undo its changes alone.
      undo_alone = true;
      break;
    }
  }
  if (!undo_alone && !twice) {
    absl::Status committed = transaction.Commit();
    if (!committed.ok()) FailKept(committed, statuses);
    return statuses;
  }

  // Again from the start, each op inside its own savepoint this time (an op
  // may run twice: see Op).
  VLOG(1) << "the group of " << ops.size()
          << " runs again with a savepoint per operation";
  statuses.assign(ops.size(), absl::OkStatus());  // nothing of the first pass
  absl::Status undone = transaction.Rollback();
  if (!undone.ok()) {
    FailKept(undone, statuses);
    return statuses;
  }
  Transaction again(&db);
  begun = again.Begin(Transaction::Mode::kImmediate);
  if (!begun.ok()) {
    FailKept(begun, statuses);
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
        absl::Status rolled_back = savepoint.Rollback();
        if (!rolled_back.ok()) {
          LOG(ERROR) << "rollback to savepoint: " << rolled_back;
        }
      }
    }
    statuses[i] = status;
    if (!db.InTransaction()) {
      MarkLost(db, status, statuses);
      return statuses;
    }
  }
  absl::Status committed = again.Commit();
  if (!committed.ok()) FailKept(committed, statuses);
  return statuses;
}

void GroupCommitWriter::FailKept(const absl::Status& error,
                                 std::vector<absl::Status>& statuses) {
  // The ops that had succeeded lose their changes with the transaction.
  for (absl::Status& status : statuses) {
    if (status.ok()) status = error;
  }
}

void GroupCommitWriter::MarkLost(const Database& db, const absl::Status& cause,
                                 std::vector<absl::Status>& statuses) {
  // Some errors (disk full, I/O) make SQLite roll back the whole
  // transaction: the ops before this one lost their changes, and the ones
  // after it must not run outside a transaction.
  const absl::Status lost = absl::UnavailableError(absl::StrCat(
      "the write transaction on ", db.path(),
      " was rolled back: ", cause.ok() ? "unknown error" : cause.message()));
  FailKept(lost, statuses);
}

}  // namespace sweepq::store
