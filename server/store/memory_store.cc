#include "server/store/memory_store.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "server/store/run_rules.h"

namespace sweepq::store {
namespace {

using ::sweepq::v1::Artifact;
using ::sweepq::v1::Directive;
using ::sweepq::v1::LeaderboardEntry;
using ::sweepq::v1::LeaseRef;
using ::sweepq::v1::MetricPoint;
using ::sweepq::v1::Run;
using ::sweepq::v1::RunEvent;
using ::sweepq::v1::RunState;
using ::sweepq::v1::Sweep;
using ::sweepq::v1::Worker;

constexpr uint32_t kDefaultListLimit = 100;
constexpr uint32_t kDefaultLeaderboardTop = 20;
constexpr char kLeaseExpired[] = "lease expired";





// A run as ListRuns and Leaderboard return it.
Run Summary(const Run& run) {
  Run out = run;
  out.clear_config();
  out.clear_attempts();
  return out;
}

void ClearLease(Run& run) {
  run.set_worker_id("");
  run.set_lease_expires_at_ms(0);
}

}  // namespace

InMemoryStore::InMemoryStore() = default;
InMemoryStore::~InMemoryStore() = default;

// ---- Helpers ----

absl::StatusOr<InMemoryStore::RunRow*> InMemoryStore::FindRunLocked(
    int64_t team_id, int64_t run_id) {
  auto it = runs_.find(run_id);
  if (it == runs_.end() || it->second.team_id != team_id) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
  }
  return &it->second;
}

absl::StatusOr<InMemoryStore::SweepRow*> InMemoryStore::FindSweepLocked(
    int64_t team_id, int64_t sweep_id) {
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end() || it->second.team_id != team_id) {
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " not found"));
  }
  return &it->second;
}

absl::StatusOr<Worker*> InMemoryStore::FindWorkerLocked(
    int64_t team_id, const std::string& worker_id) {
  auto it = workers_.find({team_id, worker_id});
  if (it == workers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("worker \"", worker_id, "\" not found"));
  }
  return &it->second;
}

absl::StatusOr<InMemoryStore::RunRow*> InMemoryStore::FindLeasedRunLocked(
    int64_t team_id, const LeaseRef& lease, const std::string* worker_id) {
  auto row_or = FindRunLocked(team_id, lease.run_id());
  if (!row_or.ok()) return row_or.status();
  RunRow* row = *row_or;
  const Run& run = row->run;
  if (!IsActive(run.state()) || run.attempt() != lease.attempt() ||
      row->lease_id != lease.lease_id()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease of run ", lease.run_id(), " attempt ", lease.attempt(),
        " is not current (run is ", v1::RunState_Name(run.state()),
        " at attempt ", run.attempt(), ")"));
  }
  if (worker_id != nullptr && *worker_id != run.worker_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease of run ", lease.run_id(), " is held by worker \"",
                     run.worker_id(), "\", not \"", *worker_id, "\""));
  }
  return row;
}

void InMemoryStore::AppendEventLocked(RunRow& row, RunEvent event) {
  int64_t seq = next_event_seq_++;
  event.set_attempt(row.run.attempt());
  event.set_seq(seq);
  row.events.emplace(seq, std::move(event));
}

void InMemoryStore::SetStateLocked(RunRow& row, RunState state,
                                   const std::string& worker,
                                   const std::string& reason, int64_t now_ms) {
  row.run.set_state(state);
  if (IsActive(state)) {
    active_runs_.insert(row.run.run_id());
  } else {
    active_runs_.erase(row.run.run_id());
  }
  RunEvent event;
  event.set_kind("state");
  event.set_time_ms(now_ms);
  event.set_payload_json(
      StateEventPayload(state, row.run.attempt(), worker, reason));
  AppendEventLocked(row, std::move(event));
}

void InMemoryStore::CloseAttempt(RunRow& row, RunState outcome,
                                 const std::string& reason, int64_t now_ms) {
  auto* attempts = row.run.mutable_attempts();
  for (auto it = attempts->rbegin(); it != attempts->rend(); ++it) {
    if (it->attempt() == row.run.attempt()) {
      it->set_ended_at_ms(now_ms);
      it->set_outcome(outcome);
      it->set_reason(reason);
      return;
    }
  }
}

absl::StatusOr<bool> InMemoryStore::CancelLocked(RunRow& row, int64_t now_ms) {
  Run& run = row.run;
  if (run.state() == v1::RUN_STATE_QUEUED) {
    run.set_finished_at_ms(now_ms);
    SetStateLocked(row, v1::RUN_STATE_CANCELLED, "", "cancelled while queued",
                   now_ms);
    return true;
  }
  if (IsActive(run.state())) {
    run.set_cancel_requested(true);
    return false;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "run ", run.run_id(), " is already ", v1::RunState_Name(run.state())));
}

Directive InMemoryStore::DirectiveLocked(const RunRow& row) {
  if (row.run.cancel_requested()) return v1::DIRECTIVE_CANCEL;
  auto it = workers_.find({row.team_id, row.run.worker_id()});
  if (it != workers_.end() && it->second.state() == v1::WORKER_STATE_DRAINING) {
    return v1::DIRECTIVE_DRAIN;
  }
  return v1::DIRECTIVE_CONTINUE;
}

Worker InMemoryStore::WorkerViewLocked(int64_t team_id, const Worker& worker) {
  Worker out = worker;
  out.clear_running_run_ids();
  for (int64_t run_id : active_runs_) {
    const RunRow& row = runs_.at(run_id);
    if (row.team_id == team_id && row.run.worker_id() == worker.worker_id()) {
      out.add_running_run_ids(run_id);
    }
  }
  return out;
}

// ---- Teams ----

absl::StatusOr<int64_t> InMemoryStore::CreateTeam(
    const std::string& name, const std::string& member_token_hash,
    const std::string& worker_token_hash, int64_t now_ms) {
  if (name.empty()) return absl::InvalidArgumentError("team name is empty");
  absl::MutexLock lock(&mu_);
  for (const auto& [id, team] : teams_) {
    if (team.name == name) {
      return absl::AlreadyExistsError(
          absl::StrCat("team \"", name, "\" already exists"));
    }
  }
  int64_t id = next_team_id_++;
  teams_[id] = TeamRow{name, member_token_hash, worker_token_hash, now_ms};
  return id;
}

absl::StatusOr<TeamPrincipal> InMemoryStore::FindToken(
    const std::string& token_hash) {
  absl::MutexLock lock(&mu_);
  if (!token_hash.empty()) {
    for (const auto& [id, team] : teams_) {
      if (team.member_token_hash == token_hash) {
        return TeamPrincipal{id, team.name, Role::kMember};
      }
      if (team.worker_token_hash == token_hash) {
        return TeamPrincipal{id, team.name, Role::kWorker};
      }
    }
  }
  return absl::NotFoundError("unknown token");
}

absl::Status InMemoryStore::RotateToken(const std::string& team_name, Role role,
                                        const std::string& new_hash) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, team] : teams_) {
    if (team.name != team_name) continue;
    (role == Role::kWorker ? team.worker_token_hash : team.member_token_hash) =
        new_hash;
    return absl::OkStatus();
  }
  return absl::NotFoundError(
      absl::StrCat("team \"", team_name, "\" not found"));
}

// ---- Sweeps and runs ----

absl::StatusOr<InsertSweepResult> InMemoryStore::InsertSweep(
    int64_t team_id, const NewSweep& sweep, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  if (teams_.count(team_id) == 0) {
    return absl::NotFoundError(absl::StrCat("team ", team_id, " not found"));
  }
  if (!sweep.idempotency_key.empty()) {
    auto it = idempotency_.find({team_id, sweep.idempotency_key});
    if (it != idempotency_.end()) {
      const SweepRow& earlier = sweeps_.at(it->second);
      return InsertSweepResult{it->second, earlier.run_ids, true};
    }
  }
  if (sweep.max_attempts == 0) {
    return absl::InvalidArgumentError("max_attempts must be at least 1");
  }

  int64_t sweep_id = next_sweep_id_++;
  SweepRow& row = sweeps_[sweep_id];
  row.team_id = team_id;
  row.max_attempts = sweep.max_attempts;
  Sweep& s = row.sweep;
  s.set_sweep_id(sweep_id);
  s.set_name(sweep.name);
  s.set_spec_yaml(sweep.spec_yaml);
  s.set_metric(sweep.metric);
  s.set_goal(sweep.goal);
  s.set_run_count(static_cast<uint32_t>(sweep.runs.size()));
  s.set_priority(sweep.priority);
  s.set_created_at_ms(now_ms);
  s.set_idempotency_key(sweep.idempotency_key);
  if (!sweep.idempotency_key.empty()) {
    idempotency_[{team_id, sweep.idempotency_key}] = sweep_id;
  }

  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    const NewRun& new_run = sweep.runs[i];
    int64_t run_id = next_run_id_++;
    RunRow& run_row = runs_[run_id];
    run_row.team_id = team_id;
    Run& run = run_row.run;
    run.set_run_id(run_id);
    run.set_sweep_id(sweep_id);
    run.set_index(static_cast<uint32_t>(i));
    *run.mutable_config() = new_run.config;
    run.mutable_params()->insert(new_run.params.begin(), new_run.params.end());
    run.set_priority(sweep.priority);
    run.set_max_attempts(sweep.max_attempts);
    run.set_dataset(new_run.dataset);
    run.set_metric(sweep.metric);
    run.set_goal(sweep.goal);
    run.set_created_at_ms(now_ms);
    SetStateLocked(run_row, v1::RUN_STATE_QUEUED, "", "submitted", now_ms);
    row.run_ids.push_back(run_id);
  }
  return InsertSweepResult{sweep_id, row.run_ids, false};
}

absl::StatusOr<Sweep> InMemoryStore::GetSweep(int64_t team_id,
                                              int64_t sweep_id) {
  absl::MutexLock lock(&mu_);
  auto row = FindSweepLocked(team_id, sweep_id);
  if (!row.ok()) return row.status();
  return (*row)->sweep;
}

absl::StatusOr<std::vector<Run>> InMemoryStore::ListRuns(
    int64_t team_id, const RunFilter& filter) {
  absl::MutexLock lock(&mu_);
  if (filter.sweep_id != 0) {
    auto sweep = FindSweepLocked(team_id, filter.sweep_id);
    if (!sweep.ok()) return sweep.status();
  }
  const uint32_t limit = filter.limit == 0 ? kDefaultListLimit : filter.limit;
  std::vector<Run> out;
  auto it = filter.before_run_id > 0 ? runs_.lower_bound(filter.before_run_id)
                                     : runs_.end();
  while (it != runs_.begin() && out.size() < limit) {
    --it;
    const RunRow& row = it->second;
    if (row.team_id != team_id) continue;
    if (filter.sweep_id != 0 && row.run.sweep_id() != filter.sweep_id) {
      continue;
    }
    if (filter.state != v1::RUN_STATE_UNSPECIFIED &&
        row.run.state() != filter.state) {
      continue;
    }
    out.push_back(Summary(row.run));
  }
  return out;
}

absl::StatusOr<Run> InMemoryStore::GetRun(int64_t team_id, int64_t run_id) {
  absl::MutexLock lock(&mu_);
  auto row = FindRunLocked(team_id, run_id);
  if (!row.ok()) return row.status();
  return (*row)->run;
}

absl::StatusOr<Run> InMemoryStore::CancelRun(int64_t team_id, int64_t run_id,
                                             int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto row = FindRunLocked(team_id, run_id);
  if (!row.ok()) return row.status();
  auto cancelled = CancelLocked(**row, now_ms);
  if (!cancelled.ok()) return cancelled.status();
  return (*row)->run;
}

absl::StatusOr<std::pair<uint32_t, uint32_t>> InMemoryStore::CancelSweep(
    int64_t team_id, int64_t sweep_id, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto sweep = FindSweepLocked(team_id, sweep_id);
  if (!sweep.ok()) return sweep.status();
  std::pair<uint32_t, uint32_t> counts{0, 0};
  for (int64_t run_id : (*sweep)->run_ids) {
    RunRow& row = runs_.at(run_id);
    if (IsFinal(row.run.state())) continue;
    auto cancelled = CancelLocked(row, now_ms);
    if (!cancelled.ok()) return cancelled.status();
    ++(*cancelled ? counts.first : counts.second);
  }
  return counts;
}

absl::StatusOr<Run> InMemoryStore::RetryRun(int64_t team_id, int64_t run_id,
                                            int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto row_or = FindRunLocked(team_id, run_id);
  if (!row_or.ok()) return row_or.status();
  RunRow& row = **row_or;
  Run& run = row.run;
  if (run.state() != v1::RUN_STATE_FAILED &&
      run.state() != v1::RUN_STATE_CANCELLED &&
      run.state() != v1::RUN_STATE_PRUNED) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " is ", v1::RunState_Name(run.state()),
                     "; only FAILED, CANCELLED or PRUNED runs can be retried"));
  }
  const SweepRow& sweep = sweeps_.at(run.sweep_id());
  run.set_max_attempts(run.attempt() + sweep.max_attempts);
  run.clear_error();
  run.set_retryable(false);
  run.set_cancel_requested(false);
  run.set_finished_at_ms(0);
  ClearLease(run);
  row.lease_id = 0;
  SetStateLocked(row, v1::RUN_STATE_QUEUED, "", "retry requested", now_ms);
  return run;
}

absl::StatusOr<std::vector<LeaderboardEntry>> InMemoryStore::Leaderboard(
    int64_t team_id, const LeaderboardQuery& query) {
  absl::MutexLock lock(&mu_);
  if (query.sweep_id != 0) {
    auto sweep = FindSweepLocked(team_id, query.sweep_id);
    if (!sweep.ok()) return sweep.status();
  }
  std::vector<const RunRow*> ranked;
  for (const auto& [id, row] : runs_) {
    const Run& run = row.run;
    if (row.team_id != team_id || !run.has_best()) continue;
    if (query.sweep_id != 0 && run.sweep_id() != query.sweep_id) continue;
    if (!query.metric.empty() && run.metric() != query.metric) continue;
    ranked.push_back(&row);
  }
  std::sort(ranked.begin(), ranked.end(),
            [](const RunRow* a_row, const RunRow* b_row) {
              const Run& a = a_row->run;
              const Run& b = b_row->run;
              double sa = Score(a.goal(), a.best_value());
              double sb = Score(b.goal(), b.best_value());
              if (sa != sb) return sa > sb;
              if (a.best_step() != b.best_step()) {
                return a.best_step() < b.best_step();
              }
              bool a_done = a.finished_at_ms() != 0;
              bool b_done = b.finished_at_ms() != 0;
              if (a_done != b_done) return a_done;
              if (a.finished_at_ms() != b.finished_at_ms()) {
                return a.finished_at_ms() < b.finished_at_ms();
              }
              return a.run_id() < b.run_id();
            });
  const uint32_t top = query.top == 0 ? kDefaultLeaderboardTop : query.top;
  if (ranked.size() > top) ranked.resize(top);

  std::vector<LeaderboardEntry> out;
  out.reserve(ranked.size());
  for (const RunRow* row : ranked) {
    LeaderboardEntry& entry = out.emplace_back();
    entry.set_rank(static_cast<uint32_t>(out.size()));
    *entry.mutable_run() = Summary(row->run);
    const uint32_t attempt = row->run.best_attempt();
    const int64_t step = row->run.best_step();
    auto* metrics = entry.mutable_metrics_at_best();
    for (auto it = row->metric_keys.lower_bound({attempt, step, ""});
         it != row->metric_keys.end() && std::get<0>(it->first) == attempt &&
         std::get<1>(it->first) == step;
         ++it) {
      (*metrics)[std::get<2>(it->first)] = row->metrics.at(it->second).value();
    }
  }
  return out;
}

absl::StatusOr<WatchBatch> InMemoryStore::ReadRunStream(
    int64_t team_id, int64_t run_id, int64_t after_metric_seq,
    int64_t after_event_seq, uint32_t limit) {
  absl::MutexLock lock(&mu_);
  auto row_or = FindRunLocked(team_id, run_id);
  if (!row_or.ok()) return row_or.status();
  const RunRow& row = **row_or;
  WatchBatch batch;
  batch.state = row.run.state();
  for (auto it = row.metrics.upper_bound(after_metric_seq);
       it != row.metrics.end() && (limit == 0 || batch.metrics.size() < limit);
       ++it) {
    batch.metrics.push_back(it->second);
  }
  for (auto it = row.events.upper_bound(after_event_seq);
       it != row.events.end() && (limit == 0 || batch.events.size() < limit);
       ++it) {
    batch.events.push_back(it->second);
  }
  return batch;
}

// ---- Workers ----

absl::StatusOr<Worker> InMemoryStore::UpsertWorker(int64_t team_id,
                                                   const Worker& worker,
                                                   int64_t now_ms) {
  if (worker.worker_id().empty()) {
    return absl::InvalidArgumentError("worker_id is empty");
  }
  absl::MutexLock lock(&mu_);
  if (teams_.count(team_id) == 0) {
    return absl::NotFoundError(absl::StrCat("team ", team_id, " not found"));
  }
  auto [it, inserted] = workers_.try_emplace({team_id, worker.worker_id()});
  Worker& w = it->second;
  if (inserted) {
    w.set_worker_id(worker.worker_id());
    w.set_state(v1::WORKER_STATE_ACTIVE);
    w.set_registered_at_ms(now_ms);
  }
  w.set_host(worker.host());
  w.set_slots(worker.slots());
  *w.mutable_datasets() = worker.datasets();
  w.set_version(worker.version());
  w.set_last_seen_at_ms(now_ms);
  return WorkerViewLocked(team_id, w);
}

absl::StatusOr<std::vector<Worker>> InMemoryStore::ListWorkers(
    int64_t team_id) {
  absl::MutexLock lock(&mu_);
  std::vector<Worker> out;
  for (auto it = workers_.lower_bound({team_id, ""});
       it != workers_.end() && it->first.first == team_id; ++it) {
    out.push_back(WorkerViewLocked(team_id, it->second));
  }
  return out;
}

absl::StatusOr<Worker> InMemoryStore::GetWorker(int64_t team_id,
                                                const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto worker = FindWorkerLocked(team_id, worker_id);
  if (!worker.ok()) return worker.status();
  return WorkerViewLocked(team_id, **worker);
}

absl::StatusOr<Worker> InMemoryStore::DrainWorker(
    int64_t team_id, const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto worker = FindWorkerLocked(team_id, worker_id);
  if (!worker.ok()) return worker.status();
  if ((*worker)->state() == v1::WORKER_STATE_ACTIVE) {
    (*worker)->set_state(v1::WORKER_STATE_DRAINING);
  }
  return WorkerViewLocked(team_id, **worker);
}

absl::StatusOr<Worker> InMemoryStore::ClearWorker(
    int64_t team_id, const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto worker = FindWorkerLocked(team_id, worker_id);
  if (!worker.ok()) return worker.status();
  (*worker)->set_state(v1::WORKER_STATE_ACTIVE);
  (*worker)->set_consecutive_failures(0);
  (*worker)->clear_quarantine_reason();
  return WorkerViewLocked(team_id, **worker);
}

// ---- Leases ----

absl::StatusOr<std::optional<LeaseGrant>> InMemoryStore::LeaseRun(
    int64_t team_id, const std::string& worker_id,
    const std::vector<std::string>& datasets, int64_t now_ms, int64_t ttl_ms) {
  absl::MutexLock lock(&mu_);
  auto worker_or = FindWorkerLocked(team_id, worker_id);
  if (!worker_or.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker \"", worker_id, "\" is not registered"));
  }
  Worker& worker = **worker_or;
  if (worker.state() != v1::WORKER_STATE_ACTIVE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker \"", worker_id, "\" is ", v1::WorkerState_Name(worker.state()),
        " and may not lease runs"));
  }
  worker.set_last_seen_at_ms(now_ms);

  const std::set<std::string> served(datasets.begin(), datasets.end());
  RunRow* best = nullptr;
  // runs_ is ordered by id, so on equal priority and age the first seen
  // (lowest id) wins.
  for (auto& [id, row] : runs_) {
    const Run& run = row.run;
    if (row.team_id != team_id || run.state() != v1::RUN_STATE_QUEUED ||
        served.count(run.dataset()) == 0) {
      continue;
    }
    if (best == nullptr || run.priority() > best->run.priority() ||
        (run.priority() == best->run.priority() &&
         run.created_at_ms() < best->run.created_at_ms())) {
      best = &row;
    }
  }
  if (best == nullptr) return std::optional<LeaseGrant>();

  Run& run = best->run;
  run.set_attempt(run.attempt() + 1);
  best->lease_id = RandomNonZeroU64();
  run.set_worker_id(worker_id);
  run.set_lease_expires_at_ms(now_ms + ttl_ms);
  run.set_started_at_ms(now_ms);
  v1::Attempt* attempt = run.add_attempts();
  attempt->set_attempt(run.attempt());
  attempt->set_worker_id(worker_id);
  attempt->set_started_at_ms(now_ms);
  SetStateLocked(*best, v1::RUN_STATE_LEASED, worker_id, "leased", now_ms);

  LeaseGrant grant;
  grant.run = run;
  grant.lease.set_run_id(run.run_id());
  grant.lease.set_attempt(run.attempt());
  grant.lease.set_lease_id(best->lease_id);
  grant.lease_expires_at_ms = run.lease_expires_at_ms();
  return std::optional<LeaseGrant>(std::move(grant));
}

absl::StatusOr<HeartbeatResult> InMemoryStore::Heartbeat(
    int64_t team_id, const std::string& worker_id, const LeaseRef& lease,
    int64_t now_ms, int64_t ttl_ms) {
  absl::MutexLock lock(&mu_);
  auto row_or = FindLeasedRunLocked(team_id, lease, &worker_id);
  if (!row_or.ok()) return row_or.status();
  RunRow& row = **row_or;
  row.run.set_lease_expires_at_ms(now_ms + ttl_ms);
  auto worker = workers_.find({team_id, worker_id});
  if (worker != workers_.end()) worker->second.set_last_seen_at_ms(now_ms);
  return HeartbeatResult{DirectiveLocked(row), row.run.lease_expires_at_ms()};
}

absl::StatusOr<Directive> InMemoryStore::AppendEvents(
    int64_t team_id, const LeaseRef& lease, uint64_t batch_seq,
    const MetricPoints& points, const RunEvents& events,
    int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto row_or = FindLeasedRunLocked(team_id, lease, nullptr);
  if (!row_or.ok()) return row_or.status();
  RunRow& row = **row_or;
  Run& run = row.run;
  if (run.state() == v1::RUN_STATE_LEASED) {
    SetStateLocked(row, v1::RUN_STATE_RUNNING, run.worker_id(), "reporting",
                   RunningSince(points, events, now_ms));
  }

  const uint32_t attempt = lease.attempt();
  for (const MetricPoint& point : points) {
    auto key = std::make_tuple(attempt, point.step(), point.name());
    if (row.metric_keys.count(key) != 0) continue;
    int64_t seq = next_metric_seq_++;
    row.metric_keys.emplace(std::move(key), seq);
    MetricPoint& stored = row.metrics[seq];
    stored = point;
    stored.set_attempt(attempt);
    stored.set_seq(seq);
    if (stored.wall_time_ms() == 0) stored.set_wall_time_ms(now_ms);

    if (point.name() != run.metric() || !std::isfinite(point.value())) {
      continue;
    }
    const double score = Score(run.goal(), point.value());
    const double best = Score(run.goal(), run.best_value());
    if (!run.has_best() || score > best ||
        (score == best && point.step() < run.best_step())) {
      run.set_has_best(true);
      run.set_best_value(point.value());
      run.set_best_step(point.step());
      run.set_best_attempt(attempt);
    }
  }

  for (int i = 0; i < events.size(); ++i) {
    auto key = std::make_tuple(attempt, batch_seq, static_cast<uint32_t>(i));
    if (!row.event_keys.insert(key).second) continue;
    RunEvent event = events[i];
    if (event.time_ms() == 0) event.set_time_ms(now_ms);
    AppendEventLocked(row, std::move(event));
  }
  return DirectiveLocked(row);
}

absl::Status InMemoryStore::AddArtifact(int64_t team_id, const LeaseRef& lease,
                                        const Artifact& artifact) {
  absl::MutexLock lock(&mu_);
  auto row_or = FindLeasedRunLocked(team_id, lease, nullptr);
  if (!row_or.ok()) return row_or.status();
  Artifact& stored = (*row_or)->artifacts[{lease.attempt(), artifact.name()}];
  stored = artifact;
  stored.set_run_id(lease.run_id());
  stored.set_attempt(lease.attempt());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Artifact>> InMemoryStore::ListArtifacts(
    int64_t team_id, int64_t run_id) {
  absl::MutexLock lock(&mu_);
  auto row_or = FindRunLocked(team_id, run_id);
  if (!row_or.ok()) return row_or.status();
  std::vector<Artifact> out;
  for (const auto& [key, artifact] : (*row_or)->artifacts) {
    out.push_back(artifact);
  }
  return out;
}

absl::StatusOr<RunState> InMemoryStore::FinishRun(
    int64_t team_id, const FinishRequest& request) {
  absl::StatusOr<RunState> outcome_state =
      StateOfOutcome(request.outcome, request.lease.run_id());
  if (!outcome_state.ok()) return outcome_state.status();
  const RunState final_state = *outcome_state;
  absl::MutexLock lock(&mu_);
  auto row_or = FindLeasedRunLocked(team_id, request.lease, &request.worker_id);
  if (!row_or.ok()) return row_or.status();
  RunRow& row = **row_or;
  Run& run = row.run;
  const bool failed = final_state == v1::RUN_STATE_FAILED;

  if (failed) {
    run.set_error(request.reason);
  }
  run.set_retryable(failed && request.retryable);
  CloseAttempt(row, final_state, request.reason, request.now_ms);
  row.lease_id = 0;
  const bool requeue = failed && request.retryable && !run.cancel_requested() &&
                       run.attempt() < run.max_attempts();
  RunState new_state = requeue ? v1::RUN_STATE_QUEUED : final_state;
  if (requeue) {
    ClearLease(run);
  } else {
    run.set_lease_expires_at_ms(0);
    run.set_finished_at_ms(request.now_ms);
  }
  SetStateLocked(row, new_state, request.worker_id, request.reason,
                 request.now_ms);

  auto worker_it = workers_.find({team_id, request.worker_id});
  if (worker_it != workers_.end()) {
    Worker& worker = worker_it->second;
    if (final_state == v1::RUN_STATE_SUCCEEDED) {
      worker.set_consecutive_failures(0);
    } else if (failed) {
      worker.set_consecutive_failures(worker.consecutive_failures() + 1);
      if (request.quarantine_after > 0 &&
          worker.consecutive_failures() >= request.quarantine_after &&
          worker.state() != v1::WORKER_STATE_QUARANTINED) {
        worker.set_state(v1::WORKER_STATE_QUARANTINED);
        worker.set_quarantine_reason(absl::StrCat(
            worker.consecutive_failures(), " consecutive failures; last: run ",
            run.run_id(), ": ", request.reason));
      }
    }
  }
  return new_state;
}

absl::StatusOr<std::vector<ExpiredLease>> InMemoryStore::ExpireLeases(
    int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> expired_ids;
  for (int64_t run_id : active_runs_) {
    if (runs_.at(run_id).run.lease_expires_at_ms() < now_ms) {
      expired_ids.push_back(run_id);
    }
  }
  std::vector<ExpiredLease> out;
  for (int64_t run_id : expired_ids) {
    RunRow& row = runs_.at(run_id);
    Run& run = row.run;
    const std::string worker_id = run.worker_id();
    RunState new_state = v1::RUN_STATE_QUEUED;
    if (run.cancel_requested()) {
      new_state = v1::RUN_STATE_CANCELLED;
    } else if (run.attempt() >= run.max_attempts()) {
      new_state = v1::RUN_STATE_FAILED;
      run.set_error(absl::StrCat(kLeaseExpired, " on attempt ", run.attempt(),
                                 " of ", run.max_attempts(),
                                 "; no attempts left"));
      run.set_retryable(false);
    }
    CloseAttempt(row, new_state, kLeaseExpired, now_ms);
    row.lease_id = 0;
    if (new_state == v1::RUN_STATE_QUEUED) {
      ClearLease(run);
    } else {
      run.set_lease_expires_at_ms(0);
      run.set_finished_at_ms(now_ms);
    }
    SetStateLocked(row, new_state, worker_id, kLeaseExpired, now_ms);
    out.push_back(ExpiredLease{run_id, run.attempt(), worker_id, new_state});
  }
  return out;
}

absl::StatusOr<std::optional<int64_t>> InMemoryStore::NextLeaseExpiry() {
  absl::MutexLock lock(&mu_);
  std::optional<int64_t> earliest;
  for (int64_t run_id : active_runs_) {
    int64_t expiry = runs_.at(run_id).run.lease_expires_at_ms();
    if (!earliest.has_value() || expiry < *earliest) earliest = expiry;
  }
  return earliest;
}

}  // namespace sweepq::store
