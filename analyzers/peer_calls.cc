#include "analyzers/peer_calls.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "analyzers/peer_rows.h"

namespace reqcost::analyzers {

void PeerCallStats::Peer::Merge(const Peer& o) {
  if (protocol.empty()) protocol = o.protocol;
  calls += o.calls;
  requests += o.requests;
  time.Merge(o.time);
  last_seen = std::max(last_seen, o.last_seen);
}

void PeerCallStats::Add(const Request& r) {
  if (!r.complete || !r.backend_own_ns.has_value()) return;
  ++requests_;
  std::set<std::string> called;
  for (const CallRecord& c : r.calls) {
    Peer& p = FindOrFoldPeer(&peers_, c.peer, c.protocol, max_peers_,
                             &other_, &folded_);
    p.last_seen = requests_;
    ++p.calls;
    ++calls_;
    p.time.Add(c.duration_ns());
    if (called.insert(c.peer).second) ++p.requests;
  }
}

PeerCallRow PeerCallStats::RowOf(const std::string& name,
                                 const Peer& p) const {
  PeerCallRow row;
  row.peer = name;
  row.protocol = p.protocol;
  row.calls = p.calls;
  row.requests = p.requests;
  row.calls_per_request =
      requests_ == 0 ? 0.0 : static_cast<double>(p.calls) / requests_;
  row.total_ms = p.time.sum_ns() / 1e6;
  row.mean_us = p.time.mean_ns() / 1e3;
  row.p50_us = p.time.Percentile(0.50) / 1e3;
  row.p99_us = p.time.Percentile(0.99) / 1e3;
  row.max_us = p.time.max_ns() / 1e3;
  return row;
}

std::vector<PeerCallRow> PeerCallStats::Rows() const {
  std::vector<PeerCallRow> rows;
  for (const auto& [name, p] : peers_) rows.push_back(RowOf(name, p));
  std::stable_sort(rows.begin(), rows.end(),
                   [](const PeerCallRow& a, const PeerCallRow& b) {
                     return a.total_ms > b.total_ms;
                   });
  if (other_.calls > 0) {
    PeerCallRow row = RowOf("other peers", other_);
    row.protocol.clear();
    row.other = true;
    row.folded = folded_;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace reqcost::analyzers
