#include "server/server.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/store/sqlite_store.h"

namespace sweepq::server {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(
    const ServerOptions& options) {
  if (options.tls_cert_file.empty() && options.tls_key_file.empty()) {
    return grpc::InsecureServerCredentials();
  }
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls-cert and --tls-key");
  }
  ASSIGN_OR_RETURN(std::string cert,
                   ReadFile(options.tls_cert_file, "TLS certificate"));
  ASSIGN_OR_RETURN(std::string key, ReadFile(options.tls_key_file, "TLS key"));
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({key, cert});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<store::Store>> OpenSqliteStore(
    const std::string& path, bool synchronous_full) {
  store::SqliteStoreOptions opts;
  opts.path = path;
  opts.synchronous_full = synchronous_full;
  ASSIGN_OR_RETURN(auto store, store::SqliteStore::Open(opts));
  return std::unique_ptr<store::Store>(std::move(store));
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const ServerOptions& options) {
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  ASSIGN_OR_RETURN(auto credentials, MakeCredentials(options));
  ASSIGN_OR_RETURN(s->store_,
                   OpenSqliteStore(options.db_path, options.synchronous_full));
  ASSIGN_OR_RETURN(s->artifacts_, ArtifactStore::Open(options.artifacts_dir));
  const Clock* clock = options.clock != nullptr ? options.clock : &s->clock_;
  s->coordinator_ = std::make_unique<Coordinator>(
      s->store_.get(), clock, s->artifacts_.get(), options.coordinator);
  s->auth_ = std::make_unique<Authenticator>(s->store_.get(), clock);
  s->team_service_ =
      std::make_unique<TeamServiceImpl>(s->coordinator_.get(), s->auth_.get());
  s->lease_waiters_ = std::make_unique<LeaseWaiters>(s->coordinator_.get());
  s->worker_service_ = std::make_unique<WorkerServiceImpl>(
      s->coordinator_.get(), s->auth_.get(), s->artifacts_.get(),
      s->lease_waiters_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, credentials, &s->port_);
  builder.RegisterService(s->team_service_.get());
  builder.RegisterService(s->worker_service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen,
        " (address in use or not local? pass --listen HOST:PORT)"));
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  LOG(INFO) << "sweepq-server listening on " << options.listen << " (port "
            << s->port_ << ", "
            << (options.tls_cert_file.empty() ? "plaintext" : "TLS")
            << "), database " << options.db_path << ", artifacts "
            << options.artifacts_dir;
  return s;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    coordinator_->Shutdown();    // wakes WatchRun calls
    lease_waiters_->Shutdown();  // answers parked Lease calls
    worker_service_->ShutdownStreams();  // ends open event streams
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
  }
  // Destroying the coordinator joins its expiry thread; destroying the
  // store commits whatever writes are still queued.
  lease_waiters_.reset();
  coordinator_.reset();
  store_.reset();
  LOG(INFO) << "sweepq-server stopped";
}

void CoordinatorServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace sweepq::server
