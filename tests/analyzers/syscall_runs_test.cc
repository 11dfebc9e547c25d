#include "analyzers/syscall_runs.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "analyzers/request.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

// The records' identities (tid holds the position before sorting), so that
// the order among equal starts is compared too.
std::vector<uint32_t> Order(const std::vector<SyscallRecord>& v) {
  std::vector<uint32_t> out;
  for (const auto& r : v) out.push_back(r.tid);
  return out;
}

std::vector<SyscallRecord> StableSorted(std::vector<SyscallRecord> v) {
  std::stable_sort(v.begin(), v.end(),
                   [](const SyscallRecord& a, const SyscallRecord& b) {
                     return a.start_ns() < b.start_ns();
                   });
  return v;
}

TEST(SyscallRunsTest, SameOrderAsStableSortOfTheWhole) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<SyscallRecord> v;
    SyscallRuns runs;
    const int nruns = static_cast<int>(rng() % 8);
    for (int r = 0; r < nruns; ++r) {
      // Mostly ascending runs over overlapping ranges, with few distinct
      // times (ties), an unseen enter now and then, and some out of order.
      const int len = static_cast<int>(rng() % 7);
      uint64_t t = rng() % 40;
      for (int i = 0; i < len; ++i) {
        SyscallRecord s;
        s.tid = static_cast<uint32_t>(v.size());
        t += rng() % 4;
        const uint64_t start = rng() % 5 == 0 ? rng() % 50 : t;
        if (rng() % 6 == 0) {
          s.exit_ns = start + 1;  // enter unseen: starts at its exit
        } else {
          s.enter_ns = start + 1;
          s.exit_ns = start + 2;
        }
        v.push_back(s);
      }
      runs.End(v.size());
    }
    const auto want = Order(StableSorted(v));
    runs.SortByStart(&v);
    ASSERT_EQ(Order(v), want) << "round " << round;
  }
}

TEST(SyscallRunsTest, OneScratchBufferKeptAcrossSortsGivesTheSameOrder) {
  // As the finalizer does: one buffer for every request, left holding the
  // previous merge's records.
  std::mt19937 rng(19);
  std::vector<SyscallRecord> scratch;
  for (int round = 0; round < 2000; ++round) {
    std::vector<SyscallRecord> v;
    SyscallRuns runs;
    const int nruns = 1 + static_cast<int>(rng() % 7);
    for (int r = 0; r < nruns; ++r) {
      const int len = static_cast<int>(rng() % 9);
      uint64_t t = rng() % 30;
      for (int i = 0; i < len; ++i) {
        SyscallRecord s;
        s.tid = static_cast<uint32_t>(v.size());
        t += rng() % 3;
        s.enter_ns = t + 1;
        s.exit_ns = t + 2;
        v.push_back(s);
      }
      runs.End(v.size());
    }
    const auto want = Order(StableSorted(v));
    runs.SortByStart(&v, &scratch);
    ASSERT_EQ(Order(v), want) << "round " << round;
  }
}

TEST(SyscallRunsTest, LongOverlappingRunsMergeThroughABuffer) {
  // Two long interleaved runs.
  std::vector<SyscallRecord> v;
  SyscallRuns runs;
  for (uint32_t run = 0; run < 2; ++run) {
    for (uint32_t i = 0; i < 200; ++i) {
      SyscallRecord s;
      s.tid = static_cast<uint32_t>(v.size());
      s.enter_ns = 1 + 2 * i + run * (i % 3 == 0 ? 0 : 1);
      s.exit_ns = s.enter_ns + 1;
      v.push_back(s);
    }
    runs.End(v.size());
  }
  const auto want = Order(StableSorted(v));
  runs.SortByStart(&v);
  EXPECT_EQ(Order(v), want);
}

TEST(SyscallRunsTest, UnmarkedTailFallsBackToAWholeSort) {
  std::vector<SyscallRecord> v(3);
  for (uint32_t i = 0; i < 3; ++i) {
    v[i].tid = i;
    v[i].enter_ns = 30 - 10 * i;
    v[i].exit_ns = 31 - 10 * i;
  }
  SyscallRuns runs;
  runs.End(1);  // the rest is not marked
  runs.SortByStart(&v);
  EXPECT_EQ(Order(v), (std::vector<uint32_t>{2, 1, 0}));
}

}  // namespace
}  // namespace reqcost::analyzers
