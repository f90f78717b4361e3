// Coordinator load benchmark: N simulated workers on loopback doing
// lease -> K event batches -> FinishRun against a real sweepq-server
// (in this process, real SQLite file, real gRPC), in rounds that each run
// the same trial shape through Optuna 3 with SQLite storage (the reference
// a team would otherwise use) right before ours, so that each ratio is
// measured under one load of a noisy shared machine; then metric
// throughput and Leaderboard latency at 100,000 runs. The batches go
// over StreamEvents (--report=stream, what the worker daemon does) or one
// unary ReportEvents call each (--report=unary, older workers), and the
// run ends with a finish message on that stream (--finish=stream) or a
// FinishRun call; the first line says which.
//
//   bench/run_coordinator_bench.sh build     (make bench-coordinator)
//
// Last line: coordinator: ratio=<ours/optuna trials per s>
//            points_per_s=<n> leaderboard_p99_ms=<n>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "glog/logging.h"
#include "server/server.h"
#include "sweepq/v1/coordinator.grpc.pb.h"

ABSL_FLAG(int, workers, 64, "simulated workers (client threads)");
ABSL_FLAG(int, seconds, 8, "duration of each load phase");
ABSL_FLAG(int, batches, 10, "ReportEvents batches per trial (K)");
ABSL_FLAG(int, points_per_batch, 1000,
          "metric points per batch in the throughput phase");
ABSL_FLAG(std::string, report, "stream",
          "how simulated workers send their batches: 'stream' (one "
          "StreamEvents call per worker, each batch acked before the next) "
          "or 'unary' (one ReportEvents call per batch)");
ABSL_FLAG(std::string, finish, "stream",
          "how simulated workers end a run: 'stream' (a finish message on "
          "their StreamEvents call, what the worker daemon does) or 'unary' "
          "(a FinishRun call); --report=unary always uses FinishRun");
ABSL_FLAG(bool, lease_next, true,
          "simulated workers take their next run from their finish's "
          "answer (lease_next, what the worker daemon does) instead of a "
          "Lease call after each finish");
ABSL_FLAG(int, leaderboard_runs, 100'000, "runs on the leaderboard phase");
ABSL_FLAG(int, leaderboard_queries, 300, "Leaderboard calls measured");
ABSL_FLAG(int, optuna_trials, 150, "trials of each Optuna reference run");
ABSL_FLAG(int, rounds, 3,
          "paired rounds of the ratio: each runs the Optuna reference once "
          "(on a fresh file, after a sync() so it does not wait on our "
          "write-back) and then our trial phase; the ratio is the median of "
          "the rounds' ratios, so each pair shares the machine's load of "
          "its moment (both rates drift by 1.5-2x within an hour on a "
          "shared machine). Without the optuna phase: one trial phase");
ABSL_FLAG(std::string, python, "/usr/bin/python3",
          "Python with optuna (Debian's python3-optuna)");
ABSL_FLAG(std::string, optuna_script, "bench/optuna_reference.py",
          "the Optuna reference script");
ABSL_FLAG(std::string, work_dir, "", "scratch directory (default: a temp dir)");
ABSL_FLAG(std::string, phases, "trial,fsync,throughput,leaderboard,optuna",
          "phases to run, comma-separated (trial always runs); the last "
          "line's figures are 0 for phases left out");
ABSL_FLAG(std::string, server_address, "",
          "load a coordinator running elsewhere (HOST:PORT, plaintext) "
          "instead of one in this process, with --member_token and "
          "--worker_token of a team (`sweepq-server team create`); the CPU "
          "figure is then the generator's alone. The fsync and leaderboard "
          "phases need the in-process server and are skipped");
ABSL_FLAG(std::string, member_token, "", "with --server_address");
ABSL_FLAG(std::string, worker_token, "", "with --server_address");

namespace {

namespace v1 = ::sweepq::v1;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// The middle value (the mean of the two middle ones for an even count).
double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", "Bearer " + token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

std::string SweepYaml(int runs) {
  return absl::StrCat(R"(
method: random
run_cap: )", runs, R"(
seed: 1
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 10}
parameters:
  optimizer.lr: {distribution: log_uniform, min: 0.0001, max: 0.01}
)");
}

// CPU seconds this process (server and load generator together) has used.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) +
           1e-6 * static_cast<double>(t.tv_usec);
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// CPU seconds used so far by this process's threads named `name` (the
// server's threads are named: common/thread_name.h), from
// /proc/self/task/*/stat.
double ThreadCpuSeconds(absl::string_view name) {
  const double ticks_per_s = static_cast<double>(sysconf(_SC_CLK_TCK));
  double total = 0;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string comm_name;
    if (!std::getline(comm, comm_name) || comm_name != name) continue;
    std::ifstream stat(task.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // Fields after the name (which is in parentheses): state is field 3,
    // utime and stime are fields 14 and 15.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int f = 3; f <= 15 && rest >> field; ++f) {
      if (f >= 14) ticks += std::stod(field);
    }
    total += ticks / ticks_per_s;
  }
  return total;
}

// Microseconds of `cpu_seconds` per trial (0 without trials).
double UsPerTrial(double cpu_seconds, int64_t trials) {
  return trials > 0 ? 1e6 * cpu_seconds / static_cast<double>(trials) : 0;
}

struct PhaseResult {
  double seconds = 0;
  double cpu_seconds = 0;  // of the whole process during the phase
  double writer_cpu_seconds = 0;  // of the store's writer thread(s)
  int64_t trials = 0;
  int64_t points = 0;
  std::vector<double> lease_ms;
  std::vector<double> report_ms;
};

// One simulated worker (lease -> K batches -> finish, until told to stop)
// driven by gRPC's callback API: it owns no thread, so 64 of them cost the
// shared cores little and the server gets the CPU, as it would with real
// workers on other hosts. Each callback issues the next call. With
// `stream` the batches go over one StreamEvents call that the worker keeps
// open for its lifetime (the worker is that call's reactor); each batch is
// still acked before the next is sent, as in the unary shape.
class SimulatedWorker final
    : public grpc::ClientBidiReactor<v1::ReportEventsRequest,
                                     v1::ReportEventsResponse> {
 public:
  SimulatedWorker(v1::WorkerService::Stub* stub, std::string id,
                  std::string token, int batches, int points_per_batch,
                  bool stream, bool stream_finish, bool lease_next,
                  const std::atomic<bool>* stop, std::atomic<int64_t>* trials,
                  std::atomic<int64_t>* points)
      : stub_(stub),
        id_(std::move(id)),
        token_(std::move(token)),
        batches_(batches),
        points_per_batch_(points_per_batch),
        stream_(stream),
        stream_finish_(stream && stream_finish),
        lease_next_(lease_next),
        stop_(stop),
        trials_(trials),
        points_(points) {
    lease_request_.set_worker_id(id_);
    finish_request_.set_worker_id(id_);
    finish_request_.set_outcome(v1::OUTCOME_SUCCEEDED);
    finish_message_.mutable_finish()->set_worker_id(id_);
    finish_message_.mutable_finish()->set_outcome(v1::OUTCOME_SUCCEEDED);
  }

  void Start() {
    if (stream_) {
      stream_ctx_ = Ctx(token_);
      stream_ctx_->set_deadline(std::chrono::system_clock::now() +
                                std::chrono::hours(1));
      stub_->async()->StreamEvents(stream_ctx_.get(), this);
      StartCall();
    }
    Lease();
  }
  void Wait() { done_.WaitForNotification(); }

  // The stream's reactions: a batch (or the finish message) is answered
  // once both its write and the answer have completed (in either order).
  void OnWriteDone(bool ok) override {
    CHECK(ok) << "event stream write failed";
    StreamStepDone();
  }
  void OnReadDone(bool ok) override {
    CHECK(ok) << "event stream ended early";
    StreamStepDone();
  }
  void OnDone(const grpc::Status& s) override {
    CHECK(s.ok()) << s.error_message();
    done_.Notify();
  }
  const std::vector<double>& lease_ms() const { return lease_ms_; }
  const std::vector<double>& report_ms() const { return report_ms_; }

 private:
  // Ends the worker: closes its stream (OnDone then notifies) or notifies.
  void Stop() {
    if (stream_) return StartWritesDone();
    done_.Notify();
  }

  void StreamStepDone() {
    if (--batch_steps_left_ > 0) return;
    if (finishing_) {
      finishing_ = false;
      CHECK(report_response_.has_finished())
          << "the coordinator ignored the finish message (too old?)";
      return Finished(std::move(*report_response_.mutable_finished()));
    }
    CHECK_EQ(report_response_.acked_batch_seq(), report_request_.batch_seq());
    report_ms_.push_back(Ms(Clock::now() - t0_));
    *points_ += points_per_batch_;
    Report(static_cast<int>(report_request_.batch_seq()) + 1);
  }

  void Lease() {
    if (*stop_) return Stop();
    ctx_ = Ctx(token_);
    t0_ = Clock::now();
    stub_->async()->Lease(ctx_.get(), &lease_request_, &lease_response_,
                          [this](grpc::Status s) {
                            lease_ms_.push_back(Ms(Clock::now() - t0_));
                            CHECK(s.ok()) << s.error_message();
                            if (!lease_response_.granted()) return Stop();
                            Report(1);
                          });
  }

  void Report(int batch) {
    if (batch > batches_ || *stop_) return Finish();
    // The message is reused across batches (only steps change) so the load
    // generator spends its share of the cores on the wire, not on strings.
    *report_request_.mutable_lease() = lease_response_.lease();
    report_request_.set_batch_seq(static_cast<uint64_t>(batch));
    for (int p = 0; p < points_per_batch_; ++p) {
      v1::MetricPoint* point = p < report_request_.points_size()
                                   ? report_request_.mutable_points(p)
                                   : report_request_.add_points();
      if (point->name().empty()) {
        point->set_name(p % 2 == 0 ? "val_f1" : "train_loss");
      }
      point->set_step(step_++);
      point->set_value(0.001 * static_cast<double>(p % 997));
    }
    t0_ = Clock::now();
    if (stream_) {
      batch_steps_left_ = 2;
      StartWrite(&report_request_);
      StartRead(&report_response_);
      return;
    }
    ctx_ = Ctx(token_);
    stub_->async()->ReportEvents(ctx_.get(), &report_request_,
                                 &report_response_,
                                 [this, batch](grpc::Status s) {
                                   report_ms_.push_back(Ms(Clock::now() - t0_));
                                   CHECK(s.ok()) << s.error_message();
                                   *points_ += points_per_batch_;
                                   Report(batch + 1);
                                 });
  }

  void Finish() {
    const bool lease_next = lease_next_ && !*stop_;
    t0_ = Clock::now();
    if (stream_finish_) {
      v1::FinishRunRequest* finish = finish_message_.mutable_finish();
      *finish->mutable_lease() = lease_response_.lease();
      finish->set_lease_next(lease_next);
      finish_message_.set_batch_seq(static_cast<uint64_t>(batches_) + 1);
      finishing_ = true;
      batch_steps_left_ = 2;
      StartWrite(&finish_message_);
      StartRead(&report_response_);
      return;
    }
    *finish_request_.mutable_lease() = lease_response_.lease();
    finish_request_.set_lease_next(lease_next);
    ctx_ = Ctx(token_);
    stub_->async()->FinishRun(ctx_.get(), &finish_request_, &finish_response_,
                              [this](grpc::Status s) {
                                CHECK(s.ok()) << s.error_message();
                                Finished(std::move(finish_response_));
                              });
  }

  // The run is finished; on to the next one the answer leased, if any.
  void Finished(v1::FinishRunResponse answer) {
    ++*trials_;
    if (answer.next().granted()) {
      // The message that got the lease is the lease latency.
      lease_ms_.push_back(Ms(Clock::now() - t0_));
      lease_response_ = std::move(*answer.mutable_next());
      return Report(1);
    }
    Lease();
  }

  v1::WorkerService::Stub* const stub_;
  const std::string id_;
  const std::string token_;
  const int batches_;
  const int points_per_batch_;
  const bool stream_;
  const bool stream_finish_;
  const bool lease_next_;
  const std::atomic<bool>* const stop_;
  std::atomic<int64_t>* const trials_;
  std::atomic<int64_t>* const points_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientContext> stream_ctx_;
  std::atomic<int> batch_steps_left_{0};
  std::atomic<bool> finishing_{false};  // the finish message is on the stream
  Clock::time_point t0_;
  int64_t step_ = 0;
  v1::LeaseRequest lease_request_;
  v1::LeaseResponse lease_response_;
  v1::ReportEventsRequest report_request_;
  v1::ReportEventsResponse report_response_;
  v1::FinishRunRequest finish_request_;
  v1::ReportEventsRequest finish_message_;
  v1::FinishRunResponse finish_response_;
  std::vector<double> lease_ms_, report_ms_;
  absl::Notification done_;
};

// Runs `workers` simulated workers doing lease -> batches -> finish for
// `seconds`.
PhaseResult RunLoad(const std::string& address, const std::string& member,
                    const std::string& worker_token, int workers, int seconds,
                    int batches, int points_per_batch, bool stream,
                    const std::string& tag) {
  // Enough queued runs for the phase (each trial consumes one).
  {
    auto channel =
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto team = v1::TeamService::NewStub(channel);
    for (int i = 0; i < 6; ++i) {
      v1::SubmitSweepRequest req;
      req.set_spec_yaml(SweepYaml(10'000));
      v1::SubmitSweepResponse resp;
      grpc::Status s = team->SubmitSweep(Ctx(member).get(), req, &resp);
      CHECK(s.ok()) << s.error_message();
    }
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 8; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("sweepq.bench.channel", i);  // distinct connections
    // The simulated workers never retry a call, so they skip the retry
    // filter's per-call bookkeeping: the generator shares the cores with
    // the server it measures, and its own overhead is not the server's.
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    channels.push_back(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args));
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> trials{0}, points{0};
  std::vector<std::unique_ptr<v1::WorkerService::Stub>> stubs;
  for (auto& channel : channels) stubs.push_back(v1::WorkerService::NewStub(channel));
  std::vector<std::unique_ptr<SimulatedWorker>> sims;
  for (int w = 0; w < workers; ++w) {
    const std::string id = absl::StrCat(tag, "-w", w);
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id(id);
    reg.add_datasets("mask");
    v1::RegisterWorkerResponse registered;
    auto* stub = stubs[w % stubs.size()].get();
    CHECK(stub->RegisterWorker(Ctx(worker_token).get(), reg, &registered).ok());
    sims.push_back(std::make_unique<SimulatedWorker>(
        stub, id, worker_token, batches, points_per_batch, stream,
        absl::GetFlag(FLAGS_finish) == "stream",
        absl::GetFlag(FLAGS_lease_next), &stop, &trials, &points));
  }
  const auto start = Clock::now();
  const double cpu_start = ProcessCpuSeconds();
  const double writer_start = ThreadCpuSeconds("sweepq-writer");
  for (auto& sim : sims) sim->Start();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  PhaseResult result;
  for (auto& sim : sims) {
    sim->Wait();
    result.lease_ms.insert(result.lease_ms.end(), sim->lease_ms().begin(),
                           sim->lease_ms().end());
    result.report_ms.insert(result.report_ms.end(), sim->report_ms().begin(),
                            sim->report_ms().end());
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  result.writer_cpu_seconds = ThreadCpuSeconds("sweepq-writer") - writer_start;
  result.trials = trials;
  result.points = points;
  return result;
}

// Fills a fresh team with `runs` finished runs with a best value each
// (32 threads leasing, reporting and finishing over gRPC; set-up, not
// measured), then times Leaderboard over gRPC.
std::vector<double> LeaderboardLatency(sweepq::server::CoordinatorServer* server,
                                       const std::string& address, int runs,
                                       int queries) {
  auto tokens = server->coordinator()->CreateTeam("board");
  CHECK(tokens.ok());
  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto team = v1::TeamService::NewStub(channel);
  auto workers = v1::WorkerService::NewStub(channel);
  int remaining = runs;
  std::vector<int64_t> sweep_ids;
  while (remaining > 0) {
    int n = std::min(remaining, 10'000);
    v1::SubmitSweepRequest req;
    req.set_spec_yaml(SweepYaml(n));
    v1::SubmitSweepResponse resp;
    CHECK(team->SubmitSweep(Ctx(tokens->member_token).get(), req, &resp).ok());
    sweep_ids.push_back(resp.sweep_id());
    remaining -= n;
  }
  // 32 threads drive lease -> one batch -> finish so group commit batches
  // them; this is set-up, not measured.
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 32; ++w) {
    threads.emplace_back([&, w] {
      const std::string id = absl::StrCat("board-w", w);
      v1::RegisterWorkerRequest reg;
      reg.set_worker_id(id);
      reg.add_datasets("mask");
      v1::RegisterWorkerResponse registered;
      CHECK(workers->RegisterWorker(Ctx(tokens->worker_token).get(), reg,
                                    &registered)
                .ok());
      uint64_t x = static_cast<uint64_t>(w) * 2654435761u + 1;
      while (true) {
        v1::LeaseRequest lr;
        lr.set_worker_id(id);
        v1::LeaseResponse leased;
        CHECK(workers->Lease(Ctx(tokens->worker_token).get(), lr, &leased).ok());
        if (!leased.granted()) return;
        v1::ReportEventsRequest req;
        *req.mutable_lease() = leased.lease();
        req.set_batch_seq(1);
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        double f1 = static_cast<double>(x >> 11) / 9007199254740992.0;
        for (const char* name : {"val_f1", "val_acc", "val_loss"}) {
          auto* p = req.add_points();
          p->set_name(name);
          p->set_step(static_cast<int64_t>(x % 30));
          p->set_value(f1);
        }
        v1::ReportEventsResponse rr;
        CHECK(workers->ReportEvents(Ctx(tokens->worker_token).get(), req, &rr)
                  .ok());
        v1::FinishRunRequest fr;
        *fr.mutable_lease() = leased.lease();
        fr.set_worker_id(id);
        fr.set_outcome(v1::OUTCOME_SUCCEEDED);
        v1::FinishRunResponse fin;
        CHECK(workers->FinishRun(Ctx(tokens->worker_token).get(), fr, &fin)
                  .ok());
        int d = ++done;
        if (d % 20'000 == 0) {
          std::cerr << "  leaderboard set-up: " << d << "/" << runs
                    << " runs finished\n";
        }
      }
    });
  }
  for (auto& t : threads) t.join();

  std::vector<double> latencies;
  for (int q = 0; q < queries; ++q) {
    v1::LeaderboardRequest req;
    // Alternate team-wide and per-sweep boards, as people use both.
    if (q % 2 == 1) req.set_sweep_id(sweep_ids[q % sweep_ids.size()]);
    req.set_top(20);
    v1::LeaderboardResponse resp;
    auto t0 = Clock::now();
    grpc::Status s =
        team->Leaderboard(Ctx(tokens->member_token).get(), req, &resp);
    latencies.push_back(Ms(Clock::now() - t0));
    CHECK(s.ok()) << s.error_message();
    CHECK_EQ(resp.entries_size(), 20);
  }
  return latencies;
}

// Runs the Optuna reference on a fresh file `dir`/optuna-`run`.db;
// returns its trials per second (0 if missing).
double RunOptuna(const std::string& dir, int run, int trials, int reports) {
  std::string cmd = absl::StrCat(
      absl::GetFlag(FLAGS_python), " ", absl::GetFlag(FLAGS_optuna_script),
      " --storage sqlite:///", dir, "/optuna-", run, ".db", " --trials ",
      trials, " --reports ", reports);
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return 0;
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  int rc = pclose(pipe);
  std::smatch m;
  if (rc != 0 ||
      !std::regex_search(out, m, std::regex("trials_per_s=([0-9.eE+-]+)"))) {
    std::cerr << "optuna reference failed (rc " << rc << "): " << out
              << "\n(is python3-optuna installed? make bench-coordinator "
                 "installs it)\n";
    return 0;
  }
  std::cout << out;
  return std::stod(m[1]);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;  // the server's per-lease INFO lines would dominate
  google::InitGoogleLogging(argv[0]);

  std::string dir = absl::GetFlag(FLAGS_work_dir);
  if (dir.empty()) {
    std::string pattern = "/tmp/sweepq-bench-XXXXXX";
    CHECK(mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
  }
  std::filesystem::create_directories(dir);
  sweepq::server::ServerOptions options;
  options.db_path = dir + "/sweepq.db";
  options.artifacts_dir = dir + "/artifacts";
  options.listen = "127.0.0.1:0";
  options.coordinator.max_lease_wait_ms = 0;
  // The coordinator under load: this process's own, or --server_address.
  const std::string external = absl::GetFlag(FLAGS_server_address);
  std::unique_ptr<sweepq::server::CoordinatorServer> server;
  std::string address = external;
  sweepq::server::Coordinator::NewTeamTokens tokens;
  if (external.empty()) {
    auto started = sweepq::server::CoordinatorServer::Start(options);
    CHECK(started.ok()) << started.status();
    server = *std::move(started);
    address = absl::StrCat("127.0.0.1:", server->port());
    auto created = server->coordinator()->CreateTeam("bench");
    CHECK(created.ok()) << created.status();
    tokens = *std::move(created);
  } else {
    tokens.member_token = absl::GetFlag(FLAGS_member_token);
    tokens.worker_token = absl::GetFlag(FLAGS_worker_token);
    if (tokens.member_token.empty() || tokens.worker_token.empty()) {
      std::cerr << "--server_address needs --member_token and --worker_token"
                   " (sweepq-server team create NAME --db FILE prints them)\n";
      return 2;
    }
  }

  const int workers = absl::GetFlag(FLAGS_workers);
  const int seconds = absl::GetFlag(FLAGS_seconds);
  const int batches = absl::GetFlag(FLAGS_batches);
  const std::string report = absl::GetFlag(FLAGS_report);
  if (report != "stream" && report != "unary") {
    std::cerr << "--report must be 'stream' or 'unary', not '" << report
              << "'\n";
    return 2;
  }
  const std::string finish = absl::GetFlag(FLAGS_finish);
  if (finish != "stream" && finish != "unary") {
    std::cerr << "--finish must be 'stream' or 'unary', not '" << finish
              << "'\n";
    return 2;
  }
  const bool stream = report == "stream";
  const bool stream_finish = stream && finish == "stream";
  std::cout << absl::StrFormat(
      "sweepq coordinator bench: %d workers, %d s per phase, K=%d batches, "
      "report=%s (%s), finish=%s (%s), lease_next=%s\n",
      workers, seconds, batches, report,
      stream ? "one StreamEvents call per worker"
             : "one ReportEvents call per batch",
      stream_finish ? "stream" : "unary",
      stream_finish ? "a finish message on the stream" : "a FinishRun call",
      absl::GetFlag(FLAGS_lease_next)
          ? "on (the finish's answer hands out the next run; lease latency "
            "is its)"
          : "off (a Lease call after each finish)");

  const std::string phases = absl::GetFlag(FLAGS_phases);
  auto enabled = [&](absl::string_view phase) {
    if (server == nullptr && (phase == "fsync" || phase == "leaderboard")) {
      return false;  // they start servers of their own
    }
    return absl::StrContains(phases, phase);
  };

  // Phase 1 and the reference, in pairs: the Optuna reference (Optuna 3 +
  // SQLite storage, the same trial shape: ask -> K reports -> tell), then
  // our trial shape (one point per report) right after it.
  const bool with_optuna = enabled("optuna");
  const int rounds = with_optuna ? std::max(1, absl::GetFlag(FLAGS_rounds)) : 1;
  PhaseResult trial;  // every round's load together
  std::vector<double> ours_rates, optuna_rates, round_ratios;
  bool optuna_ok = with_optuna;
  for (int round = 1; round <= rounds; ++round) {
    double optuna_rate = 0;
    if (optuna_ok) {
      sync();  // our last round's pages reach the disk before Optuna's fsyncs
      optuna_rate =
          RunOptuna(dir, round, absl::GetFlag(FLAGS_optuna_trials), batches);
      optuna_ok = optuna_rate > 0;  // else RunOptuna said why
      if (optuna_ok) optuna_rates.push_back(optuna_rate);
    }
    PhaseResult load =
        RunLoad(address, tokens.member_token, tokens.worker_token, workers,
                seconds, batches, 1, stream, absl::StrCat("trial", round));
    const double rate = static_cast<double>(load.trials) / load.seconds;
    ours_rates.push_back(rate);
    if (optuna_rate > 0) {
      round_ratios.push_back(rate / optuna_rate);
      std::cout << absl::StrFormat(
          "round %d: optuna %.1f trials/s, ours %.0f trials/s (%.0f us CPU "
          "per trial), ratio %.1f\n",
          round, optuna_rate, rate, UsPerTrial(load.cpu_seconds, load.trials),
          round_ratios.back());
    }
    trial.seconds += load.seconds;
    trial.cpu_seconds += load.cpu_seconds;
    trial.writer_cpu_seconds += load.writer_cpu_seconds;
    trial.trials += load.trials;
    trial.lease_ms.insert(trial.lease_ms.end(), load.lease_ms.begin(),
                          load.lease_ms.end());
    trial.report_ms.insert(trial.report_ms.end(), load.report_ms.begin(),
                           load.report_ms.end());
    if (!optuna_ok) break;  // without the reference one phase is enough
  }
  const double ours_trials = Median(ours_rates);
  std::cout << absl::StrFormat(
      "ours   trial shape (lease -> %d x 1-point batch -> finish): "
      "%.0f trials/s (%s), lease p50 %.2f ms p99 %.2f ms, report p50 %.2f ms "
      "p99 %.2f ms; %.0f us CPU per trial (%s, %.2f cores used)\n",
      batches, ours_trials,
      ours_rates.size() > 1
          ? absl::StrCat("the median of ", ours_rates.size(), " rounds")
          : std::string("one phase"),
      Percentile(trial.lease_ms, 0.5), Percentile(trial.lease_ms, 0.99),
      Percentile(trial.report_ms, 0.5), Percentile(trial.report_ms, 0.99),
      UsPerTrial(trial.cpu_seconds, trial.trials),
      server != nullptr ? "server and generator" : "generator alone",
      trial.seconds > 0 ? trial.cpu_seconds / trial.seconds : 0.0);
  if (server != nullptr && trial.trials > 0) {
    // One thread commits every write and sends its answer: near 100% it is
    // what bounds the rate, however many cores are left.
    std::cout << absl::StrFormat(
        "ours   trial shape: the store's writer thread (sweepq-writer) was "
        "busy %.0f%% of the phase, %.0f us per trial\n",
        100 * trial.writer_cpu_seconds / trial.seconds,
        UsPerTrial(trial.writer_cpu_seconds, trial.trials));
  }
  const double optuna = Median(optuna_rates);
  if (with_optuna && !optuna_rates.empty()) {
    std::cout << absl::StrFormat(
        "optuna trial shape (ask -> %d x report -> tell, SQLite storage): "
        "%.1f trials/s, the median of %d runs (%s)\n",
        batches, optuna, optuna_rates.size(),
        absl::StrJoin(optuna_rates, ", ", [](std::string* out, double r) {
          absl::StrAppend(out, absl::StrFormat("%.1f", r));
        }));
  }

  // Phase 1b: the same with fsync on every commit, the durability Optuna's
  // SQLite storage has by default (our default survives a process crash,
  // not a power loss).
  double ours_trials_fsync = 0;
  if (enabled("fsync")) {
    sweepq::server::ServerOptions durable = options;
    durable.db_path = dir + "/sweepq-fsync.db";
    durable.artifacts_dir = dir + "/artifacts-fsync";
    durable.synchronous_full = true;
    auto fsync_server = sweepq::server::CoordinatorServer::Start(durable);
    CHECK(fsync_server.ok()) << fsync_server.status();
    auto fsync_tokens = (*fsync_server)->coordinator()->CreateTeam("bench");
    CHECK(fsync_tokens.ok());
    PhaseResult durable_trial = RunLoad(
        absl::StrCat("127.0.0.1:", (*fsync_server)->port()),
        fsync_tokens->member_token, fsync_tokens->worker_token, workers,
        seconds, batches, 1, stream, "fsync");
    ours_trials_fsync =
        static_cast<double>(durable_trial.trials) / durable_trial.seconds;
    std::cout << absl::StrFormat(
        "ours   trial shape, --sync-full (fsync per commit): %.0f trials/s, "
        "report p50 %.2f ms p99 %.2f ms\n",
        ours_trials_fsync, Percentile(durable_trial.report_ms, 0.5),
        Percentile(durable_trial.report_ms, 0.99));
    (*fsync_server)->Shutdown();
  }

  // Phase 2: metric throughput with realistic spool-sized batches.
  const int ppb = absl::GetFlag(FLAGS_points_per_batch);
  double points_per_s = 0;
  if (enabled("throughput")) {
    PhaseResult load =
        RunLoad(address, tokens.member_token, tokens.worker_token, workers,
                seconds, batches, ppb, stream, "load");
    points_per_s = static_cast<double>(load.points) / load.seconds;
    std::cout << absl::StrFormat(
        "ours   throughput (%d-point batches): %.0f acked points/s, %.0f "
        "leases/s, lease p50 %.2f ms p99 %.2f ms, report p50 %.2f ms p99 "
        "%.2f ms\n",
        ppb, points_per_s, static_cast<double>(load.trials) / load.seconds,
        Percentile(load.lease_ms, 0.5), Percentile(load.lease_ms, 0.99),
        Percentile(load.report_ms, 0.5), Percentile(load.report_ms, 0.99));
  }

  // Phase 3: leaderboard at N runs.
  double board_p99 = 0;
  if (enabled("leaderboard")) {
    const int board_runs = absl::GetFlag(FLAGS_leaderboard_runs);
    std::vector<double> board =
        LeaderboardLatency(server.get(), address, board_runs,
                           absl::GetFlag(FLAGS_leaderboard_queries));
    board_p99 = Percentile(board, 0.99);
    std::cout << absl::StrFormat(
        "ours   leaderboard at %d runs (top 20, team and sweep): p50 %.2f ms "
        "p99 %.2f ms\n",
        board_runs, Percentile(board, 0.5), board_p99);
  }
  if (server != nullptr) server->Shutdown();

  // The rounds' median ratio is the headline: each pair's two rates were
  // measured under the same load of the machine. The ratio of the medians
  // is printed beside it.
  const double ratio = Median(round_ratios);
  if (!round_ratios.empty()) {
    std::cout << absl::StrFormat(
        "ratio: %.1f, the median of the rounds' ratios (%s); the ratio of "
        "the medians is %.1f\n",
        ratio,
        absl::StrJoin(round_ratios, ", ",
                      [](std::string* out, double r) {
                        absl::StrAppend(out, absl::StrFormat("%.1f", r));
                      }),
        ours_trials / optuna);
  }
  std::cout << absl::StrFormat(
      "ratio at equal durability (--sync-full vs Optuna): %.1f\n",
      optuna > 0 ? ours_trials_fsync / optuna : 0);
  std::cout << absl::StrFormat(
      "coordinator: ratio=%.1f points_per_s=%.0f leaderboard_p99_ms=%.2f\n",
      ratio, points_per_s, board_p99);
  std::error_code ec;
  if (absl::GetFlag(FLAGS_work_dir).empty()) std::filesystem::remove_all(dir, ec);
  return 0;
}
