// The ends of the socket pairs the traced processes made (socketpair()):
// nginx's master-worker channels and the like. They carry messages between
// processes of one tree, never requests, and a fork hands them on, so they
// are known by socket (hashed kernel address), not by (process, fd): a
// worker's read on an inherited channel, or on one passed to it with
// SCM_RIGHTS, names the same socket. Internal to the profiler.
#ifndef REQCOST_ANALYZERS_SOCKETPAIR_ENDS_H_
#define REQCOST_ANALYZERS_SOCKETPAIR_ENDS_H_

#include <cstddef>
#include <cstdint>
#include <deque>

#include "absl/container/flat_hash_set.h"
#include "collector/event.h"

namespace reqcost::analyzers {

class SocketpairEnds {
 public:
  // At most this many ends are remembered (2048 pairs: nginx makes one per
  // worker it starts, so 10 reloads a minute of a 16-worker nginx for more
  // than two hours). The oldest are forgotten first: by then their workers
  // are long gone with them.
  static constexpr size_t kMaxEnds = 4096;

  // Remembers both ends of the pair `socketpair` made (a failed one: none).
  void Add(const SyscallEvent& socketpair) {
    if (socketpair.syscall != Syscall::kSocketpair || !socketpair.ok()) return;
    Insert(socketpair.sock.sock);
    Insert(socketpair.sock.peer);
  }

  // Whether `sock` is a remembered end.
  bool Contains(uint64_t sock) const {
    return sock != 0 && ends_.contains(sock);
  }

  // The kernel reused the address of a remembered end for `sock` (a new
  // connection was accepted or connected on it): it is no end any more.
  void Forget(uint64_t sock) { ends_.erase(sock); }

  // Ends remembered now (at most kMaxEnds).
  size_t size() const { return ends_.size(); }
  // Ends forgotten to stay within kMaxEnds.
  uint64_t evicted() const { return evicted_; }

 private:
  void Insert(uint64_t sock) {
    if (sock == 0 || !ends_.insert(sock).second) return;
    order_.push_back(sock);
    // The oldest go first; order_ also holds ends Forget() erased, and is
    // trimmed so that it stays bounded too.
    while (ends_.size() > kMaxEnds || order_.size() > 2 * kMaxEnds) {
      if (ends_.erase(order_.front()) > 0) ++evicted_;
      order_.pop_front();
    }
  }

  absl::flat_hash_set<uint64_t> ends_;
  std::deque<uint64_t> order_;  // insertion order, oldest first
  uint64_t evicted_ = 0;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_SOCKETPAIR_ENDS_H_
