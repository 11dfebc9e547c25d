#include "collector/proc.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "collector/status_macros.h"

namespace reqcost::collector {
namespace {

constexpr unsigned long kPfKthread = 0x00200000;  // include/linux/sched.h

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

struct StatLine {
  std::string comm;
  pid_t ppid = 0;
  unsigned long flags = 0;
  uint64_t start_ticks = 0;
};

// /proc/PID/stat: "pid (comm) state ppid ...": comm may hold spaces and
// parentheses, so split at the last ')'.
bool ParseStat(const std::string& text, StatLine* out) {
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    return false;
  }
  out->comm = text.substr(open + 1, close - open - 1);
  std::vector<std::string> f =
      absl::StrSplit(text.substr(close + 1), ' ', absl::SkipEmpty());
  // f[0] is field 3 (state); field N is f[N - 3].
  if (f.size() < 20) return false;
  int ppid = 0;
  return absl::SimpleAtoi(f[1], &ppid) && absl::SimpleAtoi(f[6], &out->flags) &&
         absl::SimpleAtoi(f[19], &out->start_ticks) && (out->ppid = ppid, true);
}

}  // namespace

long ClockTicksPerSecond() {
  static const long ticks = sysconf(_SC_CLK_TCK);
  return ticks > 0 ? ticks : 100;
}

absl::StatusOr<ProcessInfo> ProcFs::ReadProcess(pid_t pid) const {
  std::string dir = absl::StrCat(root_, "/", pid);
  std::string text;
  StatLine stat;
  if (!ReadFile(dir + "/stat", &text)) {
    return absl::NotFoundError(absl::StrFormat("PID %d does not exist", pid));
  }
  if (!ParseStat(text, &stat)) {
    return absl::DataLossError(absl::StrFormat("cannot parse %s/stat", dir));
  }
  std::string status;
  if (ReadFile(dir + "/status", &status)) {
    // A thread id is visible in /proc too; its Tgid differs from its pid.
    for (absl::string_view line : absl::StrSplit(status, '\n')) {
      int tgid = 0;
      if (absl::ConsumePrefix(&line, "Tgid:") &&
          absl::SimpleAtoi(line, &tgid) && tgid != pid) {
        return absl::NotFoundError(absl::StrFormat(
            "PID %d is a thread of process %d; give the process", pid, tgid));
      }
    }
  }
  if (stat.flags & kPfKthread) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "PID %d (%s) is a kernel thread; it makes no socket syscalls", pid,
        stat.comm));
  }
  ProcessInfo info;
  info.pid = static_cast<uint32_t>(pid);
  info.ppid = static_cast<uint32_t>(stat.ppid);
  info.comm = stat.comm;
  info.start_ns = stat.start_ticks * (1000000000ull / ClockTicksPerSecond());
  char exe[4096];
  ssize_t n = readlink((dir + "/exe").c_str(), exe, sizeof(exe) - 1);
  if (n > 0) info.exe.assign(exe, static_cast<size_t>(n));
  return info;
}

absl::StatusOr<std::vector<ProcessInfo>> ProcFs::WithDescendants(
    const std::vector<pid_t>& roots) const {
  std::vector<ProcessInfo> out;
  std::set<pid_t> seen;
  for (pid_t pid : roots) {
    ASSIGN_OR_RETURN(ProcessInfo info, ReadProcess(pid));
    if (seen.insert(pid).second) out.push_back(std::move(info));
  }

  // One scan: parent -> children of every process now alive.
  std::multimap<pid_t, pid_t> children;
  DIR* dir = opendir(root_.c_str());
  if (dir == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("open ", root_));
  }
  while (dirent* entry = readdir(dir)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::string text;
    StatLine stat;
    if (ReadFile(absl::StrCat(root_, "/", pid, "/stat"), &text) &&
        ParseStat(text, &stat)) {
      children.emplace(stat.ppid, pid);
    }
  }
  closedir(dir);

  for (size_t i = 0; i < out.size(); ++i) {
    auto [begin, end] = children.equal_range(static_cast<pid_t>(out[i].pid));
    for (auto it = begin; it != end; ++it) {
      if (!seen.insert(it->second).second) continue;
      // A child may exit between the scan and now: skip it, don't fail.
      absl::StatusOr<ProcessInfo> info = ReadProcess(it->second);
      if (info.ok()) out.push_back(*std::move(info));
    }
  }
  return out;
}

}  // namespace reqcost::collector
