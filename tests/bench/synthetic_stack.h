// A synthetic but realistic event stream of nginx in front of php-fpm, for
// the user-side benchmarks: the syscall sequence of one request is the one
// reqcost records from the real stack (samples/php/hello.php, see
// tests/bench/PERFORMANCE.md), times jittered, several client connections
// in flight at once, interleaved on the nginx workers, each served by its
// own php-fpm child, over a unix socket or TCP. Kernel socket addresses are
// reused the way the kernel reuses them (a closed socket's address is the
// next one handed out). Events come out in exit order, one at a time:
// memory does not depend on how many are generated.
#ifndef REQCOST_TESTS_BENCH_SYNTHETIC_STACK_H_
#define REQCOST_TESTS_BENCH_SYNTHETIC_STACK_H_

#include <cstdint>
#include <queue>
#include <vector>

#include "collector/event.h"

namespace reqcost::bench {

struct SyntheticOptions {
  int connections =
      8;  // client connections in flight (= busy php-fpm children)
  int nginx_workers = 2;  // connections are spread over these
  bool tcp_backend =
      false;  // php-fpm on 127.0.0.1:9000 instead of a unix socket
  int requests_per_connection = 1;  // > 1: HTTP keep-alive on the client side
  // Between a response and the client's next request on the lane. With
  // keep-alive, a long one holds many idle connections open at a modest
  // event rate.
  uint64_t client_think_ns = 30'000;
  uint64_t seed = 1;
  uint64_t start_ns = 1'000'000'000;
};

class SyntheticStack {
 public:
  explicit SyntheticStack(const SyntheticOptions& options);

  // The next event in exit order. Never runs out.
  const SyscallEvent& Next();

  // Requests begun so far (the last few may still be in flight).
  uint64_t requests_started() const { return requests_started_; }
  // The exit time of the last event returned.
  uint64_t now_ns() const { return now_ns_; }
  // The processes: nginx master and workers, php-fpm master and children.
  std::vector<ProcessInfo> Processes() const;

 private:
  struct Lane {
    uint32_t nginx = 0;  // worker tgid
    uint32_t fpm = 0;    // child tgid
    int32_t client_fd = 0;
    int32_t link_fd = 0;
    uint64_t clock_ns = 0;  // when the lane's next request starts
    int requests_on_conn = 0;
    SocketId client;                // nginx's accepted client connection
    std::vector<uint64_t> to_free;  // socket addresses of the previous request
    std::vector<SyscallEvent> events;  // current request, by exit time
    size_t next = 0;
  };
  struct Head {
    uint64_t exit_ns;
    int lane;
    bool operator>(const Head& o) const {
      return exit_ns != o.exit_ns ? exit_ns > o.exit_ns : lane > o.lane;
    }
  };

  void Generate(int lane);
  uint64_t Jitter(uint64_t ns);
  uint64_t NewSockAddr();
  void FreeSockAddr(uint64_t addr);
  uint16_t NextPort();

  SyntheticOptions options_;
  std::vector<Lane> lanes_;
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heads_;
  std::vector<uint64_t> free_addrs_;
  uint64_t minted_ = 0;
  uint64_t rng_;
  uint16_t port_ = 32768;
  uint64_t requests_started_ = 0;
  uint64_t now_ns_ = 0;
  SyscallEvent current_;
};

}  // namespace reqcost::bench

#endif  // REQCOST_TESTS_BENCH_SYNTHETIC_STACK_H_
