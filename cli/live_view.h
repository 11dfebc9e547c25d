// What `attach` shows while it runs and when it saw nothing: the breakdown
// of each --interval as it ends, and why a run found no request.
#ifndef REQCOST_CLI_LIVE_VIEW_H_
#define REQCOST_CLI_LIVE_VIEW_H_

#include <cstdint>
#include <cstdio>
#include <set>
#include <string>

#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::cli {

// The socket calls a run saw, by kind: enough to say why it found no
// request.
struct SeenCalls {
  uint64_t calls = 0;       // syscall events
  uint64_t stream = 0;      // on TCP or unix stream sockets
  uint64_t non_stream = 0;  // on UDP, unix datagram, netlink, ... sockets
  uint64_t accepts = 0;     // connections accepted (a server's sign)
  uint64_t connects = 0;    // connections opened (a client's sign)
  // Processes that made any of them, up to kMaxTgids (a long run under
  // process churn must not grow with every process seen).
  std::set<uint32_t> tgids;
  static constexpr size_t kMaxTgids = 1024;

  // Counts one event.
  void Add(const SyscallEvent& event);
};

// What to print instead of an empty table: what the run saw and what to
// check, several lines ending in '\n'. `processes` is how many were traced
// (at attach and since).
std::string ExplainNoRequest(const SeenCalls& seen, size_t processes);

// The breakdown of each interval of a live run, printed as it ends: in text
// a block of rows stamped with the interval's end (like `pidstat 5`), in
// jsonl one {"type":"interval",...} record.
class IntervalView {
 public:
  IntervalView(bool jsonl, std::FILE* out, int64_t mono_to_wall_ns)
      : jsonl_(jsonl), out_(out), mono_to_wall_ns_(mono_to_wall_ns) {}

  // Counts a request finalized during the current interval.
  void Add(const analyzers::Request& request) { stats_.Add(request); }

  // Prints the interval [from_ns, to_ns) (monotonic) and starts the next.
  // A text interval with no request prints one row that says so.
  void Print(uint64_t from_ns, uint64_t to_ns, uint64_t dropped_events);

 private:
  bool jsonl_;
  std::FILE* out_;
  int64_t mono_to_wall_ns_;
  analyzers::RequestStats stats_;
  uint64_t intervals_ = 0;
  uint64_t last_dropped_ = 0;
};

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_LIVE_VIEW_H_
