// Runs a ground truth's threads under SCHED_FIFO so that its clock reads
// follow its syscalls without a preemption in between (docs/accuracy.md):
// on a loaded machine a thread preempted between its write and its clock
// read logs a request longer by the whole time it waited for a CPU.
#ifndef REQCOST_TESTS_SUPPORT_REALTIME_H_
#define REQCOST_TESTS_SUPPORT_REALTIME_H_

#include <dirent.h>
#include <sched.h>
#include <sys/types.h>

#include <cerrno>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace reqcost::testing {

// Every thread of `pid` (those that exist now) at SCHED_FIFO priority 1;
// the error names the first thread that could not be moved.
inline absl::Status RunThreadsRealtime(pid_t pid) {
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* d = opendir(tasks.c_str());
  if (d == nullptr)
    return absl::ErrnoToStatus(errno, absl::StrCat("opendir ", tasks));
  absl::Status status;
  while (dirent* e = readdir(d)) {
    pid_t tid;
    if (!absl::SimpleAtoi(e->d_name, &tid)) continue;
    sched_param param{};
    param.sched_priority = 1;
    if (sched_setscheduler(tid, SCHED_FIFO, &param) != 0 && status.ok()) {
      status = absl::ErrnoToStatus(errno,
                                   absl::StrCat("SCHED_FIFO for thread ", tid));
    }
  }
  closedir(d);
  return status;
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_SUPPORT_REALTIME_H_
