// gRPC adapters: TeamService and WorkerService. Each handler authenticates
// the call, converts the request and hands it to the Coordinator; no logic
// lives here.
//
// Thread safety: handlers run on gRPC's threads concurrently; the
// StreamEvents reactor also runs on the store's writer thread.
#ifndef SWEEPQ_SERVER_SERVICE_H_
#define SWEEPQ_SERVER_SERVICE_H_

#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "sweepq/v1/coordinator.grpc.pb.h"

namespace sweepq::server {

// absl::Status codes map one-to-one onto gRPC codes.
grpc::Status ToGrpcStatus(const absl::Status& status);

class TeamServiceImpl final : public sweepq::v1::TeamService::Service {
 public:
  // Both must outlive the service.
  TeamServiceImpl(Coordinator* coordinator, Authenticator* auth)
      : coordinator_(coordinator), auth_(auth) {}

  grpc::Status SubmitSweep(grpc::ServerContext* ctx,
                           const sweepq::v1::SubmitSweepRequest* req,
                           sweepq::v1::SubmitSweepResponse* resp) override;
  grpc::Status ListRuns(grpc::ServerContext* ctx,
                        const sweepq::v1::ListRunsRequest* req,
                        sweepq::v1::ListRunsResponse* resp) override;
  grpc::Status GetRun(grpc::ServerContext* ctx,
                      const sweepq::v1::GetRunRequest* req,
                      sweepq::v1::Run* resp) override;
  grpc::Status WatchRun(
      grpc::ServerContext* ctx, const sweepq::v1::WatchRunRequest* req,
      grpc::ServerWriter<sweepq::v1::WatchRunResponse>* writer) override;
  grpc::Status Leaderboard(grpc::ServerContext* ctx,
                           const sweepq::v1::LeaderboardRequest* req,
                           sweepq::v1::LeaderboardResponse* resp) override;
  grpc::Status CancelRun(grpc::ServerContext* ctx,
                         const sweepq::v1::CancelRunRequest* req,
                         sweepq::v1::CancelRunResponse* resp) override;
  grpc::Status CancelSweep(grpc::ServerContext* ctx,
                           const sweepq::v1::CancelSweepRequest* req,
                           sweepq::v1::CancelSweepResponse* resp) override;
  grpc::Status RetryRun(grpc::ServerContext* ctx,
                        const sweepq::v1::RetryRunRequest* req,
                        sweepq::v1::RetryRunResponse* resp) override;
  grpc::Status ListWorkers(grpc::ServerContext* ctx,
                           const sweepq::v1::ListWorkersRequest* req,
                           sweepq::v1::ListWorkersResponse* resp) override;
  grpc::Status DrainWorker(grpc::ServerContext* ctx,
                           const sweepq::v1::DrainWorkerRequest* req,
                           sweepq::v1::DrainWorkerResponse* resp) override;
  grpc::Status ClearWorker(grpc::ServerContext* ctx,
                           const sweepq::v1::ClearWorkerRequest* req,
                           sweepq::v1::ClearWorkerResponse* resp) override;
  grpc::Status ListArtifacts(grpc::ServerContext* ctx,
                             const sweepq::v1::ListArtifactsRequest* req,
                             sweepq::v1::ListArtifactsResponse* resp) override;
  grpc::Status DownloadArtifact(
      grpc::ServerContext* ctx, const sweepq::v1::DownloadArtifactRequest* req,
      grpc::ServerWriter<sweepq::v1::ArtifactChunk>* writer) override;

 private:
  absl::StatusOr<store::TeamPrincipal> Authorize(grpc::ServerContext* ctx);
  Coordinator* const coordinator_;
  Authenticator* const auth_;
};

class LeaseWaiters;

// Lease uses gRPC's callback API so that a long poll parks in LeaseWaiters
// instead of holding a thread; the other calls are synchronous.
// The worker calls made many times per run (Lease, ReportEvents,
// FinishRun) use gRPC's callback API: their handlers queue the write and
// return, and the answer is sent when the group commit that stored it
// completes, so no server thread waits on the disk.
// StreamEvents is callback-based too: its reactor reads the next batch only
// while fewer than kMaxStreamBatchesInFlight are unanswered.
using WorkerServiceBase = sweepq::v1::WorkerService::WithCallbackMethod_Lease<
    sweepq::v1::WorkerService::WithCallbackMethod_ReportEvents<
        sweepq::v1::WorkerService::WithCallbackMethod_StreamEvents<
            sweepq::v1::WorkerService::WithCallbackMethod_FinishRun<
                sweepq::v1::WorkerService::Service>>>>;

// Unanswered batches one StreamEvents call may hold, and their total size
// (one batch is always allowed); the server stops reading the stream at
// either (gRPC flow control then holds the client back).
inline constexpr size_t kMaxStreamBatchesInFlight = 32;
inline constexpr size_t kMaxStreamBytesInFlight = 32 << 20;

class EventStream;

class WorkerServiceImpl final : public WorkerServiceBase {
 public:
  // All must outlive the service.
  WorkerServiceImpl(Coordinator* coordinator, Authenticator* auth,
                    ArtifactStore* artifacts, LeaseWaiters* waiters)
      : coordinator_(coordinator),
        auth_(auth),
        artifacts_(artifacts),
        waiters_(waiters) {}

  grpc::Status RegisterWorker(grpc::ServerContext* ctx,
                              const sweepq::v1::RegisterWorkerRequest* req,
                              sweepq::v1::RegisterWorkerResponse* resp) override;
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* ctx,
                                  const sweepq::v1::LeaseRequest* req,
                                  sweepq::v1::LeaseResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx,
                         const sweepq::v1::HeartbeatRequest* req,
                         sweepq::v1::HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* ReportEvents(
      grpc::CallbackServerContext* ctx,
      const sweepq::v1::ReportEventsRequest* req,
      sweepq::v1::ReportEventsResponse* resp) override;
  // Returns the reactor of one event stream; it deletes itself once the
  // call is done and every batch it handed to the coordinator is answered.
  grpc::ServerBidiReactor<sweepq::v1::ReportEventsRequest,
                          sweepq::v1::ReportEventsResponse>*
  StreamEvents(grpc::CallbackServerContext* ctx) override;
  grpc::Status UploadArtifact(
      grpc::ServerContext* ctx,
      grpc::ServerReader<sweepq::v1::ArtifactChunk>* reader,
      sweepq::v1::UploadArtifactResponse* resp) override;
  grpc::Status FetchArtifact(
      grpc::ServerContext* ctx, const sweepq::v1::FetchArtifactRequest* req,
      grpc::ServerWriter<sweepq::v1::ArtifactChunk>* writer) override;
  grpc::ServerUnaryReactor* FinishRun(
      grpc::CallbackServerContext* ctx, const sweepq::v1::FinishRunRequest* req,
      sweepq::v1::FinishRunResponse* resp) override;

  // Ends every open StreamEvents call with UNAVAILABLE (answers not yet
  // written are not sent; clients resend those batches) and refuses new
  // ones, so that a server shutdown does not wait for workers to close
  // their streams. Call before grpc::Server::Shutdown; any thread.
  void ShutdownStreams();

 private:
  friend class EventStream;

  absl::StatusOr<store::TeamPrincipal> Authorize(grpc::ServerContextBase* ctx);
  // Tracks an open stream for ShutdownStreams; false once shutting down.
  bool AddStream(EventStream* stream);
  void RemoveStream(EventStream* stream);

  Coordinator* const coordinator_;
  Authenticator* const auth_;
  ArtifactStore* const artifacts_;
  LeaseWaiters* const waiters_;
  absl::Mutex streams_mu_;
  std::set<EventStream*> streams_ ABSL_GUARDED_BY(streams_mu_);
  bool streams_closed_ ABSL_GUARDED_BY(streams_mu_) = false;
};

}  // namespace sweepq::server

#endif  // SWEEPQ_SERVER_SERVICE_H_
