// Profiler behaviours found on real stacks, each reproduced on a
// synthetic stream shaped like the capture that showed it.
#include <cstdint>
#include <string>
#include <vector>

#include "analyzers/payload.h"
#include "analyzers/profiler.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using ::reqcost::analyzers::test_support::FcgiRecord;
using ::reqcost::analyzers::test_support::HasPhases;
using ::reqcost::analyzers::test_support::RunEvents;
using ::reqcost::analyzers::test_support::StreamBuilder;
using ::reqcost::analyzers::test_support::TcpSock;
using ::reqcost::analyzers::test_support::UnixSock;
using ::reqcost::analyzers::test_support::Us;
using ::testing::Eq;
using ::testing::SizeIs;

constexpr uint32_t kNginx = 100;
constexpr uint32_t kPhp = 200;

struct FpmStreamOptions {
  bool fcgi = false;  // payloads carry FastCGI records
  bool tcp = false;
  // php's read of the next request returns before nginx's send of it
  // exits (the reader runs on the other CPU before the writer's exit).
  bool reader_first = false;
  // php reads request k's STDIN end record together with request k + 1
  // (one read, once nginx sent k + 1), not alone after its reply.
  bool merged_late_read = false;
  // The late read of request k is lost (a dropped event): php's byte count
  // is 8 short from then on.
  int lost_late_read = -1;
};

// nginx with fastcgi_keep_conn in front of a php-fpm child, 3 requests of a
// keep-alive client on one kept link, php working (k + 1) ms on request k.
// Like php-fpm 8.2 on a GET: it reads BEGIN_REQUEST, PARAMS and the empty
// PARAMS record, writes its reply, and only then reads the empty STDIN
// record (8 bytes) that nginx sent with the request; then it blocks in read
// until the next request.
StreamBuilder PhpFpmKeptLinkStream(const FpmStreamOptions& o) {
  std::string head = FcgiRecord(kFcgiBeginRequest, 1, 8) +
                     FcgiRecord(4, 1, 40) + FcgiRecord(4, 1, 0);
  std::string stdin_end = FcgiRecord(5, 1, 0);
  std::string reply = FcgiRecord(6, 1, 100) + FcgiRecord(kFcgiEndRequest, 1, 8);
  auto p = [&](const std::string& bytes) { return o.fcgi ? bytes : ""; };
  int64_t head_len = head.size();
  int64_t req_len = head_len + stdin_end.size();
  int64_t reply_len = reply.size();
  SocketId link = o.tcp ? TcpSock(40000, 9000, 0x11) : UnixSock(0xA1, 0xB1);
  SocketId side = o.tcp ? TcpSock(9000, 40000, 0x22) : UnixSock(0xB1, 0xA1);
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10);
  double php_read_enter = 145;
  for (int k = 0; k < 3; ++k) {
    double b = k * 100000.0;
    double work = 1000.0 * (k + 1);
    s.Read(kNginx, 8, b + 50, b + 60, 100, "GET /k HTTP/1.1\r\n");
    if (k == 0) {
      s.Connect(kNginx, 9, b + 100, b + 110, link)
          .Add(Syscall::kAccept, kPhp, 0, 4, -1, b + 130, side)
          .Write(kNginx, 9, b + 120, b + 140, req_len, p(head + stdin_end));
    } else {
      s.Write(kNginx, 9, b + 100, b + 120, req_len, p(head + stdin_end));
    }
    double read_exit = o.reader_first && k > 0 ? b + 115 : b + 160;
    bool merged = o.merged_late_read && k > 0;
    s.Read(kPhp, 4, php_read_enter, read_exit,
           head_len + (merged ? stdin_end.size() : 0),
           p(merged ? stdin_end + head : head))
        .Write(kPhp, 4, b + 160 + work, b + 170 + work, reply_len, p(reply),
               Syscall::kWrite);
    if (!(o.merged_late_read && k < 2) && o.lost_late_read != k) {
      s.Read(kPhp, 4, b + 172 + work, b + 173 + work, stdin_end.size(),
             p(stdin_end));
    }
    s.Read(kNginx, 9, b + 180 + work, b + 190 + work, reply_len, p(reply))
        .Write(kNginx, 8, b + 200 + work, b + 220 + work, 350);
    php_read_enter = b + 174 + work;  // blocks until the next request
  }
  s.Close(kNginx, 8, 203300, 203305)
      .Close(kNginx, 9, 203400, 203405)
      .Read(kPhp, 4, php_read_enter, 203420, 0)
      .Close(kPhp, 4, 203430, 203435);
  return s;
}

// Without FastCGI headers, php-fpm's late read of the STDIN end record (a
// read after its reply write) was taken as the start of the next backend
// request; the real next request was then merged into it and every request
// after the first was incomplete ("backend reply not seen"). The bytes say
// otherwise: nginx sent them before the next exchange began.
class PhpFpmKeptLink : public ::testing::TestWithParam<FpmStreamOptions> {};

TEST_P(PhpFpmKeptLink, LateStdinReadStaysWithItsRequest) {
  Profiler profiler;
  auto requests =
      RunEvents(profiler, PhpFpmKeptLinkStream(GetParam()).InExitOrder());
  ASSERT_THAT(requests, SizeIs(3));
  double shift = GetParam().reader_first ? 45 : 0;  // read exit 115, not 160
  // k=0: T = 10 + (1220 - 50); W = 1190 - 100; backend = 1170 - 160.
  EXPECT_THAT(requests[0], HasPhases(1180, 90, 80, 1010));
  EXPECT_THAT(requests[0].backend_conn, Eq(ConnReuse::kNew));
  // k=1: T = 2220 - 50; W = 2190 - 100; backend = 2170 - read exit.
  EXPECT_THAT(requests[1], HasPhases(2170, 80, 80 - shift, 2010 + shift));
  EXPECT_THAT(requests[1].backend_conn, Eq(ConnReuse::kReused));
  // k=2 owns the client close (5 us).
  EXPECT_THAT(requests[2], HasPhases(3175, 85, 80 - shift, 3010 + shift));
  EXPECT_THAT(requests[2].backend_conn, Eq(ConnReuse::kReused));
  for (const Request& r : requests) {
    EXPECT_THAT(r.backend_timing, Eq(BackendTiming::kMeasured));
    EXPECT_THAT(r.backend_pid, Eq(kPhp));
  }
  EXPECT_THAT(profiler.anomalies().unmatched_backend_work, Eq(0u));
}

INSTANTIATE_TEST_SUITE_P(
    Stacks, PhpFpmKeptLink,
    ::testing::Values(FpmStreamOptions{false, false, false},
                      FpmStreamOptions{false, true, false},
                      FpmStreamOptions{false, false, true},
                      FpmStreamOptions{true, false, false},
                      FpmStreamOptions{false, false, false, true},
                      FpmStreamOptions{false, false, false, false, 1}),
    [](const auto& info) {
      const FpmStreamOptions& o = info.param;
      return std::string(o.fcgi ? "FastCgi" : "NoPayload") +
             (o.tcp ? "Tcp" : "Unix") + (o.reader_first ? "ReaderFirst" : "") +
             (o.merged_late_read ? "LateReadWithTheNextRequest" : "") +
             (o.lost_late_read >= 0 ? "LateReadLost" : "");
    });

// Attached to nginx with fastcgi_keep_conn while php-fpm sleeps in a request
// (no payload): both ends of the kept unix link were opened before attach,
// php-fpm's reply is the first event, nginx's reply read the second, and only
// then does nginx touch a client connection. Two faults showed on the real
// stack: with neither process known to have clients the pair's roles were a
// guess that came out backwards (unix sockets have no ports to tell) and was
// never corrected; and php-fpm's late 8-byte reads, sent before attach, put
// its byte count 8 ahead of nginx's, so every late read split a new backend
// request that began before its exchange and was skipped — each exchange then
// took the wrong one. Now the guess is corrected when nginx shows a client,
// and a backend request that began before its exchange but has not replied
// yet starts at its first read after the exchange began.
StreamBuilder AttachedMidRequestStream() {
  SocketId link = UnixSock(0xA1, 0xB1);
  SocketId side = UnixSock(0xB1, 0xA1);
  StreamBuilder s;
  s.Write(kPhp, 5, 100, 110, 104, "", Syscall::kWrite, side)
      .Read(kPhp, 5, 112, 113, 8)
      .Add(Syscall::kRecvfrom, kNginx, 11, 104, 120, 125, link)
      .Write(kNginx, 3, 130, 140, 177, "", Syscall::kWritev,
             TcpSock(80, 50000));
  double php_read_enter = 114;
  for (int k = 1; k <= 3; ++k) {
    double b = k * 100000.0;
    double work = 1000.0 * k;
    s.Read(kNginx, 3, b + 50, b + 60, 125)
        .Write(kNginx, 11, b + 100, b + 120, 584)
        .Read(kPhp, 5, php_read_enter, b + 160, 8)
        .Read(kPhp, 5, b + 161, b + 162, 568)
        .Write(kPhp, 5, b + 160 + work, b + 170 + work, 104, "",
               Syscall::kWrite)
        .Read(kPhp, 5, b + 172 + work, b + 173 + work, 8)
        .Add(Syscall::kRecvfrom, kNginx, 11, 104, b + 180 + work,
             b + 190 + work)
        .Write(kNginx, 3, b + 200 + work, b + 220 + work, 177);
    php_read_enter = b + 174 + work;
  }
  s.Close(kNginx, 3, 303300, 303305);
  return s;
}

TEST(StacksProfilerTest, AttachedMidRequestToAKeptUnixLinkMeasuresTheRest) {
  Profiler profiler;
  auto requests = RunEvents(profiler, AttachedMidRequestStream().InExitOrder());
  ASSERT_THAT(requests, SizeIs(4));
  EXPECT_FALSE(requests[0].complete);  // its start was before attach
  for (int k = 1; k <= 3; ++k) {
    SCOPED_TRACE(k);
    const Request& r = requests[k];
    double work = 1000.0 * k;
    double close = k == 3 ? 5 : 0;
    // T = 220 + work - 50 (+ close); W = 190 + work - 100;
    // backend = 170 + work - 160.
    EXPECT_THAT(r, HasPhases(170 + work + close, 80 + close, 80, work + 10));
    EXPECT_THAT(r.backend_timing, Eq(BackendTiming::kMeasured));
    EXPECT_THAT(r.backend_pid, Eq(kPhp));
    EXPECT_THAT(r.backend_conn, Eq(ConnReuse::kReused));
  }
  Report report = profiler.BuildReport({});
  for (const auto& p : report.processes) {
    EXPECT_THAT(p.role, Eq(p.pid == kNginx ? "server" : "backend")) << p.pid;
  }
}

}  // namespace
}  // namespace reqcost::analyzers
