// Requests as a Chrome trace-event JSON file (the {"traceEvents": [...]}
// format that Perfetto and chrome://tracing open): a track per process and
// thread, each request a slice with its phases and syscalls nested inside.
// Pure: requests in, json out.
#ifndef REQCOST_ANALYZERS_RENDER_TRACE_EXPORT_H_
#define REQCOST_ANALYZERS_RENDER_TRACE_EXPORT_H_

#include <cstdint>
#include <vector>

#include "analyzers/report.h"
#include "analyzers/request.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {

// The trace of `requests`, times ("ts", "dur") in microseconds since
// `origin_ns` (CLOCK_MONOTONIC, e.g. the capture's start).
//
// Layout, on the server thread that handled the request (its first client
// syscall's thread):
//
//   request "GET /index.php" (or "request #17")       cat "request"
//     server | transport | server                      cat "phase"
//                backend (measured or inferred span)   cat "phase"
//       syscalls of that thread, under the phase they began in  cat "syscall"
//
// A request's syscalls on another thread (the backend's, or another server
// thread) go on that thread's track under a slice named after the request
// (cat "request-part"), with the measured backend span as a "backend" slice
// on the backend's thread. Incomplete requests get the request slice and
// their syscalls but no phases. Slices never cross: each child lies within
// its parent's [ts, ts + dur] (syscall ends are cut where a sibling begins);
// requests that overlap on one thread (one nginx worker serving several
// clients) go on extra tracks of that thread, "comm tid (overlap N)".
// Metadata events name every process ("nginx 1234 (server)") and track.
nlohmann::json ChromeTrace(const std::vector<Request>& requests,
                           const std::vector<ProcessEntry>& processes,
                           uint64_t origin_ns);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_RENDER_TRACE_EXPORT_H_
