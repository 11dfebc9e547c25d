// libFuzzer target for the strace log parser (collector/strace_import.h): any
// bytes must import without a crash, an out-of-bounds read or an unbounded
// allocation, and the import must keep its promises:
//   - every line is accounted for: lines = the counted kinds of line, and
//     malformed lines name at most kMaxSamples samples;
//   - events come out sorted by exit time, each with exit >= enter when its
//     enter is known, a traced syscall and a payload within the capture
//     file's bound;
//   - the header's span covers every event.
// The input is split at its first 0 byte into two logs (the files of strace
// -ff), the second named with a .PID suffix.
// Run: strace_fuzz -max_total_time=60 -dict=strace.dict corpus/
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "collector/capture_file.h"
#include "collector/strace_import.h"

namespace reqcost::collector {
namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "strace_fuzz: %s\n", what);
  std::abort();
}

void Check(std::string_view data) {
  std::vector<std::pair<std::string, std::string_view>> logs;
  size_t zero = data.find('\0');
  logs.emplace_back("a.log", data.substr(0, zero));
  if (zero != std::string_view::npos)
    logs.emplace_back("b.4242", data.substr(zero + 1));
  StraceImport im = ImportStrace(logs);
  const StraceImportStats& s = im.stats;
  uint64_t accounted =
      s.info_lines + s.malformed + s.truncated + s.signals + s.exits;
  if (accounted > s.lines) Die("more lines accounted for than read");
  if (s.malformed_samples.size() > StraceImportStats::kMaxSamples ||
      s.malformed_samples.size() > s.malformed) {
    Die("too many malformed samples");
  }
  if (s.socket_calls > s.calls) Die("more socket calls than calls");
  if (im.events.size() + s.backend_left_out != s.socket_calls) {
    Die("events do not add up to socket calls");
  }
  for (size_t i = 0; i < im.events.size(); ++i) {
    const SyscallEvent& e = im.events[i];
    if (i > 0 && im.events[i - 1].exit_ns > e.exit_ns) Die("events not sorted");
    if (e.enter_seen() && e.enter_ns > e.exit_ns) Die("enter after exit");
    if (SyscallName(e.syscall) == "?") Die("unknown syscall");
    if (e.payload.size() > kMaxPayloadBytes) Die("payload over the bound");
    if (e.exit_ns > im.header.end_mono_ns) Die("event after the end");
    if (e.enter_seen() && e.enter_ns < im.header.start_mono_ns)
      Die("event before the start");
  }
}

}  // namespace
}  // namespace reqcost::collector

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  reqcost::collector::Check(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
