// `sweepq-server backup` against a real coordinator that keeps taking
// metric batches while the copy is made: the copy is a consistent,
// intact database holding every batch acked before the backup began, and
// the coordinator never stops serving.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "sweepq/v1/coordinator.grpc.pb.h"
#include "tests/testing/grpc_context.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace sweepq {
namespace {

namespace v1 = ::sweepq::v1;

constexpr char kSweep[] = R"(
method: grid
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 100}
parameters:
  seed: {values: [1, 2, 3, 4, 5]}
)";

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
  return ::sweepq::testing::AuthorizedContext(token, 5);
}

int64_t QueryInt(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sql;
  int64_t value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return value;
}

// `sweepq-server backup` with stderr folded into the output (temp paths
// hold no shell metacharacters).
std::vector<std::string> BackupArgv(const std::string& db,
                                    const std::string& out) {
  return {"/bin/sh", "-c",
          testing::ServerBinary() + " --db=" + db + " backup " + out + " 2>&1"};
}

TEST(BackupTest, CopyWhileServingHoldsEveryBatchAckedBeforeIt) {
  testing::TempDir dir;
  const std::string db = dir.Join("sweepq.db");
  auto tokens = testing::CreateTeam(db, "backers");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  testing::ServerProcess server({"--db=" + db,
                                 "--artifacts=" + dir.Join("artifacts"),
                                 "--lease-ttl-ms=600000"});
  ASSERT_GT(server.port(), 0) << "server did not start";
  auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto team = v1::TeamService::NewStub(channel);
  auto workers = v1::WorkerService::NewStub(channel);

  v1::SubmitSweepRequest submit;
  submit.set_spec_yaml(kSweep);
  v1::SubmitSweepResponse submitted;
  ASSERT_TRUE(
      team->SubmitSweep(Ctx(tokens->member).get(), submit, &submitted).ok());
  v1::RegisterWorkerRequest reg;
  reg.set_worker_id("w1");
  reg.add_datasets("mask");
  v1::RegisterWorkerResponse registered;
  ASSERT_TRUE(
      workers->RegisterWorker(Ctx(tokens->worker).get(), reg, &registered)
          .ok());
  v1::LeaseRequest lr;
  lr.set_worker_id("w1");
  v1::LeaseResponse leased;
  ASSERT_TRUE(workers->Lease(Ctx(tokens->worker).get(), lr, &leased).ok());
  ASSERT_TRUE(leased.granted());

  constexpr int kPointsPerBatch = 100;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> acked{0};
  std::atomic<bool> failed{false};
  std::thread client([&] {
    for (uint64_t batch = 1; !stop; ++batch) {
      v1::ReportEventsRequest req;
      *req.mutable_lease() = leased.lease();
      req.set_batch_seq(batch);
      for (int i = 0; i < kPointsPerBatch; ++i) {
        auto* p = req.add_points();
        p->set_name("loss");
        p->set_step(static_cast<int64_t>((batch - 1) * kPointsPerBatch + i));
        p->set_value(0.5);
      }
      v1::ReportEventsResponse resp;
      if (!workers->ReportEvents(Ctx(tokens->worker).get(), req, &resp).ok()) {
        failed = true;
        return;
      }
      acked = static_cast<int64_t>(batch);
    }
  });
  while (acked < 20 && !failed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const int64_t acked_before = acked;
  const std::string copy = dir.Join("copy.db");
  int status = -1;
  std::string output = testing::RunCommand(BackupArgv(db, copy), &status);
  const int64_t acked_after = acked;
  // The coordinator kept serving during and after the copy.
  while (acked < acked_after + 5 && !failed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop = true;
  client.join();
  ASSERT_FALSE(failed) << "the coordinator stopped answering";
  ASSERT_EQ(status, 0) << output;
  EXPECT_NE(output.find("backup written to"), std::string::npos) << output;

  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(copy.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  EXPECT_EQ(QueryInt(raw, "SELECT count(*) FROM runs"), 5);
  EXPECT_EQ(QueryInt(raw, "SELECT count(*) FROM teams"), 1);
  const int64_t points = QueryInt(raw, "SELECT count(*) FROM metrics");
  // Every batch acked before the backup started is in it; the snapshot is
  // whole batches (each batch is one transaction).
  EXPECT_GE(points, acked_before * kPointsPerBatch);
  EXPECT_LE(points, acked_after * kPointsPerBatch);
  EXPECT_EQ(points % kPointsPerBatch, 0);
  EXPECT_GT(QueryInt(raw, "PRAGMA user_version"), 0);
  sqlite3_close(raw);

  // The copy serves: a coordinator started on it lists the same runs.
  server.process().Kill(SIGTERM);
  server.process().Wait();
  testing::ServerProcess restored({"--db=" + copy,
                                   "--artifacts=" + dir.Join("artifacts")});
  ASSERT_GT(restored.port(), 0) << "no coordinator on the backup";
  auto team2 = v1::TeamService::NewStub(grpc::CreateChannel(
      restored.address(), grpc::InsecureChannelCredentials()));
  v1::ListRunsRequest list;
  v1::ListRunsResponse runs;
  ASSERT_TRUE(team2->ListRuns(Ctx(tokens->member).get(), list, &runs).ok());
  EXPECT_EQ(runs.runs_size(), 5);
}

TEST(BackupTest, NeverOverwritesAnExistingFile) {
  testing::TempDir dir;
  const std::string db = dir.Join("sweepq.db");
  ASSERT_TRUE(testing::CreateTeam(db, "t").ok());
  const std::string out = dir.Join("exists.db");
  { std::ofstream(out) << "precious"; }
  int status = -1;
  std::string output = testing::RunCommand(BackupArgv(db, out), &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("already exists"), std::string::npos) << output;
  std::ifstream in(out);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST(BackupTest, MissingDatabaseIsNamed) {
  testing::TempDir dir;
  int status = -1;
  std::string output = testing::RunCommand(
      BackupArgv(dir.Join("nope.db"), dir.Join("out.db")), &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("no database at"), std::string::npos) << output;
  EXPECT_NE(output.find("nope.db"), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(dir.Join("out.db")));
}

}  // namespace
}  // namespace sweepq
