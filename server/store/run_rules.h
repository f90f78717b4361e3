// Rules of the run lifecycle that every Store implementation applies the
// same way; kept here once so the implementations cannot drift apart.
#ifndef SWEEPQ_SERVER_STORE_RUN_RULES_H_
#define SWEEPQ_SERVER_STORE_RUN_RULES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::store {

// LEASED or RUNNING: a worker holds the run.
bool IsActive(sweepq::v1::RunState state);

// SUCCEEDED, FAILED, CANCELLED or PRUNED.
bool IsFinal(sweepq::v1::RunState state);

// The value made "higher is better" whatever the goal (UNSPECIFIED
// maximizes), so rankings compare scores only.
inline double Score(sweepq::v1::Goal goal, double value) {
  return goal == sweepq::v1::GOAL_MINIMIZE ? -value : value;
}

// The state a FinishRun outcome leads to before any retry decision;
// INVALID_ARGUMENT naming the run for OUTCOME_UNSPECIFIED.
absl::StatusOr<sweepq::v1::RunState> StateOfOutcome(
    sweepq::v1::Outcome outcome, int64_t run_id);

// When a run reporting its first batch became RUNNING: the earliest time
// stamped on the batch's points or events, or now_ms if earlier or unset.
// Watchers merge metrics and events by time, so the RUNNING transition a
// batch causes then precedes that batch's points even when the worker's
// clock stamped them a millisecond before the coordinator received them.
int64_t RunningSince(
    const google::protobuf::RepeatedPtrField<sweepq::v1::MetricPoint>& points,
    const google::protobuf::RepeatedPtrField<sweepq::v1::RunEvent>& events,
    int64_t now_ms);

// The JSON payload of a "state" event:
// {"state": "RUN_STATE_...", "attempt": N, "worker": "...", "reason": "..."}.
std::string StateEventPayload(sweepq::v1::RunState state, uint32_t attempt,
                              absl::string_view worker,
                              absl::string_view reason);

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_RUN_RULES_H_
