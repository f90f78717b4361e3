// CoordinatorClient: the daemon's side of the WorkerService API. Every call
// carries the worker token and a deadline; results come back as
// absl::Status with the gRPC code and the call's name in the message.
//
// Thread safety: every method may be called from any thread (the stub is
// thread-safe); the object must outlive its calls.
#ifndef SWEEPQ_WORKER_DAEMON_COORDINATOR_CLIENT_H_
#define SWEEPQ_WORKER_DAEMON_COORDINATOR_CLIENT_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "sweepq/v1/coordinator.grpc.pb.h"

namespace sweepq::worker {

struct ClientOptions {
  // HOST:PORT.
  std::string server;
  std::string token;
  // PEM file of the CA; "" = plaintext.
  std::string tls_ca_file;
  // Deadline of every unary call.
  absl::Duration rpc_timeout = absl::Seconds(20);
};

// Whether a failed call may succeed if sent again: the coordinator was
// unreachable or slow (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
// ABORTED, UNKNOWN, INTERNAL). FAILED_PRECONDITION (lost lease), NOT_FOUND,
// INVALID_ARGUMENT and auth errors are not.
bool IsTransient(const absl::Status& status);

// Lets another thread cancel a call in flight (a parked Lease when the
// daemon drains). After Cancel(), calls using it fail with CANCELLED.
class CallCanceller {
 public:
  void Cancel();
  bool cancelled() const;

 private:
  friend class CoordinatorClient;
  // Registers `ctx` for the duration of a call; false if already cancelled.
  bool Attach(grpc::ClientContext* ctx);
  void Detach();

  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// One StreamEvents call kept open across batches (docs/coordinator.md), so
// that a batch costs a message rather than a call. Send() writes one batch
// and waits for its answer. The call is opened on first use and again on
// the Send() after any failure; a caller that resends its unacked batch
// after an error (batch_seq makes that harmless) thus rides out a
// coordinator restart.
//
// Thread safety: Send() and Close() must not run concurrently (one sender
// thread); gRPC's completions run on its own threads.
class EventStreamClient {
 public:
  // `stub` must outlive the object; `token` is sent as the bearer token.
  EventStreamClient(sweepq::v1::WorkerService::StubInterface* stub,
                    std::string token, absl::Duration timeout);
  // Closes the call (see Close()).
  ~EventStreamClient();
  EventStreamClient(const EventStreamClient&) = delete;
  EventStreamClient& operator=(const EventStreamClient&) = delete;

  // Sends `request` and returns its answer. On failure the call is over and
  // the status is its final status ("StreamEvents: ..."; e.g.
  // FAILED_PRECONDITION for a lost lease, UNAVAILABLE while the coordinator
  // is down), or DEADLINE_EXCEEDED when no answer came within the timeout
  // (the call is then cancelled). Nothing of a failed Send is known to be
  // stored or not: resend it.
  absl::StatusOr<sweepq::v1::ReportEventsResponse> Send(
      const sweepq::v1::ReportEventsRequest& request);

  // Half-closes the open call, if any, and waits (up to the timeout, then
  // cancels) for it to end. The next Send() opens a new one.
  void Close();

 private:
  class Call;
  struct State;

  // Ends call_ (cancelling it first when `cancel`) and returns its status.
  grpc::Status EndCall(bool cancel);

  sweepq::v1::WorkerService::StubInterface* const stub_;
  const std::string token_;
  const absl::Duration timeout_;
  Call* call_ = nullptr;  // owned; deleted by EndCall once it is over
  int calls_opened_ = 0;  // logged, so that reopening shows in the log
  std::shared_ptr<State> state_;
};

class CoordinatorClient {
 public:
  // Builds the channel (connecting lazily). INVALID_ARGUMENT when the CA
  // file cannot be read.
  static absl::StatusOr<std::unique_ptr<CoordinatorClient>> Connect(
      const ClientOptions& options);

  // Sends calls to `stub` (owned) instead of a channel of its own.
  CoordinatorClient(ClientOptions options,
                    std::unique_ptr<sweepq::v1::WorkerService::StubInterface> stub);

  absl::StatusOr<sweepq::v1::RegisterWorkerResponse> RegisterWorker(
      const sweepq::v1::RegisterWorkerRequest& request);

  // Long-polls for a run for up to `wait`. `canceller` may be null.
  absl::StatusOr<sweepq::v1::LeaseResponse> Lease(const std::string& worker_id,
                                                  absl::Duration wait,
                                                  CallCanceller* canceller);

  absl::StatusOr<sweepq::v1::HeartbeatResponse> Heartbeat(
      const std::string& worker_id, const sweepq::v1::LeaseRef& lease);

  absl::StatusOr<sweepq::v1::ReportEventsResponse> ReportEvents(
      const sweepq::v1::ReportEventsRequest& request);

  // A sender of batches over StreamEvents, each answered within the unary
  // deadline. Must not outlive this client.
  std::unique_ptr<EventStreamClient> NewEventStream();

  // Uploads the file at `path` as artifact `name` of the leased attempt, in
  // 1 MiB chunks after a header with its size and SHA-256. The file is
  // opened once and read twice through the same descriptor (hash, then
  // send), so a concurrent atomic replacement of `path` (temp file +
  // rename) cannot mix two versions. NOT_FOUND when the file is missing;
  // the call's status otherwise (DATA_LOSS when the coordinator's hash
  // differs).
  absl::StatusOr<sweepq::v1::Artifact> UploadFile(
      const sweepq::v1::LeaseRef& lease, const std::string& name,
      const std::string& path);

  // Downloads `artifact` (name, attempt; 0 = newest) of the leased run (or
  // of artifact.run_id() when that is one of the leased job's sources) into
  // `dest_path` (through a temporary file renamed at the end) and checks
  // its size and SHA-256 against `artifact`, or against the header the
  // coordinator sends when `artifact` has no sha256. DATA_LOSS on a
  // mismatch, INTERNAL when the file cannot be written, else the call's
  // status (NOT_FOUND for an unknown artifact).
  absl::Status FetchArtifact(const std::string& worker_id,
                             const sweepq::v1::LeaseRef& lease,
                             const sweepq::v1::Artifact& artifact,
                             const std::string& dest_path);

  absl::StatusOr<sweepq::v1::FinishRunResponse> FinishRun(
      const sweepq::v1::FinishRunRequest& request);
  // FinishRun as a message on `events` (ReportEventsRequest.finish): no
  // call of its own. nullopt when the coordinator predates finish messages
  // (it took the message for an empty batch and finished nothing): call
  // FinishRun. A failure is the stream's (see EventStreamClient::Send).
  absl::StatusOr<std::optional<sweepq::v1::FinishRunResponse>> FinishOnStream(
      EventStreamClient& events, const sweepq::v1::FinishRunRequest& request);

 private:
  std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) const;

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<sweepq::v1::WorkerService::StubInterface> stub_;
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_DAEMON_COORDINATOR_CLIENT_H_
