// The profiler's first stage: events arrive roughly in order (each CPU's
// ring-buffer records are ordered, the CPUs' are interleaved) and leave in
// order of their key (a syscall's exit_ns, a process event's ts_ns), equal
// keys in arrival order, once the newest key seen is a reorder window past
// theirs (internal to the profiler).
//
// Layout: each queued event lives in a slot of a pool whose slots are reused
// (a slot holding the same kind of event is assigned in place, so a reused
// slot keeps its payload's allocation), and the order is a ring of small
// (key, slot) entries. An event that arrives in order is one entry appended
// at the ring's back; a late one shifts only the entries after its place,
// 16 bytes each, never an event. Nothing is allocated per event once the
// pool and the ring have grown to the window's backlog.
#ifndef REQCOST_ANALYZERS_REORDER_BUFFER_H_
#define REQCOST_ANALYZERS_REORDER_BUFFER_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <variant>
#include <vector>

#include "collector/event.h"

namespace reqcost::analyzers {

// An event waiting in the reorder buffer, processed in order of `key`, then
// of arrival.
struct Queued {
  template <typename Event>
  Queued(uint64_t key, const Event& event) : key(key), item(event) {}

  uint64_t key = 0;
  std::variant<SyscallEvent, ProcessEvent, TlsDataEvent> item;
};

class ReorderBuffer {
 public:
  // Holds an event until the newest key is `window_ns` past its own.
  explicit ReorderBuffer(uint64_t window_ns) : window_ns_(window_ns) {}

  // Queues `event` under `key`; returns false when an event with a later key
  // was already handed out (the event came later than the window allows: it
  // is still queued, and handed out next). Must not be called from inside
  // Drain's `handle`.
  template <typename Event>
  bool Push(uint64_t key, const Event& event);
  // Moves the newest key seen to at least `now_ns` (no event older is still
  // to come).
  void AdvanceTo(uint64_t now_ns) { newest_ns_ = std::max(newest_ns_, now_ns); }
  // Hands `handle` each event that is due (every one when `all`), in order,
  // as a `const Queued&` that stays queued (and visible to ForEachUpTo)
  // while it is handled.
  template <typename Handle>
  void Drain(bool all, Handle&& handle);
  // Marks everything up to `end_ns` as handed out.
  void FinishAt(uint64_t end_ns) {
    processed_ns_ = std::max(processed_ns_, end_ns);
  }

  // The key of the latest event handed out (0 before the first).
  uint64_t processed_ns() const { return processed_ns_; }
  // The key of the oldest event still queued, if any.
  std::optional<uint64_t> oldest_key() const {
    if (size_ == 0) return std::nullopt;
    return ring_[head_].key;
  }
  // The number of events queued.
  size_t size() const { return size_; }
  // The number of events the ring holds before it grows (0 before the first
  // Push; a power of two after).
  size_t capacity() const { return ring_.size(); }
  // Calls `fn(const SyscallEvent&)` on each queued syscall, in order, whose
  // key is at most `limit`.
  template <typename Fn>
  void ForEachSyscallUpTo(uint64_t limit, Fn&& fn) const;

 private:
  // One queued event in order: its key and the pool slot holding it.
  struct Entry {
    uint64_t key;
    uint32_t slot;
  };
  static constexpr size_t kInitialRing = 1024;

  // The i-th entry in order (0 = oldest).
  Entry& At(size_t i) { return ring_[(head_ + i) & (ring_.size() - 1)]; }
  const Entry& At(size_t i) const {
    return ring_[(head_ + i) & (ring_.size() - 1)];
  }
  // Stores `event` in a free slot (a new one if none) and returns it.
  template <typename Event>
  uint32_t Store(uint64_t key, const Event& event);
  // Doubles the ring, keeping the order from index 0.
  void Grow();

  const uint64_t window_ns_;
  // The pool. A deque: slots keep their address as it grows, so the event
  // being handled stays put.
  std::deque<Queued> slots_;
  std::vector<uint32_t> free_;  // slots not queued; the last freed on top
  // Entries ordered by key, equal keys in arrival order: size_ of them from
  // head_, wrapping; its size is a power of two (or 0).
  std::vector<Entry> ring_;
  size_t head_ = 0;
  size_t size_ = 0;
  uint64_t newest_ns_ = 0;
  uint64_t processed_ns_ = 0;
};

template <typename Event>
uint32_t ReorderBuffer::Store(uint64_t key, const Event& event) {
  if (free_.empty()) {
    slots_.emplace_back(key, event);
    return static_cast<uint32_t>(slots_.size() - 1);
  }
  uint32_t slot = free_.back();
  free_.pop_back();
  Queued& q = slots_[slot];
  q.key = key;
  // Assigned in place when the slot held the same kind of event: its
  // strings and vectors keep their capacity.
  q.item = event;
  return slot;
}

inline void ReorderBuffer::Grow() {
  std::vector<Entry> bigger(ring_.empty() ? kInitialRing : 2 * ring_.size());
  for (size_t i = 0; i < size_; ++i) bigger[i] = At(i);
  ring_.swap(bigger);
  head_ = 0;
}

template <typename Event>
bool ReorderBuffer::Push(uint64_t key, const Event& event) {
  const bool in_time = key >= processed_ns_;
  if (size_ == ring_.size()) Grow();
  const uint32_t slot = Store(key, event);
  // After every queued event with a key up to this one: arrival order
  // breaks ties. Nearly every event goes at the back.
  size_t at = size_;
  if (size_ > 0 && At(size_ - 1).key > key) {
    size_t lo = 0, hi = size_ - 1;  // the first entry with a larger key
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (At(mid).key <= key) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    at = lo;
    for (size_t i = size_; i > at; --i) At(i) = At(i - 1);
  }
  At(at) = Entry{key, slot};
  ++size_;
  newest_ns_ = std::max(newest_ns_, key);
  return in_time;
}

template <typename Handle>
void ReorderBuffer::Drain(bool all, Handle&& handle) {
  while (size_ > 0) {
    const Entry front = ring_[head_];
    if (!all && front.key + window_ns_ > newest_ns_) break;
    processed_ns_ = std::max(processed_ns_, front.key);
    handle(static_cast<const Queued&>(slots_[front.slot]));
    head_ = (head_ + 1) & (ring_.size() - 1);
    --size_;
    free_.push_back(front.slot);
  }
}

template <typename Fn>
void ReorderBuffer::ForEachSyscallUpTo(uint64_t limit, Fn&& fn) const {
  for (size_t i = 0; i < size_; ++i) {
    const Entry& entry = At(i);
    if (entry.key > limit) break;
    const Queued& q = slots_[entry.slot];
    if (const auto* e = std::get_if<SyscallEvent>(&q.item)) fn(*e);
  }
}

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_REORDER_BUFFER_H_
