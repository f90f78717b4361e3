// Pieces of `sweepq submit` that tests check directly: the dry-run views
// and the idempotency key. RunSubmit itself is declared in commands.h.
#ifndef SWEEPQ_CLIENT_SUBMIT_H_
#define SWEEPQ_CLIENT_SUBMIT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "client/json.h"
#include "client/table.h"
#include "common/sweep.h"

namespace sweepq::client {

// The dry-run table: "#" (the run's index in the sweep) and one column per
// parameter whose value differs between the runs.
Table DryRunTable(const ExpandedSweep& sweep);

// The line above it: "FILE: sweep NAME, N runs (METHOD; ranked by METRIC,
// GOAL; up to K attempts each)".
std::string DryRunCaption(const ExpandedSweep& sweep, absl::string_view source);

// The dry run as JSON: name, method, metric, goal, max_attempts, run_count,
// runs [{index, params, config}].
JsonValue DryRunJson(const ExpandedSweep& sweep);

// The key a submit carries unless --idempotency-key is given:
// "cli:<first 16 hex digits of SHA-256(spec)>:<nonce>". The same key on a
// resent call makes the coordinator return the first sweep.
std::string IdempotencyKey(absl::string_view spec_yaml,
                           absl::string_view nonce);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_SUBMIT_H_
