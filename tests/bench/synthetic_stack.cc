#include "tests/bench/synthetic_stack.h"

#include <algorithm>

#include "tests/analyzers/stream_builder.h"

namespace reqcost::bench {
namespace {

using ::reqcost::analyzers::test_support::TcpSock;
using ::reqcost::analyzers::test_support::UnixSock;

constexpr uint16_t kHttpPort = 8080;
constexpr uint16_t kFpmPort = 9000;
constexpr int32_t kNginxListenFd = 6;
constexpr int32_t kFpmListenFd = 13;
constexpr int32_t kFpmConnFd = 5;
constexpr int64_t kEagain = -11;
constexpr int64_t kEinprogress = -115;
constexpr uint32_t kNginxMaster = 1000;
constexpr uint32_t kFpmMaster = 2000;

}  // namespace

SyntheticStack::SyntheticStack(const SyntheticOptions& options)
    : options_(options), rng_(options.seed * 0x9e3779b97f4a7c15ULL + 1) {
  options_.connections = std::max(1, options_.connections);
  options_.nginx_workers = std::max(1, options_.nginx_workers);
  options_.requests_per_connection =
      std::max(1, options_.requests_per_connection);
  lanes_.resize(static_cast<size_t>(options_.connections));
  std::vector<int> per_worker(static_cast<size_t>(options_.nginx_workers), 0);
  for (int i = 0; i < options_.connections; ++i) {
    Lane& l = lanes_[static_cast<size_t>(i)];
    int w = i % options_.nginx_workers;
    int slot = per_worker[static_cast<size_t>(w)]++;
    l.nginx = kNginxMaster + 1 + static_cast<uint32_t>(w);
    l.fpm = kFpmMaster + 1 + static_cast<uint32_t>(i);
    l.client_fd = 10 + 2 * slot;
    l.link_fd = 11 + 2 * slot;
    // Staggered starts: the lanes are not in lock-step.
    l.clock_ns =
        options_.start_ns + Jitter(20'000) * static_cast<uint64_t>(i) / 4;
    Generate(i);
  }
}

std::vector<ProcessInfo> SyntheticStack::Processes() const {
  std::vector<ProcessInfo> out;
  out.push_back({kNginxMaster, 1, "nginx", "/usr/sbin/nginx", 100});
  for (int w = 0; w < options_.nginx_workers; ++w) {
    out.push_back({kNginxMaster + 1 + static_cast<uint32_t>(w), kNginxMaster,
                   "nginx", "/usr/sbin/nginx", 200});
  }
  out.push_back({kFpmMaster, 1, "php-fpm8.2", "/usr/sbin/php-fpm8.2", 100});
  for (int c = 0; c < options_.connections; ++c) {
    out.push_back({kFpmMaster + 1 + static_cast<uint32_t>(c), kFpmMaster,
                   "php-fpm8.2", "/usr/sbin/php-fpm8.2", 200});
  }
  return out;
}

// ±25% around `ns` (xorshift64*).
uint64_t SyntheticStack::Jitter(uint64_t ns) {
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  uint64_t r = (rng_ * 0x2545f4914f6cdd1dULL) >> 33;  // 31 bits
  uint64_t spread = ns / 2 + 1;
  return ns - ns / 4 + r % spread;
}

// Socket addresses as the kernel hands them out: the most recently freed
// first (slab reuse), so ids repeat across connections like the real ones.
uint64_t SyntheticStack::NewSockAddr() {
  if (!free_addrs_.empty()) {
    uint64_t a = free_addrs_.back();
    free_addrs_.pop_back();
    return a;
  }
  uint64_t x = ++minted_ * 0xbf58476d1ce4e5b9ULL;
  return (x ^ (x >> 31)) | 1;
}

void SyntheticStack::FreeSockAddr(uint64_t addr) {
  free_addrs_.push_back(addr);
}

uint16_t SyntheticStack::NextPort() {
  port_ = port_ >= 60999 ? 32768 : port_ + 1;
  return port_;
}

// One request of `lane`, as recorded from nginx + php-fpm serving hello.php
// (offsets in µs from the request's start; the php-fpm child's "work" is
// the gap between its last read and its write).
void SyntheticStack::Generate(int index) {
  Lane& l = lanes_[static_cast<size_t>(index)];
  l.events.clear();
  l.next = 0;
  ++requests_started_;
  // The previous request of this lane is over (all its events were handed
  // out): its sockets are free for the kernel to reuse.
  for (uint64_t addr : l.to_free) FreeSockAddr(addr);
  l.to_free.clear();
  uint64_t t = l.clock_ns;
  auto add = [&](uint32_t tgid, Syscall sc, int32_t fd, int64_t ret,
                 uint64_t enter, uint64_t dur, const SocketId& sock,
                 uint16_t flags = 0) {
    SyscallEvent e;
    e.syscall = sc;
    e.flags = flags;
    e.tgid = tgid;
    e.tid = tgid;
    e.fd = fd;
    e.ret = ret;
    e.enter_ns = (flags & SyscallEvent::kNoEnter) ? 0 : enter;
    e.exit_ns = enter + dur;
    e.sock = sock;
    l.events.push_back(std::move(e));
    return enter + dur;
  };
  auto us = [&](double v) { return Jitter(static_cast<uint64_t>(v * 1000)); };

  // nginx: accept the client connection (first request on it).
  bool first = l.requests_on_conn == 0;
  if (first) {
    l.client = TcpSock(kHttpPort, NextPort(), NewSockAddr());
    SocketId listener = l.client;
    t = add(l.nginx, Syscall::kAccept4, kNginxListenFd, l.client_fd, t, us(6),
            listener, SyscallEvent::kListener);
    t += us(8);
  }
  ++l.requests_on_conn;
  t = add(l.nginx, Syscall::kRecvfrom, l.client_fd, 92, t, us(4), l.client);
  t += us(30);

  // nginx connects to php-fpm and sends the FastCGI request.
  uint64_t a = NewSockAddr(), b = NewSockAddr();
  SocketId link, side;
  if (options_.tcp_backend) {
    uint16_t port = NextPort();
    link = TcpSock(port, kFpmPort, a);
    side = TcpSock(kFpmPort, port, b);
  } else {
    link = UnixSock(a, b);
    side = UnixSock(b, a);
  }
  uint64_t connect_enter = t;
  t = add(l.nginx, Syscall::kConnect, l.link_fd,
          options_.tcp_backend ? kEinprogress : 0, t,
          us(options_.tcp_backend ? 20 : 10), link);
  t += us(3);
  uint64_t sent =
      add(l.nginx, Syscall::kWritev, l.link_fd, 536, t, us(4), link);

  // php-fpm: the child was blocked in accept since its previous request.
  uint64_t p = std::max(sent, connect_enter + us(15)) + us(10);
  p = add(l.fpm, Syscall::kAccept, kFpmListenFd, kFpmConnFd, l.clock_ns,
          p - l.clock_ns, side, SyscallEvent::kListener);
  p += us(40);
  for (int64_t n : {8, 8, 8, 496, 8}) {
    p = add(l.fpm, Syscall::kRead, kFpmConnFd, n, p, us(2), side);
    p += us(2);
  }
  p += us(100);  // running the script
  uint64_t replied =
      add(l.fpm, Syscall::kWrite, kFpmConnFd, 72, p, us(8), side);
  p = replied + us(4);
  p = add(l.fpm, Syscall::kShutdown, kFpmConnFd, 0, p, us(2), side);
  p += us(2);
  p = add(l.fpm, Syscall::kRecvfrom, kFpmConnFd, 8, p, us(3), side);
  uint64_t fpm_eof_enter = p + us(2);

  // nginx: reads the reply, closes the link, answers the client.
  t = replied + us(15);
  t = add(l.nginx, Syscall::kRecvfrom, l.link_fd, 72, t, us(4), link);
  t += us(15);
  t = add(l.nginx, Syscall::kReadv, l.link_fd, 0, t, us(2), link);
  t += us(4);
  t = add(l.nginx, Syscall::kClose, l.link_fd, 0, t, us(10), link);
  uint64_t link_closed = t;
  t += us(5);
  t = add(l.nginx, Syscall::kWritev, l.client_fd, 140, t, us(30), l.client);
  t += us(5);
  bool last = l.requests_on_conn >= options_.requests_per_connection;
  if (last) {
    t = add(l.nginx, Syscall::kClose, l.client_fd, 0, t, us(12), l.client);
    l.requests_on_conn = 0;
  } else {
    // Keep-alive: nginx tries the next request, which is not there yet.
    t = add(l.nginx, Syscall::kRecvfrom, l.client_fd, kEagain, t, us(2),
            l.client);
  }

  // php-fpm sees the EOF once nginx closed the link, then closes.
  p = add(l.fpm, Syscall::kRecvfrom, kFpmConnFd, 0, fpm_eof_enter,
          std::max(link_closed + us(2), fpm_eof_enter + 1) - fpm_eof_enter,
          side);
  p += us(3);
  p = add(l.fpm, Syscall::kClose, kFpmConnFd, 0, p, us(6), side);

  std::stable_sort(l.events.begin(), l.events.end(),
                   [](const SyscallEvent& x, const SyscallEvent& y) {
                     return x.exit_ns < y.exit_ns;
                   });
  // Freed when the lane's next request is generated, i.e. once every event
  // of this one is out: a reused address never overlaps its old connection.
  l.to_free.push_back(a);
  l.to_free.push_back(b);
  if (last) l.to_free.push_back(l.client.sock);
  l.clock_ns = std::max(t, p) + options_.client_think_ns;
  heads_.push({l.events.front().exit_ns, index});
}

const SyscallEvent& SyntheticStack::Next() {
  Head h = heads_.top();
  heads_.pop();
  Lane& l = lanes_[static_cast<size_t>(h.lane)];
  current_ = l.events[l.next++];
  now_ns_ = current_.exit_ns;
  if (l.next < l.events.size()) {
    heads_.push({l.events[l.next].exit_ns, h.lane});
  } else {
    Generate(h.lane);
  }
  return current_;
}

}  // namespace reqcost::bench
