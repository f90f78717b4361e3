// gRPC adapters: TeamService and WorkerService. Each handler authenticates
// the call, converts the request and hands it to the Coordinator; no logic
// lives here.
//
// Thread safety: handlers run on gRPC's threads concurrently.
#ifndef SWEEPQ_SERVER_SERVICE_H_
#define SWEEPQ_SERVER_SERVICE_H_

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
using WorkerServiceBase = sweepq::v1::WorkerService::WithCallbackMethod_Lease<
    sweepq::v1::WorkerService::Service>;

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
  grpc::Status ReportEvents(grpc::ServerContext* ctx,
                            const sweepq::v1::ReportEventsRequest* req,
                            sweepq::v1::ReportEventsResponse* resp) override;
  grpc::Status UploadArtifact(
      grpc::ServerContext* ctx,
      grpc::ServerReader<sweepq::v1::ArtifactChunk>* reader,
      sweepq::v1::UploadArtifactResponse* resp) override;
  grpc::Status FetchArtifact(
      grpc::ServerContext* ctx, const sweepq::v1::FetchArtifactRequest* req,
      grpc::ServerWriter<sweepq::v1::ArtifactChunk>* writer) override;
  grpc::Status FinishRun(grpc::ServerContext* ctx,
                         const sweepq::v1::FinishRunRequest* req,
                         sweepq::v1::FinishRunResponse* resp) override;

 private:
  absl::StatusOr<store::TeamPrincipal> Authorize(grpc::ServerContextBase* ctx);
  Coordinator* const coordinator_;
  Authenticator* const auth_;
  ArtifactStore* const artifacts_;
  LeaseWaiters* const waiters_;
};

}  // namespace sweepq::server

#endif  // SWEEPQ_SERVER_SERVICE_H_
