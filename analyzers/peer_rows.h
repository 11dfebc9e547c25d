// The per-peer rows the report and --group-by peer keep: a bounded map in
// which the peer not called for longest is folded into an "other peers" row.
#ifndef REQCOST_ANALYZERS_PEER_ROWS_H_
#define REQCOST_ANALYZERS_PEER_ROWS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace reqcost::analyzers {

// The row of `peer` in `peers`, made (with `protocol`) when new. When that
// would pass `max_rows`, the row with the smallest `last_seen` is merged into
// `other` first and `folded` counts it: a peer per request (an ephemeral
// address) must not grow memory. `Row` has `protocol`, `last_seen` and
// `Merge(const Row&)`.
template <typename Row>
Row& FindOrFoldPeer(std::map<std::string, Row>* peers, const std::string& peer,
                    const std::string& protocol, size_t max_rows, Row* other,
                    uint64_t* folded) {
  auto it = peers->find(peer);
  if (it != peers->end()) return it->second;
  if (peers->size() >= max_rows) {
    auto oldest = std::min_element(
        peers->begin(), peers->end(), [](const auto& a, const auto& b) {
          return a.second.last_seen < b.second.last_seen;
        });
    other->Merge(oldest->second);
    ++*folded;
    peers->erase(oldest);
  }
  Row& row = (*peers)[peer];
  row.protocol = protocol;
  return row;
}

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PEER_ROWS_H_
