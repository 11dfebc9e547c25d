#include "analyzers/reorder_buffer.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::Eq;
using ::testing::Optional;

// A syscall event named by `id` (its tid), keyed by `key`.
SyscallEvent Event(uint32_t id, uint64_t key) {
  SyscallEvent e;
  e.tid = id;
  e.exit_ns = key;
  return e;
}

// The ids handed out by Drain, in order.
std::vector<uint32_t> DrainIds(ReorderBuffer* buffer, bool all) {
  std::vector<uint32_t> ids;
  buffer->Drain(all, [&ids](const Queued& q) {
    ids.push_back(std::get<SyscallEvent>(q.item).tid);
  });
  return ids;
}

// What the buffer must hand out: a stable sort of the arrivals by key.
std::vector<uint32_t> StableOrder(
    std::vector<std::pair<uint64_t, uint32_t>> arrivals) {
  std::stable_sort(arrivals.begin(), arrivals.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<uint32_t> ids;
  for (const auto& a : arrivals) ids.push_back(a.second);
  return ids;
}

TEST(ReorderBufferTest, HoldsAnEventUntilTheNewestKeyIsAWindowPast) {
  ReorderBuffer buffer(100);
  EXPECT_TRUE(buffer.Push(1000, Event(1, 1000)));
  EXPECT_TRUE(buffer.Push(1099, Event(2, 1099)));
  EXPECT_THAT(DrainIds(&buffer, false), ElementsAre());
  EXPECT_TRUE(buffer.Push(1100, Event(3, 1100)));
  EXPECT_THAT(DrainIds(&buffer, false), ElementsAre(1));
  EXPECT_THAT(buffer.processed_ns(), Eq(1000u));
  EXPECT_THAT(buffer.oldest_key(), Optional(1099u));
  buffer.AdvanceTo(1200);
  EXPECT_THAT(DrainIds(&buffer, false), ElementsAre(2, 3));
  EXPECT_THAT(buffer.oldest_key(), Eq(std::nullopt));
}

TEST(ReorderBufferTest, OutOfOrderArrivalWithinTheWindowLeavesInKeyOrder) {
  ReorderBuffer buffer(1000);
  buffer.Push(50, Event(1, 50));
  buffer.Push(30, Event(2, 30));  // before everything
  buffer.Push(40, Event(3, 40));  // between
  buffer.Push(60, Event(4, 60));  // at the back
  buffer.Push(40, Event(5, 40));  // ties: after the earlier 40
  buffer.Push(30, Event(6, 30));
  EXPECT_THAT(DrainIds(&buffer, true), ElementsAre(2, 6, 3, 5, 1, 4));
}

TEST(ReorderBufferTest, LateEventIsCountedAndHandedOutNext) {
  ReorderBuffer buffer(10);
  buffer.Push(100, Event(1, 100));
  buffer.Push(200, Event(2, 200));
  EXPECT_THAT(DrainIds(&buffer, false), ElementsAre(1));
  // Older than what was handed out: late, but still delivered, first.
  EXPECT_FALSE(buffer.Push(50, Event(3, 50)));
  // Equal to the last handed out: in time.
  EXPECT_TRUE(buffer.Push(100, Event(4, 100)));
  EXPECT_THAT(DrainIds(&buffer, true), ElementsAre(3, 4, 2));
}

TEST(ReorderBufferTest, WrapsAroundTheRingWithoutGrowing) {
  ReorderBuffer buffer(5);
  std::vector<uint32_t> out;
  // Many times the ring's size, never more than a few queued: the ring's
  // head wraps many times, with out-of-order inserts across its end.
  uint32_t id = 0;
  std::vector<std::pair<uint64_t, uint32_t>> arrivals;
  for (uint64_t t = 0; t < 20'000; t += 2) {
    const uint64_t key = (t % 6 == 0 && t > 0) ? t - 3 : t;  // some late-ish
    arrivals.push_back({key, id});
    EXPECT_TRUE(buffer.Push(key, Event(id++, key)));
    for (uint32_t i : DrainIds(&buffer, false)) out.push_back(i);
  }
  for (uint32_t i : DrainIds(&buffer, true)) out.push_back(i);
  EXPECT_THAT(out, ElementsAreArray(StableOrder(arrivals)));
  EXPECT_THAT(buffer.capacity(), Eq(1024u));
}

TEST(ReorderBufferTest, GrowsPastItsRingKeepingTheOrder) {
  ReorderBuffer buffer(1'000'000'000);
  std::mt19937 rng(3);
  std::vector<std::pair<uint64_t, uint32_t>> arrivals;
  std::vector<uint32_t> out;
  // Drain a little first so that the head is not at 0 when it grows.
  for (uint32_t id = 0; id < 700; ++id) {
    arrivals.push_back({id, id});
    buffer.Push(id, Event(id, id));
  }
  buffer.AdvanceTo(1'000'000'000 + 299);
  for (uint32_t i : DrainIds(&buffer, false)) out.push_back(i);
  ASSERT_THAT(out.size(), Eq(300u));
  for (uint32_t id = 700; id < 5000; ++id) {
    const uint64_t key = 300 + rng() % 5000;  // out of order, many ties
    arrivals.push_back({key, id});
    EXPECT_TRUE(buffer.Push(key, Event(id, key)));
  }
  EXPECT_THAT(buffer.size(), Eq(4700u));
  EXPECT_THAT(buffer.capacity(), Eq(8192u));
  for (uint32_t i : DrainIds(&buffer, true)) out.push_back(i);
  EXPECT_THAT(out, ElementsAreArray(StableOrder(arrivals)));
}

TEST(ReorderBufferTest, AnEventFarInTheFutureHoldsBackOnlyItself) {
  // Its slot stays queued while every later arrival is handed out: the
  // rings must not grow for the slots behind it.
  ReorderBuffer buffer(10);
  std::vector<std::pair<uint64_t, uint32_t>> arrivals;
  std::vector<uint32_t> out;
  const uint64_t far = uint64_t{1} << 62;
  arrivals.push_back({far, 0});
  buffer.Push(far, Event(0, far));
  for (uint32_t id = 1; id < 100'000; ++id) {
    const uint64_t key = 1000 + id;
    arrivals.push_back({key, id});
    EXPECT_TRUE(buffer.Push(key, Event(id, key)));
    for (uint32_t i : DrainIds(&buffer, false)) out.push_back(i);
  }
  EXPECT_THAT(buffer.capacity(), Eq(1024u));
  EXPECT_THAT(buffer.size(), Eq(1u));
  for (uint32_t i : DrainIds(&buffer, true)) out.push_back(i);
  EXPECT_THAT(out, ElementsAreArray(StableOrder(arrivals)));
}

TEST(ReorderBufferTest, RandomJitterMatchesAStableSort) {
  std::mt19937 rng(11);
  for (int round = 0; round < 50; ++round) {
    ReorderBuffer buffer(1000);
    std::vector<std::pair<uint64_t, uint32_t>> arrivals;
    std::vector<uint32_t> out;
    uint64_t now = 0;
    for (uint32_t id = 0; id < 3000; ++id) {
      now += rng() % 40;
      // Up to 900 late: within the 1000 window, so none is counted late.
      const uint64_t key = now > 900 ? now - rng() % 900 : now;
      arrivals.push_back({key, id});
      EXPECT_TRUE(buffer.Push(key, Event(id, key)));
      for (uint32_t i : DrainIds(&buffer, false)) out.push_back(i);
    }
    for (uint32_t i : DrainIds(&buffer, true)) out.push_back(i);
    ASSERT_THAT(out, ElementsAreArray(StableOrder(arrivals)));
  }
}

TEST(ReorderBufferTest, ReusedSlotsHoldEachKindOfEvent) {
  ReorderBuffer buffer(0);
  std::vector<std::string> seen;
  auto handle = [&seen](const Queued& q) {
    if (const auto* s = std::get_if<SyscallEvent>(&q.item)) {
      seen.push_back("syscall " + s->payload);
    } else if (const auto* t = std::get_if<TlsDataEvent>(&q.item)) {
      seen.push_back("tls " + t->payload + " " +
                     std::to_string(t->frames.size()));
    } else {
      seen.push_back("process " + std::get<ProcessEvent>(q.item).comm);
    }
  };
  SyscallEvent s = Event(1, 10);
  s.payload = "GET / HTTP/1.1";
  buffer.Push(10, s);
  buffer.Drain(false, handle);
  // The slot that held a syscall with a payload now holds a process event,
  // then a syscall without one, then TLS data.
  ProcessEvent p;
  p.comm = "nginx";
  buffer.Push(20, p);
  buffer.Drain(false, handle);
  buffer.Push(30, Event(2, 30));
  buffer.Drain(false, handle);
  TlsDataEvent t;
  t.payload = "PRI";
  t.frames.resize(2);
  buffer.Push(40, t);
  buffer.Drain(false, handle);
  buffer.Push(50, Event(3, 50));
  buffer.Drain(false, handle);
  EXPECT_THAT(seen, ElementsAre("syscall GET / HTTP/1.1", "process nginx",
                                "syscall ", "tls PRI 2", "syscall "));
}

TEST(ReorderBufferTest, ForEachSyscallUpToSeesQueuedSyscallsInOrder) {
  ReorderBuffer buffer(1000);
  buffer.Push(10, Event(1, 10));
  ProcessEvent p;
  buffer.Push(15, p);
  buffer.Push(30, Event(2, 30));
  buffer.Push(20, Event(3, 20));
  buffer.Push(40, Event(4, 40));
  std::vector<uint32_t> ids;
  buffer.ForEachSyscallUpTo(30, [&ids](const SyscallEvent& e) {
    ids.push_back(e.tid);
  });
  EXPECT_THAT(ids, ElementsAre(1, 3, 2));
  // While an event is handled it is still visible.
  std::vector<uint32_t> during;
  buffer.Drain(true, [&](const Queued& q) {
    if (std::get_if<SyscallEvent>(&q.item) == nullptr) return;
    if (!during.empty()) return;
    buffer.ForEachSyscallUpTo(100, [&during](const SyscallEvent& e) {
      during.push_back(e.tid);
    });
  });
  EXPECT_THAT(during, ElementsAre(1, 3, 2, 4));
}

}  // namespace
}  // namespace reqcost::analyzers
