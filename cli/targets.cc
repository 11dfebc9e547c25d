#include "cli/targets.h"

#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "collector/status_macros.h"

namespace reqcost::cli {

absl::StatusOr<CgroupTargets> CgroupTargets::Resolve(
    const std::vector<std::string>& cgroups,
    const std::vector<std::string>& units) {
  CgroupTargets t;
  t.cgroups_ = cgroups;
  t.units_ = units;
  if (t.empty()) return t;
  ASSIGN_OR_RETURN(t.mount_, collector::Cgroup2Mount());
  for (const std::string& path : cgroups) {
    ASSIGN_OR_RETURN(collector::CgroupTarget cg,
                     collector::ResolveCgroup(path, t.mount_));
    t.targets_.push_back(std::move(cg));
  }
  for (const std::string& unit : units) {
    ASSIGN_OR_RETURN(collector::CgroupTarget cg,
                     collector::ResolveUnit(unit, t.mount_));
    t.targets_.push_back(std::move(cg));
  }
  t.missing_.assign(t.targets_.size(), false);
  return t;
}

bool CgroupTargets::Reread() {
  bool changed = false;
  for (size_t i = 0; i < targets_.size(); ++i) {
    absl::StatusOr<collector::CgroupTarget> cg =
        i < cgroups_.size()
            ? collector::ResolveCgroup(cgroups_[i], mount_)
            : collector::ResolveUnit(units_[i - cgroups_.size()], mount_);
    if (!cg.ok()) {
      if (!missing_[i]) {
        std::fprintf(stderr,
                     "reqcost: %s; its processes still alive stay traced, "
                     "and it is traced again once it is back\n",
                     std::string(cg.status().message()).c_str());
      }
      missing_[i] = true;
      continue;
    }
    missing_[i] = false;
    if (cg->id != targets_[i].id || cg->path != targets_[i].path) {
      targets_[i] = std::move(*cg);
      changed = true;
    }
  }
  return changed;
}

bool CgroupTargets::Stale() const {
  for (size_t i = 0; i < targets_.size(); ++i) {
    struct stat st {};
    bool gone = stat(targets_[i].path.c_str(), &st) != 0;
    if (gone != missing_[i]) return true;
    if (!gone && st.st_ino != targets_[i].id) return true;
  }
  return false;
}

}  // namespace reqcost::cli
