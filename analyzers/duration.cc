#include "analyzers/duration.h"

#include <string>

#include "absl/strings/str_format.h"

namespace reqcost::analyzers {

std::string FormatDuration(double us) {
  if (us < 1000.0) return absl::StrFormat("%.1f us", us);
  if (us < 1e6) return absl::StrFormat("%.3f ms", us / 1e3);
  return absl::StrFormat("%.3f s", us / 1e6);
}

}  // namespace reqcost::analyzers
