// `report --group-by peer`: the backend's calls grouped by what they called
// (a database, a cache, an HTTP service), each peer's calls, the time of one
// call (mean, p50, p99) and its calls per request.
#ifndef REQCOST_ANALYZERS_PEER_CALLS_H_
#define REQCOST_ANALYZERS_PEER_CALLS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "analyzers/histogram.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

// One peer's row.
struct PeerCallRow {
  std::string peer;      // CallRecord::peer; "other peers" for the folded row
  std::string protocol;  // "" unknown
  uint64_t calls = 0;
  uint64_t requests = 0;          // counted requests that called it
  double calls_per_request = 0;   // calls / all counted requests
  double total_ms = 0;            // its calls' summed time
  double mean_us = 0, p50_us = 0, p99_us = 0, max_us = 0;  // per call
  bool other = false;
  uint64_t folded = 0;  // peers folded into the "other peers" row
};

// Streaming; memory grows with the peers (at most `max_peers` + 1) and
// histogram buckets, not with requests or calls. Counts the complete
// requests with a measured backend (those with a backend own time), as
// the report's calls section does.
class PeerCallStats {
 public:
  explicit PeerCallStats(size_t max_peers = 32) : max_peers_(max_peers) {}
  void Add(const Request& request);
  // The rows, most summed call time first, the folded row last.
  std::vector<PeerCallRow> Rows() const;
  // The requests counted.
  uint64_t requests() const { return requests_; }
  // Their calls, all peers.
  uint64_t calls() const { return calls_; }

 private:
  struct Peer {
    std::string protocol;
    uint64_t calls = 0;
    uint64_t requests = 0;
    Summary time;  // per call
    uint64_t last_seen = 0;
    void Merge(const Peer& other);
  };
  PeerCallRow RowOf(const std::string& name, const Peer& p) const;

  size_t max_peers_;
  uint64_t requests_ = 0;
  uint64_t calls_ = 0;
  std::map<std::string, Peer> peers_;
  Peer other_;
  uint64_t folded_ = 0;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PEER_CALLS_H_
