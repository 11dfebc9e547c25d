// Early-return helpers for absl::Status / absl::StatusOr in the test support
// library. Prefixed so that they never collide with a project-wide version.
#ifndef REQCOST_SAMPLES_STACK_STATUS_MACROS_H_
#define REQCOST_SAMPLES_STACK_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define REQCOST_TS_CONCAT_INNER_(a, b) a##b
#define REQCOST_TS_CONCAT_(a, b) REQCOST_TS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the current function when it is not OK.
#define REQCOST_TS_RETURN_IF_ERROR(expr) \
  do {                                   \
    ::absl::Status status_ = (expr);     \
    if (!status_.ok()) return status_;   \
  } while (0)

// Declares or assigns `lhs` from the StatusOr `rexpr`, or returns its status.
#define REQCOST_TS_ASSIGN_OR_RETURN(lhs, rexpr)                              \
  REQCOST_TS_ASSIGN_OR_RETURN_IMPL_(REQCOST_TS_CONCAT_(statusor_, __LINE__), \
                                    lhs, rexpr)

#define REQCOST_TS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                      \
  if (!statusor.ok()) return statusor.status();                 \
  lhs = std::move(statusor).value()

#endif  // REQCOST_SAMPLES_STACK_STATUS_MACROS_H_
