#include <cstdio>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "collector/system_check.h"

namespace reqcost::cli {

absl::Status RunCheck() {
  bool all_ok = true;
  for (const collector::CheckResult& r : collector::RunSystemChecks()) {
    std::printf("%-4s %-16s %s\n", r.ok ? "ok" : "FAIL", r.name.c_str(),
                r.detail.c_str());
    if (!r.ok) {
      std::printf("     %-16s fix: %s\n", "", r.fix.c_str());
      all_ok = false;
    }
  }
  std::printf(all_ok ? "reqcost can trace on this machine\n"
                     : "reqcost cannot trace here yet: see the fixes above\n");
  if (all_ok) return absl::OkStatus();
  // The table above said what fails and how to fix it.
  return AlreadyReported(
      absl::FailedPreconditionError("reqcost cannot trace here yet"));
}

}  // namespace reqcost::cli
