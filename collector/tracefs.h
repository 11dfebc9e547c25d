// libbpf attaches tracepoints through tracefs; make sure it is there.
#ifndef REQCOST_COLLECTOR_TRACEFS_H_
#define REQCOST_COLLECTOR_TRACEFS_H_

#include <string>

#include "absl/status/statusor.h"

namespace reqcost::collector {

// The tracefs directory holding events/ (/sys/kernel/tracing, or the old
// /sys/kernel/debug/tracing), or empty when neither has it.
std::string FindTracefs();

// Returns the tracefs directory, mounting tracefs at /sys/kernel/tracing when
// it is absent and we may. FailedPrecondition with the exact command to run
// when it cannot be mounted.
absl::StatusOr<std::string> EnsureTracefs();

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_TRACEFS_H_
