// The traced processes as the profiler knows them: name, parent and role
// (internal to the profiler). A process's role is "backend" if it has
// backend-side connections, else "server" if it has client connections, else
// "other" (the rule itself: connections.h).
#ifndef REQCOST_ANALYZERS_PROCESS_TABLE_H_
#define REQCOST_ANALYZERS_PROCESS_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "analyzers/report.h"
#include "collector/event.h"

namespace reqcost::analyzers {

// At most this many exited processes stay listed (the latest to exit); the
// earlier ones are forgotten and counted (Report::processes_not_listed). A
// long-lived agent sees a new set of workers on every reload and recycle.
inline constexpr size_t kMaxExitedProcesses = 256;

class ProcessTable {
 public:
  // A process known at attach.
  void OnProcess(const ProcessInfo& info);
  // A fork or exec as it arrives (exits change nothing here).
  void OnProcessEvent(const ProcessEvent& event);
  // A fork or exec in event order: its name, when it has one.
  void Rename(uint32_t tgid, const std::string& comm);
  // Makes `tgid` known (a process first seen on a connection).
  void Note(uint32_t tgid) { processes_.try_emplace(tgid); }

  // Whether `tgid` has (had) client connections.
  bool has_client(uint32_t tgid) { return processes_[tgid].has_client; }
  // Records that `tgid` has client connections; false when it was known.
  bool MarkClient(uint32_t tgid);
  // Records whether `tgid` has backend-side connections.
  void SetBackendSide(uint32_t tgid, bool has) {
    processes_[tgid].has_backend_side = has;
  }
  // Whether `tgid` has backend-side connections (no entry is made).
  bool has_backend_side(uint32_t tgid) const {
    auto it = processes_.find(tgid);
    return it != processes_.end() && it->second.has_backend_side;
  }
  // Whether `tgid` or a sibling of it (same parent: a pool's children) has
  // backend-side connections.
  bool InBackendFamily(uint32_t tgid);

  // `tgid` exited (in event order): it stays listed until
  // kMaxExitedProcesses later exits, then it is forgotten.
  void Exited(uint32_t tgid);

  // Every process by pid, with its role, as the report lists them, and how
  // many exited ones were forgotten.
  void AddTo(Report* report) const;
  // How many processes are known: the live ones and at most
  // kMaxExitedProcesses exited ones.
  size_t size() const { return processes_.size(); }

 private:
  struct Process {
    std::string comm;
    uint32_t parent = 0;  // its parent's tgid, when known
    bool has_client = false;
    bool has_backend_side = false;
    uint64_t exit_seq = 0;  // its exit's number in exited_ (0: live)
  };
  std::map<uint32_t, Process> processes_;
  // Exited processes, oldest first, with their exit's number (a PID reused
  // by a new process is not forgotten with the old one).
  std::deque<std::pair<uint32_t, uint64_t>> exited_;
  uint64_t exits_ = 0;
  uint64_t forgotten_ = 0;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PROCESS_TABLE_H_
