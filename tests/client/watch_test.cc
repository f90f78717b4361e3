// `sweepq watch`: the per-epoch printer, and the reconnect loop against an
// in-process fake coordinator whose stream breaks mid-run.
#include "client/watch.h"

#include <grpcpp/grpcpp.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/commands.h"
#include "client/errors.h"
#include "gtest/gtest.h"
#include "sweepq/v1/coordinator.grpc.pb.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::client {
namespace {

namespace v1 = ::sweepq::v1;

v1::WatchRunResponse Point(int64_t seq, uint32_t attempt, int64_t step,
                           const std::string& name, double value,
                           int64_t wall_ms = 0) {
  v1::WatchRunResponse item;
  auto* p = item.mutable_metric();
  p->set_seq(seq);
  p->set_attempt(attempt);
  p->set_step(step);
  p->set_name(name);
  p->set_value(value);
  p->set_wall_time_ms(wall_ms);
  item.set_state(v1::RUN_STATE_RUNNING);
  item.set_metric_seq(seq);
  return item;
}

v1::WatchRunResponse StateEvent(int64_t seq, const std::string& state,
                                const std::string& worker,
                                const std::string& reason = "",
                                int attempt = 1) {
  v1::WatchRunResponse item;
  auto* e = item.mutable_event();
  e->set_seq(seq);
  e->set_kind("state");
  e->set_payload_json(absl::StrCat(R"({"state":")", state, R"(","attempt":)",
                                   attempt, R"(,"worker":")", worker,
                                   R"(","reason":")", reason, R"("})"));
  item.set_event_seq(seq);
  return item;
}

// One epoch's worth of points, seq numbers from `seq`.
std::vector<v1::WatchRunResponse> Epoch(int64_t* seq, int64_t step, double f1) {
  std::vector<v1::WatchRunResponse> items;
  items.push_back(Point(++*seq, 1, step, "lr", 0.0003));
  items.push_back(Point(++*seq, 1, step, "val_f1", f1));
  items.push_back(Point(++*seq, 1, step, "train_loss", 1.0 / step));
  items.push_back(Point(++*seq, 1, step, "val_acc", f1 + 0.1));
  items.push_back(Point(++*seq, 1, step, "epoch_time", 10));
  items.push_back(Point(++*seq, 1, step, "step_loss", 5));  // not shown
  return items;
}

TEST(RunWatchPrinterTest, OneLinePerEpochInAFixedMetricOrder) {
  std::ostringstream out;
  RunWatchOptions options;
  options.epochs = 3;
  RunWatchPrinter printer(out, options);
  int64_t seq = 0;
  printer.Add(StateEvent(1, "RUN_STATE_RUNNING", "w1"));
  for (const auto& item : Epoch(&seq, 1, 0.5)) printer.Add(item);
  for (const auto& item : Epoch(&seq, 2, 0.4)) printer.Add(item);
  for (const auto& item : Epoch(&seq, 3, 0.6)) printer.Add(item);
  printer.Flush();
  EXPECT_EQ(out.str(),
            "-- running on w1 (attempt 1)\n"
            "epoch 1/3  train_loss 1.0000  val_acc 0.6000  val_f1 0.5000 *  "
            "lr 3.00e-04  time 10.0s  eta 20s\n"
            "epoch 2/3  train_loss 0.5000  val_acc 0.5000  val_f1 0.4000  "
            "lr 3.00e-04  time 10.0s  eta 10s\n"
            "epoch 3/3  train_loss 0.3333  val_acc 0.7000  val_f1 0.6000 *  "
            "lr 3.00e-04  time 10.0s\n");
  EXPECT_EQ(printer.metric_seq(), 18);
  EXPECT_EQ(printer.event_seq(), 1);
  EXPECT_EQ(printer.epochs_done(), 3);
}

TEST(RunWatchPrinterTest, RepeatedItemsFromAResumedStreamAreNotPrinted) {
  std::ostringstream out;
  RunWatchPrinter printer(out, RunWatchOptions());
  int64_t seq = 0;
  std::vector<v1::WatchRunResponse> first = Epoch(&seq, 1, 0.5);
  for (const auto& item : first) printer.Add(item);
  printer.Add(StateEvent(1, "RUN_STATE_RUNNING", "w1"));
  std::string before = out.str();
  // The same items again (a server that resent from an older cursor).
  for (const auto& item : first) printer.Add(item);
  printer.Add(StateEvent(1, "RUN_STATE_RUNNING", "w1"));
  printer.Flush();
  EXPECT_EQ(out.str(), before);
}

TEST(RunWatchPrinterTest, APointForAnEpochAlreadyShownIsPrintedAsLate) {
  std::ostringstream out;
  RunWatchPrinter printer(out, RunWatchOptions());
  printer.Add(Point(1, 1, 1, "val_f1", 0.5));
  printer.Flush();
  printer.Add(Point(2, 1, 1, "val_acc", 0.7));
  printer.Flush();
  EXPECT_EQ(out.str(),
            "epoch 1  val_f1 0.5000 *\n"
            "epoch 1 (late)  val_acc 0.7000\n");
}

TEST(RunWatchPrinterTest, StateEventsAreSentences) {
  std::ostringstream out;
  RunWatchPrinter printer(out, RunWatchOptions());
  printer.Add(StateEvent(1, "RUN_STATE_QUEUED", "", "submitted", 0));
  printer.Add(StateEvent(2, "RUN_STATE_QUEUED", "", "lease expired"));
  printer.Add(StateEvent(3, "RUN_STATE_FAILED", "w2", "CUDA out of memory"));
  v1::WatchRunResponse log;
  log.mutable_event()->set_seq(4);
  log.mutable_event()->set_kind("log");
  log.mutable_event()->set_payload_json(R"({"message":"cropping faces"})");
  printer.Add(log);
  EXPECT_EQ(out.str(),
            "-- queued\n"
            "-- queued again: lease expired\n"
            "-- failed: CUDA out of memory\n"
            "log: cropping faces\n");
}

// sweepq-train's own events read as sentences; the ones whose numbers
// arrive as metric points (step, epoch, metrics) and checkpoints print
// nothing, so an epoch is one row and not a JSON dump.
TEST(RunWatchPrinterTest, TrainerEventsAreSentencesOrSilent) {
  std::ostringstream out;
  RunWatchPrinter printer(out, RunWatchOptions());
  int64_t seq = 0;
  auto add = [&](const std::string& kind, const std::string& payload) {
    v1::WatchRunResponse item;
    item.mutable_event()->set_seq(++seq);
    item.mutable_event()->set_kind(kind);
    item.mutable_event()->set_payload_json(payload);
    printer.Add(item);
  };
  add("start",
      R"({"event":"start","model":"small_cnn, 0.4M parameters","device":"cpu",)"
      R"("threads":2,"data":{"train":224,"val":56,"classes":18},"start_epoch":3})");
  add("step", R"({"event":"step","epoch":3,"step":40,"loss":1.5})");
  add("epoch", R"({"event":"epoch","epoch":3,"metrics":{"val_f1":0.5},)"
               R"("confusion":[[1,0],[0,1]]})");
  add("checkpoint", R"({"event":"checkpoint","kind":"last","epoch":3})");
  add("bad_samples", R"({"event":"bad_samples","count":2,"total":5})");
  add("early_stop", R"({"event":"early_stop","epoch":7,"best_epoch":4,)"
                    R"("metric":"val_f1","best_value":0.61})");
  add("artifact", R"({"event":"artifact","name":"metrics.csv","path":"/x"})");
  add("summary", R"({"event":"summary","best_epoch":4,"metric":"val_f1",)"
                 R"("best_value":0.61,"epochs":7})");
  add("error", R"({"event":"error","message":"disk full","retryable":true})");
  add("start", R"({"event":"start","kind":"predict","device":"cpu"})");
  EXPECT_EQ(out.str(),
            "-- started: small_cnn, 0.4M parameters, cpu, 2 threads, 224 "
            "train / 56 val images, resumed at epoch 3\n"
            "bad images: 2 (5 in all), skipped\n"
            "-- early stop after epoch 7: best val_f1 0.61 at epoch 4\n"
            "   wrote metrics.csv\n"
            "-- done: best val_f1 0.61 at epoch 4 of 7\n"
            "error: disk full (retryable)\n"
            "-- started predict job: cpu\n");
}

TEST(RunWatchPrinterTest, EtaFromEpochSpacingWithoutEpochTime) {
  std::ostringstream out;
  RunWatchOptions options;
  options.epochs = 10;
  RunWatchPrinter printer(out, options);
  printer.Add(Point(1, 1, 1, "val_f1", 0.1, 1'000'000));
  printer.Add(Point(2, 1, 2, "val_f1", 0.2, 1'030'000));
  printer.Add(Point(3, 1, 3, "val_f1", 0.3, 1'060'000));
  printer.Flush();
  // 30 s per epoch, 7 epochs left.
  EXPECT_EQ(printer.EtaMs(), 210'000);
}

// ---- The reconnect loop against a fake coordinator ----

class FakeTeamService final : public v1::TeamService::Service {
 public:
  grpc::Status GetRun(grpc::ServerContext*, const v1::GetRunRequest* req,
                      v1::Run* run) override {
    absl::MutexLock lock(&mu_);
    run->set_run_id(req->run_id());
    run->set_sweep_id(1);
    run->set_metric("val_f1");
    run->mutable_config()->mutable_train()->set_epochs(3);
    run->set_state(final_state_given_ ? final_state_ : v1::RUN_STATE_RUNNING);
    if (final_state_given_ && final_state_ == v1::RUN_STATE_FAILED) {
      run->set_error("CUDA out of memory");
    }
    return grpc::Status::OK;
  }

  grpc::Status WatchRun(
      grpc::ServerContext*, const v1::WatchRunRequest* req,
      grpc::ServerWriter<v1::WatchRunResponse>* writer) override {
    int call;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(*req);
      call = static_cast<int>(requests_.size());
    }
    int64_t seq = 0;
    std::vector<v1::WatchRunResponse> all;
    for (int step = 1; step <= 3; ++step) {
      for (auto& item : Epoch(&seq, step, 0.1 * step)) all.push_back(item);
    }
    if (call == 1) {
      // The connection breaks after the first epoch and a half.
      for (size_t i = 0; i < 9; ++i) writer->Write(all[i]);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset");
    }
    // A sloppy resend: one item before the cursor comes again.
    for (const auto& item : all) {
      if (item.metric().seq() + 1 > req->after_metric_seq()) {
        writer->Write(item);
      }
    }
    absl::MutexLock lock(&mu_);
    final_state_given_ = true;
    return grpc::Status::OK;
  }

  std::vector<v1::WatchRunRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  void set_final_state(v1::RunState state) {
    absl::MutexLock lock(&mu_);
    final_state_ = state;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::WatchRunRequest> requests_ ABSL_GUARDED_BY(mu_);
  bool final_state_given_ ABSL_GUARDED_BY(mu_) = false;
  v1::RunState final_state_ ABSL_GUARDED_BY(mu_) = v1::RUN_STATE_SUCCEEDED;
};

class WatchLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_GT(port_, 0);
    env_.Set("XDG_CONFIG_HOME", dir_.path());
    env_.Set("SWEEPQ_SERVER", absl::StrCat("127.0.0.1:", port_));
    env_.Set("SWEEPQ_TOKEN", "token");
  }
  void TearDown() override { server_->Shutdown(); }

  int Run(const std::vector<std::string>& args) {
    CliContext context;
    context.out = &out_;
    context.err = &err_;
    context.env = &env_;
    context.sleep = [this](absl::Duration d) { sleeps_.push_back(d); };
    return RunCli(args, context);
  }

  FakeTeamService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  testing::TempDir dir_;
  MapEnvironment env_;
  std::ostringstream out_, err_;
  std::vector<absl::Duration> sleeps_;
};

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

TEST_F(WatchLoopTest, ResumesFromTheCursorsAndPrintsEveryEpochOnce) {
  EXPECT_EQ(Run({"watch", "7"}), kExitOk) << err_.str();
  std::vector<v1::WatchRunRequest> requests = service_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].after_metric_seq(), 0);
  EXPECT_EQ(requests[1].after_metric_seq(), 9);
  EXPECT_EQ(requests[1].run_id(), 7);
  const std::string out = out_.str();
  EXPECT_EQ(Count(out, "epoch 1/3"), 1u) << out;
  EXPECT_EQ(Count(out, "epoch 2/3"), 1u) << out;
  EXPECT_EQ(Count(out, "epoch 3/3"), 1u) << out;
  EXPECT_EQ(Count(out, "(late)"), 0u) << out;
  // Epoch 2 was cut by the break and completed after it, in one line.
  EXPECT_NE(out.find("epoch 2/3  train_loss 0.5000  val_acc 0.3000  "
                     "val_f1 0.2000 *  lr 3.00e-04  time 10.0s"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("run 7 succeeded"), std::string::npos) << out;
  EXPECT_NE(err_.str().find("reconnecting"), std::string::npos);
  ASSERT_EQ(sleeps_.size(), 1u);
}

TEST_F(WatchLoopTest, ExitsOneWhenTheRunFails) {
  service_.set_final_state(v1::RUN_STATE_FAILED);
  EXPECT_EQ(Run({"watch", "7"}), kExitFailed);
  EXPECT_NE(err_.str().find("run 7 failed"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("CUDA out of memory"), std::string::npos);
}

TEST_F(WatchLoopTest, NeitherRunNorSweepIsAUsageError) {
  EXPECT_EQ(Run({"watch"}), kExitUsage);
  EXPECT_EQ(Run({"watch", "x"}), kExitUsage);
}

}  // namespace
}  // namespace sweepq::client
