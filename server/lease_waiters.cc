#include "server/lease_waiters.h"

#include <utility>
#include <vector>

#include "common/thread_name.h"
#include "server/service.h"

namespace sweepq::server {
namespace {

// How often parked calls are checked for deadlines and cancellation when
// the queue does not change.
constexpr absl::Duration kTick = absl::Milliseconds(100);

}  // namespace

LeaseWaiters::LeaseWaiters(Coordinator* coordinator)
    : coordinator_(coordinator), thread_([this] { Loop(); }) {
  NameThread(thread_, "sweepq-waiters");
}

LeaseWaiters::~LeaseWaiters() {
  Shutdown();
  if (thread_.joinable()) thread_.join();
}

void LeaseWaiters::Add(int64_t team_id, grpc::CallbackServerContext* context,
                       grpc::ServerUnaryReactor* reactor,
                       const sweepq::v1::LeaseRequest* request,
                       sweepq::v1::LeaseResponse* response,
                       absl::Time deadline, uint64_t generation) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      waiters_.push_back(Waiter{team_id, context, reactor, request, response,
                                deadline, generation});
      return;
    }
  }
  reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "coordinator is shutting down"));
}

void LeaseWaiters::Shutdown() {
  std::list<Waiter> parked;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    parked.swap(waiters_);
  }
  for (Waiter& w : parked) {
    w.reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   "coordinator is shutting down"));
  }
}

bool LeaseWaiters::Serve(Waiter& w, uint64_t generation, absl::Time now) {
  if (w.context->IsCancelled()) {
    w.reactor->Finish(grpc::Status::CANCELLED);
    return true;
  }
  if (w.generation != generation) {
    w.generation = generation;
    absl::StatusOr<sweepq::v1::LeaseResponse> attempt =
        coordinator_->TryLease(w.team_id, *w.request);
    if (!attempt.ok()) {
      w.reactor->Finish(ToGrpcStatus(attempt.status()));
      return true;
    }
    if (attempt->granted() ||
        attempt->directive() == sweepq::v1::DIRECTIVE_DRAIN) {
      *w.response = std::move(*attempt);
      w.reactor->Finish(grpc::Status::OK);
      return true;
    }
  }
  if (now >= w.deadline) {
    w.response->set_granted(false);
    w.response->set_directive(sweepq::v1::DIRECTIVE_CONTINUE);
    w.response->set_heartbeat_interval_ms(
        coordinator_->options().lease_ttl_ms / 3);
    w.reactor->Finish(grpc::Status::OK);
    return true;
  }
  return false;
}

void LeaseWaiters::Loop() {
  uint64_t seen = coordinator_->QueueGeneration();
  while (true) {
    // Work on the parked calls outside the lock: TryLease touches the store.
    std::list<Waiter> batch;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      batch.swap(waiters_);
    }
    const uint64_t generation = coordinator_->QueueGeneration();
    const absl::Time now = absl::Now();
    for (auto it = batch.begin(); it != batch.end();) {
      it = Serve(*it, generation, now) ? batch.erase(it) : std::next(it);
    }
    {
      absl::MutexLock lock(&mu_);
      // Calls parked meanwhile go after the older ones (first come first
      // served); if stopping, Shutdown finishes all of them.
      waiters_.splice(waiters_.begin(), batch);
      if (stopping_) {
        batch.swap(waiters_);
      }
    }
    for (Waiter& w : batch) {
      w.reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     "coordinator is shutting down"));
    }
    seen = generation;
    if (!coordinator_->WaitForQueueChange(seen, kTick)) {
      Shutdown();
      return;
    }
  }
}

}  // namespace sweepq::server
