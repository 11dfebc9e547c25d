// `--cgroup` and `--unit` targets, resolved to cgroup v2 directories and
// re-read while attached (on SIGHUP, and when a directory was recreated: a
// restarted systemd unit gets a new cgroup).
#ifndef REQCOST_CLI_TARGETS_H_
#define REQCOST_CLI_TARGETS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/cgroups.h"

namespace reqcost::cli {

class CgroupTargets {
 public:
  // Resolves every --cgroup PATH and --unit NAME. No target is an empty
  // set. Errors are the first target's that failed (collector/cgroups.h):
  // exit 3 for one that does not exist, 5 without cgroup v2 or systemd, 2
  // for one that is not a v2 cgroup.
  static absl::StatusOr<CgroupTargets> Resolve(
      const std::vector<std::string>& cgroups,
      const std::vector<std::string>& units);

  // The resolved directories, as the kernel side is to trace them.
  const std::vector<collector::CgroupTarget>& targets() const {
    return targets_;
  }
  bool empty() const { return cgroups_.empty() && units_.empty(); }

  // Resolves every target again. A target that cannot be resolved now keeps
  // its last directory and is named on stderr (once until it comes back).
  // Returns whether any directory changed.
  bool Reread();

  // Whether a traced directory is gone or was recreated since the last
  // Resolve/Reread (one stat per target): cheap enough for every second.
  bool Stale() const;

 private:
  std::vector<std::string> cgroups_;
  std::vector<std::string> units_;
  std::string mount_;
  std::vector<collector::CgroupTarget> targets_;  // cgroups_, then units_
  std::vector<bool> missing_;
};

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_TARGETS_H_
