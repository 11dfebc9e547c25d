#include "analyzers/process_table.h"

#include <cstdint>
#include <string>

#include "analyzers/payload.h"
#include "analyzers/report.h"
#include "collector/event.h"

namespace reqcost::analyzers {

void ProcessTable::OnProcess(const ProcessInfo& info) {
  Process& p = processes_[info.pid];
  p.comm = info.comm;
  p.parent = info.ppid;
}

void ProcessTable::OnProcessEvent(const ProcessEvent& event) {
  if (event.ends()) return;
  Process& p = processes_[event.tgid];
  if (!event.comm.empty()) p.comm = event.comm;
  if (event.op == ProcessEvent::Op::kFork) {
    // A PID reused: a new process, not the exited one.
    if (p.exit_seq != 0) p = Process{};
    if (!event.comm.empty()) p.comm = event.comm;
    p.parent = event.parent_tgid;
  }
}

void ProcessTable::Exited(uint32_t tgid) {
  auto it = processes_.find(tgid);
  if (it == processes_.end()) return;
  it->second.exit_seq = ++exits_;
  exited_.emplace_back(tgid, exits_);
  while (exited_.size() > kMaxExitedProcesses) {
    auto [pid, seq] = exited_.front();
    exited_.pop_front();
    auto p = processes_.find(pid);
    if (p != processes_.end() && p->second.exit_seq == seq) {
      processes_.erase(p);
      ++forgotten_;
    }
  }
}

void ProcessTable::Rename(uint32_t tgid, const std::string& comm) {
  if (!comm.empty()) processes_[tgid].comm = comm;
}

bool ProcessTable::MarkClient(uint32_t tgid) {
  Process& p = processes_[tgid];
  if (p.has_client) return false;
  p.has_client = true;
  return true;
}

bool ProcessTable::InBackendFamily(uint32_t tgid) {
  const Process& p = processes_[tgid];
  if (p.has_backend_side) return true;
  if (p.parent == 0) return false;
  for (const auto& [pid, other] : processes_) {
    if (other.parent == p.parent && other.has_backend_side) return true;
  }
  return false;
}

void ProcessTable::AddTo(Report* report) const {
  for (const auto& [pid, p] : processes_) {
    std::string role = p.has_backend_side ? "backend"
                       : p.has_client     ? "server"
                                          : "other";
    // Any bytes the kernel or a capture file gave: made printable as JSON.
    report->processes.push_back({pid, ValidUtf8(p.comm), role, p.comm});
  }
  report->processes_not_listed = forgotten_;
}

}  // namespace reqcost::analyzers
