#include "collector/tracefs.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace reqcost::collector {
namespace {

constexpr const char* kTracefs = "/sys/kernel/tracing";
constexpr const char* kDebugfsTracing = "/sys/kernel/debug/tracing";

bool HasEvents(const std::string& dir) {
  return access((dir + "/events/syscalls").c_str(), F_OK) == 0;
}

}  // namespace

std::string FindTracefs() {
  for (const char* dir : {kTracefs, kDebugfsTracing}) {
    if (HasEvents(dir)) return dir;
  }
  return "";
}

absl::StatusOr<std::string> EnsureTracefs() {
  std::string found = FindTracefs();
  if (!found.empty()) return found;
  if (mount("nodev", kTracefs, "tracefs", 0, nullptr) != 0) {
    int err = errno;
    return absl::FailedPreconditionError(
        absl::StrCat("tracefs is not mounted and mounting it at ", kTracefs,
                     " failed (", std::strerror(err),
                     "); as root run: mount -t tracefs nodev ", kTracefs));
  }
  if (!HasEvents(kTracefs)) {
    return absl::FailedPreconditionError(
        absl::StrCat("tracefs is mounted at ", kTracefs,
                     " but has no events/syscalls: this kernel lacks "
                     "CONFIG_FTRACE_SYSCALLS"));
  }
  return std::string(kTracefs);
}

}  // namespace reqcost::collector
