// What this machine allows reqcost to do, and how to fix what it doesn't.
#ifndef REQCOST_COLLECTOR_SYSTEM_CHECK_H_
#define REQCOST_COLLECTOR_SYSTEM_CHECK_H_

#include <string>
#include <vector>

namespace reqcost::collector {

struct CheckResult {
  std::string name;  // "privileges", "BTF", ...
  bool ok = false;
  std::string detail;  // what was found
  std::string fix;     // what to do, when !ok
};

// Runs every check in order: privileges, BTF, tracefs (mounted when absent
// and allowed), the tracepoints reqcost attaches to, ring buffer support,
// a real load and attach of reqcost's programs, and the TLS uprobes on the
// libssl reqcost itself maps.
std::vector<CheckResult> RunSystemChecks();

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_SYSTEM_CHECK_H_
