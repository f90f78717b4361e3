// SqliteStore: the Store contract suite on a temporary database file, and
// what only the SQLite implementation has: migrations, pragmas, reopening,
// group commit and the query plans of the hot queries.
#include "server/store/sqlite_store.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/group_commit_writer.h"
#include "server/store/migrations.h"
#include "server/store/sqlite_db.h"
#include "server/store/sqlite_queries.h"
#include "server/store/wal_checkpointer.h"
#include "tests/server/store/store_contract.h"

namespace sweepq::store {
namespace {

namespace v1 = ::sweepq::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kTtlMs = 60'000;

// ---- The contract suite ----

StoreFactory SqliteFactory(bool run_every_group_twice) {
  return [run_every_group_twice](const std::string& temp_dir) {
    SqliteStoreOptions options;
    options.path = temp_dir + "/sweepq.db";
    options.run_every_group_twice = run_every_group_twice;
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::unique_ptr<Store>(*std::move(store)) : nullptr;
  };
}

// The second store runs every write twice, the first run rolled back (as
// when another write of its group fails after writing): every write of
// the contract must give the same answers and leave the same rows.
INSTANTIATE_TEST_SUITE_P(
    Sqlite, StoreContractTest,
    ::testing::Values(SqliteFactory(false), SqliteFactory(true)),
    [](const ::testing::TestParamInfo<StoreFactory>& info) {
      return std::string(info.index == 0 ? "sqlite" : "sqlite_every_op_twice");
    });

// ---- SQLite-specific tests ----

// Runs every test with synchronous=NORMAL and with synchronous=FULL; the
// parameter names contain "sqlite" so that `ctest -R sqlite` selects them.
class SqliteStoreTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    ASSERT_FALSE(ec) << ec.message();
    std::string pattern = (base / "sweepq_sqlite_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    dir_ = pattern;
    path_ = dir_ + "/sweepq.db";
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  bool synchronous_full() const { return GetParam(); }

  SqliteStoreOptions Options() const {
    SqliteStoreOptions options;
    options.path = path_;
    options.synchronous_full = synchronous_full();
    return options;
  }

  std::unique_ptr<SqliteStore> OpenStore() {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(Options());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // A separate connection on the store's file, opened as the store opens
  // its writer.
  std::unique_ptr<Database> OpenDatabase() {
    DatabaseOptions options;
    options.synchronous_full = synchronous_full();
    absl::StatusOr<std::unique_ptr<Database>> db =
        Database::Open(path_, options);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? *std::move(db) : nullptr;
  }

  std::string dir_;
  std::string path_;
};

INSTANTIATE_TEST_SUITE_P(Durability, SqliteStoreTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "sqlite_full_sync"
                                                         : "sqlite");
                         });

// A team with one registered worker "gpu1" serving dataset "mask", and a
// sweep of `runs` runs maximizing "val_f1".
struct Fixture {
  int64_t team_id = 0;
  std::vector<int64_t> run_ids;
};

Fixture MakeTeamAndSweep(Store& store, int runs,
                         const std::string& team = "vision") {
  Fixture fixture;
  absl::StatusOr<int64_t> team_id =
      store.CreateTeam(team, team + "-member", team + "-worker", kNow);
  EXPECT_TRUE(team_id.ok()) << team_id.status();
  fixture.team_id = team_id.value_or(0);
  v1::Worker worker;
  worker.set_worker_id("gpu1");
  worker.add_datasets("mask");
  EXPECT_TRUE(store.UpsertWorker(fixture.team_id, worker, kNow).ok());

  NewSweep sweep;
  sweep.name = "lr";
  sweep.metric = "val_f1";
  sweep.goal = v1::GOAL_MAXIMIZE;
  for (int i = 0; i < runs; ++i) {
    NewRun& run = sweep.runs.emplace_back();
    run.config.mutable_data()->set_dataset("mask");
    run.params["optimizer.lr"] = absl::StrCat("0.00", i + 1);
    run.dataset = "mask";
  }
  absl::StatusOr<InsertSweepResult> inserted =
      store.InsertSweep(fixture.team_id, sweep, kNow);
  EXPECT_TRUE(inserted.ok()) << inserted.status();
  if (inserted.ok()) fixture.run_ids = inserted->run_ids;
  return fixture;
}

v1::LeaseRef Lease(Store& store, int64_t team_id) {
  absl::StatusOr<std::optional<LeaseGrant>> grant =
      store.LeaseRun(team_id, "gpu1", {"mask"}, kNow, kTtlMs);
  EXPECT_TRUE(grant.ok()) << grant.status();
  EXPECT_TRUE(grant.ok() && grant->has_value());
  return grant.ok() && grant->has_value() ? (*grant)->lease : v1::LeaseRef();
}

v1::MetricPoint Point(const std::string& name, int64_t step, double value) {
  v1::MetricPoint point;
  point.set_name(name);
  point.set_step(step);
  point.set_value(value);
  point.set_wall_time_ms(kNow + step);
  return point;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_P(SqliteStoreTest, MigratesAnEmptyFileToTheLatestVersion) {
  ASSERT_NE(OpenStore(), nullptr);  // creates, migrates and closes

  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  absl::StatusOr<int> version = SchemaVersion(*db);
  ASSERT_TRUE(version.ok()) << version.status();
  ASSERT_FALSE(EmbeddedMigrations().empty());
  EXPECT_EQ(*version, EmbeddedMigrations().back().version);
  EXPECT_EQ(db->QueryText("PRAGMA integrity_check").value_or(""), "ok");
  EXPECT_EQ(db->QueryText("PRAGMA foreign_key_check").status().code(),
            absl::StatusCode::kNotFound);  // no violation rows
}

TEST_P(SqliteStoreTest, OpensAVersionOneDumpAndKeepsItsRows) {
  v1::RunConfig config;
  config.mutable_data()->set_dataset("mask");
  config.set_name("dumped");
  {
    // What an old server left behind: the version-1 schema from the
    // migration file and rows written as a SQL dump would write them.
    std::unique_ptr<Database> db = OpenDatabase();
    ASSERT_NE(db, nullptr);
    const std::string schema = ReadFile(std::string(SWEEPQ_SOURCE_DIR) +
                                        "/migrations/0001_initial.sql");
    ASSERT_THAT(schema, HasSubstr("CREATE TABLE runs"));
    ASSERT_TRUE(db->Execute(schema).ok());
    ASSERT_TRUE(db->Execute("PRAGMA user_version = 1").ok());
    const std::string dump = absl::StrCat(
        "INSERT INTO teams VALUES(1,'vision','mhash','whash',1700000000000);"
        "INSERT INTO sweeps VALUES(1,1,'lr','method: grid','val_f1',1,5,3,"
        "'key-1',1,1700000000000);"
        "INSERT INTO runs VALUES(1,1,1,0,X'",
        absl::BytesToHexString(config.SerializeAsString()),
        "','{\"optimizer.lr\":\"0.001\"}','mask',4,5,1,3,0,'gpu1',0,"
        "'val_f1',1,0.8125,7,1,0.8125,1700000100000,1700000000000,"
        "1700000001000,1700000100000,'',0,0);"
        "INSERT INTO attempts VALUES(1,1,'gpu1',1700000001000,1700000100000,"
        "4,'');"
        "INSERT INTO metrics VALUES(1,1,7,'val_f1',1,0.8125,1700000050000);"
        "INSERT INTO metrics VALUES(1,1,7,'val_acc',2,0.875,1700000050000);"
        "INSERT INTO run_events VALUES(1,1,0,0,-1,'state',"
        "'{\"state\":\"RUN_STATE_QUEUED\"}',1700000000000);"
        "INSERT INTO workers VALUES(1,'gpu1','node1',2,'[\"mask\"]','0.1.0',1,"
        "1700000000000,1700000100000,0,'');");
    ASSERT_TRUE(db->Execute(dump).ok());
  }

  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);

  absl::StatusOr<TeamPrincipal> principal = store->FindToken("whash");
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->team_id, 1);
  EXPECT_EQ(principal->role, Role::kWorker);

  absl::StatusOr<v1::Run> run = store->GetRun(1, 1);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run->config().name(), "dumped");
  EXPECT_THAT(run->params(),
              UnorderedElementsAre(Pair("optimizer.lr", "0.001")));
  EXPECT_TRUE(run->has_best());
  EXPECT_EQ(run->best_value(), 0.8125);
  ASSERT_EQ(run->attempts_size(), 1);
  EXPECT_EQ(run->attempts(0).outcome(), v1::RUN_STATE_SUCCEEDED);

  absl::StatusOr<std::vector<v1::LeaderboardEntry>> board =
      store->Leaderboard(1, LeaderboardQuery{});
  ASSERT_TRUE(board.ok()) << board.status();
  ASSERT_EQ(board->size(), 1u);
  EXPECT_THAT(
      (*board)[0].metrics_at_best(),
      UnorderedElementsAre(Pair("val_f1", 0.8125), Pair("val_acc", 0.875)));

  absl::StatusOr<std::vector<v1::Worker>> workers = store->ListWorkers(1);
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_THAT((*workers)[0].datasets(), ElementsAre("mask"));

  // The old rows keep their ids; new ones come after them, and the old
  // idempotency key still matches.
  NewSweep again;
  again.idempotency_key = "key-1";
  absl::StatusOr<InsertSweepResult> existing =
      store->InsertSweep(1, again, kNow);
  ASSERT_TRUE(existing.ok()) << existing.status();
  EXPECT_TRUE(existing->existing);
  EXPECT_THAT(existing->run_ids, ElementsAre(1));
}

TEST_P(SqliteStoreTest, RefusesADatabaseNewerThanTheBinary) {
  {
    std::unique_ptr<Database> db = OpenDatabase();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Execute("PRAGMA user_version = 999").ok());
  }

  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("database ", path_,
                                     " is at schema version 999 but this "
                                     "sweepq-server knows only up to ",
                                     EmbeddedMigrations().back().version,
                                     "; upgrade sweepq-server")));

  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(SchemaVersion(*db).value_or(0), 999);  // left untouched
  EXPECT_EQ(db->QueryInt64("SELECT COUNT(*) FROM sqlite_master").value_or(-1),
            0);
}

TEST_P(SqliteStoreTest, PragmasAreInEffect) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);

  // journal_mode is a property of the file; the others of each connection,
  // checked on one opened the way the store opens its own.
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->QueryText("PRAGMA journal_mode").value_or(""), "wal");
  EXPECT_EQ(db->QueryInt64("PRAGMA foreign_keys").value_or(-1), 1);
  EXPECT_EQ(db->QueryInt64("PRAGMA synchronous").value_or(-1),
            synchronous_full() ? 2 : 1);  // FULL : NORMAL
  EXPECT_EQ(db->QueryInt64("PRAGMA busy_timeout").value_or(-1), 5000);

  // Foreign keys are enforced: no run of a team that does not exist.
  absl::Status orphan = db->Execute(
      "INSERT INTO runs (team_id, sweep_id, idx, config, params_json,"
      " dataset, state, priority, max_attempts, metric, goal, created_at_ms)"
      " VALUES (42, 42, 0, X'', '{}', 'mask', 1, 0, 1, 'f1', 1, 0)");
  EXPECT_EQ(orphan.code(), absl::StatusCode::kFailedPrecondition) << orphan;
  EXPECT_THAT(orphan.message(), HasSubstr("FOREIGN KEY"));
}

TEST_P(SqliteStoreTest, ReopeningKeepsEverything) {
  Fixture fixture;
  v1::LeaseRef lease;
  {
    std::unique_ptr<SqliteStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    fixture = MakeTeamAndSweep(*store, 2);
    lease = Lease(*store, fixture.team_id);
    ASSERT_TRUE(
        Append(*store, fixture.team_id, lease, 1,
                           {Point("val_f1", 1, 0.5), Point("val_f1", 2, 0.75),
                            Point("loss", 2, std::nan(""))},
                           {}, kNow)
            .ok());
    FinishRequest finish;
    finish.lease = lease;
    finish.worker_id = "gpu1";
    finish.outcome = v1::OUTCOME_SUCCEEDED;
    finish.now_ms = kNow + 10;
    ASSERT_TRUE(store->FinishRun(fixture.team_id, finish).ok());
  }

  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->FindToken("vision-member").value_or(TeamPrincipal{}).team_id,
            fixture.team_id);

  absl::StatusOr<v1::Run> run = store->GetRun(fixture.team_id, lease.run_id());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run->best_value(), 0.75);
  EXPECT_EQ(run->best_step(), 2);
  EXPECT_EQ(run->finished_at_ms(), kNow + 10);
  EXPECT_EQ(run->config().data().dataset(), "mask");

  absl::StatusOr<WatchBatch> stream =
      store->ReadRunStream(fixture.team_id, lease.run_id(), 0, 0, 0);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_EQ(stream->metrics.size(), 3u);
  EXPECT_TRUE(std::isnan(stream->metrics[2].value()));
  EXPECT_EQ(stream->events.size(), 4u);  // QUEUED, LEASED, RUNNING, SUCCEEDED

  // The other run is still queued and can be leased after the restart.
  v1::LeaseRef second = Lease(*store, fixture.team_id);
  EXPECT_EQ(second.run_id(), fixture.run_ids[1]);
  EXPECT_GT(store->CreateTeam("later", "m2", "w2", kNow).value_or(0),
            fixture.team_id);
}

TEST_P(SqliteStoreTest, ConcurrentAppendsAllCommitExactlyOnce) {
  constexpr int kThreads = 16;
  constexpr int kBatches = 200;
  constexpr int kPointsPerBatch = 5;
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Fixture fixture = MakeTeamAndSweep(*store, kThreads);
  std::vector<v1::LeaseRef> leases;
  for (int i = 0; i < kThreads; ++i) {
    leases.push_back(Lease(*store, fixture.team_id));
  }

  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<v1::MetricPoint> points;
        for (int k = 0; k < kPointsPerBatch; ++k) {
          const int step = b * kPointsPerBatch + k;
          points.push_back(Point("val_f1", step, step));
        }
        v1::RunEvent event;
        event.set_kind("log");
        event.set_payload_json(absl::StrCat("{\"batch\":", b, "}"));
        if (!Append(*store, fixture.team_id, leases[t], b + 1, points,
                                {event}, kNow)
                 .ok()) {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], 0) << "thread " << t;
    absl::StatusOr<WatchBatch> stream =
        store->ReadRunStream(fixture.team_id, leases[t].run_id(), 0, 0, 0);
    ASSERT_TRUE(stream.ok()) << stream.status();
    ASSERT_EQ(stream->metrics.size(),
              static_cast<size_t>(kBatches * kPointsPerBatch));
    std::set<int64_t> steps;
    for (const v1::MetricPoint& point : stream->metrics) {
      steps.insert(point.step());
      EXPECT_EQ(point.attempt(), 1u);
    }
    EXPECT_EQ(steps.size(), static_cast<size_t>(kBatches * kPointsPerBatch));
    int logs = 0;
    for (const v1::RunEvent& event : stream->events)
      logs += event.kind() == "log";
    EXPECT_EQ(logs, kBatches);

    absl::StatusOr<v1::Run> run =
        store->GetRun(fixture.team_id, leases[t].run_id());
    ASSERT_TRUE(run.ok());
    EXPECT_EQ(run->state(), v1::RUN_STATE_RUNNING);
    EXPECT_EQ(run->best_value(), kBatches * kPointsPerBatch - 1);
  }
}

// Batches of many points are inserted several rows per statement: a
// resent key, or a key repeated inside one statement, still keeps its first
// value and only newly stored points count for the run's best.
TEST_P(SqliteStoreTest, LargeBatchesKeepTheFirstWriteOfEveryKey) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Fixture fixture = MakeTeamAndSweep(*store, 1);
  v1::LeaseRef lease = Lease(*store, fixture.team_id);
  std::vector<v1::MetricPoint> first;
  for (int step = 0; step < 150; ++step) {
    first.push_back(Point("val_f1", step, 0.1));
  }
  ASSERT_TRUE(Append(*store, fixture.team_id, lease, 1, first, {}, kNow).ok());
  std::vector<v1::MetricPoint> second;
  for (int step = 100; step < 150; ++step) {  // already stored with 0.1
    second.push_back(Point("val_f1", step, 0.99));
  }
  second.push_back(Point("val_f1", 200, 0.95));  // the first write of 200
  for (int step = 150; step < 250; ++step) {     // 200 again: ignored
    second.push_back(Point("val_f1", step, 0.5));
  }
  ASSERT_TRUE(Append(*store, fixture.team_id, lease, 2, second, {}, kNow).ok());

  absl::StatusOr<WatchBatch> stream =
      store->ReadRunStream(fixture.team_id, lease.run_id(), 0, 0, 0);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_EQ(stream->metrics.size(), 250u);
  std::set<int64_t> steps;
  for (const v1::MetricPoint& point : stream->metrics) {
    steps.insert(point.step());
    const double expected =
        point.step() < 150 ? 0.1 : (point.step() == 200 ? 0.95 : 0.5);
    EXPECT_EQ(point.value(), expected) << "step " << point.step();
  }
  EXPECT_EQ(steps.size(), 250u);
  absl::StatusOr<v1::Run> run = store->GetRun(fixture.team_id, lease.run_id());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->best_value(), 0.95);
  EXPECT_EQ(run->best_step(), 200);
}

TEST_P(SqliteStoreTest, FencedWritesFailAloneWhileOthersCommit) {
  constexpr int kRuns = 8;
  constexpr int kBatches = 50;
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Fixture fixture = MakeTeamAndSweep(*store, kRuns);
  std::vector<v1::LeaseRef> leases;
  for (int i = 0; i < kRuns; ++i)
    leases.push_back(Lease(*store, fixture.team_id));

  // Every run gets a zombie writer whose lease id is stale, racing the
  // current holder so that their writes share groups.
  std::vector<std::thread> threads;
  std::vector<int> good_failures(kRuns, 0);
  std::vector<int> zombie_accepted(kRuns, 0);
  for (int r = 0; r < kRuns; ++r) {
    threads.emplace_back([&, r] {
      for (int b = 0; b < kBatches; ++b) {
        if (!Append(*store, fixture.team_id, leases[r], b + 1,
                                {Point("val_f1", b, 0.5)}, {}, kNow)
                 .ok()) {
          ++good_failures[r];
        }
      }
    });
    threads.emplace_back([&, r] {
      v1::LeaseRef stale = leases[r];
      stale.set_lease_id(stale.lease_id() ^ 1);
      for (int b = 0; b < kBatches; ++b) {
        absl::StatusOr<v1::Directive> result = Append(*store, 
            fixture.team_id, stale, b + 1, {Point("zombie", b, 1)}, {}, kNow);
        if (result.status().code() != absl::StatusCode::kFailedPrecondition) {
          ++zombie_accepted[r];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  for (int r = 0; r < kRuns; ++r) {
    EXPECT_EQ(good_failures[r], 0);
    EXPECT_EQ(zombie_accepted[r], 0);
    absl::StatusOr<WatchBatch> stream =
        store->ReadRunStream(fixture.team_id, leases[r].run_id(), 0, 0, 0);
    ASSERT_TRUE(stream.ok()) << stream.status();
    EXPECT_EQ(stream->metrics.size(), static_cast<size_t>(kBatches));
    for (const v1::MetricPoint& point : stream->metrics) {
      EXPECT_EQ(point.name(), "val_f1");
    }
  }
}

// Inserts `key` into the tests' table t (k INTEGER PRIMARY KEY).
absl::Status InsertKey(Database& db, int64_t key) {
  absl::StatusOr<Statement> statement =
      db.Prepare("INSERT INTO t (k) VALUES (?1)");
  if (!statement.ok()) return statement.status();
  statement->BindInt64(1, key);
  return statement->Run();
}

// The keys in t, in order, comma-separated.
std::string Keys(Database& db) {
  return db
      .QueryText(
          "SELECT COALESCE(group_concat(k), '') FROM"
          " (SELECT k FROM t ORDER BY k)")
      .value_or("(error)");
}

// Whether the calling op runs inside the writer's per-op savepoint: ROLLBACK
// TO a savepoint that does not exist fails; to one that does, it undoes
// nothing here (the probe has changed nothing).
bool InOpSavepoint(Database& db) {
  absl::StatusOr<Statement> probe = db.Prepare("ROLLBACK TO sweepq_op");
  return probe.ok() && probe->Run().ok();
}

// The grouping itself, deterministically: three operations in one group,
// the middle one writes and then fails. The group is rolled back and runs
// again from the start, each op in a savepoint: the op before it runs
// twice (its first changes rolled back, so its row is there once), and
// only the failing op's changes are lost.
TEST_P(SqliteStoreTest, FailingOperationIsRolledBackAloneInItsGroup) {
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE t (k INTEGER PRIMARY KEY)").ok());
  std::vector<bool> first_runs;  // whether each run was in a savepoint
  int failing_runs = 0;
  int third_runs = 0;
  auto first = [&](Database& db) {
    first_runs.push_back(InOpSavepoint(db));
    return InsertKey(db, 1);
  };
  auto failing = [&](Database& db) -> absl::Status {
    ++failing_runs;
    absl::Status written = InsertKey(db, 2);
    if (!written.ok()) return written;
    return InsertKey(db, 1);  // duplicate key: ALREADY_EXISTS
  };
  auto third = [&](Database& db) {
    ++third_runs;
    return InsertKey(db, 3);
  };
  const std::vector<GroupCommitWriter::Op> ops = {first, failing, third};

  std::vector<absl::Status> statuses = GroupCommitWriter::RunGroup(*db, ops);

  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
  EXPECT_EQ(statuses[1].code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(statuses[2].ok()) << statuses[2];
  EXPECT_EQ(first_runs, (std::vector<bool>{false, true}));
  EXPECT_EQ(failing_runs, 2);
  EXPECT_EQ(third_runs, 1);  // the first pass stopped at the failing op
  EXPECT_FALSE(db->InTransaction());
  // Committed: another connection sees exactly the rows of the ops that
  // succeeded.
  std::unique_ptr<Database> other = OpenDatabase();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(Keys(*other), "1,3");
}

// The common case: an op that fails before it changes anything (a stale
// lease, a duplicate refused by a constraint) costs its group nothing; no
// op runs in a savepoint or runs twice.
TEST_P(SqliteStoreTest, GroupRunsWithoutSavepointsWhenNoOpFailsAfterWriting) {
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE t (k INTEGER PRIMARY KEY)").ok());
  ASSERT_TRUE(db->Execute("INSERT INTO t (k) VALUES (1)").ok());
  int runs = 0;
  int in_savepoint = 0;
  auto counted = [&](Database& db) {
    ++runs;
    in_savepoint += InOpSavepoint(db);
  };
  auto second = [&](Database& db) {
    counted(db);
    return InsertKey(db, 2);
  };
  auto duplicate = [&](Database& db) {
    counted(db);
    return InsertKey(db, 1);
  };
  auto refused = [&](Database& db) -> absl::Status {
    counted(db);
    return absl::FailedPreconditionError("lease is not current");
  };
  auto third = [&](Database& db) {
    counted(db);
    return InsertKey(db, 3);
  };
  const std::vector<GroupCommitWriter::Op> ops = {second, duplicate, refused,
                                                  third};

  std::vector<absl::Status> statuses = GroupCommitWriter::RunGroup(*db, ops);

  ASSERT_EQ(statuses.size(), 4u);
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
  EXPECT_EQ(statuses[1].code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(statuses[2].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(statuses[3].ok()) << statuses[3];
  EXPECT_EQ(runs, 4);
  EXPECT_EQ(in_savepoint, 0);
  EXPECT_EQ(Keys(*db), "1,2,3");
}

// A full database (max_page_count stands in for a full disk) fails the op
// that needed the space with RESOURCE_EXHAUSTED. Whether SQLite undid just
// that statement or the whole transaction, every op reported OK has its
// row committed and no other op does.
TEST_P(SqliteStoreTest, FullDatabaseFailsTheGroupsOpsConsistently) {
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(
      db->Execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").ok());
  absl::StatusOr<int64_t> pages = db->QueryInt64("PRAGMA page_count");
  ASSERT_TRUE(pages.ok()) << pages.status();
  ASSERT_TRUE(
      db->QueryInt64(absl::StrCat("PRAGMA max_page_count = ", *pages + 8))
          .ok());
  auto insert = [](Database& db, int64_t key, int bytes) -> absl::Status {
    absl::StatusOr<Statement> statement =
        db.Prepare("INSERT INTO t (k, v) VALUES (?1, ?2)");
    if (!statement.ok()) return statement.status();
    statement->BindInt64(1, key);
    statement->BindBlob(2, std::string(bytes, 'x'));
    return statement->Run();
  };
  auto small = [&](int64_t key) {
    return [&insert, key](Database& db) { return insert(db, key, 100); };
  };
  auto first = small(1);
  auto huge = [&](Database& db) { return insert(db, 2, 1 << 20); };
  auto third = small(3);
  const std::vector<GroupCommitWriter::Op> ops = {first, huge, third};

  std::vector<absl::Status> statuses = GroupCommitWriter::RunGroup(*db, ops);

  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_EQ(statuses[1].code(), absl::StatusCode::kResourceExhausted)
      << statuses[1];
  EXPECT_FALSE(db->InTransaction());
  std::string kept;  // the keys of the ops reported OK
  for (int64_t key : {1, 2, 3}) {
    if (statuses[key - 1].ok())
      absl::StrAppend(&kept, kept.empty() ? "" : ",", key);
  }
  std::unique_ptr<Database> other = OpenDatabase();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(Keys(*other), kept) << statuses[0] << "; " << statuses[2];
}

TEST_P(SqliteStoreTest, WriterCommitsEveryQueuedOperation) {
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE t (k INTEGER PRIMARY KEY)").ok());
  constexpr int kThreads = 8;
  constexpr int kOps = 100;
  {
    GroupCommitWriter writer(std::move(db), /*max_group_ops=*/16);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&writer, t] {
        for (int i = 0; i < kOps; ++i) {
          absl::Status status = writer.Run([&](Database& db) {
            absl::StatusOr<Statement> insert =
                db.Prepare("INSERT INTO t (k) VALUES (?1)");
            if (!insert.ok()) return insert.status();
            insert->BindInt64(1, t * kOps + i);
            return insert->Run();
          });
          EXPECT_TRUE(status.ok()) << status;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  std::unique_ptr<Database> other = OpenDatabase();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->QueryInt64("SELECT COUNT(*) FROM t").value_or(0),
            kThreads * kOps);
}

// Submitted operations are committed before their `done` runs (another
// connection already sees the row), each `done` runs once with the
// operation's own status, and Run() callers share the same queue.
TEST_P(SqliteStoreTest, SubmittedOperationsAreCommittedBeforeTheirDone) {
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE t (k INTEGER PRIMARY KEY)").ok());
  std::unique_ptr<Database> reader = OpenDatabase();
  ASSERT_NE(reader, nullptr);
  constexpr int kThreads = 4;
  constexpr int kOps = 100;
  absl::Mutex mu;
  int done_calls = 0;          // guarded by mu
  int seen_committed = 0;      // guarded by mu
  int duplicates_refused = 0;  // guarded by mu
  {
    GroupCommitWriter writer(std::move(db), /*max_group_ops=*/16);
    ASSERT_TRUE(
        writer.Run([&](Database& db) { return InsertKey(db, 0); }).ok());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kOps; ++i) {
          const int64_t key = 1 + t * kOps + i;
          if (t == 0) {  // one thread of Run() callers among submitters
            EXPECT_TRUE(
                writer.Run([&](Database& db) { return InsertKey(db, key); })
                    .ok());
            continue;
          }
          // Every tenth op re-inserts key 0 and must fail alone.
          const bool duplicate = i % 10 == 0;
          writer.Submit(
              [key, duplicate](Database& db) {
                return InsertKey(db, duplicate ? 0 : key);
              },
              [&, key, duplicate](absl::Status status) {
                absl::MutexLock lock(&mu);
                ++done_calls;
                if (duplicate) {
                  duplicates_refused +=
                      status.code() == absl::StatusCode::kAlreadyExists;
                  return;
                }
                EXPECT_TRUE(status.ok()) << status;
                absl::StatusOr<Statement> select =
                    reader->Prepare("SELECT 1 FROM t WHERE k = ?1");
                ASSERT_TRUE(select.ok()) << select.status();
                select->BindInt64(1, key);
                absl::StatusOr<bool> row = select->Step();
                seen_committed += row.ok() && *row;
              });
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }  // the destructor waits for every submitted operation and its `done`
  constexpr int kSubmitted = (kThreads - 1) * kOps;
  constexpr int kDuplicates = (kThreads - 1) * kOps / 10;
  absl::MutexLock lock(&mu);
  EXPECT_EQ(done_calls, kSubmitted);
  EXPECT_EQ(duplicates_refused, kDuplicates);
  EXPECT_EQ(seen_committed, kSubmitted - kDuplicates);
  EXPECT_EQ(reader->QueryInt64("SELECT COUNT(*) FROM t").value_or(0),
            1 + kThreads * kOps - kDuplicates);
}

TEST_P(SqliteStoreTest, WriterRefusesWorkAfterShutdown) {
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  GroupCommitWriter writer(std::move(db), /*max_group_ops=*/16);
  writer.Shutdown();
  bool ran = false;
  absl::Status submitted;
  writer.Submit(
      [&](Database&) {
        ran = true;
        return absl::OkStatus();
      },
      [&](absl::Status status) { submitted = status; });
  EXPECT_EQ(submitted.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(writer
                .Run([&](Database&) {
                  ran = true;
                  return absl::OkStatus();
                })
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(ran);
}

// A requested checkpoint copies the log into the database file on the
// checkpointer's own thread; the writing connection, whose hook replaced
// SQLite's automatic checkpoints, leaves everything in the log.
TEST_P(SqliteStoreTest, CheckpointerCopiesTheLogIntoTheFile) {
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);
  db->SetWalCommitHook([](int) {});
  ASSERT_TRUE(
      db->Execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").ok());
  constexpr int kRows = 400;
  for (int i = 0; i < kRows; ++i) {
    absl::StatusOr<Statement> insert =
        db->Prepare("INSERT INTO t (k, v) VALUES (?1, zeroblob(2000))");
    ASSERT_TRUE(insert.ok()) << insert.status();
    insert->BindInt64(1, i);
    ASSERT_TRUE(insert->Run().ok());
  }
  constexpr uintmax_t kRowBytes = kRows * 2000u;
  std::error_code ec;
  EXPECT_LT(std::filesystem::file_size(path_, ec), kRowBytes);

  WalCheckpointer checkpointer(OpenDatabase());
  checkpointer.Request();
  ASSERT_TRUE(checkpointer.WaitForCompleted(0, absl::Seconds(60)));
  EXPECT_GT(std::filesystem::file_size(path_, ec), kRowBytes);
}

// The store's commits ask its checkpointer for checkpoints once the log
// holds checkpoint_frames frames.
TEST_P(SqliteStoreTest, StoreCommitsTriggerBackgroundCheckpoints) {
  SqliteStoreOptions options = Options();
  options.checkpoint_frames = 1;
  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  Fixture fixture = MakeTeamAndSweep(**store, 2);
  const int64_t seen = (*store)->checkpoints_completed();
  Lease(**store, fixture.team_id);
  EXPECT_TRUE((*store)->WaitForCheckpoint(seen, absl::Seconds(60)));
}

// Each hot query is served by its index: no temporary b-tree for sorting
// and no full table scan.
TEST_P(SqliteStoreTest, HotQueriesUseTheirIndexesWithoutTempBTrees) {
  ASSERT_NE(OpenStore(), nullptr);
  std::unique_ptr<Database> db = OpenDatabase();
  ASSERT_NE(db, nullptr);

  struct Case {
    std::string sql;
    std::string index;
  };
  const std::vector<Case> cases = {
      {sqlite_queries::kLeaderboardOfTeam, "runs_board_by_team"},
      {sqlite_queries::kLeaderboardOfSweep, "runs_board_by_sweep"},
      {sqlite_queries::LeasePick(1), "runs_queue"},
      {sqlite_queries::LeasePick(3), "runs_queue"},
      {sqlite_queries::kExpiredLeases, "runs_lease_expiry"},
      {sqlite_queries::kNextLeaseExpiry, "runs_lease_expiry"},
      {sqlite_queries::kMetricsAtStep, "USING PRIMARY KEY"},
      {sqlite_queries::kMetricsAfter, "metrics_by_seq"},
      {sqlite_queries::kEventsAfter, "run_events_by_run"},
      {sqlite_queries::kListRunsOfTeam, "runs_by_team"},
      {sqlite_queries::kListRunsOfSweep, "runs_by_sweep"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Statement> explain =
        db->Prepare("EXPLAIN QUERY PLAN " + c.sql);
    ASSERT_TRUE(explain.ok()) << explain.status();
    std::string plan;
    while (true) {
      absl::StatusOr<bool> row = explain->Step();
      ASSERT_TRUE(row.ok()) << row.status();
      if (!*row) break;
      absl::StrAppend(&plan, explain->ColumnText(3), "\n");
    }
    const std::string used = absl::StartsWith(c.index, "USING ")
                                 ? c.index
                                 : "INDEX " + c.index;
    EXPECT_THAT(plan, HasSubstr(used)) << c.sql;
    EXPECT_THAT(plan, Not(HasSubstr("TEMP B-TREE"))) << c.sql;
    EXPECT_THAT(plan, Not(HasSubstr("SCAN "))) << c.sql;
  }
}

}  // namespace
}  // namespace sweepq::store
