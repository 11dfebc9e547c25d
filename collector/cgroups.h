// Targets by cgroup: the v2 hierarchy, a cgroup directory's kernel id and
// level, a systemd unit's cgroup, and the processes in a cgroup's subtree.
#ifndef REQCOST_COLLECTOR_CGROUPS_H_
#define REQCOST_COLLECTOR_CGROUPS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace reqcost::collector {

// One traced cgroup v2 directory.
struct CgroupTarget {
  std::string path;  // absolute directory on the v2 hierarchy
  uint64_t id = 0;   // its kernel id (bpf_get_current_cgroup_id's value)
  int level = 0;     // directories below the hierarchy's root (root: 0)
  std::string flag;  // how it was given: "--cgroup X" or "--unit X"
};

// Deepest level a traced cgroup may sit at (the kernel side checks levels
// 0..kMaxCgroupLevel).
inline constexpr int kMaxCgroupLevel = 31;

// Where the cgroup v2 hierarchy is mounted, from `mounts` (/proc/mounts'
// format): "/sys/fs/cgroup" on a unified layout, "/sys/fs/cgroup/unified" on
// a hybrid one. FailedPrecondition when none is mounted.
absl::StatusOr<std::string> Cgroup2Mount(
    const std::string& mounts = "/proc/mounts");

// `--cgroup PATH`: PATH absolute (on the v2 hierarchy) or relative to the
// hierarchy at `mount`. NotFound when there is no such directory,
// InvalidArgument when it is not a cgroup v2 directory or lies deeper than
// kMaxCgroupLevel.
absl::StatusOr<CgroupTarget> ResolveCgroup(const std::string& path,
                                           const std::string& mount);

// `--unit NAME` (".service" added when NAME has no unit suffix): the
// directory of that name in the v2 hierarchy at `mount`, where systemd puts
// a unit's processes (system.slice/NAME.service, user.slice/...). When there
// is none: FailedPrecondition if PID 1 is not systemd (read from
// `proc_root`), else NotFound.
absl::StatusOr<CgroupTarget> ResolveUnit(
    const std::string& name, const std::string& mount,
    const std::string& proc_root = "/proc");

// The processes (tgids) in `dir` and every cgroup below it, each once.
// Directories that vanish during the walk are skipped.
std::vector<pid_t> CgroupMembers(const std::string& dir);

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_CGROUPS_H_
