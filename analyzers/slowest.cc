#include "analyzers/slowest.h"

#include <algorithm>
#include <vector>

namespace reqcost::analyzers {

bool SlowestRequests::Faster(const Request& a, const Request& b) {
  const uint64_t ta = a.total_ns.value_or(0);
  const uint64_t tb = b.total_ns.value_or(0);
  if (ta != tb) return ta < tb;
  return a.id > b.id;  // a later request goes first
}

void SlowestRequests::Add(const Request& request) {
  if (!request.complete || !request.total_ns.has_value()) return;
  ++offered_;
  if (capacity_ == 0) return;
  // std::*_heap with this comparator keep the *fastest* kept request at
  // the front (a min-heap by slowness), the one to evict.
  auto slower = [](const Request& a, const Request& b) { return Faster(b, a); };
  if (heap_.size() < capacity_) {
    heap_.push_back(request);
    std::push_heap(heap_.begin(), heap_.end(), slower);
    return;
  }
  if (!Faster(heap_.front(), request)) return;
  std::pop_heap(heap_.begin(), heap_.end(), slower);
  heap_.back() = request;
  std::push_heap(heap_.begin(), heap_.end(), slower);
}

std::vector<Request> SlowestRequests::Sorted() const {
  std::vector<Request> out = heap_;
  std::sort(out.begin(), out.end(),
            [](const Request& a, const Request& b) { return Faster(b, a); });
  return out;
}

}  // namespace reqcost::analyzers
