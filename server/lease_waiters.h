// LeaseWaiters: Lease long-polls that hold no thread while they wait.
//
// A Lease call that finds no run is parked here with its reactor; one
// thread retries the parked calls when the queue changes (a sweep arrives,
// a run is requeued) and finishes each when it is granted a run, told to
// drain, fails, is cancelled by its client, or reaches its deadline (then
// with granted = false). A thousand idle workers thus cost a thousand small
// records, not a thousand blocked gRPC threads.
//
// Thread safety: Add may be called from any thread; Shutdown once.
#ifndef SWEEPQ_SERVER_LEASE_WAITERS_H_
#define SWEEPQ_SERVER_LEASE_WAITERS_H_

#include <cstdint>
#include <list>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/coordinator.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::server {

class LeaseWaiters {
 public:
  // Starts the retry thread. `coordinator` must outlive this object.
  explicit LeaseWaiters(Coordinator* coordinator);
  // Shuts down (see Shutdown) and joins the thread.
  ~LeaseWaiters();
  LeaseWaiters(const LeaseWaiters&) = delete;
  LeaseWaiters& operator=(const LeaseWaiters&) = delete;

  // Parks a Lease call whose attempt at `generation` found nothing. The
  // request, response and context stay owned by gRPC until `reactor` is
  // finished, which this object does exactly once.
  void Add(int64_t team_id, grpc::CallbackServerContext* context,
           grpc::ServerUnaryReactor* reactor,
           const sweepq::v1::LeaseRequest* request,
           sweepq::v1::LeaseResponse* response, absl::Time deadline,
           uint64_t generation);

  // Finishes every parked call with UNAVAILABLE and refuses new ones (they
  // are finished at once the same way). Idempotent.
  void Shutdown();

 private:
  struct Waiter {
    int64_t team_id;
    grpc::CallbackServerContext* context;
    grpc::ServerUnaryReactor* reactor;
    const sweepq::v1::LeaseRequest* request;
    sweepq::v1::LeaseResponse* response;
    absl::Time deadline;
    uint64_t generation;  // queue generation of the last attempt
  };

  void Loop();
  // Retries or expires one waiter; returns true when it was finished.
  bool Serve(Waiter& waiter, uint64_t generation, absl::Time now);

  Coordinator* const coordinator_;
  absl::Mutex mu_;
  std::list<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace sweepq::server

#endif  // SWEEPQ_SERVER_LEASE_WAITERS_H_
