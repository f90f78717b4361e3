#include "server/service.h"

#include <deque>
#include <memory>
#include <optional>
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

// Serve for callback handlers: `start(team_id, done)` begins the work as
// the authenticated principal, and `done` later finishes the call with its
// result (moved into `*resp` when OK). Returns the call's reactor.
template <typename Response, typename Start>
grpc::ServerUnaryReactor* ServeAsync(
    grpc::CallbackServerContext* ctx,
    const absl::StatusOr<store::TeamPrincipal>& principal, Response* resp,
    Start&& start) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!principal.ok()) {
    reactor->Finish(ToGrpcStatus(principal.status()));
    return reactor;
  }
  start(principal->team_id, [reactor, resp](absl::StatusOr<Response> result) {
    if (!result.ok()) {
      return reactor->Finish(ToGrpcStatus(result.status()));
    }
    *resp = *std::move(result);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
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
  const int64_t team_id = principal->team_id;
  const absl::Time deadline = absl::Now() + coordinator_->LeaseWait(*req);
  const uint64_t generation = coordinator_->QueueGeneration();
  coordinator_->TryLeaseAsync(
      team_id, *req,
      [this, ctx, reactor, req, resp, team_id, deadline,
       generation](absl::StatusOr<sweepq::v1::LeaseResponse> attempt) {
        if (!attempt.ok()) {
          return reactor->Finish(ToGrpcStatus(attempt.status()));
        }
        if (attempt->granted() ||
            attempt->directive() == sweepq::v1::DIRECTIVE_DRAIN ||
            absl::Now() >= deadline) {
          *resp = *std::move(attempt);
          return reactor->Finish(grpc::Status::OK);
        }
        waiters_->Add(team_id, ctx, reactor, req, resp, deadline, generation);
      });
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

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportEvents(
    grpc::CallbackServerContext* ctx,
    const sweepq::v1::ReportEventsRequest* req,
    sweepq::v1::ReportEventsResponse* resp) {
  return ServeAsync(
      ctx, Authorize(ctx), resp,
      [&](int64_t team_id, Done<sweepq::v1::ReportEventsResponse> done) {
        coordinator_->ReportEventsAsync(team_id, *req, std::move(done));
      });
}

// One StreamEvents call. Batches are handed to the coordinator as they are
// read (up to kMaxStreamBatchesInFlight unanswered); their answers are
// written in arrival order, one write at a time, as their commits complete.
// The first failing batch finishes the call with its status once the
// answers before it are written.
//
// Thread safety: the gRPC reactions and the coordinator's completions (on
// the store's writer thread, or inline in OnReadDone) all take mu_. gRPC
// runs no reaction inline in StartRead/StartWrite/Finish, so those are
// called under mu_. The object deletes itself once OnDone has run and no
// coordinator completion is owed.
class EventStream final
    : public grpc::ServerBidiReactor<sweepq::v1::ReportEventsRequest,
                                     sweepq::v1::ReportEventsResponse> {
 public:
  EventStream(WorkerServiceImpl* service, grpc::CallbackServerContext* ctx)
      : service_(service),
        token_hash_(Authenticator::TokenHash(AuthorizationOf(ctx))) {
    // Authorize(ctx) would hash the token again.
    absl::StatusOr<store::TeamPrincipal> principal =
        token_hash_.ok() ? service_->auth_->AuthenticateHash(
                               *token_hash_, store::Role::kWorker)
                         : token_hash_.status();
    if (principal.ok()) {
      team_id_ = principal->team_id;
      registered_ = service_->AddStream(this);
    }
    absl::MutexLock lock(&mu_);
    if (!principal.ok()) {
      FinishLocked(ToGrpcStatus(principal.status()));
    } else if (!registered_) {
      FinishLocked(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    } else {
      StartReadLocked();
    }
  }

  // Finishes the call with `status` once the write under way (if any) is
  // done; batches still committing are answered to nobody.
  void Abort(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (!failure_.has_value()) failure_ = status;
    PumpLocked();
  }

  void OnReadDone(bool ok) override {
    Batch* batch = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        reading_ = false;
        read_closed_ = true;
        return PumpLocked();
      }
      if (failure_.has_value() || finished_) {  // nothing more is stored
        reading_ = false;
        return;
      }
      batches_.push_back(std::make_unique<Batch>());
      batch = batches_.back().get();
      batch->request = std::move(read_buffer_);
      batch->bytes = batch->request.ByteSizeLong();
      bytes_in_flight_ += batch->bytes;
      read_buffer_.Clear();
      ++owed_;
    }
    // Outside mu_: the completion may run inline on this thread. reading_
    // stays true until the batch is handed over, so that no other thread
    // starts the next read and hands its batch over first (batches of one
    // lease must be stored in the order they were sent).
    if (absl::Status still = StillAuthorized(); !still.ok()) {
      OnCommitted(batch, still);
    } else {
      service_->coordinator_->ReportEventsAsync(
          team_id_, batch->request,
          [this,
           batch](absl::StatusOr<sweepq::v1::ReportEventsResponse> result) {
            OnCommitted(batch, std::move(result));
          });
    }
    absl::MutexLock lock(&mu_);
    reading_ = false;
    StartReadLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !failure_.has_value()) {
      failure_ = grpc::Status(grpc::StatusCode::CANCELLED,
                              "the client went away before an answer");
    }
    PumpLocked();
  }

  void OnCancel() override {
    Abort(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
  }

  void OnDone() override {
    if (registered_) service_->RemoveStream(this);
    bool last;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      last = owed_ == 0;
    }
    if (last) delete this;
  }

 private:
  // A batch handed to the coordinator, and its answer once committed.
  struct Batch {
    sweepq::v1::ReportEventsRequest request;
    size_t bytes = 0;
    bool committed = false;
    absl::StatusOr<sweepq::v1::ReportEventsResponse> result;
  };

  // The stream's token is checked again for every batch (a stream lives
  // as long as a run, and a rotated or revoked token must stop working
  // within the authenticator's cache time, as it does for unary calls).
  // Cheap: a cache look-up by the token hash taken when the stream opened.
  absl::Status StillAuthorized() const {
    absl::StatusOr<store::TeamPrincipal> principal =
        service_->auth_->AuthenticateHash(*token_hash_, store::Role::kWorker);
    if (principal.ok() && principal->team_id == team_id_) {
      return absl::OkStatus();
    }
    return absl::UnauthenticatedError(
        "the token this stream was opened with is no longer valid (rotated?);"
        " open a new stream with the team's current worker token");
  }

  void OnCommitted(Batch* batch,
                   absl::StatusOr<sweepq::v1::ReportEventsResponse> result) {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      batch->committed = true;
      batch->result = std::move(result);
      if (!batch->result.ok() && !failure_.has_value()) {
        // Stop reading now so nothing after the failing batch is stored
        // beyond what is already in flight; the status is sent once the
        // answers before it are out.
        stop_reading_ = true;
      }
      --owed_;
      PumpLocked();
      last = done_ && owed_ == 0;
    }
    if (last) delete this;
  }

  // Reads the next batch unless one is being read, the window is full or
  // the stream is ending.
  void StartReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || read_closed_ || stop_reading_ || finished_ ||
        failure_.has_value() || batches_.size() >= kMaxStreamBatchesInFlight ||
        bytes_in_flight_ >= kMaxStreamBytesInFlight) {
      return;
    }
    reading_ = true;
    StartRead(&read_buffer_);
  }

  // Writes the next answer that is due, finishes the call when it is over,
  // or resumes reading when the window has room.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_) return;
    if (failure_.has_value()) return FinishLocked(*failure_);
    if (!batches_.empty() && batches_.front()->committed) {
      std::unique_ptr<Batch> batch = std::move(batches_.front());
      batches_.pop_front();
      bytes_in_flight_ -= batch->bytes;
      if (!batch->result.ok()) {
        // The coordinator still owes completions of later batches; they
        // arrive after finished_ and are dropped.
        failure_ = ToGrpcStatus(batch->result.status());
        return FinishLocked(*failure_);
      }
      write_buffer_ = *std::move(batch->result);
      writing_ = true;
      StartWrite(&write_buffer_);
      return StartReadLocked();
    }
    if (batches_.empty() && read_closed_) {
      return FinishLocked(grpc::Status::OK);
    }
    StartReadLocked();
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  WorkerServiceImpl* const service_;
  // The look-up key of the call's token, for the check at open and
  // StillAuthorized (only reached once the open succeeded, so it is ok).
  const absl::StatusOr<std::string> token_hash_;
  int64_t team_id_ = 0;
  bool registered_ = false;  // written before the first reaction can run
  absl::Mutex mu_;
  sweepq::v1::ReportEventsRequest read_buffer_ ABSL_GUARDED_BY(mu_);
  sweepq::v1::ReportEventsResponse write_buffer_ ABSL_GUARDED_BY(mu_);
  // Batches read and not yet answered, in arrival order. A Batch is owned
  // here until answered; owed_ keeps the reactor (and so a batch dropped
  // after a failure) alive until the coordinator has completed it.
  std::deque<std::unique_ptr<Batch>> batches_ ABSL_GUARDED_BY(mu_);
  size_t bytes_in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // of batches_
  int owed_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> failure_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerBidiReactor<sweepq::v1::ReportEventsRequest,
                        sweepq::v1::ReportEventsResponse>*
WorkerServiceImpl::StreamEvents(grpc::CallbackServerContext* ctx) {
  return new EventStream(this, ctx);
}

bool WorkerServiceImpl::AddStream(EventStream* stream) {
  absl::MutexLock lock(&streams_mu_);
  if (streams_closed_) return false;
  streams_.insert(stream);
  return true;
}

void WorkerServiceImpl::RemoveStream(EventStream* stream) {
  absl::MutexLock lock(&streams_mu_);
  streams_.erase(stream);
}

void WorkerServiceImpl::ShutdownStreams() {
  absl::MutexLock lock(&streams_mu_);
  streams_closed_ = true;
  // A stream cannot be deleted while listed: OnDone unlists it first and
  // waits for streams_mu_ to do so.
  for (EventStream* stream : streams_) {
    stream->Abort(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
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

grpc::ServerUnaryReactor* WorkerServiceImpl::FinishRun(
    grpc::CallbackServerContext* ctx, const sweepq::v1::FinishRunRequest* req,
    sweepq::v1::FinishRunResponse* resp) {
  return ServeAsync(
      ctx, Authorize(ctx), resp,
      [&](int64_t team_id, Done<sweepq::v1::FinishRunResponse> done) {
        coordinator_->FinishRunAsync(team_id, *req, std::move(done));
      });
}

}  // namespace sweepq::server
