#include "server/store/run_rules.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/store/flat_json.h"

namespace sweepq::store {

namespace v1 = ::sweepq::v1;

bool IsActive(v1::RunState state) {
  return state == v1::RUN_STATE_LEASED || state == v1::RUN_STATE_RUNNING;
}

bool IsFinal(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED ||
         state == v1::RUN_STATE_CANCELLED || state == v1::RUN_STATE_PRUNED;
}

absl::StatusOr<v1::RunState> StateOfOutcome(v1::Outcome outcome,
                                            int64_t run_id) {
  switch (outcome) {
    case v1::OUTCOME_SUCCEEDED:
      return v1::RUN_STATE_SUCCEEDED;
    case v1::OUTCOME_FAILED:
      return v1::RUN_STATE_FAILED;
    case v1::OUTCOME_CANCELLED:
      return v1::RUN_STATE_CANCELLED;
    case v1::OUTCOME_PRUNED:
      return v1::RUN_STATE_PRUNED;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("FinishRun of run ", run_id, " needs an outcome"));
  }
}

int64_t RunningSince(
    const google::protobuf::RepeatedPtrField<v1::MetricPoint>& points,
    const google::protobuf::RepeatedPtrField<v1::RunEvent>& events,
    int64_t now_ms) {
  int64_t since = now_ms;
  for (const v1::MetricPoint& p : points) {
    if (p.wall_time_ms() > 0) since = std::min(since, p.wall_time_ms());
  }
  for (const v1::RunEvent& e : events) {
    if (e.time_ms() > 0) since = std::min(since, e.time_ms());
  }
  return since;
}

std::string StateEventPayload(v1::RunState state, uint32_t attempt,
                              absl::string_view worker,
                              absl::string_view reason) {
  std::string payload = "{\"state\":";
  AppendJsonString(v1::RunState_Name(state), &payload);
  absl::StrAppend(&payload, ",\"attempt\":", attempt, ",\"worker\":");
  AppendJsonString(worker, &payload);
  payload += ",\"reason\":";
  AppendJsonString(reason, &payload);
  payload += '}';
  return payload;
}

}  // namespace sweepq::store
