// The profiler's first stage: events arrive roughly in order (each CPU's
// ring-buffer records are ordered, the CPUs' are interleaved) and leave in
// order of their key (a syscall's exit_ns, a process event's ts_ns), equal
// keys in arrival order, once the newest key seen is a reorder window past
// theirs (internal to the profiler).
//
// Layout: the events sit in a ring of fixed slots in arrival order (a slot
// holding the same kind of event is assigned in place, so a reused slot
// keeps its payload's allocation), and their order is a second ring of
// small (key, arrival number) entries. An event that arrives in order is
// one entry appended at the back; a late one shifts only the entries after
// its place, 16 bytes each, never an event. Events leave in nearly the
// order they arrived, so both rings are walked nearly sequentially (a
// window's backlog is megabytes at a saturated stack's event rate: memory
// order matters more than instructions). Nothing is allocated per event
// once the rings have grown to the window's backlog.
#ifndef REQCOST_ANALYZERS_REORDER_BUFFER_H_
#define REQCOST_ANALYZERS_REORDER_BUFFER_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "collector/event.h"

namespace reqcost::analyzers {

// An event waiting in the reorder buffer, processed in order of `key`, then
// of arrival.
struct Queued {
  Queued() = default;
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
    return order_[head_].key;
  }
  // The number of events queued.
  size_t size() const { return size_; }
  // The number of events the rings hold before they grow (0 before the
  // first Push; a power of two after).
  size_t capacity() const { return slots_.size(); }
  // Calls `fn(const SyscallEvent&)` on each queued syscall, in order, whose
  // key is at most `limit`.
  template <typename Fn>
  void ForEachSyscallUpTo(uint64_t limit, Fn&& fn) const;

 private:
  // One queued event in order: its key and its arrival number (its slot is
  // the number modulo the slot ring's size).
  struct Entry {
    uint64_t key;
    uint64_t seq;
  };
  static constexpr size_t kInitialRing = 1024;
  // The slot this many arrivals ahead is fetched into the cache before it
  // is written, and before it is handed out (events leave in nearly their
  // arrival order): a window's backlog outgrows the caches at a high event
  // rate, and a slot is touched once per window.
  static constexpr uint64_t kAhead = 4;
  template <int kWrite>
  static void Prefetch(const Queued& q) {
    const char* p = reinterpret_cast<const char*>(&q);
    static_assert(sizeof(Queued) <= 4 * 64, "prefetch every line of a slot");
    __builtin_prefetch(p, kWrite);
    __builtin_prefetch(p + 64, kWrite);
    __builtin_prefetch(p + 128, kWrite);
    __builtin_prefetch(p + sizeof(Queued) - 1, kWrite);
  }

  // The i-th entry in order (0 = oldest).
  Entry& At(size_t i) { return order_[(head_ + i) & (order_.size() - 1)]; }
  const Entry& At(size_t i) const {
    return order_[(head_ + i) & (order_.size() - 1)];
  }
  Queued& Slot(uint64_t seq) { return slots_[seq & (slots_.size() - 1)]; }
  const Queued& Slot(uint64_t seq) const {
    return slots_[seq & (slots_.size() - 1)];
  }
  // Makes room for one more event: the queued events are moved to new
  // rings (twice as large when more than half full).
  void Grow();

  const uint64_t window_ns_;
  // The slots of arrival numbers [oldest_seq_, next_seq_), a power of two of
  // them (or none); done_[i] marks slot i handed out. A slot is free once it
  // and every older one are handed out: events leave in nearly their
  // arrival order, so a late one holds back few.
  std::vector<Queued> slots_;
  std::vector<uint8_t> done_;
  uint64_t oldest_seq_ = 0;
  uint64_t next_seq_ = 0;
  // Entries ordered by key, equal keys in arrival order: size_ of them from
  // head_, wrapping; as many places as slots_.
  std::vector<Entry> order_;
  size_t head_ = 0;
  size_t size_ = 0;
  uint64_t newest_ns_ = 0;
  uint64_t processed_ns_ = 0;
};

inline void ReorderBuffer::Grow() {
  // The queued events move to the front of new rings in their order, and
  // the slots already handed out behind a held-back one are dropped: an
  // event with a key far past the others (a bad clock, a corrupt capture)
  // holds back only itself. The rings double only when more than half
  // their places hold queued events, so this runs at most once per half a
  // ring of pushes.
  const size_t old_size = slots_.size();
  const size_t new_size = old_size == 0      ? kInitialRing
                          : size_ > old_size / 2 ? 2 * old_size
                                                 : old_size;
  std::vector<Queued> slots(new_size);
  std::vector<Entry> order(new_size);
  for (size_t i = 0; i < size_; ++i) {
    const Entry entry = At(i);
    slots[i] = std::move(Slot(entry.seq));
    order[i] = Entry{entry.key, i};
  }
  slots_.swap(slots);
  order_.swap(order);
  done_.assign(new_size, 0);
  head_ = 0;
  oldest_seq_ = 0;
  next_seq_ = size_;
}

template <typename Event>
bool ReorderBuffer::Push(uint64_t key, const Event& event) {
  const bool in_time = key >= processed_ns_;
  if (next_seq_ - oldest_seq_ == slots_.size()) Grow();
  const uint64_t seq = next_seq_++;
  Prefetch<1>(Slot(seq + kAhead));
  Queued& q = Slot(seq);
  q.key = key;
  // Assigned in place when the slot held the same kind of event: its
  // strings and vectors keep their capacity.
  q.item = event;
  done_[seq & (done_.size() - 1)] = 0;
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
  At(at) = Entry{key, seq};
  ++size_;
  newest_ns_ = std::max(newest_ns_, key);
  return in_time;
}

template <typename Handle>
void ReorderBuffer::Drain(bool all, Handle&& handle) {
  while (size_ > 0) {
    const Entry front = order_[head_];
    Prefetch<0>(Slot(front.seq + kAhead));
    if (!all && front.key + window_ns_ > newest_ns_) break;
    processed_ns_ = std::max(processed_ns_, front.key);
    handle(static_cast<const Queued&>(Slot(front.seq)));
    head_ = (head_ + 1) & (order_.size() - 1);
    --size_;
    const size_t mask = done_.size() - 1;
    done_[front.seq & mask] = 1;
    while (oldest_seq_ < next_seq_ && done_[oldest_seq_ & mask] != 0) {
      ++oldest_seq_;
    }
  }
}

template <typename Fn>
void ReorderBuffer::ForEachSyscallUpTo(uint64_t limit, Fn&& fn) const {
  for (size_t i = 0; i < size_; ++i) {
    const Entry& entry = At(i);
    if (entry.key > limit) break;
    const Queued& q = Slot(entry.seq);
    if (const auto* e = std::get_if<SyscallEvent>(&q.item)) fn(*e);
  }
}

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_REORDER_BUFFER_H_
