#include "worker/daemon/coordinator_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto.h"
#include "common/grpc_channel.h"
#include "glog/logging.h"

namespace sweepq::worker {
namespace {

constexpr size_t kChunkBytes = 1 << 20;
constexpr int kMaxMessageBytes = 16 << 20;

absl::Status FromGrpc(absl::string_view call, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(call, ": ", status.error_message()));
}

// Large transfers get one second per MiB on top of the unary deadline.
absl::Duration TransferTimeout(absl::Duration base, int64_t bytes) {
  return base + absl::Seconds(bytes / (1 << 20));
}

// Reads up to `size` bytes at `offset`; fewer only at end of file.
absl::Status PreadFully(int fd, int64_t offset, size_t size, std::string* out,
                        const std::string& path) {
  out->resize(size);
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, out->data() + done, size - done,
                      static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(
          absl::StrCat("cannot read ", path, ": ", strerror(errno)));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  return absl::OkStatus();
}

}  // namespace

bool IsTransient(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

void CallCanceller::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (ctx_ != nullptr) ctx_->TryCancel();
}

bool CallCanceller::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

bool CallCanceller::Attach(grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  if (cancelled_) return false;
  ctx_ = ctx;
  return true;
}

void CallCanceller::Detach() {
  absl::MutexLock lock(&mu_);
  ctx_ = nullptr;
}

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::Connect(
    const ClientOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentialsFor(options.tls_ca_file);
  if (!credentials.ok()) {
    return absl::InvalidArgumentError(credentials.status().message());
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Reconnect soon after a coordinator restart; the daemon's own backoff
  // spaces out the calls.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto channel = grpc::CreateCustomChannel(options.server, *credentials, args);
  auto client = std::make_unique<CoordinatorClient>(
      options, sweepq::v1::WorkerService::NewStub(channel));
  client->channel_ = std::move(channel);
  return client;
}

CoordinatorClient::CoordinatorClient(
    ClientOptions options,
    std::unique_ptr<sweepq::v1::WorkerService::StubInterface> stub)
    : options_(std::move(options)), stub_(std::move(stub)) {}

std::unique_ptr<grpc::ClientContext> CoordinatorClient::NewContext(
    absl::Duration timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

absl::StatusOr<sweepq::v1::RegisterWorkerResponse>
CoordinatorClient::RegisterWorker(
    const sweepq::v1::RegisterWorkerRequest& request) {
  auto ctx = NewContext(options_.rpc_timeout);
  sweepq::v1::RegisterWorkerResponse response;
  grpc::Status s = stub_->RegisterWorker(ctx.get(), request, &response);
  if (!s.ok()) return FromGrpc("RegisterWorker", s);
  return response;
}

absl::StatusOr<sweepq::v1::LeaseResponse> CoordinatorClient::Lease(
    const std::string& worker_id, absl::Duration wait,
    CallCanceller* canceller) {
  sweepq::v1::LeaseRequest request;
  request.set_worker_id(worker_id);
  request.set_wait_ms(absl::ToInt64Milliseconds(wait));
  auto ctx = NewContext(wait + options_.rpc_timeout);
  if (canceller != nullptr && !canceller->Attach(ctx.get())) {
    return absl::CancelledError("Lease: cancelled");
  }
  sweepq::v1::LeaseResponse response;
  grpc::Status s = stub_->Lease(ctx.get(), request, &response);
  if (canceller != nullptr) canceller->Detach();
  if (!s.ok()) return FromGrpc("Lease", s);
  return response;
}

absl::StatusOr<sweepq::v1::HeartbeatResponse> CoordinatorClient::Heartbeat(
    const std::string& worker_id, const sweepq::v1::LeaseRef& lease) {
  sweepq::v1::HeartbeatRequest request;
  request.set_worker_id(worker_id);
  *request.mutable_lease() = lease;
  auto ctx = NewContext(options_.rpc_timeout);
  sweepq::v1::HeartbeatResponse response;
  grpc::Status s = stub_->Heartbeat(ctx.get(), request, &response);
  if (!s.ok()) return FromGrpc("Heartbeat", s);
  return response;
}

absl::StatusOr<sweepq::v1::ReportEventsResponse> CoordinatorClient::ReportEvents(
    const sweepq::v1::ReportEventsRequest& request) {
  auto ctx = NewContext(options_.rpc_timeout);
  sweepq::v1::ReportEventsResponse response;
  grpc::Status s = stub_->ReportEvents(ctx.get(), request, &response);
  if (!s.ok()) return FromGrpc("ReportEvents", s);
  return response;
}

std::unique_ptr<EventStreamClient> CoordinatorClient::NewEventStream() {
  return std::make_unique<EventStreamClient>(stub_.get(), options_.token,
                                             options_.rpc_timeout);
}

// What a Call reports to the sender; shared so that it outlives the Call,
// which deletes itself in OnDone.
struct EventStreamClient::State {
  absl::Mutex mu;
  bool write_done ABSL_GUARDED_BY(mu) = false;
  bool write_ok ABSL_GUARDED_BY(mu) = false;
  bool read_done ABSL_GUARDED_BY(mu) = false;
  bool read_ok ABSL_GUARDED_BY(mu) = false;
  bool done ABSL_GUARDED_BY(mu) = false;
  grpc::Status status ABSL_GUARDED_BY(mu);
};

// The reactor of one StreamEvents call. A hold (AddHold) from the start
// until EndCall keeps OnDone from running while the sender may still start
// operations; after a failure they just complete with ok = false.
class EventStreamClient::Call final
    : public grpc::ClientBidiReactor<sweepq::v1::ReportEventsRequest,
                                     sweepq::v1::ReportEventsResponse> {
 public:
  Call(sweepq::v1::WorkerService::StubInterface* stub,
       const std::string& token, std::shared_ptr<State> state)
      : state_(std::move(state)) {
    ctx_.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    stub->async()->StreamEvents(&ctx_, this);
    AddHold();
    StartCall();
  }

  // Starts sending `request` and reading its answer (see State).
  void Exchange(const sweepq::v1::ReportEventsRequest& request) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->write_done = state_->read_done = false;
    }
    request_ = request;
    StartWrite(&request_);
    StartRead(&response_);
  }

  void HalfClose() { StartWritesDone(); }
  void Cancel() { ctx_.TryCancel(); }
  // Lets OnDone run once the call is over.
  void Release() { RemoveHold(); }
  const sweepq::v1::ReportEventsResponse& response() const { return response_; }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    state_->write_done = true;
    state_->write_ok = ok;
  }
  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    state_->read_done = true;
    state_->read_ok = ok;
  }
  // The sender deletes the Call once it has seen `done`; nothing here
  // touches the Call after the lock is released.
  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<State> state = state_;
    absl::MutexLock lock(&state->mu);
    state->done = true;
    state->status = status;
  }

 private:
  grpc::ClientContext ctx_;
  std::shared_ptr<State> state_;
  sweepq::v1::ReportEventsRequest request_;
  sweepq::v1::ReportEventsResponse response_;
};

EventStreamClient::EventStreamClient(
    sweepq::v1::WorkerService::StubInterface* stub, std::string token,
    absl::Duration timeout)
    : stub_(stub), token_(std::move(token)), timeout_(timeout) {}

EventStreamClient::~EventStreamClient() { Close(); }

absl::StatusOr<sweepq::v1::ReportEventsResponse> EventStreamClient::Send(
    const sweepq::v1::ReportEventsRequest& request) {
  if (call_ == nullptr) {
    state_ = std::make_shared<State>();
    call_ = new Call(stub_, token_, state_);
    ++calls_opened_;
    LOG(INFO) << "opened event stream #" << calls_opened_
              << " (StreamEvents) to the coordinator";
  }
  call_->Exchange(request);
  bool answered = false;
  bool in_time;
  {
    absl::MutexLock lock(&state_->mu);
    in_time = state_->mu.AwaitWithTimeout(
        absl::Condition(
            +[](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
              return s->write_done && s->read_done;
            },
            state_.get()),
        timeout_);
    answered = in_time && state_->write_ok && state_->read_ok;
  }
  if (answered) return call_->response();
  // The call is over (the coordinator ended it with the status we want, or
  // the connection broke) or stuck.
  grpc::Status status = EndCall(/*cancel=*/!in_time);
  if (!in_time) {
    return absl::DeadlineExceededError(absl::StrCat(
        "StreamEvents: no answer to batch ", request.batch_seq(), " within ",
        absl::FormatDuration(timeout_)));
  }
  if (status.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "StreamEvents: the stream ended without answering batch ",
        request.batch_seq()));
  }
  return FromGrpc("StreamEvents", status);
}

void EventStreamClient::Close() {
  if (call_ == nullptr) return;
  call_->HalfClose();
  EndCall(/*cancel=*/false);
}

grpc::Status EventStreamClient::EndCall(bool cancel) {
  std::unique_ptr<Call> call(std::exchange(call_, nullptr));
  if (cancel) call->Cancel();
  call->Release();
  auto done = [](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    return s->done;
  };
  bool ended;
  {
    absl::MutexLock lock(&state_->mu);
    ended = state_->mu.AwaitWithTimeout(absl::Condition(+done, state_.get()),
                                        timeout_);
  }
  if (!ended) {
    // Still open (e.g. the coordinator never answers the half-close):
    // cancelling ends it at once.
    call->Cancel();
  }
  absl::MutexLock lock(&state_->mu);
  state_->mu.Await(absl::Condition(+done, state_.get()));
  return state_->status;
}

absl::StatusOr<sweepq::v1::Artifact> CoordinatorClient::UploadFile(
    const sweepq::v1::LeaseRef& lease, const std::string& name,
    const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message =
        absl::StrCat("cannot open ", path, ": ", strerror(err));
    return err == ENOENT ? absl::NotFoundError(message)
                         : absl::InternalError(message);
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};

  Sha256 hash;
  int64_t size = 0;
  std::string chunk;
  while (true) {
    absl::Status read = PreadFully(fd, size, kChunkBytes, &chunk, path);
    if (!read.ok()) return read;
    if (chunk.empty()) break;
    hash.Update(chunk);
    size += static_cast<int64_t>(chunk.size());
  }

  auto ctx = NewContext(TransferTimeout(options_.rpc_timeout, size));
  sweepq::v1::UploadArtifactResponse response;
  auto writer = stub_->UploadArtifact(ctx.get(), &response);
  sweepq::v1::ArtifactChunk message;
  *message.mutable_lease() = lease;
  message.mutable_header()->set_name(name);
  message.mutable_header()->set_size(size);
  message.mutable_header()->set_sha256(hash.FinishHex());
  int64_t offset = 0;
  bool first = true;
  while (first || offset < size) {
    absl::Status read = PreadFully(
        fd, offset,
        static_cast<size_t>(std::min<int64_t>(kChunkBytes, size - offset)),
        &chunk, path);
    if (!read.ok()) {
      ctx->TryCancel();
      writer->Finish();
      return read;
    }
    message.set_data(chunk);
    offset += static_cast<int64_t>(chunk.size());
    if (!writer->Write(message)) break;  // the server ended the call early
    message.clear_header();
    message.clear_lease();
    first = false;
    if (chunk.empty()) break;  // file shrank; the server reports the mismatch
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpc(absl::StrCat("UploadArtifact ", name), s);
  return response.artifact();
}

absl::Status CoordinatorClient::FetchArtifact(
    const std::string& worker_id, const sweepq::v1::LeaseRef& lease,
    const sweepq::v1::Artifact& artifact, const std::string& dest_path) {
  sweepq::v1::FetchArtifactRequest request;
  request.set_worker_id(worker_id);
  *request.mutable_lease() = lease;
  request.set_name(artifact.name());
  request.set_attempt(artifact.attempt());
  request.set_run_id(artifact.run_id());  // 0 or a job's source run
  // Unknown size: allow for a large checkpoint.
  auto ctx = NewContext(TransferTimeout(
      options_.rpc_timeout,
      artifact.size() > 0 ? artifact.size() : int64_t{4} << 30));
  auto reader = stub_->FetchArtifact(ctx.get(), request);

  const std::string tmp = dest_path + ".part";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) {
    ctx->TryCancel();
    reader->Finish();
    return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  Sha256 hash;
  int64_t size = 0;
  sweepq::v1::ArtifactChunk chunk;
  sweepq::v1::Artifact expected = artifact;
  while (reader->Read(&chunk)) {
    if (chunk.has_header() && artifact.sha256().empty()) {
      expected = chunk.header();  // the caller did not know the hash
    }
    hash.Update(chunk.data());
    size += static_cast<int64_t>(chunk.data().size());
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
  }
  out.close();
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    unlink(tmp.c_str());
    return FromGrpc(absl::StrCat("FetchArtifact ", artifact.name()), s);
  }
  if (!out) {
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  const std::string sha = hash.FinishHex();
  if (size != expected.size() || sha != expected.sha256()) {
    unlink(tmp.c_str());
    return absl::DataLossError(absl::StrCat(
        "FetchArtifact ", artifact.name(), ": got ", size, " bytes with SHA-256 ",
        sha, ", expected ", expected.size(), " bytes with SHA-256 ",
        expected.sha256()));
  }
  if (rename(tmp.c_str(), dest_path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<sweepq::v1::FinishRunResponse> CoordinatorClient::FinishRun(
    const sweepq::v1::FinishRunRequest& request) {
  auto ctx = NewContext(options_.rpc_timeout);
  sweepq::v1::FinishRunResponse response;
  grpc::Status s = stub_->FinishRun(ctx.get(), request, &response);
  if (!s.ok()) return FromGrpc("FinishRun", s);
  return response;
}

absl::StatusOr<std::optional<sweepq::v1::FinishRunResponse>>
CoordinatorClient::FinishOnStream(EventStreamClient& events,
                                  const sweepq::v1::FinishRunRequest& request) {
  sweepq::v1::ReportEventsRequest message;
  *message.mutable_finish() = request;
  absl::StatusOr<sweepq::v1::ReportEventsResponse> answer =
      events.Send(message);
  if (!answer.ok()) return answer.status();
  if (!answer->has_finished()) return std::nullopt;
  return std::move(*answer->mutable_finished());
}

}  // namespace sweepq::worker
