// `report --group-by peer` output: a row per peer the backend called.
#ifndef REQCOST_ANALYZERS_RENDER_PEER_FORMAT_H_
#define REQCOST_ANALYZERS_RENDER_PEER_FORMAT_H_

#include <string>

#include "analyzers/peer_calls.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {

inline constexpr char kPeerGroupsSchema[] = "reqcost.group-by-peer/1";

// A table: peer, protocol, calls, calls per request, the time of one call
// (mean, p50, p99, max) and the summed time; or a sentence saying no call
// was seen and why that can be.
std::string FormatPeerGroupsText(const PeerCallStats& stats);

// {"schema": "reqcost.group-by-peer/1", "group_by": ["peer"],
//  "requests": N, "calls": N, "peers": [{"peer", "protocol", "calls",
//  "requests", "calls_per_request", "total_ms", "call_us": {"mean", "p50",
//  "p99", "max"}, "other"?, "folded"?}]}
nlohmann::json PeerGroupsToJson(const PeerCallStats& stats);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_RENDER_PEER_FORMAT_H_
