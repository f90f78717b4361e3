// sweepq-server: the coordinator. Flags are read here only and handed on in
// ServerOptions; see server/server.h.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "glog/logging.h"
#include "server/server.h"
#include "server/store/sqlite_store.h"

ABSL_FLAG(std::string, db, "sweepq.db",
          "SQLite database file (created and migrated if needed)");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "address to serve on, HOST:PORT (0.0.0.0:PORT for all interfaces)");
ABSL_FLAG(std::string, artifacts, "artifacts",
          "directory for uploaded artifacts (content-addressed)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain; enables TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(int64_t, lease_ttl_ms, 30'000,
          "lease time to live; workers heartbeat every third of it");
ABSL_FLAG(uint32_t, quarantine_after, 3,
          "consecutive failed runs after which a worker is quarantined");
ABSL_FLAG(uint64_t, max_runs_per_sweep, 10'000,
          "largest sweep expansion accepted");
ABSL_FLAG(bool, sync_full, false,
          "fsync every commit (survive power loss, at a throughput cost)");
ABSL_FLAG(std::string, role, "member",
          "`team rotate`: which token to replace, member or worker");

namespace {

constexpr char kUsage[] = R"(the sweepq coordinator.

Usage:
  sweepq-server [--db FILE] [--listen HOST:PORT] [--artifacts DIR]
                [--tls-cert FILE --tls-key FILE]
      Serve the gRPC API until SIGTERM/SIGINT (pending writes are committed).
  sweepq-server team create NAME [--db FILE]
      Create a team; prints its member token and worker token once.
  sweepq-server team rotate NAME --role member|worker [--db FILE]
      Replace one of the team's tokens; prints the new one once.
  sweepq-server backup OUT_FILE [--db FILE]
      Copy the database to OUT_FILE while the coordinator keeps serving (a
      consistent snapshot, checked after the copy). To restore: stop the
      coordinator, put the copy in place of --db (remove FILE-wal and
      FILE-shm), start it again.

Example:
  sweepq-server --db /var/lib/sweepq/sweepq.db --listen 0.0.0.0:50051 \
      --tls-cert server.pem --tls-key server.key

Flags may be written with dashes or underscores (--tls-cert = --tls_cert).
)";

int RunTeamCommand(const std::vector<std::string>& args) {
  namespace srv = sweepq::server;
  if (args.size() != 4 ||
      (args[2] != "create" && args[2] != "rotate")) {
    std::cerr << "usage: sweepq-server team create|rotate NAME [--db FILE]\n";
    return 2;
  }
  const std::string verb = args[2];
  const std::string name = args[3];
  auto store = srv::OpenSqliteStore(absl::GetFlag(FLAGS_db), false);
  if (!store.ok()) {
    std::cerr << "sweepq-server: " << store.status().message() << "\n";
    return 1;
  }
  sweepq::SystemClock clock;
  srv::CoordinatorOptions copts;
  copts.run_expiry_thread = false;
  srv::Coordinator coordinator(store->get(), &clock, nullptr, copts);
  if (verb == "create") {
    auto tokens = coordinator.CreateTeam(name);
    if (!tokens.ok()) {
      std::cerr << "sweepq-server: cannot create team '" << name
                << "': " << tokens.status().message() << "\n";
      return 1;
    }
    std::cout << "team: " << name << "\n"
              << "member token: " << tokens->member_token << "\n"
              << "worker token: " << tokens->worker_token << "\n";
    std::cerr << "Store these now: only their hashes are kept.\n";
    return 0;
  }
  const std::string role_name = absl::GetFlag(FLAGS_role);
  if (role_name != "member" && role_name != "worker") {
    std::cerr << "sweepq-server: --role must be member or worker\n";
    return 2;
  }
  auto role = role_name == "worker" ? sweepq::store::Role::kWorker
                                    : sweepq::store::Role::kMember;
  auto token = coordinator.RotateToken(name, role);
  if (!token.ok()) {
    std::cerr << "sweepq-server: " << token.status().message() << "\n";
    return 1;
  }
  std::cout << role_name << " token: " << *token << "\n";
  return 0;
}

int RunBackupCommand(const std::vector<std::string>& args) {
  if (args.size() != 3) {
    std::cerr << "usage: sweepq-server backup OUT_FILE [--db FILE]\n";
    return 2;
  }
  absl::Status status =
      sweepq::store::BackupDatabase(absl::GetFlag(FLAGS_db), args[2]);
  if (!status.ok()) {
    std::cerr << "sweepq-server: backup failed: " << status.message() << "\n";
    return 1;
  }
  std::cout << "backup written to " << args[2] << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args =
      sweepq::ParseMainFlags(argc, argv, kUsage, "server/server_main.cc");
  // Debian's Abseil keeps lock-order checking on; every mutex acquisition
  // then updates a global graph. Our locks are flat (never nested), so the
  // check only costs throughput.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  if (args.size() >= 2 && args[1] == "team") {
    return RunTeamCommand(args);
  }
  if (args.size() >= 2 && args[1] == "backup") {
    return RunBackupCommand(args);
  }
  if (args.size() > 1) {
    std::cerr << "sweepq-server: unknown command '" << args[1]
              << "' (see --help)\n";
    return 2;
  }

  // Block the stop signals in every thread; this one waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  sweepq::server::ServerOptions options;
  options.db_path = absl::GetFlag(FLAGS_db);
  options.listen = absl::GetFlag(FLAGS_listen);
  options.artifacts_dir = absl::GetFlag(FLAGS_artifacts);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.synchronous_full = absl::GetFlag(FLAGS_sync_full);
  options.coordinator.lease_ttl_ms = absl::GetFlag(FLAGS_lease_ttl_ms);
  options.coordinator.quarantine_after = absl::GetFlag(FLAGS_quarantine_after);
  options.coordinator.max_runs_per_sweep =
      absl::GetFlag(FLAGS_max_runs_per_sweep);

  auto server = sweepq::server::CoordinatorServer::Start(options);
  if (!server.ok()) {
    std::cerr << "sweepq-server: " << server.status().message() << "\n";
    return 1;
  }
  // Scripts wait for this line to know the port (useful with :0).
  std::cout << "listening on port " << (*server)->port() << std::endl;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG(INFO) << "signal " << sig << ": shutting down";
  (*server)->Shutdown();
  return 0;
}
