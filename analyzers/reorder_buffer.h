// The profiler's first stage: events arrive roughly in order (each CPU's
// ring-buffer records are ordered, the CPUs' are interleaved) and leave in
// order of their key (a syscall's exit_ns, a process event's ts_ns), equal
// keys in arrival order, once the newest key seen is a reorder window past
// theirs (internal to the profiler).
#ifndef REQCOST_ANALYZERS_REORDER_BUFFER_H_
#define REQCOST_ANALYZERS_REORDER_BUFFER_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <variant>

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
  // is still queued, and handed out next).
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
    if (queue_.empty()) return std::nullopt;
    return queue_.front().key;
  }
  // Calls `fn(const SyscallEvent&)` on each queued syscall, in order, whose
  // key is at most `limit`.
  template <typename Fn>
  void ForEachSyscallUpTo(uint64_t limit, Fn&& fn) const;

 private:
  const uint64_t window_ns_;
  // Sorted by key; equal keys in arrival order. Events arrive almost in
  // order, so nearly every one is appended at the back.
  std::deque<Queued> queue_;
  uint64_t newest_ns_ = 0;
  uint64_t processed_ns_ = 0;
};

template <typename Event>
bool ReorderBuffer::Push(uint64_t key, const Event& event) {
  const bool in_time = key >= processed_ns_;
  if (queue_.empty() || queue_.back().key <= key) {
    queue_.emplace_back(key, event);
  } else {
    // After every queued event with a key up to this one: arrival order
    // breaks ties.
    auto at =
        std::upper_bound(queue_.begin(), queue_.end(), key,
                         [](uint64_t k, const Queued& q) { return k < q.key; });
    queue_.emplace(at, key, event);
  }
  newest_ns_ = std::max(newest_ns_, key);
  return in_time;
}

template <typename Handle>
void ReorderBuffer::Drain(bool all, Handle&& handle) {
  while (!queue_.empty()) {
    const Queued& front = queue_.front();
    if (!all && front.key + window_ns_ > newest_ns_) break;
    processed_ns_ = std::max(processed_ns_, front.key);
    handle(front);
    queue_.pop_front();
  }
}

template <typename Fn>
void ReorderBuffer::ForEachSyscallUpTo(uint64_t limit, Fn&& fn) const {
  for (const Queued& q : queue_) {
    if (q.key > limit) break;
    if (const auto* e = std::get_if<SyscallEvent>(&q.item)) fn(*e);
  }
}

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_REORDER_BUFFER_H_
