// A Comparison as text (the side-by-side table and its verdict) and as the
// "reqcost.compare/3" JSON. Pure: values in, strings/json out.
#ifndef REQCOST_ANALYZERS_RENDER_COMPARE_FORMAT_H_
#define REQCOST_ANALYZERS_RENDER_COMPARE_FORMAT_H_

#include <string>

#include "analyzers/compare.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {

inline constexpr char kCompareSchema[] = "reqcost.compare/3";

// What `compare` prints under its table of two captures: their difference
// includes the machine's drift between them.
inline constexpr char kDriftNote[] =
    "Two captures taken one after the other differ by several percent from "
    "the machine's drift alone (a VM's CPU speed varies): prefer groups of "
    "one capture (report --group-by client-conn) or interleaved runs.";

// The side-by-side table: requests and rate, phases (mean, p50, p99 and the
// deltas), syscalls (count per request, mean, p50, p99, time per request
// and its delta), then the verdict.
std::string FormatComparisonText(const Comparison& c);

// {"schema": "reqcost.compare/3", "threshold_pct", "a": {report},
//  "b": {report}, "delta": {"total": {"mean_us", "pct", "ci95_us", "clear"},
//  "server", "transport", "backend", "queue", "tls"}, "client": {"a", "b",
//  "response_delta"}, "verdict"}: reports as ReportToJson prints them;
//  unknown values are null.
nlohmann::json ComparisonToJson(const Comparison& c);

// The backend calls block of the comparison's text ("backend own" and a
// row per peer); "" when neither run measured a backend own time.
std::string FormatCallsComparisonText(const CallsDelta& d);

// {"backend_own": delta, "peers": [{"peer", "protocol", "a_calls_per_request",
//  "b_calls_per_request", "a_seen", "b_seen", "delta"}]}, each delta as in
// "delta" (mean_us, pct, ci95_us, clear).
nlohmann::json CallsDeltaToJson(const CallsDelta& d);

// ComparisonToJson's "delta": {"total": {"mean_us", "pct", "ci95_us",
// "clear"}, ...} for every phase.
nlohmann::json ComparisonDeltasToJson(const Comparison& c);

// ComparisonToJson's "client": {"a", "b", "response_delta"}.
nlohmann::json ComparisonClientToJson(const Comparison& c);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_RENDER_COMPARE_FORMAT_H_
