#include "samples/stack/data_dirs.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace reqcost::stack {
namespace {

// Relative to the prefix; the install rules (samples/CMakeLists.txt) use
// the same two paths.
constexpr char kLibexecDir[] = "lib/reqcost";
constexpr char kShareDir[] = "share/reqcost";

// A file each directory must hold for the demo to run: checked so that a
// half-installed prefix is reported as such, not as a failed exec later.
constexpr char kMarkerBinary[] = "reqcost-fcgi-backend";
constexpr char kMarkerTemplate[] = "nginx/nginx.conf.in";

std::string Parent(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

struct Current {
  std::mutex mu;
  std::optional<DataDirs> dirs;
};

Current& GetCurrent() {
  static Current* current = new Current;
  return *current;
}

DataDirs CurrentDirs() {
  Current& c = GetCurrent();
  std::lock_guard<std::mutex> lock(c.mu);
  if (!c.dirs.has_value()) {
    absl::StatusOr<DataDirs> found = DataDirsBesideExecutable();
    c.dirs = found.ok() ? *found : DataDirs{};
  }
  return *c.dirs;
}

}  // namespace

absl::StatusOr<DataDirs> DataDirsUnder(const std::string& prefix) {
  DataDirs dirs{absl::StrCat(prefix, "/", kLibexecDir),
                absl::StrCat(prefix, "/", kShareDir)};
  const std::string binary = absl::StrCat(dirs.libexec, "/", kMarkerBinary);
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(
        "the demo's sample backend is not installed: ", binary, " is missing"));
  }
  const std::string marker = absl::StrCat(dirs.share, "/", kMarkerTemplate);
  struct stat st;
  if (stat(marker.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(
        "the demo's templates are not installed: ", marker, " is missing"));
  }
  return dirs;
}

absl::StatusOr<DataDirs> DataDirsBesideExecutable() {
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return absl::ErrnoToStatus(errno, "readlink /proc/self/exe");
  exe[n] = '\0';
  return DataDirsUnder(Parent(Parent(exe)));
}

void UseDataDirs(DataDirs dirs) {
  Current& c = GetCurrent();
  std::lock_guard<std::mutex> lock(c.mu);
  c.dirs = std::move(dirs);
}

std::string SamplesDir() { return CurrentDirs().share; }

std::string FcgiBackendBinary() {
  return CurrentDirs().libexec + "/reqcost-fcgi-backend";
}

std::string ResolvingFrontBinary() {
  return CurrentDirs().libexec + "/reqcost-resolving-front";
}

std::string FrontServerBinary() {
  return CurrentDirs().libexec + "/reqcost-front-server";
}

}  // namespace reqcost::stack
