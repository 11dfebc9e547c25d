// Tiny helpers that build synthetic syscall streams for analyzer tests.
// Times are given in microseconds after an arbitrary base; events are kept
// in the order they are added and fed to a Profiler in exit order unless a
// test shuffles them.
#ifndef REQCOST_TESTS_ANALYZERS_STREAM_BUILDER_H_
#define REQCOST_TESTS_ANALYZERS_STREAM_BUILDER_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>

#include "analyzers/profiler.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers::test_support {

inline constexpr uint64_t kBaseNs = 1'000'000'000;

// Nanosecond timestamp of `us` microseconds after the base.
inline uint64_t At(double us) {
  return kBaseNs + static_cast<uint64_t>(us * 1000.0 + 0.5);
}
// Nanoseconds in `us` microseconds.
inline uint64_t Us(double us) {
  return static_cast<uint64_t>(us * 1000.0 + 0.5);
}

inline SocketId UnixSock(uint64_t sock, uint64_t peer) {
  SocketId s;
  s.family = 1;
  s.type = 1;
  s.sock = sock;
  s.peer = peer;
  return s;
}

inline SocketId TcpSock(uint16_t local_port, uint16_t remote_port,
                        uint64_t sock = 0) {
  SocketId s;
  s.family = 2;
  s.type = 1;
  s.sock = sock;
  s.local_addr = {127, 0, 0, 1};
  s.remote_addr = {127, 0, 0, 1};
  s.local_port = local_port;
  s.remote_port = remote_port;
  return s;
}

// A FastCGI record: 8-byte header then `length` content bytes.
inline std::string FcgiRecord(uint8_t type, uint16_t id, uint16_t length) {
  std::string r(8, '\0');
  r[0] = 1;
  r[1] = static_cast<char>(type);
  r[2] = static_cast<char>(id >> 8);
  r[3] = static_cast<char>(id & 0xff);
  r[4] = static_cast<char>(length >> 8);
  r[5] = static_cast<char>(length & 0xff);
  return r + std::string(length, 'c');
}

class StreamBuilder {
 public:
  StreamBuilder& Add(Syscall syscall, uint32_t tgid, int32_t fd, int64_t ret,
                     double enter_us, double exit_us, SocketId sock = {},
                     std::string payload = "") {
    SyscallEvent e;
    e.syscall = syscall;
    e.tgid = tgid;
    e.tid = tgid;
    e.fd = fd;
    e.ret = ret;
    if (enter_us < 0) {
      e.flags |= SyscallEvent::kNoEnter;
    } else {
      e.enter_ns = At(enter_us);
    }
    e.exit_ns = At(exit_us);
    e.sock = sock;
    e.payload = std::move(payload);
    events_.push_back(e);
    return *this;
  }
  // accept4 on listening fd 3 returning `fd`; enter_us < 0: enter not seen.
  StreamBuilder& Accept(uint32_t tgid, int32_t fd, double enter_us,
                        double exit_us, SocketId sock = TcpSock(80, 50000)) {
    return Add(Syscall::kAccept4, tgid, 3, fd, enter_us, exit_us, sock);
  }
  StreamBuilder& Read(uint32_t tgid, int32_t fd, double enter_us,
                      double exit_us, int64_t ret, std::string payload = "",
                      SocketId sock = {}) {
    return Add(Syscall::kRead, tgid, fd, ret, enter_us, exit_us, sock,
               std::move(payload));
  }
  StreamBuilder& Write(uint32_t tgid, int32_t fd, double enter_us,
                       double exit_us, int64_t ret, std::string payload = "",
                       Syscall syscall = Syscall::kWritev, SocketId sock = {}) {
    return Add(syscall, tgid, fd, ret, enter_us, exit_us, sock,
               std::move(payload));
  }
  StreamBuilder& Connect(uint32_t tgid, int32_t fd, double enter_us,
                         double exit_us, SocketId sock, int64_t ret = 0) {
    return Add(Syscall::kConnect, tgid, fd, ret, enter_us, exit_us, sock);
  }
  StreamBuilder& Close(uint32_t tgid, int32_t fd, double enter_us,
                       double exit_us) {
    return Add(Syscall::kClose, tgid, fd, 0, enter_us, exit_us);
  }

  std::vector<SyscallEvent>& events() { return events_; }

  // Events sorted by exit time (what the collector delivers, roughly).
  std::vector<SyscallEvent> InExitOrder() const {
    std::vector<SyscallEvent> sorted = events_;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const SyscallEvent& a, const SyscallEvent& b) {
                       return a.exit_ns < b.exit_ns;
                     });
    return sorted;
  }

 private:
  std::vector<SyscallEvent> events_;
};

// The request most profiler tests start from (times in µs): nginx
// (`server`) accepts a client and reads its request line, connects to
// php-fpm (`backend`) and sends the request; php-fpm accepts, reads, works
// 20 ms, replies and closes; nginx reads the reply, closes the link,
// answers and closes the client. T = 20205, server 115, transport 80,
// backend 20010, queue 20.
struct OneRequestOptions {
  uint32_t server = 100;
  uint32_t backend = 200;
  SocketId client = TcpSock(80, 50000);
  SocketId link = UnixSock(0xA1, 0xB1);  // nginx's end
  SocketId side = UnixSock(0xB1, 0xA1);  // php-fpm's end
  std::string send_payload;              // nginx's send to php-fpm
  double send_exit = 140;                // the end of that send
  bool traced_backend = true;            // php-fpm's calls in the stream
  double accept_exit = 130;  // php-fpm's accept; a later one delays the rest
};

inline StreamBuilder OneFastCgiRequest(const OneRequestOptions& o = {}) {
  StreamBuilder s;
  s.Accept(o.server, 8, 0, 10, o.client)
      .Read(o.server, 8, 50, 60, 120, "GET /index.php?x=1 HTTP/1.1\r\n")
      .Connect(o.server, 9, 100, 110, o.link)
      .Write(o.server, 9, 120, o.send_exit, 500, o.send_payload);
  const double d = o.accept_exit - 130;
  if (o.traced_backend) {
    s.Add(Syscall::kAccept, o.backend, 0, 4, -1, o.accept_exit, o.side)
        .Read(o.backend, 4, 150 + d, 160 + d, 500)
        .Write(o.backend, 4, 20160 + d, 20170 + d, 300, "", Syscall::kWrite)
        .Close(o.backend, 4, 20200 + d, 20205 + d);
  }
  s.Read(o.server, 9, 20180 + d, 20190 + d, 300)
      .Close(o.server, 9, 20210 + d, 20215 + d)
      .Write(o.server, 8, 20220 + d, 20240 + d, 350)
      .Close(o.server, 8, 20300 + d, 20305 + d);
  return s;
}

// Feeds `events` (in the given order) to `profiler`, finishes, and returns
// every request in finalization order.
inline std::vector<Request> RunEvents(Profiler& profiler,
                                      const std::vector<SyscallEvent>& events,
                                      uint64_t end_ns = At(10'000'000)) {
  std::vector<Request> requests;
  profiler.SetRequestCallback([&](const Request& r) { requests.push_back(r); });
  for (const SyscallEvent& e : events) profiler.OnEvent(e);
  profiler.Finish(end_ns);
  profiler.SetRequestCallback(nullptr);
  return requests;
}

inline std::vector<Request> RunStream(const StreamBuilder& stream) {
  Profiler profiler;
  return RunEvents(profiler, stream.InExitOrder());
}

// Matches a complete request with exactly these phases (microseconds).
MATCHER_P4(HasPhases, total, server, transport, backend, "") {
  bool ok = arg.complete && arg.total_ns == Us(total) &&
            arg.server_ns == Us(server) && arg.transport_ns == Us(transport) &&
            arg.backend_ns == Us(backend);
  if (!ok) {
    auto v = [](const std::optional<uint64_t>& x) {
      return x.has_value() ? std::to_string(*x / 1000.0) : std::string("-");
    };
    *result_listener << "complete=" << arg.complete << " ("
                     << arg.incomplete_reason << ") total=" << v(arg.total_ns)
                     << " server=" << v(arg.server_ns)
                     << " transport=" << v(arg.transport_ns)
                     << " backend=" << v(arg.backend_ns);
  }
  return ok;
}

}  // namespace reqcost::analyzers::test_support

#endif  // REQCOST_TESTS_ANALYZERS_STREAM_BUILDER_H_
