// `report --group-by` output: the group table (url/process keys), the
// group comparisons as text, and the "reqcost.compare-groups/3" JSON.
#ifndef REQCOST_ANALYZERS_RENDER_GROUP_FORMAT_H_
#define REQCOST_ANALYZERS_RENDER_GROUP_FORMAT_H_

#include <string>
#include <vector>

#include "analyzers/compare.h"
#include "analyzers/group_by.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {

inline constexpr char kCompareGroupsSchema[] = "reqcost.compare-groups/3";

// Text for url/process groups: their breakdowns side by side (a column
// per group: requests, share of the total time, phase means, total p99).
std::string FormatGroupTableText(GroupKeys keys,
                                 const std::vector<GroupReport>& groups);

// Text for `report --group-by`: the groups' sizes, then every comparison.
std::string FormatGroupComparisonText(
    const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons);

// {"schema": "reqcost.compare-groups/3", "group_by": ["client_conn", ...]
//  or ["url"] / ["server_process"] / ["backend_process"],
//  "groups": [{"label", "client_conn"?, "backend_conn"?, "url"?, "pid"?,
//  "other"?, "other_groups"?, "overflow_requests"?, "report"}],
//  "comparisons": [{"a": label, "b": label, "delta": {...}, "client": {...},
//  "verdict"}]} (no comparisons for url/process groups).
nlohmann::json GroupComparisonToJson(
    GroupKeys keys, const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_RENDER_GROUP_FORMAT_H_
