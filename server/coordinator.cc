#include "server/coordinator.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "common/sweep.h"
#include "common/thread_name.h"
#include "glog/logging.h"
#include "server/store/run_rules.h"

namespace sweepq::server {
namespace {

using sweepq::v1::RunState;

// Tokens: 43 URL-safe characters = 258 bits.
constexpr size_t kTokenLength = 43;
// A waiting Lease / WatchRun re-checks cancellation this often.
constexpr absl::Duration kWaitSlice = absl::Milliseconds(200);

// Whether LOG(INFO) lines are kept. glog builds and time-stamps a message
// before it drops it (about 6 µs a line here: it asks for the local time
// zone each time, under a lock the server threads share), so the
// lines of every lease and finish ask first.
bool InfoLogged() { return FLAGS_minloglevel <= google::GLOG_INFO; }

absl::Status CheckLength(absl::string_view field, absl::string_view value,
                         size_t max) {
  if (value.size() > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is ", value.size(), " bytes; the limit is ", max));
  }
  return absl::OkStatus();
}

absl::Status CheckLease(const sweepq::v1::LeaseRef& lease) {
  if (lease.run_id() <= 0 || lease.attempt() == 0 || lease.lease_id() == 0) {
    return absl::InvalidArgumentError(
        "lease must name run_id, attempt and lease_id");
  }
  return absl::OkStatus();
}

}  // namespace

Coordinator::Coordinator(store::Store* store, const Clock* clock,
                         ArtifactStore* artifacts, CoordinatorOptions options)
    : store_(store),
      clock_(clock),
      artifacts_(artifacts),
      options_(std::move(options)) {
  if (options_.run_expiry_thread) {
    expiry_thread_ = std::thread([this] { ExpiryLoop(); });
    NameThread(expiry_thread_, "sweepq-expiry");
  }
}

Coordinator::~Coordinator() {
  Shutdown();
  if (expiry_thread_.joinable()) expiry_thread_.join();
}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  queue_changed_.SignalAll();
  events_appended_.SignalAll();
}

void Coordinator::NotifyQueueChanged() {
  absl::MutexLock lock(&mu_);
  ++queue_generation_;
  queue_changed_.SignalAll();
}

void Coordinator::NotifyEventsAppended() {
  absl::MutexLock lock(&mu_);
  ++event_generation_;
  events_appended_.SignalAll();
}

// ---- Teams ----

absl::StatusOr<Coordinator::NewTeamTokens> Coordinator::CreateTeam(
    const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("team name is empty");
  RETURN_IF_ERROR(CheckLength("team name", name, kMaxNameBytes));
  NewTeamTokens tokens{RandomToken(kTokenLength), RandomToken(kTokenLength)};
  RETURN_IF_ERROR(store_
                      ->CreateTeam(name, Sha256Hex(tokens.member_token),
                                   Sha256Hex(tokens.worker_token),
                                   clock_->NowMs())
                      .status());
  return tokens;
}

absl::StatusOr<std::string> Coordinator::RotateToken(const std::string& team,
                                                     store::Role role) {
  std::string token = RandomToken(kTokenLength);
  RETURN_IF_ERROR(store_->RotateToken(team, role, Sha256Hex(token)));
  return token;
}

// ---- People ----

absl::Status Coordinator::CheckJobSources(
    int64_t team_id, size_t index, const sweepq::v1::RunConfig& config) {
  if (!config.has_job()) return absl::OkStatus();
  const sweepq::v1::JobConfig& job = config.job();
  const std::string& dataset = config.data().dataset();
  for (int i = 0; i < job.source_runs_size(); ++i) {
    const int64_t id = job.source_runs(i);
    const std::string where = absl::StrCat(
        "run ", index, ": job.source_runs[", i, "]: run ", id);
    absl::StatusOr<sweepq::v1::Run> source = store_->GetRun(team_id, id);
    if (absl::IsNotFound(source.status())) {
      return absl::NotFoundError(
          absl::StrCat(where, " not found (in this team)"));
    }
    RETURN_IF_ERROR(source.status());
    if (source->config().has_job()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, " is itself a ", source->config().job().kind(),
          " job; a job reads training runs' models"));
    }
    if (source->state() != sweepq::v1::RUN_STATE_SUCCEEDED) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, " is ", sweepq::v1::RunState_Name(source->state()),
          "; a job needs a SUCCEEDED run (its best.ckpt)"));
    }
    if (source->dataset() != dataset) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, " was trained on data set \"", source->dataset(),
          "\", not \"", dataset, "\" (data.dataset of the job)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<sweepq::v1::SubmitSweepResponse> Coordinator::SubmitSweep(
    int64_t team_id, const sweepq::v1::SubmitSweepRequest& request) {
  RETURN_IF_ERROR(CheckLength("spec_yaml", request.spec_yaml(), kMaxSpecBytes));
  RETURN_IF_ERROR(CheckLength("name", request.name(), kMaxNameBytes));
  RETURN_IF_ERROR(CheckLength("idempotency_key", request.idempotency_key(),
                              kMaxNameBytes));
  SweepLimits limits;
  limits.max_runs = options_.max_runs_per_sweep;
  ASSIGN_OR_RETURN(ExpandedSweep expanded,
                   ExpandSweepYaml(request.spec_yaml(), "sweep", limits));
  if (expanded.runs.empty()) {
    return absl::InvalidArgumentError("sweep expands to no runs");
  }
  store::NewSweep sweep;
  sweep.name = !request.name().empty() ? request.name() : expanded.name;
  sweep.spec_yaml = request.spec_yaml();
  sweep.metric = expanded.metric;
  sweep.goal = expanded.goal;
  sweep.priority = request.priority();
  sweep.max_attempts = expanded.max_attempts;
  sweep.idempotency_key = request.idempotency_key();
  sweep.runs.reserve(expanded.runs.size());
  for (size_t i = 0; i < expanded.runs.size(); ++i) {
    RETURN_IF_ERROR(CheckJobSources(team_id, i, expanded.runs[i].config));
  }
  for (ExpandedRun& run : expanded.runs) {
    store::NewRun r;
    r.dataset = run.config.data().dataset();
    r.config = std::move(run.config);
    r.params = std::move(run.params);
    sweep.runs.push_back(std::move(r));
  }
  ASSIGN_OR_RETURN(store::InsertSweepResult inserted,
                   store_->InsertSweep(team_id, sweep, clock_->NowMs()));
  if (!inserted.existing) NotifyQueueChanged();
  LOG(INFO) << "sweep " << inserted.sweep_id << " submitted: "
            << inserted.run_ids.size() << " runs"
            << (inserted.existing ? " (idempotent resubmission)" : "");
  sweepq::v1::SubmitSweepResponse response;
  response.set_sweep_id(inserted.sweep_id);
  response.set_existing(inserted.existing);
  for (int64_t id : inserted.run_ids) response.add_run_ids(id);
  return response;
}

absl::StatusOr<std::vector<sweepq::v1::Run>> Coordinator::ListRuns(
    int64_t team_id, const sweepq::v1::ListRunsRequest& request) {
  store::RunFilter filter;
  filter.sweep_id = request.sweep_id();
  filter.state = request.state();
  filter.limit = request.limit() == 0 ? 100
                                      : std::min(request.limit(), kMaxListLimit);
  filter.before_run_id = request.before_run_id();
  return store_->ListRuns(team_id, filter);
}

absl::StatusOr<sweepq::v1::Run> Coordinator::GetRun(int64_t team_id,
                                                    int64_t run_id) {
  return store_->GetRun(team_id, run_id);
}

absl::StatusOr<std::vector<sweepq::v1::LeaderboardEntry>>
Coordinator::Leaderboard(int64_t team_id,
                         const sweepq::v1::LeaderboardRequest& request) {
  RETURN_IF_ERROR(CheckLength("metric", request.metric(), kMaxMetricNameBytes));
  if (request.top() > kMaxLeaderboardTop) {
    return absl::InvalidArgumentError(absl::StrCat(
        "top is ", request.top(), "; the limit is ", kMaxLeaderboardTop));
  }
  store::LeaderboardQuery query;
  query.sweep_id = request.sweep_id();
  query.metric = request.metric();
  query.top = request.top() == 0 ? 20 : request.top();
  if (query.sweep_id != 0) {
    // NOT_FOUND for a foreign or unknown sweep rather than an empty board.
    RETURN_IF_ERROR(store_->GetSweep(team_id, query.sweep_id).status());
  }
  return store_->Leaderboard(team_id, query);
}

absl::StatusOr<sweepq::v1::CancelRunResponse> Coordinator::CancelRun(
    int64_t team_id, int64_t run_id) {
  ASSIGN_OR_RETURN(sweepq::v1::Run run,
                   store_->CancelRun(team_id, run_id, clock_->NowMs()));
  NotifyEventsAppended();
  LOG(INFO) << "run " << run_id << " cancel: state "
            << sweepq::v1::RunState_Name(run.state());
  sweepq::v1::CancelRunResponse response;
  response.set_state(run.state());
  return response;
}

absl::StatusOr<sweepq::v1::CancelSweepResponse> Coordinator::CancelSweep(
    int64_t team_id, int64_t sweep_id) {
  ASSIGN_OR_RETURN(auto counts,
                   store_->CancelSweep(team_id, sweep_id, clock_->NowMs()));
  NotifyEventsAppended();
  sweepq::v1::CancelSweepResponse response;
  response.set_cancelled(counts.first);
  response.set_cancel_requested(counts.second);
  return response;
}

absl::StatusOr<sweepq::v1::Run> Coordinator::RetryRun(int64_t team_id,
                                                      int64_t run_id) {
  ASSIGN_OR_RETURN(sweepq::v1::Run run,
                   store_->RetryRun(team_id, run_id, clock_->NowMs()));
  NotifyQueueChanged();
  NotifyEventsAppended();
  return run;
}

absl::StatusOr<std::vector<sweepq::v1::Worker>> Coordinator::ListWorkers(
    int64_t team_id) {
  return store_->ListWorkers(team_id);
}

absl::StatusOr<sweepq::v1::Worker> Coordinator::DrainWorker(
    int64_t team_id, const std::string& id) {
  ASSIGN_OR_RETURN(sweepq::v1::Worker w, store_->DrainWorker(team_id, id));
  LOG(INFO) << "worker " << id << " draining";
  NotifyQueueChanged();  // a long-polling Lease of that worker answers DRAIN
  return w;
}

absl::StatusOr<sweepq::v1::Worker> Coordinator::ClearWorker(
    int64_t team_id, const std::string& id) {
  ASSIGN_OR_RETURN(sweepq::v1::Worker w, store_->ClearWorker(team_id, id));
  LOG(INFO) << "worker " << id << " cleared";
  return w;
}

absl::StatusOr<std::vector<sweepq::v1::Artifact>> Coordinator::ListArtifacts(
    int64_t team_id, int64_t run_id) {
  RETURN_IF_ERROR(store_->GetRun(team_id, run_id).status());
  return store_->ListArtifacts(team_id, run_id);
}

absl::StatusOr<std::pair<sweepq::v1::Artifact,
                         std::unique_ptr<ArtifactStore::Reader>>>
Coordinator::OpenArtifact(int64_t team_id, int64_t run_id,
                          const std::string& name, uint32_t attempt) {
  ASSIGN_OR_RETURN(std::vector<sweepq::v1::Artifact> all,
                   ListArtifacts(team_id, run_id));
  const sweepq::v1::Artifact* best = nullptr;
  for (const auto& a : all) {
    if (a.name() != name) continue;
    if (attempt != 0 && a.attempt() != attempt) continue;
    if (best == nullptr || a.attempt() > best->attempt()) best = &a;
  }
  if (best == nullptr) {
    return absl::NotFoundError(absl::StrCat("run ", run_id,
                                            " has no artifact named '", name,
                                            "'"));
  }
  ASSIGN_OR_RETURN(auto reader, artifacts_->OpenBlob(best->sha256()));
  return std::make_pair(*best, std::move(reader));
}

absl::Status Coordinator::WatchRun(
    int64_t team_id, const sweepq::v1::WatchRunRequest& request,
    const std::function<bool(const sweepq::v1::WatchRunResponse&)>& emit,
    const CancelledFn& cancelled) {
  int64_t metric_seq = request.after_metric_seq();
  int64_t event_seq = request.after_event_seq();
  constexpr uint32_t kPageSize = 2000;
  while (true) {
    uint64_t generation;
    {
      absl::MutexLock lock(&mu_);
      generation = event_generation_;
    }
    ASSIGN_OR_RETURN(store::WatchBatch batch,
                     store_->ReadRunStream(team_id, request.run_id(),
                                           metric_seq, event_seq, kPageSize));
    // Merge the two streams by time so a reader sees epochs and state
    // changes interleaved as they happened; on a tie the event goes first
    // (the RUNNING transition a batch causes precedes that batch's points).
    size_t mi = 0, ei = 0;
    while (mi < batch.metrics.size() || ei < batch.events.size()) {
      sweepq::v1::WatchRunResponse item;
      bool take_metric =
          ei >= batch.events.size() ||
          (mi < batch.metrics.size() &&
           batch.metrics[mi].wall_time_ms() < batch.events[ei].time_ms());
      if (take_metric) {
        metric_seq = batch.metrics[mi].seq();
        *item.mutable_metric() = batch.metrics[mi++];
      } else {
        event_seq = batch.events[ei].seq();
        *item.mutable_event() = batch.events[ei++];
      }
      item.set_state(batch.state);
      item.set_metric_seq(metric_seq);
      item.set_event_seq(event_seq);
      if (!emit(item)) return absl::CancelledError("watcher went away");
    }
    bool page_full = batch.metrics.size() == kPageSize ||
                     batch.events.size() == kPageSize;
    if (page_full) continue;
    if (store::IsFinal(batch.state)) return absl::OkStatus();
    absl::MutexLock lock(&mu_);
    while (event_generation_ == generation && !shutting_down_) {
      events_appended_.WaitWithTimeout(&mu_, kWaitSlice);
      if (cancelled()) return absl::CancelledError("watcher went away");
    }
    if (shutting_down_) {
      return absl::UnavailableError("coordinator is shutting down");
    }
  }
}

// ---- Workers ----

absl::StatusOr<sweepq::v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    int64_t team_id, const sweepq::v1::RegisterWorkerRequest& request) {
  if (request.worker_id().empty()) {
    return absl::InvalidArgumentError("worker_id is empty");
  }
  RETURN_IF_ERROR(CheckLength("worker_id", request.worker_id(), kMaxNameBytes));
  RETURN_IF_ERROR(CheckLength("host", request.host(), kMaxNameBytes));
  RETURN_IF_ERROR(CheckLength("version", request.version(), kMaxNameBytes));
  if (request.datasets_size() > 1000) {
    return absl::InvalidArgumentError("more than 1000 datasets");
  }
  sweepq::v1::Worker w;
  w.set_worker_id(request.worker_id());
  w.set_host(request.host());
  w.set_slots(request.slots());
  for (const auto& d : request.datasets()) {
    RETURN_IF_ERROR(CheckLength("dataset name", d, kMaxNameBytes));
    w.add_datasets(d);
  }
  w.set_version(request.version());
  ASSIGN_OR_RETURN(sweepq::v1::Worker stored,
                   store_->UpsertWorker(team_id, w, clock_->NowMs()));
  RememberDatasets(team_id, stored);
  LOG(INFO) << "worker " << stored.worker_id() << " registered (host "
            << stored.host() << ", " << stored.slots() << " slots)";
  sweepq::v1::RegisterWorkerResponse response;
  *response.mutable_worker() = std::move(stored);
  response.set_lease_ttl_ms(options_.lease_ttl_ms);
  response.set_heartbeat_interval_ms(options_.lease_ttl_ms / 3);
  return response;
}

uint64_t Coordinator::QueueGeneration() {
  absl::MutexLock lock(&mu_);
  return queue_generation_;
}

bool Coordinator::WaitForQueueChange(uint64_t seen, absl::Duration max_wait) {
  const absl::Time deadline = absl::Now() + max_wait;
  absl::MutexLock lock(&mu_);
  while (queue_generation_ == seen && !shutting_down_) {
    if (queue_changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return !shutting_down_;
}

sweepq::v1::LeaseResponse Coordinator::EmptyLeaseResponse() const {
  sweepq::v1::LeaseResponse response;
  response.set_heartbeat_interval_ms(options_.lease_ttl_ms / 3);
  response.set_directive(sweepq::v1::DIRECTIVE_CONTINUE);
  return response;
}

absl::StatusOr<std::optional<sweepq::v1::LeaseResponse>>
Coordinator::CheckLeasingWorker(int64_t team_id, const std::string& worker_id,
                                sweepq::v1::Worker* worker) {
  ASSIGN_OR_RETURN(*worker, store_->GetWorker(team_id, worker_id));
  if (worker->state() == sweepq::v1::WORKER_STATE_DRAINING) {
    sweepq::v1::LeaseResponse response = EmptyLeaseResponse();
    response.set_directive(sweepq::v1::DIRECTIVE_DRAIN);
    return response;
  }
  if (worker->state() == sweepq::v1::WORKER_STATE_QUARANTINED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", worker->worker_id(), " is quarantined (",
        worker->quarantine_reason(),
        "); a teammate can run `sweepq workers clear ", worker->worker_id(),
        "` once the host is fixed"));
  }
  return std::nullopt;
}

sweepq::v1::LeaseResponse Coordinator::LeaseAnswer(
    int64_t team_id, std::optional<store::LeaseGrant> grant) {
  sweepq::v1::LeaseResponse response = EmptyLeaseResponse();
  if (!grant.has_value()) return response;
  // One line per lease and per finish (Finished), as operators expect; a
  // load test silences them with --minloglevel=1, and then they cost
  // nothing (InfoLogged).
  LOG_IF(INFO, InfoLogged())
      << "lease run " << grant->run.run_id() << " attempt "
      << grant->lease.attempt() << " -> worker " << grant->run.worker_id();
  // Resume from the newest checkpoint an earlier attempt uploaded.
  if (grant->lease.attempt() > 1) {
    auto artifacts = store_->ListArtifacts(team_id, grant->run.run_id());
    if (artifacts.ok()) {
      for (const auto& a : *artifacts) {
        if (a.name() == "last.ckpt" &&
            (!response.has_resume_from() ||
             a.attempt() > response.resume_from().attempt())) {
          *response.mutable_resume_from() = a;
        }
      }
    }
  }
  response.set_granted(true);
  *response.mutable_run() = std::move(grant->run);
  *response.mutable_lease() = grant->lease;
  response.set_lease_expires_at_ms(grant->lease_expires_at_ms);
  NotifyEventsAppended();
  return response;
}

Coordinator::Datasets Coordinator::RememberDatasets(
    int64_t team_id, const sweepq::v1::Worker& worker) {
  auto datasets = std::make_shared<const std::vector<std::string>>(
      worker.datasets().begin(), worker.datasets().end());
  absl::MutexLock lock(&datasets_mu_);
  worker_datasets_[{team_id, worker.worker_id()}] = datasets;
  return datasets;
}

absl::StatusOr<Coordinator::Datasets> Coordinator::LeasingDatasets(
    int64_t team_id, const sweepq::v1::LeaseRequest& request,
    std::optional<sweepq::v1::LeaseResponse>* answer) {
  {
    absl::MutexLock lock(&datasets_mu_);
    auto it = worker_datasets_.find(std::pair(team_id, request.worker_id()));
    if (it != worker_datasets_.end()) return it->second;
  }
  sweepq::v1::Worker worker;
  ASSIGN_OR_RETURN(*answer,
                   CheckLeasingWorker(team_id, request.worker_id(), &worker));
  if (answer->has_value()) return nullptr;
  return RememberDatasets(team_id, worker);
}

absl::StatusOr<sweepq::v1::LeaseResponse> Coordinator::RefusedLease(
    int64_t team_id, const std::string& worker_id, absl::Status refused) {
  sweepq::v1::Worker worker;
  ASSIGN_OR_RETURN(std::optional<sweepq::v1::LeaseResponse> answer,
                   CheckLeasingWorker(team_id, worker_id, &worker));
  if (answer.has_value()) return *std::move(answer);
  return refused;  // active again by now: the store's reason stands
}

absl::StatusOr<sweepq::v1::LeaseResponse> Coordinator::LeaseResult(
    int64_t team_id, const std::string& worker_id,
    absl::StatusOr<std::optional<store::LeaseGrant>> grant) {
  if (absl::IsFailedPrecondition(grant.status())) {
    return RefusedLease(team_id, worker_id, grant.status());
  }
  if (!grant.ok()) return grant.status();
  return LeaseAnswer(team_id, *std::move(grant));
}

absl::StatusOr<sweepq::v1::LeaseResponse> Coordinator::TryLease(
    int64_t team_id, const sweepq::v1::LeaseRequest& request) {
  std::optional<sweepq::v1::LeaseResponse> answer;
  ASSIGN_OR_RETURN(Datasets datasets,
                   LeasingDatasets(team_id, request, &answer));
  if (answer.has_value()) return *std::move(answer);
  return LeaseResult(team_id, request.worker_id(),
                     store_->LeaseRun(team_id, request.worker_id(), *datasets,
                                      clock_->NowMs(), options_.lease_ttl_ms));
}

void Coordinator::TryLeaseAsync(int64_t team_id,
                                const sweepq::v1::LeaseRequest& request,
                                Done<sweepq::v1::LeaseResponse> done) {
  std::optional<sweepq::v1::LeaseResponse> answer;
  absl::StatusOr<Datasets> datasets =
      LeasingDatasets(team_id, request, &answer);
  if (!datasets.ok()) return done(datasets.status());
  if (answer.has_value()) return done(*std::move(answer));
  // What the store reads until `done`: the worker's id and data sets.
  auto worker_id = std::make_unique<std::string>(request.worker_id());
  const std::string& id = *worker_id;
  const std::vector<std::string>& served = **datasets;
  store_->LeaseRunAsync(
      team_id, id, served, clock_->NowMs(), options_.lease_ttl_ms,
      [this, team_id, worker_id = std::move(worker_id),
       datasets = *std::move(datasets), done = std::move(done)](
          absl::StatusOr<std::optional<store::LeaseGrant>> grant) mutable {
        done(LeaseResult(team_id, *worker_id, std::move(grant)));
      });
}

absl::Duration Coordinator::LeaseWait(const sweepq::v1::LeaseRequest& request) const {
  return absl::Milliseconds(
      std::clamp<int64_t>(request.wait_ms(), 0, options_.max_lease_wait_ms));
}

absl::StatusOr<sweepq::v1::LeaseResponse> Coordinator::Lease(
    int64_t team_id, const sweepq::v1::LeaseRequest& request,
    const CancelledFn& cancelled) {
  const absl::Time deadline = absl::Now() + LeaseWait(request);
  while (true) {
    const uint64_t generation = QueueGeneration();
    ASSIGN_OR_RETURN(sweepq::v1::LeaseResponse response,
                     TryLease(team_id, request));
    if (response.granted() ||
        response.directive() == sweepq::v1::DIRECTIVE_DRAIN ||
        absl::Now() >= deadline || cancelled()) {
      return response;
    }
    if (!WaitForQueueChange(generation,
                            std::min(kWaitSlice, deadline - absl::Now()))) {
      return absl::UnavailableError("coordinator is shutting down");
    }
  }
}

absl::StatusOr<sweepq::v1::HeartbeatResponse> Coordinator::Heartbeat(
    int64_t team_id, const sweepq::v1::HeartbeatRequest& request) {
  RETURN_IF_ERROR(CheckLease(request.lease()));
  ASSIGN_OR_RETURN(store::HeartbeatResult result,
                   store_->Heartbeat(team_id, request.worker_id(),
                                     request.lease(), clock_->NowMs(),
                                     options_.lease_ttl_ms));
  sweepq::v1::HeartbeatResponse response;
  response.set_directive(result.directive);
  response.set_lease_expires_at_ms(result.lease_expires_at_ms);
  return response;
}

namespace {

// The request checks of ReportEvents, before the store sees the batch.
absl::Status CheckReportBatch(const sweepq::v1::ReportEventsRequest& request) {
  RETURN_IF_ERROR(CheckLease(request.lease()));
  if (static_cast<size_t>(request.points_size()) > kMaxPointsPerBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch has ", request.points_size(),
                     " metric points; the limit is ", kMaxPointsPerBatch));
  }
  if (static_cast<size_t>(request.events_size()) > kMaxEventsPerBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch has ", request.events_size(),
                     " events; the limit is ", kMaxEventsPerBatch));
  }
  for (const auto& p : request.points()) {
    if (p.name().empty()) {
      return absl::InvalidArgumentError("metric point without a name");
    }
    RETURN_IF_ERROR(CheckLength("metric name", p.name(), kMaxMetricNameBytes));
  }
  for (const auto& e : request.events()) {
    RETURN_IF_ERROR(CheckLength("event kind", e.kind(), kMaxMetricNameBytes));
    RETURN_IF_ERROR(
        CheckLength("event payload", e.payload_json(), kMaxEventPayloadBytes));
  }
  return absl::OkStatus();
}

// A message with `finish` carries nothing of a batch.
absl::Status CheckFinishMessage(
    const sweepq::v1::ReportEventsRequest& request) {
  if (request.points_size() > 0 || request.events_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a message with `finish` carries no points or events (it has ",
        request.points_size(), " and ", request.events_size(),
        "): send them in a batch before it"));
  }
  const sweepq::v1::LeaseRef& lease = request.lease();
  const sweepq::v1::LeaseRef& ended = request.finish().lease();
  if (request.has_lease() &&
      (lease.run_id() != ended.run_id() || lease.attempt() != ended.attempt() ||
       lease.lease_id() != ended.lease_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the message's lease (run ", lease.run_id(), " attempt ",
        lease.attempt(), ") is not the lease its `finish` ends (run ",
        ended.run_id(), " attempt ", ended.attempt(),
        "); leave `lease` unset"));
  }
  return absl::OkStatus();
}

// The answer to a finish message: FinishRun's, echoing the batch_seq.
sweepq::v1::ReportEventsResponse FinishAnswer(
    const sweepq::v1::ReportEventsRequest& request,
    sweepq::v1::FinishRunResponse finished) {
  sweepq::v1::ReportEventsResponse response;
  response.set_acked_batch_seq(request.batch_seq());
  *response.mutable_finished() = std::move(finished);
  return response;
}

}  // namespace

sweepq::v1::ReportEventsResponse Coordinator::Reported(
    const sweepq::v1::ReportEventsRequest& request,
    sweepq::v1::Directive directive) {
  NotifyEventsAppended();
  sweepq::v1::ReportEventsResponse response;
  response.set_acked_batch_seq(request.batch_seq());
  response.set_directive(directive);
  return response;
}

void Coordinator::ReportEventsAsync(
    int64_t team_id, const sweepq::v1::ReportEventsRequest& request,
    Done<sweepq::v1::ReportEventsResponse> done) {
  if (request.has_finish()) {
    absl::Status valid = CheckFinishMessage(request);
    if (!valid.ok()) return done(std::move(valid));
    return FinishRunAsync(
        team_id, request.finish(),
        [&request, done = std::move(done)](
            absl::StatusOr<sweepq::v1::FinishRunResponse> finished) mutable {
          if (!finished.ok()) return done(finished.status());
          done(FinishAnswer(request, *std::move(finished)));
        });
  }
  absl::Status valid = CheckReportBatch(request);
  if (!valid.ok()) return done(std::move(valid));
  store_->AppendEventsAsync(
      team_id, request.lease(), request.batch_seq(), request.points(),
      request.events(), clock_->NowMs(),
      [this, &request, done = std::move(done)](
          absl::StatusOr<sweepq::v1::Directive> directive) mutable {
        if (!directive.ok()) return done(directive.status());
        done(Reported(request, *directive));
      });
}

absl::Status Coordinator::CheckUploadAllowed(
    int64_t team_id, const sweepq::v1::LeaseRef& lease,
    const sweepq::v1::Artifact& header) {
  RETURN_IF_ERROR(CheckLease(lease));
  if (header.name().empty() || header.name().find('/') != std::string::npos ||
      header.name() == "." || header.name() == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "artifact name '", header.name(), "' must be a non-empty file name"));
  }
  RETURN_IF_ERROR(CheckLength("artifact name", header.name(), kMaxNameBytes));
  if (header.size() < 0 || header.size() > kMaxArtifactBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "artifact size ", header.size(), " is outside 0..", kMaxArtifactBytes));
  }
  // Fencing before accepting bytes: a zombie learns at once it lost the lease.
  ASSIGN_OR_RETURN(sweepq::v1::Run run, store_->GetRun(team_id, lease.run_id()));
  if (run.attempt() != lease.attempt() ||
      (run.state() != sweepq::v1::RUN_STATE_LEASED &&
       run.state() != sweepq::v1::RUN_STATE_RUNNING)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease of run ", lease.run_id(), " attempt ", lease.attempt(),
        " is no longer current"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<sweepq::v1::Artifact,
                         std::unique_ptr<ArtifactStore::Reader>>>
Coordinator::OpenArtifactForLease(int64_t team_id, const std::string& worker_id,
                                  const sweepq::v1::LeaseRef& lease,
                                  const std::string& name, uint32_t attempt,
                                  int64_t source_run_id) {
  RETURN_IF_ERROR(CheckLease(lease));
  ASSIGN_OR_RETURN(sweepq::v1::Run run, store_->GetRun(team_id, lease.run_id()));
  // The attempt number changes with every lease, so (run, attempt, state,
  // holder) identifies the current lease as the upload check does.
  if (run.attempt() != lease.attempt() || run.worker_id() != worker_id ||
      (run.state() != sweepq::v1::RUN_STATE_LEASED &&
       run.state() != sweepq::v1::RUN_STATE_RUNNING)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease of run ", lease.run_id(), " attempt ", lease.attempt(),
        " is not current or not held by worker \"", worker_id, "\""));
  }
  if (source_run_id == 0 || source_run_id == lease.run_id()) {
    return OpenArtifact(team_id, lease.run_id(), name, attempt);
  }
  const auto& sources = run.config().job().source_runs();
  if (std::find(sources.begin(), sources.end(), source_run_id) ==
      sources.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", source_run_id, " is not a source run of the job ",
        lease.run_id(), "; a lease may fetch only its own run's artifacts "
        "and its job's sources'"));
  }
  return OpenArtifact(team_id, source_run_id, name, attempt);
}

absl::StatusOr<sweepq::v1::Artifact> Coordinator::AddArtifact(
    int64_t team_id, const sweepq::v1::LeaseRef& lease,
    const sweepq::v1::Artifact& stored) {
  sweepq::v1::Artifact a = stored;
  a.set_run_id(lease.run_id());
  a.set_attempt(lease.attempt());
  a.set_created_at_ms(clock_->NowMs());
  RETURN_IF_ERROR(store_->AddArtifact(team_id, lease, a));
  return a;
}

absl::StatusOr<store::FinishRequest> Coordinator::FinishRequestOf(
    const sweepq::v1::FinishRunRequest& request) const {
  RETURN_IF_ERROR(CheckLease(request.lease()));
  RETURN_IF_ERROR(CheckLength("reason", request.reason(), kMaxReasonBytes));
  if (request.outcome() == sweepq::v1::OUTCOME_UNSPECIFIED) {
    return absl::InvalidArgumentError("outcome is required");
  }
  store::FinishRequest finish;
  finish.lease = request.lease();
  finish.worker_id = request.worker_id();
  finish.outcome = request.outcome();
  finish.retryable = request.retryable();
  finish.reason = request.reason();
  finish.now_ms = clock_->NowMs();
  finish.quarantine_after = options_.quarantine_after;
  return finish;
}

sweepq::v1::FinishRunResponse Coordinator::Finished(
    const sweepq::v1::FinishRunRequest& request, RunState state) {
  LOG_IF(INFO, InfoLogged())
      << "finish run " << request.lease().run_id() << " attempt "
      << request.lease().attempt() << " by " << request.worker_id() << ": "
      << sweepq::v1::Outcome_Name(request.outcome()) << " -> "
      << sweepq::v1::RunState_Name(state)
      << (request.reason().empty() ? "" : " (" + request.reason() + ")");
  if (state == sweepq::v1::RUN_STATE_QUEUED) NotifyQueueChanged();
  NotifyEventsAppended();
  sweepq::v1::FinishRunResponse response;
  response.set_state(state);
  return response;
}

sweepq::v1::LeaseRequest Coordinator::NextLeaseRequest(
    const sweepq::v1::FinishRunRequest& request) {
  sweepq::v1::LeaseRequest next;
  next.set_worker_id(request.worker_id());
  return next;  // wait_ms 0: the worker long-polls with Lease if need be
}

void Coordinator::AddNextLease(const sweepq::v1::FinishRunRequest& request,
                               absl::StatusOr<sweepq::v1::LeaseResponse> next,
                               sweepq::v1::FinishRunResponse* response) {
  if (next.ok()) {
    *response->mutable_next() = *std::move(next);
    return;
  }
  // The finish stands; the worker's next Lease call gets this error.
  LOG(INFO) << "finish run " << request.lease().run_id()
            << ": no next lease for " << request.worker_id() << ": "
            << next.status();
}

absl::StatusOr<sweepq::v1::FinishRunResponse> Coordinator::FinishRun(
    int64_t team_id, const sweepq::v1::FinishRunRequest& request) {
  ASSIGN_OR_RETURN(store::FinishRequest finish, FinishRequestOf(request));
  ASSIGN_OR_RETURN(RunState state, store_->FinishRun(team_id, finish));
  sweepq::v1::FinishRunResponse response = Finished(request, state);
  if (request.lease_next()) {
    AddNextLease(request, TryLease(team_id, NextLeaseRequest(request)),
                 &response);
  }
  return response;
}

void Coordinator::FinishRunAsync(int64_t team_id,
                                 const sweepq::v1::FinishRunRequest& request,
                                 Done<sweepq::v1::FinishRunResponse> done) {
  absl::StatusOr<store::FinishRequest> made = FinishRequestOf(request);
  if (!made.ok()) return done(made.status());
  auto finish = std::make_unique<store::FinishRequest>(*std::move(made));
  const store::FinishRequest& stored = *finish;
  store_->FinishRunAsync(
      team_id, stored,
      [this, team_id, &request, finish = std::move(finish),
       done = std::move(done)](absl::StatusOr<RunState> state) mutable {
        if (!state.ok()) return done(state.status());
        sweepq::v1::FinishRunResponse response = Finished(request, *state);
        if (!request.lease_next()) return done(std::move(response));
        // The finish is committed; the lease is a second write, answered
        // together with it.
        TryLeaseAsync(
            team_id, NextLeaseRequest(request),
            [&request, response = std::move(response), done = std::move(done)](
                absl::StatusOr<sweepq::v1::LeaseResponse> next) mutable {
              AddNextLease(request, std::move(next), &response);
              done(std::move(response));
            });
      });
}

absl::StatusOr<size_t> Coordinator::ExpireLeasesNow() {
  ASSIGN_OR_RETURN(std::vector<store::ExpiredLease> expired,
                   store_->ExpireLeases(clock_->NowMs()));
  for (const auto& e : expired) {
    LOG(WARNING) << "lease expired: run " << e.run_id << " attempt "
                 << e.attempt << " on worker " << e.worker_id << " -> "
                 << sweepq::v1::RunState_Name(e.new_state);
  }
  if (!expired.empty()) {
    NotifyQueueChanged();
    NotifyEventsAppended();
  }
  return expired.size();
}

void Coordinator::ExpiryLoop() {
  absl::MutexLock lock(&mu_);
  while (!shutting_down_) {
    mu_.AwaitWithTimeout(absl::Condition(&shutting_down_),
                         absl::Milliseconds(options_.expiry_interval_ms));
    if (shutting_down_) break;
    mu_.Unlock();
    absl::StatusOr<size_t> n = ExpireLeasesNow();
    if (!n.ok()) LOG(ERROR) << "lease expiry failed: " << n.status();
    mu_.Lock();
  }
}

}  // namespace sweepq::server
