// The N slowest complete requests of a run, kept with their syscalls while
// requests are finalized one by one: memory is bounded by N, not by the
// number of requests.
#ifndef REQCOST_ANALYZERS_SLOWEST_H_
#define REQCOST_ANALYZERS_SLOWEST_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "analyzers/request.h"

namespace reqcost::analyzers {

class SlowestRequests {
 public:
  // Keeps at most `capacity` requests (0 keeps none).
  explicit SlowestRequests(size_t capacity) : capacity_(capacity) {}

  // Offers a finalized request: a complete one is kept when it is among the
  // `capacity` slowest so far (by total; on equal totals the earlier id
  // stays). Incomplete requests have no total and are not kept.
  void Add(const Request& request);

  // The kept requests, slowest first (equal totals: lower id first).
  std::vector<Request> Sorted() const;

  // How many complete requests were offered.
  uint64_t offered() const { return offered_; }
  size_t capacity() const { return capacity_; }

 private:
  // Whether `a` is faster than `b` (it would be dropped first).
  static bool Faster(const Request& a, const Request& b);

  size_t capacity_;
  uint64_t offered_ = 0;
  std::vector<Request> heap_;  // a heap whose front is the fastest kept
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_SLOWEST_H_
