// Reads process facts from /proc (or a fake tree with the same shape).
#ifndef REQCOST_COLLECTOR_PROC_H_
#define REQCOST_COLLECTOR_PROC_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/event.h"

namespace reqcost::collector {

// A view of a proc file system rooted at `root` ("/proc" on a live system).
class ProcFs {
 public:
  explicit ProcFs(std::string root = "/proc") : root_(std::move(root)) {}

  // pid, ppid, comm, exe and start time of one process. NotFound when it
  // does not exist; InvalidArgument when it is a kernel thread (nothing to
  // trace); a thread id that is not a process is NotFound too.
  absl::StatusOr<ProcessInfo> ReadProcess(pid_t pid) const;

  // Every process under `roots` (the roots first, then their descendants,
  // each once), read in one scan of the tree. A root that does not exist is
  // NotFound naming it.
  absl::StatusOr<std::vector<ProcessInfo>> WithDescendants(
      const std::vector<pid_t>& roots) const;

 private:
  std::string root_;
};

// Ticks per second of /proc's start times (sysconf(_SC_CLK_TCK)).
long ClockTicksPerSecond();

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_PROC_H_
