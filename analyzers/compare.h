// Two captures (or two groups of requests of one capture) side by side:
// per phase and per syscall kind and side, with absolute and relative
// deltas and a verdict in words computed from those numbers. Pure: Reports
// in, values and strings/json out.
#ifndef REQCOST_ANALYZERS_COMPARE_H_
#define REQCOST_ANALYZERS_COMPARE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analyzers/report.h"
#include "analyzers/request.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {

inline constexpr char kCompareSchema[] = "reqcost.compare/2";
inline constexpr char kCompareGroupsSchema[] = "reqcost.compare-groups/2";
// A change of the mean total smaller than this (percent of A's) is no
// significant difference.
inline constexpr double kSignificantPct = 2.0;

// One phase in A and B. mean_us = B - A; pct = 100 * (B - A) / A, unset
// when A's mean is 0 or either side has no data.
struct PhaseDelta {
  std::string phase;  // "total", "server", "transport", "backend", "queue"
  std::optional<PhaseSummary> a, b;
  std::optional<double> mean_us;
  std::optional<double> pct;
};

// One syscall kind on one side in A and B, per complete request: how often
// it ran and the time it took (count * mean / complete requests).
struct SyscallDelta {
  std::string name;
  std::string side;
  std::string peer;  // side calls only (see SyscallSummary)
  std::optional<SyscallSummary> a, b;  // unset: not seen on that side
  double a_count_per_request = 0;
  double b_count_per_request = 0;
  double a_us_per_request = 0;
  double b_us_per_request = 0;
  double delta_us_per_request = 0;  // B - A
};

// A against B.
struct Comparison {
  std::string a_label;
  std::string b_label;
  Report a;
  Report b;
  std::vector<PhaseDelta> phases;      // total, server, transport, backend, queue
  std::vector<SyscallDelta> syscalls;  // largest |delta_us_per_request| first
  std::string verdict;                 // one sentence from the numbers above
};

// Compares `a` with `b` (B is the candidate: "B saves ... over A").
Comparison Compare(const Report& a, const Report& b, std::string a_label = "A",
                   std::string b_label = "B");

// The side-by-side table: requests and rate, phases (mean, p50, p99 and the
// deltas), syscalls (count per request, mean, p50, p99, time per request
// and its delta), then the verdict.
std::string FormatComparisonText(const Comparison& c);

// {"schema": "reqcost.compare/2", "a": {report}, "b": {report},
//  "delta": {"total": {"mean_us", "pct"}, "server", "transport", "backend",
//  "queue"}}: reports as ReportToJson prints them; unknown deltas are null.
nlohmann::json ComparisonToJson(const Comparison& c);

// Which connection reuse keys `report --group-by` splits requests by.
struct GroupKeys {
  bool client_conn = false;
  bool backend_conn = false;
};

// Parses "client-conn", "backend-conn" or both, comma-separated; nullopt
// and a sentence in `error` for anything else.
std::optional<GroupKeys> ParseGroupBy(const std::string& text,
                                      std::string* error);

// One group of requests of a capture and its report.
struct GroupReport {
  std::string label;         // "client new", "client reused, backend new"
  std::string client_conn;   // "new", "reused"; empty when not a key
  std::string backend_conn;  // "new", "reused", "none"; empty when not a key
  Report report;
};

// Statistics per group of requests (by the chosen reuse keys), each a full
// RequestStats. Memory grows with the number of groups (at most 6), not
// with requests.
class GroupedStats {
 public:
  explicit GroupedStats(GroupKeys keys) : keys_(keys) {}
  void Add(const Request& request);
  // One report per group seen, in key order ("new" before "reused");
  // capture, processes and anomalies are copied from `base`.
  std::vector<GroupReport> Reports(const Report& base) const;

 private:
  GroupKeys keys_;
  std::map<std::pair<ConnReuse, ConnReuse>, RequestStats> groups_;
};

// Each group after the first compared with the first.
std::vector<Comparison> CompareGroups(const std::vector<GroupReport>& groups);

// Text for `report --group-by`: the groups' sizes, then every comparison.
std::string FormatGroupComparisonText(
    const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons);

// {"schema": "reqcost.compare-groups/2", "group_by": ["client_conn", ...],
//  "groups": [{"label", "client_conn"?, "backend_conn"?, "report"}],
//  "comparisons": [{"a": label, "b": label, "delta": {...}, "verdict"}]}.
nlohmann::json GroupComparisonToJson(
    GroupKeys keys, const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_COMPARE_H_
