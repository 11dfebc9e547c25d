#include "collector/cgroups.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace reqcost::collector {
namespace {

constexpr long kCgroup2SuperMagic = 0x63677270;  // CGROUP2_SUPER_MAGIC
// How deep --unit looks for a unit's directory: systemd nests units in
// slices (user.slice/user-1000.slice/user@1000.service/app.slice/X.service).
constexpr int kUnitSearchDepth = 6;

std::string Normalize(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// Subdirectories of `dir` (names), without following links.
std::vector<std::string> Subdirectories(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_type != DT_DIR) continue;
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0)
      continue;
    out.push_back(e->d_name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool FindDirectory(const std::string& dir, const std::string& name, int depth,
                   std::string* found) {
  for (const std::string& sub : Subdirectories(dir)) {
    if (sub == name) {
      *found = dir + "/" + sub;
      return true;
    }
  }
  if (depth == 0) return false;
  for (const std::string& sub : Subdirectories(dir)) {
    if (FindDirectory(dir + "/" + sub, name, depth - 1, found)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> Cgroup2Mount(const std::string& mounts) {
  std::ifstream in(mounts);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() >= 3 && f[2] == "cgroup2") return Normalize(f[1]);
  }
  return absl::FailedPreconditionError(
      "targets by cgroup need the cgroup v2 hierarchy, and none is mounted "
      "(mount -t cgroup2 none /sys/fs/cgroup/unified)");
}

absl::StatusOr<CgroupTarget> ResolveCgroup(const std::string& path,
                                           const std::string& mount) {
  CgroupTarget t;
  t.flag = "--cgroup " + path;
  std::string full = Normalize(
      absl::StartsWith(path, "/") ? path : mount + "/" + std::string(path));
  struct stat st {};
  if (stat(full.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrFormat(
        "--cgroup %s: no such cgroup directory (the cgroup v2 hierarchy is "
        "at %s)",
        path, mount));
  }
  struct statfs fs {};
  if (statfs(full.c_str(), &fs) != 0 ||
      static_cast<long>(fs.f_type) != kCgroup2SuperMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--cgroup %s is not a cgroup v2 directory (a v1 hierarchy?): give a "
        "directory under %s",
        path, mount));
  }
  // The id the kernel reports for a v2 cgroup is its directory's inode.
  t.id = st.st_ino;
  t.path = full;
  t.level = 0;
  if (full != mount) {
    if (!absl::StartsWith(full, mount + "/")) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--cgroup %s is not under the cgroup v2 hierarchy at %s", path,
          mount));
    }
    std::string rest = full.substr(mount.size() + 1);
    t.level = static_cast<int>(std::count(rest.begin(), rest.end(), '/') + 1);
  }
  if (t.level > kMaxCgroupLevel) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--cgroup %s is %d levels deep; reqcost follows cgroups up to level "
        "%d",
        path, t.level, kMaxCgroupLevel));
  }
  return t;
}

absl::StatusOr<CgroupTarget> ResolveUnit(const std::string& name,
                                         const std::string& mount,
                                         const std::string& proc_root) {
  if (name.empty() || name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--unit '%s' is not a unit name (nginx, php8.2-fpm.service)", name));
  }
  std::string unit = name;
  static const char* kSuffixes[] = {".service", ".scope", ".slice", ".socket"};
  if (std::none_of(std::begin(kSuffixes), std::end(kSuffixes),
                   [&](const char* s) { return absl::EndsWith(unit, s); })) {
    unit += ".service";
  }
  std::string dir;
  if (FindDirectory(mount, unit, kUnitSearchDepth, &dir)) {
    absl::StatusOr<CgroupTarget> t = ResolveCgroup(dir, mount);
    if (t.ok()) t->flag = "--unit " + name;
    return t;
  }
  std::ifstream comm_file(proc_root + "/1/comm");
  std::string init;
  std::getline(comm_file, init);
  if (init != "systemd") {
    return absl::FailedPreconditionError(absl::StrFormat(
        "--unit %s: this machine does not run systemd (PID 1 is %s), so no "
        "unit has a cgroup; give the service's cgroup with --cgroup PATH or "
        "its PIDs with -p",
        name, init.empty() ? "unknown" : init));
  }
  return absl::NotFoundError(absl::StrFormat(
      "--unit %s: no cgroup %s under %s (is the unit running? systemctl "
      "status %s)",
      name, unit, mount, unit));
}

std::vector<pid_t> CgroupMembers(const std::string& dir) {
  std::vector<pid_t> out;
  std::set<pid_t> seen;
  std::vector<std::string> todo{dir};
  while (!todo.empty()) {
    std::string d = todo.back();
    todo.pop_back();
    std::ifstream procs(d + "/cgroup.procs");
    std::string line;
    while (std::getline(procs, line)) {
      int pid = 0;
      if (absl::SimpleAtoi(line, &pid) && pid > 0 && seen.insert(pid).second)
        out.push_back(pid);
    }
    for (const std::string& sub : Subdirectories(d))
      todo.push_back(d + "/" + sub);
  }
  return out;
}

}  // namespace reqcost::collector
