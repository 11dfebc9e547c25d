#include "analyzers/render/peer_format.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analyzers/payload.h"

namespace reqcost::analyzers {

std::string FormatPeerGroupsText(const PeerCallStats& stats) {
  std::string out = absl::StrFormat(
      "Backend calls by peer (%d requests with a measured backend, %d "
      "calls)\n",
      stats.requests(), stats.calls());
  std::vector<PeerCallRow> rows = stats.Rows();
  if (rows.empty()) {
    out +=
        "  no backend call seen: the backend called nothing, or its backend "
        "time was not measured (see docs/definitions.md, \"Backend "
        "calls\")\n";
    return out;
  }
  out += absl::StrFormat("  %-40s %-10s %8s %8s %10s %10s %10s %10s %10s\n",
                         "peer", "protocol", "calls", "per req", "mean us",
                         "p50 us", "p99 us", "max us", "total ms");
  for (const PeerCallRow& r : rows) {
    std::string name = TerminalText(r.peer);
    if (r.other) absl::StrAppend(&name, " (", r.folded, ")");
    out += absl::StrFormat(
        "  %-40s %-10s %8d %8.2f %10.1f %10.1f %10.1f %10.1f %10.2f\n", name,
        r.protocol.empty() ? "-" : r.protocol, r.calls, r.calls_per_request,
        r.mean_us, r.p50_us, r.p99_us, r.max_us, r.total_ms);
  }
  return out;
}

nlohmann::json PeerGroupsToJson(const PeerCallStats& stats) {
  nlohmann::json peers = nlohmann::json::array();
  for (const PeerCallRow& r : stats.Rows()) {
    nlohmann::json row = {
        {"peer", ValidUtf8(r.peer)},
        {"protocol", r.protocol},
        {"calls", r.calls},
        {"requests", r.requests},
        {"calls_per_request", r.calls_per_request},
        {"total_ms", r.total_ms},
        {"call_us",
         {{"mean", r.mean_us},
          {"p50", r.p50_us},
          {"p99", r.p99_us},
          {"max", r.max_us}}}};
    if (r.other) {
      row["other"] = true;
      row["folded"] = r.folded;
    }
    peers.push_back(std::move(row));
  }
  return {{"schema", kPeerGroupsSchema},
          {"group_by", {"peer"}},
          {"requests", stats.requests()},
          {"calls", stats.calls()},
          {"peers", std::move(peers)}};
}

}  // namespace reqcost::analyzers
