// RETURN_IF_ERROR / ASSIGN_OR_RETURN: the Abseil of Debian 12 (20220623)
// ships no status macros, so the project keeps this one copy.
#ifndef SWEEPQ_COMMON_STATUS_MACROS_H_
#define SWEEPQ_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SWEEPQ_STATUS_CONCAT_INNER_(a, b) a##b
#define SWEEPQ_STATUS_CONCAT_(a, b) SWEEPQ_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status sweepq_status_ = (expr);      \
    if (!sweepq_status_.ok()) return sweepq_status_; \
  } while (0)

// `lhs = value of expr`, or returns its status if not OK. `lhs` may declare
// a variable: ASSIGN_OR_RETURN(auto x, F());
#define ASSIGN_OR_RETURN(lhs, expr)                                         \
  SWEEPQ_ASSIGN_OR_RETURN_IMPL_(                                            \
      SWEEPQ_STATUS_CONCAT_(sweepq_statusor_, __LINE__), lhs, expr)

#define SWEEPQ_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // SWEEPQ_COMMON_STATUS_MACROS_H_
