#include "server/store/wal_checkpointer.h"

#include <utility>

#include "common/thread_name.h"
#include "glog/logging.h"

namespace sweepq::store {

WalCheckpointer::WalCheckpointer(std::unique_ptr<Database> db)
    : db_(std::move(db)) {
  thread_ = std::thread([this] { Loop(); });
  NameThread(thread_, "sweepq-checkpt");
}

WalCheckpointer::~WalCheckpointer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void WalCheckpointer::Request() {
  absl::MutexLock lock(&mu_);
  requested_ = true;
}

int64_t WalCheckpointer::completed() {
  absl::MutexLock lock(&mu_);
  return completed_;
}

bool WalCheckpointer::WaitForCompleted(int64_t seen, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return completed_ > seen;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

void WalCheckpointer::Loop() {
  absl::MutexLock lock(&mu_);
  auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requested_ || stopping_;
  };
  while (true) {
    mu_.Await(absl::Condition(&has_work));
    if (stopping_) return;
    requested_ = false;
    mu_.Unlock();
    // PASSIVE never waits for the writer or the readers; a busy file only
    // means a partial copy, and the next request goes on from there.
    absl::Status status = db_->Execute("PRAGMA wal_checkpoint(PASSIVE)");
    if (!status.ok()) LOG(WARNING) << "background checkpoint: " << status;
    mu_.Lock();
    ++completed_;
  }
}

}  // namespace sweepq::store
