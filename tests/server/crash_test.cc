// Kills a real sweepq-server with SIGKILL while a client streams metric
// batches, restarts it on the same file, and checks that every acked point
// is there exactly once and the database is intact.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "sweepq/v1/coordinator.grpc.pb.h"
#include "tests/testing/grpc_context.h"
#include "tests/testing/server_process.h"
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
  seed: {value: 1}
)";

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
  return ::sweepq::testing::AuthorizedContext(token, 5);
}

TEST(CrashTest, AckedMetricsSurviveKillNineExactlyOnce) {
  testing::TempDir dir;
  const std::string db = dir.Join("sweepq.db");
  const std::string artifacts = dir.Join("artifacts");
  auto tokens = testing::CreateTeam(db, "crashers");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  const std::string member = tokens->member;
  const std::string worker = tokens->worker;

  v1::LeaseRef lease;
  std::set<int64_t> acked_steps;
  std::set<int64_t> sent_steps;
  uint64_t batch = 0;
  constexpr int kPointsPerBatch = 50;
  constexpr int kCrashes = 3;

  for (int round = 0; round <= kCrashes; ++round) {
    auto server = std::make_unique<testing::ServerProcess>(
        std::vector<std::string>{"--db=" + db, "--artifacts=" + artifacts,
                                 "--lease-ttl-ms=600000"});
    ASSERT_GT(server->port(), 0) << "server did not start";
    auto channel =
        grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
    auto team = v1::TeamService::NewStub(channel);
    auto workers = v1::WorkerService::NewStub(channel);
    if (round == 0) {
      v1::SubmitSweepRequest submit;
      submit.set_spec_yaml(kSweep);
      v1::SubmitSweepResponse submitted;
      ASSERT_TRUE(team->SubmitSweep(Ctx(member).get(), submit, &submitted).ok());
      v1::RegisterWorkerRequest reg;
      reg.set_worker_id("w1");
      reg.add_datasets("mask");
      v1::RegisterWorkerResponse registered;
      ASSERT_TRUE(
          workers->RegisterWorker(Ctx(worker).get(), reg, &registered).ok());
      v1::LeaseRequest lr;
      lr.set_worker_id("w1");
      v1::LeaseResponse leased;
      ASSERT_TRUE(workers->Lease(Ctx(worker).get(), lr, &leased).ok());
      ASSERT_TRUE(leased.granted());
      lease = leased.lease();
    }
    if (round == kCrashes) {
      // Final round: resend everything once more (as a worker's spool
      // would), then check the file.
      for (uint64_t b = 1; b <= batch; ++b) {
        v1::ReportEventsRequest req;
        *req.mutable_lease() = lease;
        req.set_batch_seq(b);
        for (int i = 0; i < kPointsPerBatch; ++i) {
          auto* p = req.add_points();
          p->set_name("loss");
          p->set_step(static_cast<int64_t>((b - 1) * kPointsPerBatch + i));
          p->set_value(1.0);
        }
        v1::ReportEventsResponse resp;
        ASSERT_TRUE(workers->ReportEvents(Ctx(worker).get(), req, &resp).ok());
      }
      server->process().Kill(SIGTERM);
      server->process().Wait();
      break;
    }
    // Stream batches from a thread; kill -9 the server mid-stream.
    std::atomic<bool> stop{false};
    std::atomic<int> acked_now{0};
    std::thread client([&] {
      while (!stop) {
        ++batch;
        v1::ReportEventsRequest req;
        *req.mutable_lease() = lease;
        req.set_batch_seq(batch);
        std::vector<int64_t> steps;
        for (int i = 0; i < kPointsPerBatch; ++i) {
          int64_t step = static_cast<int64_t>((batch - 1) * kPointsPerBatch + i);
          auto* p = req.add_points();
          p->set_name("loss");
          p->set_step(step);
          p->set_value(1.0);
          steps.push_back(step);
          sent_steps.insert(step);
        }
        v1::ReportEventsResponse resp;
        grpc::Status s = workers->ReportEvents(Ctx(worker).get(), req, &resp);
        if (!s.ok()) break;
        acked_steps.insert(steps.begin(), steps.end());
        ++acked_now;
      }
    });
    while (acked_now < 20 + 10 * round) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    server->process().Kill(SIGKILL);
    server->process().Wait();
    stop = true;
    client.join();
  }

  // Inspect the file directly.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> conn(raw, sqlite3_close);
  auto query = [&](const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(conn.get(), sql.c_str(), -1, &stmt, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(conn.get());
    std::vector<std::pair<std::string, int64_t>> rows;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      rows.emplace_back(text ? reinterpret_cast<const char*>(text) : "",
                        sqlite3_column_int64(stmt, 1));
    }
    sqlite3_finalize(stmt);
    return rows;
  };
  auto integrity = query("PRAGMA integrity_check");
  ASSERT_EQ(integrity.size(), 1u);
  EXPECT_EQ(integrity[0].first, "ok");
  std::map<int64_t, int64_t> count_by_step;
  for (const auto& [step_text, count] : query(
           "SELECT CAST(step AS TEXT), COUNT(*) FROM metrics "
           "WHERE name = 'loss' GROUP BY step")) {
    count_by_step[std::stoll(step_text)] = count;
  }
  ASSERT_GT(acked_steps.size(), 0u);
  for (int64_t step : acked_steps) {
    ASSERT_EQ(count_by_step.count(step), 1u) << "acked step " << step << " lost";
    EXPECT_EQ(count_by_step[step], 1) << "step " << step << " duplicated";
  }
  // After the final resend, every point ever sent is there exactly once.
  EXPECT_EQ(count_by_step.size(), sent_steps.size());
}

}  // namespace
}  // namespace sweepq
