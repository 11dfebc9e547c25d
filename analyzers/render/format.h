// Printing a Report or a Request: the text breakdown, the stable JSON shapes
// of DESIGN.md ("reqcost.report/2" and the per-request jsonl lines), and a
// one-line text form of a request. Pure: values in, strings/json out.
#ifndef REQCOST_ANALYZERS_RENDER_FORMAT_H_
#define REQCOST_ANALYZERS_RENDER_FORMAT_H_

#include <cstdint>
#include <string>

#include "analyzers/duration.h"  // FormatDuration, for every renderer
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {

inline constexpr char kReportSchema[] = "reqcost.report/2";

// The text breakdown: header (processes, requests, drops, backend timing),
// the phase table, the average per-request timeline in strace-blog form,
// groups, and anomalies when there were any.
std::string FormatText(const Report& report);

// The report's `anomalies` object: every counter of `anomalies` by its name
// (the one list of names, also used by the metrics).
nlohmann::json AnomaliesToJson(const Anomalies& anomalies);

// The "reqcost.report/2" object. A phase without data has all its fields
// null (so scripts can always index phases.queue.mean_us).
nlohmann::json ReportToJson(const Report& report);

// One jsonl line's object: id, pid, client_conn, backend_conn, request_line,
// start_ns, total_us, server_us, transport_us, backend_us, queue_us,
// backend_timing, complete, syscalls[{name, side, offset_us, dur_us, bytes}].
// Unknown values (phases of an incomplete request, a syscall whose enter was
// not seen) are null; bytes is the return value of reads and writes (so a
// -EAGAIN read shows -11) and null for other syscalls.
nlohmann::json RequestToJson(const Request& request);

// One line for `--requests` in text mode.
std::string FormatRequestLine(const Request& request);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_RENDER_FORMAT_H_
