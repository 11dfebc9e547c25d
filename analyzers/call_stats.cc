#include "analyzers/call_stats.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "analyzers/peer_rows.h"
#include "analyzers/report.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

void CallStats::Peer::Merge(const Peer& o) {
  if (protocol.empty()) protocol = o.protocol;
  calls += o.calls;
  requests += o.requests;
  time.Merge(o.time);
  nested += o.nested;
  transport.Merge(o.transport);
  peer.Merge(o.peer);
  last_seen = std::max(last_seen, o.last_seen);
}

CallStats::Peer& CallStats::Row(const std::string& peer,
                                const std::string& protocol) {
  Peer& row = FindOrFoldPeer(&peers_, peer, protocol, kMaxPeerRows, &other_,
                             &folded_);
  row.last_seen = requests_;
  return row;
}

void CallStats::AddSlow(Slow slow) {
  if (slowest_.size() == kSlowestCalls && slow.ns <= slowest_.back().ns) {
    return;
  }
  auto at = std::upper_bound(
      slowest_.begin(), slowest_.end(), slow.ns,
      [](uint64_t ns, const Slow& s) { return ns > s.ns; });
  slowest_.insert(at, std::move(slow));
  if (slowest_.size() > kSlowestCalls) slowest_.pop_back();
}

void CallStats::Add(const Request& r) {
  if (!r.complete || !r.backend_own_ns.has_value()) return;
  ++requests_;
  own_.Add(*r.backend_own_ns);
  for (const PeerTime& p : CallsByPeer(r)) {
    Peer& row = Row(p.peer, p.protocol);
    row.calls += p.calls;
    ++row.requests;
    row.time.Add(p.ns);
  }
  for (const CallRecord& c : r.calls) {
    if (!c.peer_ns.has_value() || !c.transport_ns.has_value()) continue;
    Peer& row = Row(c.peer, c.protocol);
    ++row.nested;
    row.transport.Add(*c.transport_ns);
    row.peer.Add(*c.peer_ns);
  }
  for (const CallRecord& c : r.calls) {
    if (c.query.empty()) continue;
    if (slowest_.size() == kSlowestCalls &&
        c.duration_ns() <= slowest_.back().ns) {
      continue;
    }
    AddSlow({c.peer, c.query, c.duration_ns(), r.id});
  }
}

void CallStats::Merge(const CallStats& o) {
  requests_ += o.requests_;
  own_.Merge(o.own_);
  for (const auto& [peer, row] : o.peers_) Row(peer, row.protocol).Merge(row);
  if (o.folded_ > 0) {
    other_.Merge(o.other_);
    folded_ += o.folded_;
  }
  for (const Slow& s : o.slowest_) AddSlow(s);
}

void CallStats::Fill(CallsSummary* out, uint64_t complete) const {
  *out = CallsSummary();
  out->requests = requests_;
  out->backend_own = SummaryOf(own_);
  auto row = [&](const std::string& name, const Peer& p) {
    PeerSummary s;
    s.peer = name;
    s.protocol = p.protocol;
    s.calls = p.calls;
    s.requests = p.requests;
    s.calls_per_request =
        requests_ > 0 ? static_cast<double>(p.calls) / requests_ : 0.0;
    s.time = SummaryOf(p.time);
    s.nested_calls = p.nested;
    if (p.nested > 0) {
      s.transport = SummaryOf(p.transport);
      s.peer_time = SummaryOf(p.peer);
    }
    return s;
  };
  for (const auto& [name, p] : peers_) out->peers.push_back(row(name, p));
  std::stable_sort(out->peers.begin(), out->peers.end(),
                   [](const PeerSummary& a, const PeerSummary& b) {
                     const double ta = a.time ? a.time->mean_us * a.requests : 0;
                     const double tb = b.time ? b.time->mean_us * b.requests : 0;
                     return ta > tb;
                   });
  if (folded_ > 0) {
    PeerSummary other = row("other peers", other_);
    other.other = true;
    other.folded = folded_;
    out->peers.push_back(std::move(other));
  }
  for (const Slow& s : slowest_) {
    out->slowest.push_back(
        {s.peer, s.query, s.ns / 1000.0, s.request_id});
  }
  (void)complete;
}

}  // namespace reqcost::analyzers
