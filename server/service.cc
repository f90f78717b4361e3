#include "server/service.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/lease_waiters.h"

namespace sweepq::server {
namespace {

constexpr size_t kDownloadChunkBytes = 1 << 20;

std::string AuthorizationOf(grpc::ServerContextBase* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

CancelledFn CancelledOf(grpc::ServerContext* ctx) {
  return [ctx] { return ctx->IsCancelled(); };
}

// Runs `body` as the authenticated principal and converts its status.
template <typename Body>
grpc::Status Serve(const absl::StatusOr<store::TeamPrincipal>& principal,
                   Body&& body) {
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  return ToGrpcStatus(body(*principal));
}

// Streams an opened artifact: the header in the first chunk, then the data
// in chunks of kDownloadChunkBytes, ending with an empty chunk.
absl::Status StreamArtifact(
    std::pair<sweepq::v1::Artifact, std::unique_ptr<ArtifactStore::Reader>>
        opened,
    grpc::ServerWriter<sweepq::v1::ArtifactChunk>* writer) {
  sweepq::v1::ArtifactChunk chunk;
  *chunk.mutable_header() = opened.first;
  std::string data;
  do {
    RETURN_IF_ERROR(opened.second->Read(kDownloadChunkBytes, &data));
    chunk.set_data(data);
    if (!writer->Write(chunk)) {
      return absl::CancelledError("downloader went away");
    }
    chunk.clear_header();
  } while (!data.empty());
  return absl::OkStatus();
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// ---- TeamService ----

absl::StatusOr<store::TeamPrincipal> TeamServiceImpl::Authorize(
    grpc::ServerContext* ctx) {
  return auth_->Authenticate(AuthorizationOf(ctx), store::Role::kMember);
}

grpc::Status TeamServiceImpl::SubmitSweep(
    grpc::ServerContext* ctx, const sweepq::v1::SubmitSweepRequest* req,
    sweepq::v1::SubmitSweepResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp, coordinator_->SubmitSweep(p.team_id, *req));
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::ListRuns(grpc::ServerContext* ctx,
                                       const sweepq::v1::ListRunsRequest* req,
                                       sweepq::v1::ListRunsResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(auto runs, coordinator_->ListRuns(p.team_id, *req));
    for (auto& r : runs) *resp->add_runs() = std::move(r);
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::GetRun(grpc::ServerContext* ctx,
                                     const sweepq::v1::GetRunRequest* req,
                                     sweepq::v1::Run* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp, coordinator_->GetRun(p.team_id, req->run_id()));
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::WatchRun(
    grpc::ServerContext* ctx, const sweepq::v1::WatchRunRequest* req,
    grpc::ServerWriter<sweepq::v1::WatchRunResponse>* writer) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    return coordinator_->WatchRun(
        p.team_id, *req,
        [writer](const sweepq::v1::WatchRunResponse& item) {
          return writer->Write(item);
        },
        CancelledOf(ctx));
  });
}

grpc::Status TeamServiceImpl::Leaderboard(
    grpc::ServerContext* ctx, const sweepq::v1::LeaderboardRequest* req,
    sweepq::v1::LeaderboardResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(auto entries, coordinator_->Leaderboard(p.team_id, *req));
    for (auto& e : entries) *resp->add_entries() = std::move(e);
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::CancelRun(grpc::ServerContext* ctx,
                                        const sweepq::v1::CancelRunRequest* req,
                                        sweepq::v1::CancelRunResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp, coordinator_->CancelRun(p.team_id, req->run_id()));
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::CancelSweep(
    grpc::ServerContext* ctx, const sweepq::v1::CancelSweepRequest* req,
    sweepq::v1::CancelSweepResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp,
                     coordinator_->CancelSweep(p.team_id, req->sweep_id()));
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::RetryRun(grpc::ServerContext* ctx,
                                       const sweepq::v1::RetryRunRequest* req,
                                       sweepq::v1::RetryRunResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp->mutable_run(),
                     coordinator_->RetryRun(p.team_id, req->run_id()));
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::ListWorkers(
    grpc::ServerContext* ctx, const sweepq::v1::ListWorkersRequest* req,
    sweepq::v1::ListWorkersResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(auto workers, coordinator_->ListWorkers(p.team_id));
    for (auto& w : workers) *resp->add_workers() = std::move(w);
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::DrainWorker(
    grpc::ServerContext* ctx, const sweepq::v1::DrainWorkerRequest* req,
    sweepq::v1::DrainWorkerResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp->mutable_worker(),
                     coordinator_->DrainWorker(p.team_id, req->worker_id()));
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::ClearWorker(
    grpc::ServerContext* ctx, const sweepq::v1::ClearWorkerRequest* req,
    sweepq::v1::ClearWorkerResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp->mutable_worker(),
                     coordinator_->ClearWorker(p.team_id, req->worker_id()));
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::ListArtifacts(
    grpc::ServerContext* ctx, const sweepq::v1::ListArtifactsRequest* req,
    sweepq::v1::ListArtifactsResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(auto list,
                     coordinator_->ListArtifacts(p.team_id, req->run_id()));
    for (auto& a : list) *resp->add_artifacts() = std::move(a);
    return absl::OkStatus();
  });
}

grpc::Status TeamServiceImpl::DownloadArtifact(
    grpc::ServerContext* ctx, const sweepq::v1::DownloadArtifactRequest* req,
    grpc::ServerWriter<sweepq::v1::ArtifactChunk>* writer) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(auto opened,
                     coordinator_->OpenArtifact(p.team_id, req->run_id(),
                                                req->name(), req->attempt()));
    return StreamArtifact(std::move(opened), writer);
  });
}

// ---- WorkerService ----

absl::StatusOr<store::TeamPrincipal> WorkerServiceImpl::Authorize(
    grpc::ServerContextBase* ctx) {
  return auth_->Authenticate(AuthorizationOf(ctx), store::Role::kWorker);
}

grpc::Status WorkerServiceImpl::RegisterWorker(
    grpc::ServerContext* ctx, const sweepq::v1::RegisterWorkerRequest* req,
    sweepq::v1::RegisterWorkerResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp, coordinator_->RegisterWorker(p.team_id, *req));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Lease(
    grpc::CallbackServerContext* ctx, const sweepq::v1::LeaseRequest* req,
    sweepq::v1::LeaseResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<store::TeamPrincipal> principal = Authorize(ctx);
  if (!principal.ok()) {
    reactor->Finish(ToGrpcStatus(principal.status()));
    return reactor;
  }
  const absl::Time deadline = absl::Now() + coordinator_->LeaseWait(*req);
  const uint64_t generation = coordinator_->QueueGeneration();
  absl::StatusOr<sweepq::v1::LeaseResponse> attempt =
      coordinator_->TryLease(principal->team_id, *req);
  if (!attempt.ok()) {
    reactor->Finish(ToGrpcStatus(attempt.status()));
    return reactor;
  }
  if (attempt->granted() ||
      attempt->directive() == sweepq::v1::DIRECTIVE_DRAIN ||
      absl::Now() >= deadline) {
    *resp = std::move(*attempt);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  waiters_->Add(principal->team_id, ctx, reactor, req, resp, deadline,
                generation);
  return reactor;
}

grpc::Status WorkerServiceImpl::Heartbeat(
    grpc::ServerContext* ctx, const sweepq::v1::HeartbeatRequest* req,
    sweepq::v1::HeartbeatResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp, coordinator_->Heartbeat(p.team_id, *req));
    return absl::OkStatus();
  });
}

grpc::Status WorkerServiceImpl::ReportEvents(
    grpc::ServerContext* ctx, const sweepq::v1::ReportEventsRequest* req,
    sweepq::v1::ReportEventsResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp, coordinator_->ReportEvents(p.team_id, *req));
    return absl::OkStatus();
  });
}

grpc::Status WorkerServiceImpl::UploadArtifact(
    grpc::ServerContext* ctx,
    grpc::ServerReader<sweepq::v1::ArtifactChunk>* reader,
    sweepq::v1::UploadArtifactResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    sweepq::v1::ArtifactChunk chunk;
    if (!reader->Read(&chunk)) {
      return absl::InvalidArgumentError("upload stream was empty");
    }
    if (!chunk.has_header() || !chunk.has_lease()) {
      return absl::InvalidArgumentError(
          "the first upload chunk must carry the header and the lease");
    }
    const sweepq::v1::Artifact header = chunk.header();
    const sweepq::v1::LeaseRef lease = chunk.lease();
    RETURN_IF_ERROR(coordinator_->CheckUploadAllowed(p.team_id, lease, header));
    ASSIGN_OR_RETURN(auto writer, artifacts_->NewUpload());
    do {
      RETURN_IF_ERROR(writer->Append(chunk.data()));
    } while (reader->Read(&chunk));
    RETURN_IF_ERROR(writer->Commit(header.size(), header.sha256()));
    ASSIGN_OR_RETURN(*resp->mutable_artifact(),
                     coordinator_->AddArtifact(p.team_id, lease, header));
    return absl::OkStatus();
  });
}

grpc::Status WorkerServiceImpl::FetchArtifact(
    grpc::ServerContext* ctx, const sweepq::v1::FetchArtifactRequest* req,
    grpc::ServerWriter<sweepq::v1::ArtifactChunk>* writer) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(auto opened, coordinator_->OpenArtifactForLease(
                                      p.team_id, req->worker_id(), req->lease(),
                                      req->name(), req->attempt(),
                                      req->run_id()));
    return StreamArtifact(std::move(opened), writer);
  });
}

grpc::Status WorkerServiceImpl::FinishRun(
    grpc::ServerContext* ctx, const sweepq::v1::FinishRunRequest* req,
    sweepq::v1::FinishRunResponse* resp) {
  return Serve(Authorize(ctx), [&](const store::TeamPrincipal& p) {
    ASSIGN_OR_RETURN(*resp, coordinator_->FinishRun(p.team_id, *req));
    return absl::OkStatus();
  });
}

}  // namespace sweepq::server
