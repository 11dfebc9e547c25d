// A PID that the kernel gives to a new process, and an fd that a
// process reuses for a new connection, never mix two connections' events.
// These cannot be forced on a live system in a test's time, so they are
// synthetic streams (tests/analyzers/stream_builder.h) with process events.
#include <algorithm>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "analyzers/profiler.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using ::reqcost::analyzers::test_support::At;
using ::reqcost::analyzers::test_support::HasPhases;
using ::reqcost::analyzers::test_support::StreamBuilder;
using ::reqcost::analyzers::test_support::TcpSock;
using ::reqcost::analyzers::test_support::UnixSock;
using ::reqcost::analyzers::test_support::Us;
using ::testing::Each;
using ::testing::Eq;
using ::testing::Field;
using ::testing::SizeIs;

constexpr uint32_t kNginx = 100;
constexpr uint32_t kPhp = 200;
constexpr uint32_t kFpmMaster = 199;

ProcessEvent Proc(ProcessEvent::Op op, uint32_t tgid, double at_us,
                  uint32_t parent = 1) {
  ProcessEvent p;
  p.op = op;
  p.tgid = tgid;
  p.parent_tgid = parent;
  p.ts_ns = At(at_us);
  p.comm = tgid == kNginx ? "nginx" : "php-fpm8.2";
  return p;
}

// Feeds syscalls and process events merged in time order (what the collector
// delivers, roughly), finishes, and returns every request.
std::vector<Request> RunWithProcesses(
    const StreamBuilder& s, const std::vector<ProcessEvent>& processes) {
  using Item = std::variant<SyscallEvent, ProcessEvent>;
  std::vector<std::pair<uint64_t, Item>> items;
  for (const SyscallEvent& e : s.InExitOrder())
    items.emplace_back(e.exit_ns, e);
  for (const ProcessEvent& p : processes) items.emplace_back(p.ts_ns, p);
  std::stable_sort(
      items.begin(), items.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  Profiler profiler;
  std::vector<Request> requests;
  profiler.SetRequestCallback([&](const Request& r) { requests.push_back(r); });
  for (const auto& [at, item] : items) {
    if (const auto* e = std::get_if<SyscallEvent>(&item)) {
      profiler.OnEvent(*e);
    } else {
      profiler.OnProcessEvent(std::get<ProcessEvent>(item));
    }
  }
  profiler.Finish(At(10'000'000));
  return requests;
}

// Every syscall of `r` was made by `tgid` (server side) at or after `from_us`.
bool AllOwnSyscallsFrom(const Request& r, double from_us) {
  return std::all_of(
      r.syscalls.begin(), r.syscalls.end(),
      [&](const SyscallRecord& s) { return s.start_ns() >= At(from_us); });
}

// A simple request on client fd 8 of `tgid` starting at `b` µs:
// T = 10 (accept) + (130 - 50) + 5 (close) = 95.
void SimpleRequest(StreamBuilder& s, uint32_t tgid, double b, uint16_t port) {
  s.Accept(tgid, 8, b + 0, b + 10, TcpSock(80, port))
      .Read(tgid, 8, b + 50, b + 60, 100)
      .Write(tgid, 8, b + 100, b + 130, 500)
      .Close(tgid, 8, b + 200, b + 205);
}

TEST(FaultsProfilerTest, ReusedPidOfAServerStartsFreshConnections) {
  StreamBuilder s;
  // Worker 100 reads a request on fd 8 and is killed before answering.
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000)).Read(kNginx, 8, 50, 60, 100);
  // Much later a new process gets PID 100 and serves on fd 8 too.
  SimpleRequest(s, kNginx, 5000, 50001);
  auto requests =
      RunWithProcesses(s, {Proc(ProcessEvent::Op::kExit, kNginx, 1000),
                           Proc(ProcessEvent::Op::kFork, kNginx, 4000)});
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_FALSE(requests[0].complete);
  EXPECT_THAT(requests[0].incomplete_reason, Eq("process exited"));
  EXPECT_THAT(requests[1], HasPhases(95, 95, 0, 0));
  EXPECT_THAT(requests[1].client_conn, Eq(ConnReuse::kNew));
  EXPECT_TRUE(AllOwnSyscallsFrom(requests[1], 5000));
  EXPECT_THAT(requests[1].syscalls, SizeIs(4));
}

TEST(FaultsProfilerTest, ReusedPidWithItsExitLostStillStartsANewConnection) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000)).Read(kNginx, 8, 50, 60, 100);
  // The exit was lost (a drop): the reused fd's accept is the evidence.
  SimpleRequest(s, kNginx, 5000, 50001);
  auto requests = RunWithProcesses(s, {});
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_FALSE(requests[0].complete);
  EXPECT_THAT(requests[1], HasPhases(95, 95, 0, 0));
  EXPECT_THAT(requests[1].client_conn, Eq(ConnReuse::kNew));
  EXPECT_TRUE(AllOwnSyscallsFrom(requests[1], 5000));
}

TEST(FaultsProfilerTest, ReusedFdAfterCloseIsANewConnection) {
  StreamBuilder s;
  SimpleRequest(s, kNginx, 0, 50000);
  SimpleRequest(s, kNginx, 1000, 50001);
  auto requests = RunWithProcesses(s, {});
  ASSERT_THAT(requests, SizeIs(2));
  for (const Request& r : requests) {
    EXPECT_THAT(r, HasPhases(95, 95, 0, 0));
    EXPECT_THAT(r.client_conn, Eq(ConnReuse::kNew));
    EXPECT_THAT(r.syscalls, SizeIs(4));
  }
}

TEST(FaultsProfilerTest, ReusedFdWithItsCloseLostIsANewConnection) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 130, 500);  // its close was dropped
  SimpleRequest(s, kNginx, 1000, 50001);
  auto requests = RunWithProcesses(s, {});
  ASSERT_THAT(requests, SizeIs(2));
  // Without its close the first request's end is unknown: not complete.
  EXPECT_FALSE(requests[0].complete);
  EXPECT_THAT(requests[1], HasPhases(95, 95, 0, 0));
  EXPECT_THAT(requests[1].client_conn, Eq(ConnReuse::kNew));
  EXPECT_TRUE(AllOwnSyscallsFrom(requests[1], 1000));
}

// A threaded server: one thread closes fd 8, and the kernel frees the fd
// before close() returns, so another thread's accept gets fd 8 and returns
// first. The first request still owns its close, and the close does not end
// the new connection.
TEST(FaultsProfilerTest, CloseSeenAfterAnotherThreadsAcceptOfItsFd) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 130, 500)
      .Add(Syscall::kClose, kNginx, 8, 0, 200, 230, TcpSock(80, 50000))
      .Accept(kNginx, 8, 150, 215, TcpSock(80, 50001))
      .Read(kNginx, 8, 250, 260, 100)
      .Write(kNginx, 8, 300, 330, 500)
      .Close(kNginx, 8, 400, 405);
  auto requests = RunWithProcesses(s, {});
  ASSERT_THAT(requests, SizeIs(2));
  // T = 10 (accept) + (130 - 50) + 30 (close).
  EXPECT_THAT(requests[0], HasPhases(120, 120, 0, 0));
  // T = 65 (accept) + (330 - 250) + 5.
  EXPECT_THAT(requests[1], HasPhases(150, 150, 0, 0));
  EXPECT_THAT(requests[1].syscalls, SizeIs(4));
}

// The same, when the connection was done in TCP before its close (the
// server shut down its side and the client closed: the kernel unhashed the
// socket and its close reads local port 0). Found live by coverage_test's
// shutdown workload: the close is still the first request's, by its socket
// id and the rest of its tuple, not "close not seen".
TEST(FaultsProfilerTest,
     CloseWithItsLocalPortGoneSeenAfterAnotherThreadsAccept) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000, 0x77))
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 130, 500)
      .Add(Syscall::kClose, kNginx, 8, 0, 200, 230, TcpSock(0, 50000, 0x77))
      .Accept(kNginx, 8, 150, 215, TcpSock(80, 50001, 0x78))
      .Read(kNginx, 8, 250, 260, 100)
      .Write(kNginx, 8, 300, 330, 500)
      .Close(kNginx, 8, 400, 405);
  auto requests = RunWithProcesses(s, {});
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_THAT(requests[0], HasPhases(120, 120, 0, 0));
  EXPECT_THAT(requests[1], HasPhases(150, 150, 0, 0));
}

// A close with local port 0 and another socket id is not the displaced
// connection's: that one's close was not seen.
TEST(FaultsProfilerTest,
     CloseOfAnotherSocketWithPortGoneIsNotTheDisplacedOnes) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000, 0x77))
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 130, 500)
      .Accept(kNginx, 8, 150, 215, TcpSock(80, 50001, 0x78))
      .Read(kNginx, 8, 250, 260, 100)
      .Write(kNginx, 8, 300, 330, 500)
      .Add(Syscall::kClose, kNginx, 8, 0, 400, 405, TcpSock(0, 50001, 0x78));
  auto requests = RunWithProcesses(s, {});
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_FALSE(requests[0].complete);
  EXPECT_THAT(requests[0].incomplete_reason, Eq("close not seen"));
  EXPECT_THAT(requests[1], HasPhases(150, 150, 0, 0));
}

// nginx (100) in front of php-fpm child 200. Request 1's child is killed
// mid-work: nginx reads EOF and answers by itself (a 502). php-fpm forks a
// new child that the kernel gives PID 200 again; it accepts on fd 4 again, and
// the kernel even reuses the two unix socket addresses. Request 2 must be
// measured from the new child's work only; request 1 must not be measured.
TEST(FaultsProfilerTest, KilledBackendAndItsReusedPidAndSocketsAreNotMixed) {
  StreamBuilder s;
  const SocketId link = UnixSock(0xA1, 0xB1);
  const SocketId side = UnixSock(0xB1, 0xA1);
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Read(kNginx, 8, 50, 60, 120)
      .Connect(kNginx, 9, 100, 110, link)
      .Write(kNginx, 9, 120, 140, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, -1, 130, side)
      .Read(kPhp, 4, 150, 160, 500)
      // Killed at 5000: the kernel closes its socket, nginx sees EOF.
      .Read(kNginx, 9, 5010, 5020, 0)
      .Close(kNginx, 9, 5030, 5035)
      .Write(kNginx, 8, 5040, 5060, 200)
      .Close(kNginx, 8, 5100, 5105);
  const double b = 10000;
  s.Accept(kNginx, 8, b + 0, b + 10, TcpSock(80, 50001))
      .Read(kNginx, 8, b + 50, b + 60, 120)
      .Connect(kNginx, 9, b + 100, b + 110, link)
      .Write(kNginx, 9, b + 120, b + 140, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, b + 115, b + 130, side)
      .Read(kPhp, 4, b + 150, b + 160, 500)
      .Write(kPhp, 4, b + 20160, b + 20170, 300, "", Syscall::kWrite)
      .Close(kPhp, 4, b + 20200, b + 20205)
      .Read(kNginx, 9, b + 20180, b + 20190, 300)
      .Close(kNginx, 9, b + 20210, b + 20215)
      .Write(kNginx, 8, b + 20220, b + 20240, 350)
      .Close(kNginx, 8, b + 20300, b + 20305);
  auto requests = RunWithProcesses(
      s, {Proc(ProcessEvent::Op::kExit, kPhp, 5000, kFpmMaster),
          Proc(ProcessEvent::Op::kFork, kPhp, 9000, kFpmMaster)});
  ASSERT_THAT(requests, SizeIs(2));
  // Request 1: nginx's own 502, no backend time given to it.
  EXPECT_NE(requests[0].backend_timing, BackendTiming::kMeasured);
  EXPECT_THAT(requests[0].backend_ns.value_or(0), Eq(0u));
  for (const SyscallRecord& r : requests[0].syscalls) {
    EXPECT_THAT(r.side, Eq(Side::kServer));
  }
  // Request 2: T = 10 + (20240 - 50) + 5; W = 20190 - 100;
  // backend = 20170 - 160 (the new child's work only).
  EXPECT_THAT(requests[1], HasPhases(20205, 115, 80, 20010));
  EXPECT_THAT(requests[1].backend_timing, Eq(BackendTiming::kMeasured));
  EXPECT_THAT(requests[1].backend_pid, Eq(kPhp));
  EXPECT_TRUE(AllOwnSyscallsFrom(requests[1], b));
}

// The same killed backend, but the process events were lost: the reused fd
// 4's accept alone must still separate the two children's work.
TEST(FaultsProfilerTest, KilledBackendWithLostProcessEventsIsNotMixed) {
  StreamBuilder s;
  const SocketId link = UnixSock(0xA1, 0xB1);
  const SocketId side = UnixSock(0xB1, 0xA1);
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Read(kNginx, 8, 50, 60, 120)
      .Connect(kNginx, 9, 100, 110, link)
      .Write(kNginx, 9, 120, 140, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, -1, 130, side)
      .Read(kPhp, 4, 150, 160, 500)
      .Read(kNginx, 9, 5010, 5020, 0)
      .Close(kNginx, 9, 5030, 5035)
      .Write(kNginx, 8, 5040, 5060, 200)
      .Close(kNginx, 8, 5100, 5105);
  const double b = 10000;
  s.Accept(kNginx, 8, b + 0, b + 10, TcpSock(80, 50001))
      .Read(kNginx, 8, b + 50, b + 60, 120)
      .Connect(kNginx, 9, b + 100, b + 110, UnixSock(0xA2, 0xB2))
      .Write(kNginx, 9, b + 120, b + 140, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, b + 115, b + 130, UnixSock(0xB2, 0xA2))
      .Read(kPhp, 4, b + 150, b + 160, 500)
      .Write(kPhp, 4, b + 20160, b + 20170, 300, "", Syscall::kWrite)
      .Close(kPhp, 4, b + 20200, b + 20205)
      .Read(kNginx, 9, b + 20180, b + 20190, 300)
      .Close(kNginx, 9, b + 20210, b + 20215)
      .Write(kNginx, 8, b + 20220, b + 20240, 350)
      .Close(kNginx, 8, b + 20300, b + 20305);
  auto requests = RunWithProcesses(s, {});
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_NE(requests[0].backend_timing, BackendTiming::kMeasured);
  EXPECT_THAT(requests[1], HasPhases(20205, 115, 80, 20010));
  EXPECT_THAT(requests[1].backend_timing, Eq(BackendTiming::kMeasured));
  EXPECT_TRUE(AllOwnSyscallsFrom(requests[1], b));
}

// Found under the 4 KiB ring (faults_test.cc): nginx's link on fd 13 whose
// sends, reply and close were all lost; much later nginx connects fd 13 again,
// a new socket. That connect is a new connection, not a retry of the old
// connect (which only a connect on the same socket is): else the new exchange
// starts at the old connect, no request can take it, and its request is
// reported complete without a backend.
void LinkLostAfterItsConnect(StreamBuilder& s, const SocketId& link) {
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Read(kNginx, 8, 50, 60, 120)
      .Connect(kNginx, 9, 100, 110, link);
  // Lost: nginx's writev/readv/close on fd 9, php's whole side, nginx's
  // response and close on fd 8.
}

// Requests in start order (the unanswered first one is finalized last).
std::vector<Request> ByStart(std::vector<Request> requests) {
  std::stable_sort(requests.begin(), requests.end(),
                   [](const Request& a, const Request& b) {
                     return a.start_ns < b.start_ns;
                   });
  return requests;
}

// Request 2 at `b` on a new link socket `link` (php's end `side`).
void MeasuredRequest(StreamBuilder& s, double b, const SocketId& link,
                     const SocketId& side) {
  s.Accept(kNginx, 10, b + 0, b + 10, TcpSock(80, 50001))
      .Read(kNginx, 10, b + 50, b + 60, 120)
      .Connect(kNginx, 9, b + 100, b + 110, link)
      .Write(kNginx, 9, b + 120, b + 140, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, b + 115, b + 130, side)
      .Read(kPhp, 4, b + 150, b + 160, 500)
      .Write(kPhp, 4, b + 20160, b + 20170, 300, "", Syscall::kWrite)
      .Close(kPhp, 4, b + 20200, b + 20205)
      .Read(kNginx, 9, b + 20180, b + 20190, 300)
      .Close(kNginx, 9, b + 20210, b + 20215)
      .Write(kNginx, 10, b + 20220, b + 20240, 350)
      .Close(kNginx, 10, b + 20300, b + 20305);
}

TEST(FaultsProfilerTest, ConnectOnAReusedFdWithANewSocketIsANewLink) {
  StreamBuilder s;
  LinkLostAfterItsConnect(s, UnixSock(0xA1, 0xB1));
  MeasuredRequest(s, 100000, UnixSock(0xA2, 0xB2), UnixSock(0xB2, 0xA2));
  auto requests = ByStart(RunWithProcesses(s, {}));
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_FALSE(requests[0].complete);  // its response was lost
  // T = 10 + (20240 - 50) + 5; W = 20190 - 100; backend = 20170 - 160.
  EXPECT_THAT(requests[1], HasPhases(20205, 115, 80, 20010));
  EXPECT_THAT(requests[1].backend_timing, Eq(BackendTiming::kMeasured));
  EXPECT_THAT(requests[1].backend_conn, Eq(ConnReuse::kNew));
}

// The same, with the kernel handing the two socket addresses back swapped:
// nginx's new end has the address php's old end had, and the other way.
TEST(FaultsProfilerTest, ConnectOnAReusedFdWithSwappedSocketIdsIsANewLink) {
  StreamBuilder s;
  LinkLostAfterItsConnect(s, UnixSock(0xA1, 0xB1));
  MeasuredRequest(s, 100000, UnixSock(0xB1, 0xA1), UnixSock(0xA1, 0xB1));
  auto requests = ByStart(RunWithProcesses(s, {}));
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_THAT(requests[1], HasPhases(20205, 115, 80, 20010));
  EXPECT_THAT(requests[1].backend_timing, Eq(BackendTiming::kMeasured));
  // php's end is the backend side of that link, never a client of php.
  for (const Request& r : requests) EXPECT_THAT(r.pid, Eq(kNginx));
}

// A real retry: connect returns EINPROGRESS, the second connect on the same
// socket completes it. One connection, one exchange.
TEST(FaultsProfilerTest, SecondConnectOnTheSameSocketIsTheSameLink) {
  StreamBuilder s;
  const SocketId link = UnixSock(0xA1, 0xB1);
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Read(kNginx, 8, 50, 60, 120)
      .Connect(kNginx, 9, 100, 105, link, -115)
      .Connect(kNginx, 9, 106, 110, link)
      .Write(kNginx, 9, 120, 140, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, -1, 130, UnixSock(0xB1, 0xA1))
      .Read(kPhp, 4, 150, 160, 500)
      .Write(kPhp, 4, 20160, 20170, 300, "", Syscall::kWrite)
      .Close(kPhp, 4, 20200, 20205)
      .Read(kNginx, 9, 20180, 20190, 300)
      .Close(kNginx, 9, 20210, 20215)
      .Write(kNginx, 8, 20220, 20240, 350)
      .Close(kNginx, 8, 20300, 20305);
  auto requests = RunWithProcesses(s, {});
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], HasPhases(20205, 115, 80, 20010));
  EXPECT_THAT(requests[0].backend_timing, Eq(BackendTiming::kMeasured));
}

}  // namespace
}  // namespace reqcost::analyzers
