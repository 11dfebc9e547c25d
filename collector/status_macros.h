// Early returns for absl::Status and absl::StatusOr, for all product code
// (collector/, analyzers/, cli/). A function that meets an error hands it up
// unchanged; only `main` turns a Status into a message and an exit code.
#ifndef REQCOST_COLLECTOR_STATUS_MACROS_H_
#define REQCOST_COLLECTOR_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define REQCOST_STATUS_CONCAT_INNER_(a, b) a##b
#define REQCOST_STATUS_CONCAT_(a, b) REQCOST_STATUS_CONCAT_INNER_(a, b)

// Returns the Status `expr` from the current function when it is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status reqcost_status_ = (expr);           \
    if (!reqcost_status_.ok()) return reqcost_status_; \
  } while (0)

// Declares or assigns `lhs` from the StatusOr `rexpr`, or returns its Status.
// Expands to several statements: not for the body of an unbraced if.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  REQCOST_ASSIGN_OR_RETURN_IMPL_(    \
      REQCOST_STATUS_CONCAT_(reqcost_statusor_, __LINE__), lhs, rexpr)

#define REQCOST_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return statusor.status();              \
  lhs = std::move(statusor).value()

#endif  // REQCOST_COLLECTOR_STATUS_MACROS_H_
