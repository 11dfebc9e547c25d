// Ordering a request's syscalls by start, knowing the ordered runs they were
// appended in.
#ifndef REQCOST_ANALYZERS_SYSCALL_RUNS_H_
#define REQCOST_ANALYZERS_SYSCALL_RUNS_H_

#include <algorithm>
#include <cstddef>
#include <vector>

#include "analyzers/request.h"

namespace reqcost::analyzers {

// Where each run of a request's syscalls ends in its vector: the finalizer
// appends them one list at a time (the connection's, its exchange's, the
// backend's work), each list in arrival order.
class SyscallRuns {
 public:
  // Marks the end of the run appended last (an empty run is skipped).
  void End(size_t size) {
    if (size > (n_ == 0 ? 0 : ends_[n_ - 1]) && n_ < kMaxRuns) {
      ends_[n_++] = size;
    }
  }

  // Orders *v by start exactly as std::stable_sort by start would. Each run
  // nearly always is in order already (events arrive in time order; only
  // clipping or another thread's records put one out), so a run is sorted
  // alone only when it needs it, then merged into the ordered runs before
  // it from the first record it overlaps, through `scratch` (a buffer the
  // caller keeps, so that a merge allocates nothing once it has grown). A
  // merge keeps the earlier run's record first among equal starts, as the
  // stable sort of the whole does. A v whose end is not a marked one is
  // stable-sorted whole.
  void SortByStart(std::vector<SyscallRecord>* v,
                   std::vector<SyscallRecord>* scratch) const {
    const auto begin = v->begin();
    if (n_ == 0 || ends_[n_ - 1] != v->size()) {
      std::stable_sort(begin, v->end(), StartsBefore);
      return;
    }
    size_t from = 0;
    for (size_t i = 0; i < n_; ++i) {
      const auto first = begin + from;
      const auto last = begin + ends_[i];
      if (!std::is_sorted(first, last, StartsBefore)) {
        std::stable_sort(first, last, StartsBefore);
      }
      if (from > 0 && StartsBefore(*first, *(first - 1))) {
        MergeInto(std::upper_bound(begin, first, *first, StartsBefore), first,
                  last, scratch);
      }
      from = ends_[i];
    }
  }
  // The same with a buffer of its own.
  void SortByStart(std::vector<SyscallRecord>* v) const {
    std::vector<SyscallRecord> scratch;
    SortByStart(v, &scratch);
  }

 private:
  static bool StartsBefore(const SyscallRecord& a, const SyscallRecord& b) {
    return a.start_ns() < b.start_ns();
  }
  // Merges the ordered [lo, mid) and [mid, last) in place: [lo, mid) is
  // copied out and the merge writes from lo, never past the record of
  // [mid, last) it reads next. Ties take [lo, mid)'s record first.
  template <typename It>
  static void MergeInto(It lo, It mid, It last,
                        std::vector<SyscallRecord>* scratch) {
    scratch->assign(lo, mid);
    auto a = scratch->cbegin();
    const auto a_end = scratch->cend();
    It b = mid;
    It out = lo;
    while (a != a_end && b != last) {
      if (StartsBefore(*b, *a)) {
        *out++ = *b++;
      } else {
        *out++ = *a++;
      }
    }
    std::copy(a, a_end, out);  // what is left of [mid, last) is in place
  }

  static constexpr size_t kMaxRuns = 8;
  size_t ends_[kMaxRuns] = {};
  size_t n_ = 0;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_SYSCALL_RUNS_H_
