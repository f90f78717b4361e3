// CoordinatorServer: sweepq-server assembled — store, artifact directory,
// coordinator, the two gRPC services, the standard health service and
// server reflection — listening on one address, plaintext or TLS.
//
// Thread safety: Shutdown may be called from any thread, once.
#ifndef SWEEPQ_SERVER_SERVER_H_
#define SWEEPQ_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "grpcpp/grpcpp.h"
#include "server/artifact_store.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "server/lease_waiters.h"
#include "server/service.h"
#include "server/store/store.h"

namespace sweepq::server {

struct ServerOptions {
  std::string db_path = "sweepq.db";
  std::string listen = "127.0.0.1:50051";
  std::string artifacts_dir = "artifacts";
  // Both set = TLS; both empty = plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // fsync on every commit (survives power loss, not only process crashes).
  bool synchronous_full = false;
  // Largest gRPC message accepted (the limit is named in the error).
  int max_message_bytes = 16 << 20;
  CoordinatorOptions coordinator;
  // Time source; nullptr = the system clock. Tests pass a FakeClock.
  const Clock* clock = nullptr;
};

// Opens (creating if needed) the SQLite database and applies migrations.
absl::StatusOr<std::unique_ptr<store::Store>> OpenSqliteStore(
    const std::string& path, bool synchronous_full);

class CoordinatorServer {
 public:
  // Builds everything and starts serving. UNAVAILABLE if the address cannot
  // be bound; the store's error if the database cannot be opened.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      const ServerOptions& options);
  ~CoordinatorServer();

  // The bound port (useful with ":0").
  int port() const { return port_; }
  Coordinator* coordinator() { return coordinator_.get(); }

  // Stops accepting calls, lets in-flight calls finish (up to 5 s), commits
  // pending writes. Idempotent.
  void Shutdown();
  // Blocks until Shutdown.
  void Wait();

 private:
  CoordinatorServer() = default;

  SystemClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<LeaseWaiters> lease_waiters_;
  std::unique_ptr<TeamServiceImpl> team_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace sweepq::server

#endif  // SWEEPQ_SERVER_SERVER_H_
