// How the profiler's stages record syscalls (internal to the profiler).
#ifndef REQCOST_ANALYZERS_PROFILER_RECORDS_H_
#define REQCOST_ANALYZERS_PROFILER_RECORDS_H_

#include <cstddef>

#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

// Room for a typical request's syscalls on one connection, reserved up front
// so that collecting them costs one allocation, not one per doubling.
inline constexpr size_t kSyscallsReserved = 16;

// The record of `e` on the given side and target (an unseen enter stays 0).
inline SyscallRecord ToRecord(const SyscallEvent& e, Side side, Target target) {
  SyscallRecord r;
  r.syscall = e.syscall;
  r.side = side;
  r.target = target;
  r.tgid = e.tgid;
  r.tid = e.tid;
  r.enter_ns = e.enter_seen() ? e.enter_ns : 0;
  r.blocked = (e.flags & SyscallEvent::kBlocked) != 0;
  r.exit_ns = e.exit_ns;
  r.ret = e.ret;
  return r;
}

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PROFILER_RECORDS_H_
