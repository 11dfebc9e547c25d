// Statistics of the backend's calls over complete requests: the backend's
// own time and, per peer, the time and calls per request (the report's
// CallsSummary, report.h).
#ifndef REQCOST_ANALYZERS_CALL_STATS_H_
#define REQCOST_ANALYZERS_CALL_STATS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "analyzers/histogram.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

struct CallsSummary;

// At most this many peers get a row of their own; the rest are folded into
// one "other peers" row (a peer is a protocol and address: a host calls a
// handful, but an address per request would grow without bound).
inline constexpr size_t kMaxPeerRows = 32;
// The slowest calls with a query (--payload) that the report keeps.
inline constexpr size_t kSlowestCalls = 10;

// Streaming: memory grows with the peers (at most kMaxPeerRows + 1) and
// histogram buckets, not with requests or calls.
class CallStats {
 public:
  // Counts the calls of a complete request with a measured backend, and its
  // backend own time; other requests are not counted.
  void Add(const Request& request);
  // Fills `out`; calls per request are over `complete` requests.
  void Fill(CallsSummary* out, uint64_t complete) const;
  // Adds everything `other` counted.
  void Merge(const CallStats& other);

 private:
  struct Peer {
    std::string protocol;
    uint64_t calls = 0;
    uint64_t requests = 0;  // complete requests with a call to it
    Summary time;           // per such request: its calls' summed time
    // Its calls that nested a complete request of the peer (a traced peer):
    // per call, transport and the peer's time.
    uint64_t nested = 0;
    Summary transport;
    Summary peer;
    uint64_t last_seen = 0;
    void Merge(const Peer& other);
  };
  struct Slow {
    std::string peer;
    std::string query;
    uint64_t ns = 0;
    uint64_t request_id = 0;
  };
  Peer& Row(const std::string& peer, const std::string& protocol);
  void AddSlow(Slow slow);

  uint64_t requests_ = 0;  // counted (measured backend)
  Summary own_;
  std::map<std::string, Peer> peers_;
  Peer other_;
  uint64_t folded_ = 0;
  std::vector<Slow> slowest_;  // slowest first
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_CALL_STATS_H_
