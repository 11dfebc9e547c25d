#include "analyzers/profiler.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "analyzers/payload.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using ::reqcost::analyzers::test_support::At;
using ::reqcost::analyzers::test_support::FcgiRecord;
using ::reqcost::analyzers::test_support::HasPhases;
using ::reqcost::analyzers::test_support::OneFastCgiRequest;
using ::reqcost::analyzers::test_support::OneRequestOptions;
using ::reqcost::analyzers::test_support::RunEvents;
using ::reqcost::analyzers::test_support::RunStream;
using ::reqcost::analyzers::test_support::StreamBuilder;
using ::reqcost::analyzers::test_support::TcpSock;
using ::reqcost::analyzers::test_support::UnixSock;
using ::reqcost::analyzers::test_support::Us;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Field;
using ::testing::IsEmpty;
using ::testing::Optional;
using ::testing::SizeIs;

constexpr uint32_t kNginx = 100;
constexpr uint32_t kPhp = 200;
constexpr uint32_t kPhp2 = 201;

MATCHER_P(IsIncompleteBecause, reason, "") {
  *result_listener << "complete=" << arg.complete << " reason='"
                   << arg.incomplete_reason << "'";
  return !arg.complete && arg.incomplete_reason == reason &&
         !arg.total_ns.has_value();
}

std::vector<std::string> Names(const Request& r) {
  std::vector<std::string> names;
  for (const auto& s : r.syscalls) {
    names.push_back(std::string(SideName(s.side)) + " " +
                    std::string(SyscallName(s.syscall)));
  }
  return names;
}

// --------------------------------------------------------------------------
// Requests on client connections, no backend.

TEST(ProfilerTest, NewConnectionPerRequestWithoutBackendIsAllServerTime) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 120, "GET /index.html?v=2 HTTP/1.1\r\nHost: a")
      .Write(kNginx, 8, 100, 130, 512)
      .Close(kNginx, 8, 200, 205);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  const Request& r = requests[0];
  // accept 10 + [50, 130] + close 5; the accept->read gap is not counted.
  EXPECT_THAT(r, HasPhases(95, 95, 0, 0));
  EXPECT_THAT(r.request_line, Optional(Eq("GET /index.html")));
  EXPECT_THAT(r.client_conn, Eq(ConnReuse::kNew));
  EXPECT_THAT(r.backend_conn, Eq(ConnReuse::kNone));
  EXPECT_THAT(r.backend_timing, Eq(BackendTiming::kNone));
  EXPECT_THAT(r.queue_ns, Eq(std::nullopt));
  EXPECT_THAT(r.start_ns, Eq(At(0)));
  EXPECT_THAT(r.pid, Eq(kNginx));
  EXPECT_THAT(Names(r), ElementsAre("server accept4", "server read",
                                    "server writev", "server close"));
}

TEST(ProfilerTest, RequestLineIsNullWithoutPayload) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 120)
      .Write(kNginx, 8, 100, 130, 512)
      .Close(kNginx, 8, 200, 205);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0].request_line, Eq(std::nullopt));
}

TEST(ProfilerTest, KeepAliveSplitsOnReadAfterWrite) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100, "GET /a HTTP/1.1\r\n")
      .Write(kNginx, 8, 100, 130, 500)
      .Read(kNginx, 8, 140, 141, -11)  // after the response: not counted
      .Read(kNginx, 8, 1000, 1010, 100, "GET /b HTTP/1.1\r\n")
      .Write(kNginx, 8, 1050, 1070, 500)
      .Read(kNginx, 8, 2000, 2010, 100, "GET /c HTTP/1.1\r\n")
      .Write(kNginx, 8, 2050, 2080, 500)
      .Read(kNginx, 8, 3000, 3001, 0)  // EOF
      .Close(kNginx, 8, 3010, 3015);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(3));
  EXPECT_THAT(requests[0], HasPhases(90, 90, 0, 0));  // owns the accept
  EXPECT_THAT(requests[1], HasPhases(70, 70, 0, 0));
  EXPECT_THAT(requests[2], HasPhases(85, 85, 0, 0));  // owns the close
  EXPECT_THAT(requests[0].client_conn, Eq(ConnReuse::kNew));
  EXPECT_THAT(requests[1].client_conn, Eq(ConnReuse::kReused));
  EXPECT_THAT(requests[2].client_conn, Eq(ConnReuse::kReused));
  EXPECT_THAT(requests[1].request_line, Optional(Eq("GET /b")));
  EXPECT_THAT(Names(requests[0]),
              ElementsAre("server accept4", "server read", "server writev"));
  EXPECT_THAT(Names(requests[2]),
              ElementsAre("server read", "server writev", "server close"));
}

TEST(ProfilerTest, RequestSplitOverSeveralReadsIsOneRequest) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 1000, "POST /upload HTTP/1.1\r\n")
      .Read(kNginx, 8, 70, 80, 1000)
      .Read(kNginx, 8, 85, 90, 200)
      .Write(kNginx, 8, 100, 130, 500)
      .Close(kNginx, 8, 200, 205);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], HasPhases(95, 95, 0, 0));
  EXPECT_THAT(requests[0].request_line, Optional(Eq("POST /upload")));
}

TEST(ProfilerTest, ClientWaitAfterEagainIsExcluded) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 1000)
      .Read(kNginx, 8, 61, 62, -11)    // the rest has not arrived
      .Read(kNginx, 8, 500, 510, 200)  // 438 us later it has
      .Write(kNginx, 8, 550, 580, 500)
      .Close(kNginx, 8, 600, 605);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  // 10 + (580 - 50) - (500 - 62) + 5.
  EXPECT_THAT(requests[0], HasPhases(107, 107, 0, 0));
  EXPECT_THAT(requests[0].client_wait_ns, Eq(Us(438)));
}

TEST(ProfilerTest, EagainBeforeBackendWorkIsNotAClientWait) {
  // lighttpd style: read the request, read again (EAGAIN), then serve. The
  // next read on the connection is the next request's: no wait subtracted.
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Read(kNginx, 8, 61, 62, -11)
      .Write(kNginx, 8, 900, 910, 500)
      .Read(kNginx, 8, 2000, 2010, 100)
      .Write(kNginx, 8, 2050, 2060, 500)
      .Close(kNginx, 8, 3000, 3005);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_THAT(requests[0], HasPhases(870, 870, 0, 0));
  EXPECT_THAT(requests[0].client_wait_ns, Eq(0u));
}

TEST(ProfilerTest, ResponseOverSeveralWritesAndSendfileEndsAtTheLast) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 110, 300)
      .Write(kNginx, 8, 110, 200, 100000, "", Syscall::kSendfile)
      .Write(kNginx, 8, 200, 205, 10, "", Syscall::kWrite)
      .Close(kNginx, 8, 300, 305);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], HasPhases(170, 170, 0, 0));
  EXPECT_THAT(Names(requests[0]),
              ElementsAre("server accept4", "server read", "server writev",
                          "server sendfile", "server write", "server close"));
  EXPECT_THAT(requests[0].syscalls[3].ret, Eq(100000));
}

TEST(ProfilerTest, AcceptWithoutSeenEnterAddsNoAcceptTime) {
  StreamBuilder s;
  s.Accept(kNginx, 8, -1, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 130, 500)
      .Close(kNginx, 8, 200, 205);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], HasPhases(85, 85, 0, 0));
  EXPECT_THAT(requests[0].start_ns, Eq(At(50)));
}

// --------------------------------------------------------------------------
// One request with a new backend connection.

// nginx accepts a client, connects to php-fpm, which works 20 ms.
StreamBuilder OneBackendRequest(const OneRequestOptions& o = {}) {
  return OneFastCgiRequest(o);
}

TEST(ProfilerTest, UnixBackendPairedBySockAndPeerIsMeasured) {
  auto requests = RunStream(OneBackendRequest());
  ASSERT_THAT(requests, SizeIs(1));
  const Request& r = requests[0];
  // T = 10 + (20240 - 50) + 5; W = 20190 - 100; backend = 20170 - 160.
  EXPECT_THAT(r, HasPhases(20205, 115, 80, 20010));
  EXPECT_THAT(r.backend_timing, Eq(BackendTiming::kMeasured));
  EXPECT_THAT(r.backend_conn, Eq(ConnReuse::kNew));
  EXPECT_THAT(r.backend_pid, Eq(kPhp));
  EXPECT_THAT(r.queue_ns, Optional(Eq(Us(20))));  // 130 - 110
  EXPECT_THAT(Names(r),
              ElementsAre("server accept4", "server read", "server connect",
                          "server writev", "backend accept", "backend read",
                          "backend write", "server read", "backend close",
                          "server close", "server writev", "server close"));
}

// The backend's accept can return before the server's connect does (both
// ends are connected once the connect queued the connection; under strace,
// whose stamps are its own, it is the common order): paired late, the
// accept is still the backend's, not a client's.
TEST(ProfilerTest, BackendAcceptEndingBeforeTheConnectIsTheBackendSide) {
  OneRequestOptions o;
  o.accept_exit = 105;  // the connect ends at 110
  auto requests = RunStream(OneBackendRequest(o));
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0].backend_timing, Eq(BackendTiming::kMeasured));
  EXPECT_THAT(Names(requests[0]),
              ElementsAre("server accept4", "server read", "server connect",
                          "backend accept", "server writev", "backend read",
                          "backend write", "server read", "backend close",
                          "server close", "server writev", "server close"));
}

// Seen at the socket layer, a send is stamped when its call returns: a
// preempted backend's reply write can be stamped after nginx read the reply
// and closed the client. The request is still measured, not "backend reply
// not seen": the write waiting in the reorder queue is taken.
TEST(ProfilerTest, BackendWriteStampedAfterTheServerReadItIsStillMeasured) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 120, "GET /index.php?x=1 HTTP/1.1\r\n")
      .Connect(kNginx, 9, 100, 110, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 120, 140, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, -1, 130, UnixSock(0xB1, 0xA1))
      .Read(kPhp, 4, 150, 160, 500)
      .Read(kNginx, 9, 20180, 20190, 300)
      .Close(kNginx, 9, 20210, 20215)
      .Write(kNginx, 8, 20220, 20240, 350)
      .Close(kNginx, 8, 20300, 20305)
      .Write(kPhp, 4, 20160, 20320, 300, "", Syscall::kWrite)
      .Close(kPhp, 4, 20330, 20335);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  const Request& r = requests[0];
  EXPECT_TRUE(r.complete) << r.incomplete_reason;
  EXPECT_THAT(r.backend_timing, Eq(BackendTiming::kMeasured));
  // backend = 20320 - 160, more than W = 20190 - 100: clamped to W.
  EXPECT_THAT(r, HasPhases(20205, 115, 0, 20090));
  EXPECT_THAT(r.clamped, Eq(1u));
}

TEST(ProfilerTest, KeptLinkSendStampedAfterTheBackendReadItIsStillMeasured) {
  // Data I/O seen at the socket layer (the default): on the kept link, the
  // backend, on another CPU, read the second request 5 us before the stamp
  // of the send that carried it (stamped when its call returns).
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10);
  for (int k = 0; k < 2; ++k) {
    double b = k * 100000.0;
    s.Read(kNginx, 8, b + 60, b + 60, 100, "GET /k HTTP/1.1\r\n");
    if (k == 0) {
      s.Connect(kNginx, 9, b + 100, b + 110, UnixSock(0xA1, 0xB1))
          .Add(Syscall::kAccept, kPhp, 0, 4, -1, b + 130, UnixSock(0xB1, 0xA1))
          .Write(kNginx, 9, b + 140, b + 140, 500);
    } else {
      s.Write(kNginx, 9, b + 165, b + 165, 500);
    }
    s.Read(kPhp, 4, b + 160, b + 160, 500)
        .Write(kPhp, 4, b + 1170, b + 1170, 300, "", Syscall::kWrite)
        .Read(kNginx, 9, b + 1190, b + 1190, 300)
        .Write(kNginx, 8, b + 1220, b + 1220, 350);
  }
  s.Close(kNginx, 8, 103300, 103305);
  for (SyscallEvent& e : s.events()) {
    if (IsRead(e.syscall) || IsWrite(e.syscall)) {
      e.flags |= SyscallEvent::kExitOnly;
      e.enter_ns = 0;
    }
  }
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_TRUE(requests[1].complete) << requests[1].incomplete_reason;
  EXPECT_THAT(requests[1].backend_timing, Eq(BackendTiming::kMeasured));
  // T = 1220 - 60 + 5 (close); W = 1190 - 165; backend = 1170 - 160.
  EXPECT_THAT(requests[1], HasPhases(1165, 140, 15, 1010));
  EXPECT_THAT(requests[1].backend_conn, Eq(ConnReuse::kReused));
}

TEST(ProfilerTest, TcpBackendPairedByMirroredTupleIsMeasured) {
  OneRequestOptions o;
  o.link = TcpSock(40000, 9000, 0x11);
  o.side = TcpSock(9000, 40000, 0x22);
  auto requests = RunStream(OneBackendRequest(o));
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], HasPhases(20205, 115, 80, 20010));
  EXPECT_THAT(requests[0].backend_timing, Eq(BackendTiming::kMeasured));
  EXPECT_THAT(requests[0].queue_ns, Optional(Eq(Us(20))));
}

TEST(ProfilerTest, TcpEndsThatDoNotMirrorAreNotPaired) {
  OneRequestOptions o;
  o.link = TcpSock(40000, 9000);
  o.side = TcpSock(9000, 40001);  // another client's connection
  auto requests = RunStream(OneBackendRequest(o));
  // php's connection is then a client connection of php: 2 requests, and
  // nginx's is inferred (its backend is not seen).
  ASSERT_THAT(requests, SizeIs(2));
  const Request& nginx = requests[0].pid == kNginx ? requests[0] : requests[1];
  EXPECT_THAT(nginx.backend_timing, Eq(BackendTiming::kInferred));
  EXPECT_THAT(nginx, HasPhases(20205, 115, 50, 20040));
}

TEST(ProfilerTest, UntracedBackendIsInferredFromTheServerSide) {
  OneRequestOptions o;
  o.traced_backend = false;
  auto requests = RunStream(OneBackendRequest(o));
  ASSERT_THAT(requests, SizeIs(1));
  // backend = 20180 (first reply read enter) - 140 (last send exit).
  EXPECT_THAT(requests[0], HasPhases(20205, 115, 50, 20040));
  EXPECT_THAT(requests[0].backend_timing, Eq(BackendTiming::kInferred));
  EXPECT_THAT(requests[0].queue_ns, Eq(std::nullopt));
  EXPECT_THAT(requests[0].backend_pid, Eq(0u));
}

TEST(ProfilerTest, QueueIsTheWaitForTheBackendsAccept) {
  OneRequestOptions o;
  o.accept_exit = 5000;  // the pool was busy for ~4.9 ms
  auto requests = RunStream(OneBackendRequest(o));
  ASSERT_THAT(requests, SizeIs(1));
  const Request& r = requests[0];
  // Everything after the accept shifts by 4870 us.
  // T = 10 + (25110 - 50) + 5; W = 25060 - 100; backend = 20010.
  EXPECT_THAT(r, HasPhases(25075, 115, 4950, 20010));
  EXPECT_THAT(r.queue_ns, Optional(Eq(Us(4890))));
  EXPECT_LE(*r.queue_ns, *r.transport_ns);
}

// --------------------------------------------------------------------------
// A reused backend link (fastcgi_keep_conn) with 3 exchanges.

// Exchange k of a keep-alive client on a kept-alive link; php works
// (k + 1) ms. With `fcgi`, payloads carry FastCGI records.
StreamBuilder ReusedLinkStream(bool fcgi) {
  std::string request_bytes =
      fcgi ? FcgiRecord(kFcgiBeginRequest, 1, 8) + FcgiRecord(4, 1, 40) +
                 FcgiRecord(4, 1, 0) + FcgiRecord(5, 1, 0)
           : "";
  std::string reply_bytes =
      fcgi ? FcgiRecord(6, 1, 100) + FcgiRecord(kFcgiEndRequest, 1, 8) : "";
  int64_t req_len = fcgi ? request_bytes.size() : 500;
  int64_t reply_len = fcgi ? reply_bytes.size() : 300;
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10);
  for (int k = 0; k < 3; ++k) {
    double b = k * 100000.0;
    double work = 1000.0 * (k + 1);
    s.Read(kNginx, 8, b + 50, b + 60, 100, "GET /k HTTP/1.1\r\n");
    if (k == 0) {
      s.Connect(kNginx, 9, b + 100, b + 110, UnixSock(0xA1, 0xB1))
          .Add(Syscall::kAccept, kPhp, 0, 4, -1, b + 130, UnixSock(0xB1, 0xA1))
          .Write(kNginx, 9, b + 120, b + 140, req_len, request_bytes);
    } else {
      s.Write(kNginx, 9, b + 100, b + 120, req_len, request_bytes);
    }
    s.Read(kPhp, 4, b + 150, b + 160, req_len, request_bytes)
        .Write(kPhp, 4, b + 160 + work, b + 170 + work, reply_len, reply_bytes,
               Syscall::kWrite)
        .Read(kPhp, 4, b + 175 + work, b + 176 + work, -11)
        .Read(kNginx, 9, b + 180 + work, b + 190 + work, reply_len, reply_bytes)
        .Read(kNginx, 9, b + 195 + work, b + 196 + work, -11)
        .Write(kNginx, 8, b + 200 + work, b + 220 + work, 350);
  }
  s.Close(kNginx, 8, 203300, 203305)
      .Close(kNginx, 9, 203400, 203405)
      .Read(kPhp, 4, 203410, 203420, 0)
      .Close(kPhp, 4, 203430, 203435);
  return s;
}

void ExpectThreeExchanges(const std::vector<Request>& requests) {
  ASSERT_THAT(requests, SizeIs(3));
  // k=0: T = 10 + (1220 - 50); W = 1190 - 100; backend = 1170 - 160.
  EXPECT_THAT(requests[0], HasPhases(1180, 90, 80, 1010));
  EXPECT_THAT(requests[0].backend_conn, Eq(ConnReuse::kNew));
  EXPECT_THAT(requests[0].queue_ns, Optional(Eq(Us(20))));
  // k=1: T = 2220 - 50; W = 2190 - 100; backend = 2170 - 160.
  EXPECT_THAT(requests[1], HasPhases(2170, 80, 80, 2010));
  EXPECT_THAT(requests[1].backend_conn, Eq(ConnReuse::kReused));
  EXPECT_THAT(requests[1].queue_ns, Eq(std::nullopt));
  // k=2 owns the client close (5 us).
  EXPECT_THAT(requests[2], HasPhases(3175, 85, 80, 3010));
  EXPECT_THAT(requests[2].backend_conn, Eq(ConnReuse::kReused));
  for (const Request& r : requests) {
    EXPECT_THAT(r.backend_timing, Eq(BackendTiming::kMeasured));
  }
}

TEST(ProfilerTest, ReusedLinkSplitsExchangesBySendAfterRead) {
  ExpectThreeExchanges(RunStream(ReusedLinkStream(/*fcgi=*/false)));
}

TEST(ProfilerTest, ReusedLinkSplitsExchangesByFastCgiHeaders) {
  ExpectThreeExchanges(RunStream(ReusedLinkStream(/*fcgi=*/true)));
}

TEST(ProfilerTest, FastCgiHeadersKeepAStdinSendAfterEarlyReplyInOneExchange) {
  // php answers with an early STDERR record before nginx sends the request
  // body (STDIN): alternation alone would split this exchange in two.
  std::string begin = FcgiRecord(kFcgiBeginRequest, 1, 8) +
                      FcgiRecord(4, 1, 40) + FcgiRecord(4, 1, 0);
  std::string stderr_rec = FcgiRecord(7, 1, 10);
  std::string stdin_rec = FcgiRecord(5, 1, 20) + FcgiRecord(5, 1, 0);
  std::string reply = FcgiRecord(6, 1, 100) + FcgiRecord(kFcgiEndRequest, 1, 8);
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Connect(kNginx, 9, 100, 110, UnixSock(0xA1, 0xB1))
      .Add(Syscall::kAccept, kPhp, 0, 4, -1, 130, UnixSock(0xB1, 0xA1))
      .Write(kNginx, 9, 120, 140, begin.size(), begin)
      .Read(kPhp, 4, 150, 160, begin.size(), begin)
      .Write(kPhp, 4, 165, 168, stderr_rec.size(), stderr_rec, Syscall::kWrite)
      .Read(kNginx, 9, 170, 172, stderr_rec.size(), stderr_rec)
      .Write(kNginx, 9, 174, 176, stdin_rec.size(), stdin_rec)
      .Read(kPhp, 4, 178, 179, stdin_rec.size(), stdin_rec)
      .Write(kPhp, 4, 1160, 1170, reply.size(), reply, Syscall::kWrite)
      .Read(kNginx, 9, 1180, 1190, reply.size(), reply)
      .Write(kNginx, 8, 1200, 1220, 350)
      .Close(kNginx, 8, 1300, 1305);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  // T = 10 + 1170 + 5; W = 1190 - 100; backend = 1170 - 160.
  EXPECT_THAT(requests[0], HasPhases(1185, 95, 80, 1010));
  EXPECT_THAT(requests[0].backend_timing, Eq(BackendTiming::kMeasured));
}

TEST(ProfilerTest, BackendRequestOfALostExchangeIsNotGivenToTheNextOne) {
  // The kernel dropped nginx's link events of the second exchange; php's
  // side of it was seen. The third exchange must get php's third request.
  std::vector<SyscallEvent> events;
  for (const SyscallEvent& e : ReusedLinkStream(false).InExitOrder()) {
    bool lost = e.tgid == kNginx && e.fd == 9 && e.exit_ns >= At(100000) &&
                e.exit_ns < At(200000);
    if (!lost) events.push_back(e);
  }
  Profiler profiler;
  profiler.OnDrops(At(100100), At(102200), 3);
  auto requests = RunEvents(profiler, events);
  ASSERT_THAT(requests, SizeIs(3));
  EXPECT_THAT(requests[0], HasPhases(1180, 90, 80, 1010));
  EXPECT_THAT(requests[1], IsIncompleteBecause("events dropped"));
  EXPECT_THAT(requests[2], HasPhases(3175, 85, 80, 3010));
}

// --------------------------------------------------------------------------
// Several requests interleaved in one nginx worker.

TEST(ProfilerTest, InterleavedRequestsInOneThreadKeepTheirOwnExchanges) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Accept(kNginx, 10, 20, 30, TcpSock(80, 50001))
      .Read(kNginx, 8, 40, 50, 100, "GET /slow HTTP/1.1\r\n")
      .Connect(kNginx, 9, 60, 70, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 75, 85, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, -1, 80, UnixSock(0xB1, 0xA1))
      .Read(kNginx, 10, 90, 100, 100, "GET /fast HTTP/1.1\r\n")
      .Connect(kNginx, 11, 110, 120, UnixSock(0xA2, 0xB2))
      .Write(kNginx, 11, 125, 135, 500)
      .Add(Syscall::kAccept, kPhp2, 0, 4, -1, 140, UnixSock(0xB2, 0xA2))
      .Read(kPhp, 4, 150, 160, 500)
      .Read(kPhp2, 4, 165, 170, 500)
      .Write(kPhp2, 4, 1165, 1170, 300, "", Syscall::kWrite)
      .Read(kNginx, 11, 1180, 1190, 300)
      .Write(kNginx, 10, 1200, 1210, 350)
      .Close(kNginx, 10, 1220, 1225)
      .Close(kNginx, 11, 1230, 1235)
      .Write(kPhp, 4, 3160, 3170, 300, "", Syscall::kWrite)
      .Read(kNginx, 9, 3180, 3190, 300)
      .Write(kNginx, 8, 3200, 3210, 350)
      .Close(kNginx, 8, 3220, 3225)
      .Close(kNginx, 9, 3230, 3235);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(2));
  const Request& fast = requests[0];
  const Request& slow = requests[1];
  EXPECT_THAT(fast.request_line, Optional(Eq("GET /fast")));
  // T = 10 + (1210 - 90) + 5; W = 1190 - 110; backend = 1170 - 170.
  EXPECT_THAT(fast, HasPhases(1135, 55, 80, 1000));
  EXPECT_THAT(fast.backend_pid, Eq(kPhp2));
  EXPECT_THAT(fast.queue_ns, Optional(Eq(Us(20))));
  EXPECT_THAT(slow.request_line, Optional(Eq("GET /slow")));
  // T = 10 + (3210 - 40) + 5; W = 3190 - 60; backend = 3170 - 160.
  EXPECT_THAT(slow, HasPhases(3185, 55, 120, 3010));
  EXPECT_THAT(slow.backend_pid, Eq(kPhp));
  EXPECT_THAT(slow.queue_ns, Optional(Eq(Us(10))));
}

TEST(ProfilerTest,
     InterleavedSplitReadTakesTheExchangeStartedAfterItsLastRead) {
  // A's request arrives in two reads around B's; nginx connects for B first,
  // B's reply comes first, but A's response is written first. The exchange
  // for B started before A's last request read, so it cannot be A's.
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Accept(kNginx, 10, 20, 30, TcpSock(80, 50001))
      .Read(kNginx, 8, 40, 50, 100)
      .Read(kNginx, 10, 60, 70, 100)
      .Connect(kNginx, 11, 80, 90, UnixSock(0xA2, 0xB2))
      .Write(kNginx, 11, 95, 105, 500)
      .Read(kNginx, 8, 110, 120, 100)
      .Connect(kNginx, 9, 130, 140, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 145, 155, 500)
      .Read(kNginx, 11, 1000, 1010, 300)
      .Read(kNginx, 9, 1100, 1110, 300)
      .Write(kNginx, 8, 1200, 1210, 350)
      .Close(kNginx, 8, 1220, 1225)
      .Write(kNginx, 10, 1300, 1310, 350)
      .Close(kNginx, 10, 1320, 1325);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(2));
  // A: T = 10 + (1210 - 40) + 5; W = 1110 - 130; backend = 1100 - 155.
  EXPECT_THAT(requests[0], HasPhases(1185, 205, 35, 945));
  // B: T = 10 + (1310 - 60) + 5; W = 1010 - 80; backend = 1000 - 105.
  EXPECT_THAT(requests[1], HasPhases(1265, 335, 35, 895));
}

TEST(ProfilerTest, ExchangesAnsweredBeforeEitherResponseMatchInOrder) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Accept(kNginx, 10, 20, 30, TcpSock(80, 50001))
      .Read(kNginx, 8, 40, 50, 100)
      .Connect(kNginx, 9, 60, 70, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 75, 85, 500)
      .Read(kNginx, 10, 90, 100, 100)
      .Connect(kNginx, 11, 110, 120, UnixSock(0xA2, 0xB2))
      .Write(kNginx, 11, 125, 135, 500)
      .Read(kNginx, 9, 1000, 1010, 300)
      .Read(kNginx, 11, 2000, 2010, 300)
      .Write(kNginx, 8, 2020, 2030, 350)
      .Write(kNginx, 10, 2040, 2050, 350)
      .Close(kNginx, 8, 2060, 2065)
      .Close(kNginx, 10, 2070, 2075);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(2));
  // A (fd 8) takes the exchange started first (fd 9): W = 1010 - 60.
  EXPECT_THAT(requests[0], HasPhases(2005, 1055, 35, 915));
  // B (fd 10) takes fd 11: W = 2010 - 110.
  EXPECT_THAT(requests[1], HasPhases(1975, 75, 35, 1865));
}

// --------------------------------------------------------------------------
// Reordering.

TEST(ProfilerTest, OutOfOrderDeliveryWithinTheWindowGivesTheSameResult) {
  StreamBuilder s = ReusedLinkStream(/*fcgi=*/false);
  std::vector<SyscallEvent> events = s.InExitOrder();
  // Deliver each event up to 5 ms late.
  std::mt19937 rng(42);
  std::uniform_int_distribution<uint64_t> jitter(0, 5'000'000);
  std::vector<std::pair<uint64_t, SyscallEvent>> delivery;
  for (const auto& e : events) delivery.push_back({e.exit_ns + jitter(rng), e});
  std::stable_sort(
      delivery.begin(), delivery.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<SyscallEvent> shuffled;
  for (const auto& [t, e] : delivery) shuffled.push_back(e);
  ASSERT_NE(shuffled, events);

  Profiler profiler;
  ExpectThreeExchanges(RunEvents(profiler, shuffled));
  EXPECT_THAT(profiler.anomalies().late_events, Eq(0u));
}

TEST(ProfilerTest, OutOfOrderDeliveryBeyondTheWindowIsCountedLate) {
  StreamBuilder s = ReusedLinkStream(/*fcgi=*/false);
  std::vector<SyscallEvent> events = s.InExitOrder();
  std::reverse(events.begin(), events.end());
  ProfilerOptions options;
  options.reorder_window_ns = 1000;
  Profiler profiler(options);
  RunEvents(profiler, events);
  EXPECT_GT(profiler.anomalies().late_events, 0u);
}

TEST(ProfilerTest, EqualExitTimesKeepArrivalOrderWhenOneArrivesLate) {
  // The response write and the close exit together; the close arrives after
  // a later event, so it is inserted, not appended: still after the write.
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000))
      .Read(kNginx, 8, 20, 30, 100)
      .Write(kNginx, 8, 40, 100, 350)
      .Accept(kNginx, 10, 150, 200, TcpSock(80, 50001))
      .Close(kNginx, 8, 90, 100);
  Profiler profiler;
  auto requests = RunEvents(profiler, s.events());
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_TRUE(requests[0].complete) << requests[0].incomplete_reason;
  EXPECT_THAT(profiler.anomalies().late_events, Eq(0u));
}

// --------------------------------------------------------------------------
// Socket identity reuse.

TEST(ProfilerTest, ReusedSocketIdDoesNotPairWithAClosedConnection) {
  StreamBuilder s = OneBackendRequest();  // link 0xA1 <-> php 0xB1, closed
  // A second request: nginx connects to an untraced backend whose socket
  // got the address 0xB1 back from the kernel.
  double b = 100000;
  s.Accept(kNginx, 8, b + 0, b + 10)
      .Read(kNginx, 8, b + 50, b + 60, 120)
      .Connect(kNginx, 9, b + 100, b + 110, UnixSock(0xA2, 0xB1))
      .Write(kNginx, 9, b + 120, b + 140, 500)
      .Read(kNginx, 9, b + 20180, b + 20190, 300)
      .Close(kNginx, 9, b + 20210, b + 20215)
      .Write(kNginx, 8, b + 20220, b + 20240, 350)
      .Close(kNginx, 8, b + 20300, b + 20305);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_THAT(requests[0].backend_timing, Eq(BackendTiming::kMeasured));
  EXPECT_THAT(requests[1], HasPhases(20205, 115, 50, 20040));
  EXPECT_THAT(requests[1].backend_timing, Eq(BackendTiming::kInferred));
}

TEST(ProfilerTest, AcceptedSocketWithAReusedPeerIdIsAClient) {
  StreamBuilder s = OneBackendRequest();  // link 0xA1 <-> php 0xB1, closed
  // Later an untraced client, whose socket reuses 0xA1, talks to php.
  s.Add(Syscall::kAccept, kPhp, 0, 5, 100000, 100010, UnixSock(0xB7, 0xA1))
      .Read(kPhp, 5, 100050, 100060, 100)
      .Write(kPhp, 5, 100100, 100120, 100, "", Syscall::kWrite)
      .Close(kPhp, 5, 100200, 100205);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_THAT(requests[1].pid, Eq(kPhp));
  EXPECT_THAT(requests[1], HasPhases(85, 85, 0, 0));
}

// --------------------------------------------------------------------------
// Missing events.

TEST(ProfilerTest, ConnectionOpenedBeforeAttachHasAnIncompleteFirstRequest) {
  StreamBuilder s;
  s.Read(kNginx, 8, 50, 60, 100, "", TcpSock(80, 50000))
      .Write(kNginx, 8, 100, 120, 500, "", Syscall::kWritev, TcpSock(80, 50000))
      .Read(kNginx, 8, 1000, 1010, 100, "GET /b HTTP/1.1\r\n")
      .Write(kNginx, 8, 1050, 1070, 500)
      .Close(kNginx, 8, 1100, 1105);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_THAT(requests[0],
              IsIncompleteBecause("connection opened before attach"));
  EXPECT_THAT(requests[1], HasPhases(75, 75, 0, 0));
  EXPECT_THAT(requests[1].client_conn, Eq(ConnReuse::kReused));
}

TEST(ProfilerTest, ResponseTailSeenAfterAttachIsAnIncompleteRequest) {
  StreamBuilder s;
  s.Write(kNginx, 8, 100, 120, 500, "", Syscall::kWritev, TcpSock(80, 50000))
      .Close(kNginx, 8, 200, 205);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0],
              IsIncompleteBecause("connection opened before attach"));
}

// A backend link opened before attach and reused after it; php's side too.
StreamBuilder PreattachLinkStream(bool fcgi) {
  std::string request_bytes =
      fcgi ? FcgiRecord(kFcgiBeginRequest, 1, 8) + FcgiRecord(4, 1, 0) : "";
  std::string reply_bytes =
      fcgi ? FcgiRecord(6, 1, 10) + FcgiRecord(kFcgiEndRequest, 1, 8) : "";
  int64_t req_len = fcgi ? request_bytes.size() : 500;
  int64_t reply_len = fcgi ? reply_bytes.size() : 300;
  StreamBuilder s;
  for (int k = 0; k < 2; ++k) {
    double b = k * 10000.0;
    int32_t fd = 8 + 2 * k;
    s.Accept(kNginx, fd, b + 0, b + 10, TcpSock(80, 50000 + k))
        .Read(kNginx, fd, b + 50, b + 60, 100)
        .Write(kNginx, 9, b + 100, b + 120, req_len, request_bytes,
               Syscall::kWritev, UnixSock(0xA1, 0xB1))
        .Read(kPhp, 4, b + 150, b + 160, req_len, request_bytes,
              UnixSock(0xB1, 0xA1))
        .Write(kPhp, 4, b + 1160, b + 1170, reply_len, reply_bytes,
               Syscall::kWrite, UnixSock(0xB1, 0xA1))
        .Read(kNginx, 9, b + 1180, b + 1190, reply_len, reply_bytes,
              UnixSock(0xA1, 0xB1))
        .Write(kNginx, fd, b + 1200, b + 1220, 350)
        .Close(kNginx, fd, b + 1300, b + 1305);
  }
  return s;
}

TEST(ProfilerTest, LinkOpenedBeforeAttachIsMeasuredWhenFastCgiShowsTheStart) {
  auto requests = RunStream(PreattachLinkStream(/*fcgi=*/true));
  ASSERT_THAT(requests, SizeIs(2));
  // T = 10 + (1220 - 50) + 5; W = 1190 - 100; backend = 1170 - 160.
  for (const Request& r : requests) {
    EXPECT_THAT(r, HasPhases(1185, 95, 80, 1010));
    EXPECT_THAT(r.backend_timing, Eq(BackendTiming::kMeasured));
    EXPECT_THAT(r.backend_conn, Eq(ConnReuse::kReused));
  }
}

TEST(ProfilerTest, LinkOpenedBeforeAttachMakesItsFirstExchangeIncomplete) {
  auto requests = RunStream(PreattachLinkStream(/*fcgi=*/false));
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_THAT(requests[0], IsIncompleteBecause("backend exchange incomplete"));
  EXPECT_THAT(requests[1], HasPhases(1185, 95, 80, 1010));
  EXPECT_THAT(requests[1].backend_timing, Eq(BackendTiming::kMeasured));
}

TEST(ProfilerTest, TracedBackendWithoutItsSideOfTheExchangeIsIncomplete) {
  // php accepted the link but its read/write were lost.
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Connect(kNginx, 9, 100, 110, UnixSock(0xA1, 0xB1))
      .Add(Syscall::kAccept, kPhp, 0, 4, -1, 130, UnixSock(0xB1, 0xA1))
      .Write(kNginx, 9, 120, 140, 500)
      .Read(kNginx, 9, 1180, 1190, 300)
      .Write(kNginx, 8, 1200, 1220, 350)
      .Close(kNginx, 8, 1300, 1305);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], IsIncompleteBecause("backend events missing"));
}

std::vector<Request> ThreeSequentialRequests(Profiler& profiler) {
  StreamBuilder s;
  for (int k = 0; k < 3; ++k) {
    double b = k * 1000.0;
    s.Accept(kNginx, 8, b + 0, b + 10)
        .Read(kNginx, 8, b + 50, b + 60, 100)
        .Write(kNginx, 8, b + 100, b + 130, 500)
        .Close(kNginx, 8, b + 200, b + 205);
  }
  return RunEvents(profiler, s.InExitOrder());
}

TEST(ProfilerTest, DropWindowMakesOverlappingRequestsIncomplete) {
  Profiler profiler;
  profiler.OnDrops(At(1100), At(1120), 3);  // inside the second request
  auto requests = ThreeSequentialRequests(profiler);
  ASSERT_THAT(requests, SizeIs(3));
  EXPECT_THAT(requests[0], HasPhases(95, 95, 0, 0));
  EXPECT_THAT(requests[1], IsIncompleteBecause("events dropped"));
  EXPECT_THAT(requests[2], HasPhases(95, 95, 0, 0));
  Report report = profiler.BuildReport({});
  EXPECT_THAT(report.complete, Eq(2u));
  EXPECT_THAT(report.incomplete, Eq(1u));
  ASSERT_TRUE(report.phases.total.has_value());
  EXPECT_THAT(report.phases.total->count, Eq(2u));
  EXPECT_THAT(report.phases.total->mean_us, Eq(95.0));
}

TEST(ProfilerTest, ConnectionWhoseAcceptWasDroppedSaysSo) {
  // The kernel dropped the second accept: its connection is first seen on a
  // read, like one opened before attach, but a drop preceded it.
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 130, 500)
      .Close(kNginx, 8, 200, 205)
      .Read(kNginx, 8, 1050, 1060, 100, "", TcpSock(80, 50001))
      .Write(kNginx, 8, 1100, 1130, 500, "", Syscall::kWritev,
             TcpSock(80, 50001))
      .Close(kNginx, 8, 1200, 1205);
  Profiler profiler;
  profiler.OnDrops(At(1000), At(1010), 1);
  auto requests = RunEvents(profiler, s.InExitOrder());
  ASSERT_THAT(requests, SizeIs(2));
  EXPECT_THAT(requests[0], HasPhases(95, 95, 0, 0));
  EXPECT_THAT(
      requests[1],
      IsIncompleteBecause(
          "connection opened before attach or while events were dropped"));
}

// A request's span starts at its connection's accept: a drop window between
// the accept and the first read is kept while the connection waits for that
// read, though a later drop notice forgets windows older than every open
// request (a CI run saw a complete request overlap a window this way).
TEST(ProfilerTest, DropWindowBetweenAcceptAndFirstReadIsKept) {
  Profiler profiler;
  std::vector<Request> requests;
  profiler.SetRequestCallback([&](const Request& r) { requests.push_back(r); });
  StreamBuilder accept;
  accept.Accept(kNginx, 8, 0, 10);
  accept.Accept(kNginx, 9, 35, 40, TcpSock(80, 50001));  // another client
  for (const SyscallEvent& e : accept.InExitOrder()) profiler.OnEvent(e);
  profiler.OnDrops(At(20), At(30), 1);
  // Both accepts are processed (past the window's end), no read yet.
  profiler.AdvanceTo(At(50'000));
  profiler.OnDrops(At(100'000), At(100'010), 1);  // forgets what is older
  StreamBuilder rest;
  rest.Read(kNginx, 8, 45'000, 45'010, 100)
      .Write(kNginx, 8, 45'100, 45'130, 500)
      .Close(kNginx, 8, 45'200, 45'205);
  for (const SyscallEvent& e : rest.InExitOrder()) profiler.OnEvent(e);
  profiler.Finish(At(10'000'000));
  profiler.SetRequestCallback(nullptr);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], IsIncompleteBecause("events dropped"));
}

TEST(ProfilerTest, DropWindowBetweenRequestsChangesNothing) {
  Profiler profiler;
  profiler.OnDrops(At(400), At(900), 3);
  auto requests = ThreeSequentialRequests(profiler);
  ASSERT_THAT(requests, SizeIs(3));
  for (const Request& r : requests) EXPECT_THAT(r, HasPhases(95, 95, 0, 0));
}

TEST(ProfilerTest, AnsweredRequestOnAConnectionStillOpenAtFinishIsComplete) {
  // The client keeps the connection (a browser, ab -k) when the run ends.
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 130, 500)
      .Read(kNginx, 8, 140, 141, -11);  // waiting for the next request
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  // T = 10 + (130 - 50); the trailing EAGAIN read is outside.
  EXPECT_THAT(requests[0], HasPhases(90, 90, 0, 0));
  EXPECT_THAT(Names(requests[0]),
              ElementsAre("server accept4", "server read", "server writev"));
}

TEST(ProfilerTest, KeptConnectionsLastRequestAtFinishIsComplete) {
  StreamBuilder s = ReusedLinkStream(/*fcgi=*/true);
  // Cut before the client and the link close.
  std::vector<SyscallEvent> events;
  for (const SyscallEvent& e : s.InExitOrder()) {
    if (e.exit_ns < At(203300)) events.push_back(e);
  }
  Profiler profiler;
  auto requests = RunEvents(profiler, events);
  ASSERT_THAT(requests, SizeIs(3));
  // END_REQUEST read: the last exchange finished. No close: 3170 us.
  EXPECT_THAT(requests[2], HasPhases(3170, 80, 80, 3010));
}

TEST(ProfilerTest, RequestWithoutResponseAtFinishIsIncomplete) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10).Read(kNginx, 8, 50, 60, 100);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], IsIncompleteBecause("still open at end"));
}

// nginx has read part of the reply and written part of the response when
// the run ends; the link is still open and no END_REQUEST was seen.
StreamBuilder ResponseStreamingAtTheEnd(bool link_closed) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Connect(kNginx, 9, 100, 110, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 120, 140, 500)
      .Read(kNginx, 9, 1180, 1190, 300)
      .Write(kNginx, 8, 1200, 1220, 350);
  if (link_closed) s.Close(kNginx, 9, 1230, 1235);
  return s;
}

TEST(ProfilerTest, RequestWithItsBackendExchangeOpenAtFinishIsIncomplete) {
  auto requests = RunStream(ResponseStreamingAtTheEnd(/*link_closed=*/false));
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], IsIncompleteBecause("still open at end"));
}

TEST(ProfilerTest, RequestWhoseBackendLinkClosedIsCompleteAtFinish) {
  auto requests = RunStream(ResponseStreamingAtTheEnd(/*link_closed=*/true));
  ASSERT_THAT(requests, SizeIs(1));
  // T = 10 + (1220 - 50); W = 1190 - 100; inferred backend = 1180 - 140.
  EXPECT_THAT(requests[0], HasPhases(1180, 90, 50, 1040));
}

TEST(ProfilerTest, RequestClosedWithoutResponseIsIncomplete) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Close(kNginx, 8, 100, 105);
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], IsIncompleteBecause("no response"));
}

TEST(ProfilerTest, ConnectionWithoutDataMakesNoRequest) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 0)
      .Close(kNginx, 8, 100, 105);
  EXPECT_THAT(RunStream(s), IsEmpty());
}

// --------------------------------------------------------------------------
// Report statistics and roles.

TEST(ProfilerTest, ReportGroupsByConnectionReuseAndCountsPerRequest) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 100)
      .Write(kNginx, 8, 100, 130, 500)
      .Read(kNginx, 8, 1000, 1010, 100)
      .Write(kNginx, 8, 1050, 1070, 500)
      .Read(kNginx, 8, 2000, 2010, 100)
      .Write(kNginx, 8, 2050, 2080, 500)
      .Close(kNginx, 8, 3010, 3015);
  Profiler profiler;
  profiler.OnProcess({kNginx, 1, "nginx", "/usr/sbin/nginx", 0});
  RunEvents(profiler, s.InExitOrder());
  Report r = profiler.BuildReport({/*duration_s=*/2.0, 100, 0});
  EXPECT_THAT(r.count, Eq(3u));
  EXPECT_THAT(r.rate_per_s, Eq(1.5));
  EXPECT_THAT(r.backend_timing, Eq("none"));
  ASSERT_TRUE(r.phases.total.has_value());
  // Totals 90, 70, 85 us.
  EXPECT_THAT(r.phases.total->mean_us, ::testing::DoubleEq(245.0 / 3));
  EXPECT_THAT(r.phases.total->max_us, Eq(90.0));
  EXPECT_THAT(r.phases.total->p50_us, ::testing::DoubleNear(85, 0.85));
  EXPECT_THAT(r.phases.backend->max_us, Eq(0.0));
  EXPECT_THAT(r.phases.queue, Eq(std::nullopt));
  ASSERT_THAT(r.groups, SizeIs(2));
  EXPECT_THAT(r.groups[0].client_conn, Eq("new"));
  EXPECT_THAT(r.groups[0].backend_conn, Eq("none"));
  EXPECT_THAT(r.groups[0].requests, Eq(1u));
  EXPECT_THAT(r.groups[1].client_conn, Eq("reused"));
  EXPECT_THAT(r.groups[1].requests, Eq(2u));
  EXPECT_THAT(r.groups[1].phases.total->mean_us, Eq(77.5));
  EXPECT_THAT(r.processes,
              ElementsAre(AllOf(Field(&ProcessEntry::pid, kNginx),
                                Field(&ProcessEntry::comm, "nginx"),
                                Field(&ProcessEntry::role, "server"))));
  // The average request: accept and close once in three requests.
  ASSERT_THAT(r.timeline, SizeIs(4));
  EXPECT_THAT(r.timeline[0].name, Eq("accept4"));
  EXPECT_THAT(r.timeline[0].count_per_request, ::testing::DoubleEq(1.0 / 3));
  EXPECT_THAT(r.timeline[0].mean_us_per_request, ::testing::DoubleEq(10.0 / 3));
  EXPECT_THAT(r.timeline[1].name, Eq("read"));
  EXPECT_THAT(r.timeline[1].mean_us_per_request, ::testing::DoubleEq(10.0));
  EXPECT_THAT(r.timeline[2].name, Eq("writev"));
  EXPECT_THAT(r.timeline[2].mean_us_per_request, ::testing::DoubleEq(80.0 / 3));
  EXPECT_THAT(r.timeline[3].name, Eq("close"));
  ASSERT_THAT(r.syscalls, SizeIs(4));
  EXPECT_THAT(r.syscalls[2].name, Eq("writev"));
  EXPECT_THAT(r.syscalls[2].side, Eq("server"));
  EXPECT_THAT(r.syscalls[2].count, Eq(3u));
  EXPECT_THAT(r.syscalls[2].mean_us, ::testing::DoubleEq(80.0 / 3));
}

TEST(ProfilerTest, ReportGivesBackendRoleAndMeasuredTimeline) {
  Profiler profiler;
  profiler.OnProcess({kNginx, 1, "nginx", "/usr/sbin/nginx", 0});
  profiler.OnProcess({kPhp, 1, "php-fpm8.2", "/usr/sbin/php-fpm8.2", 0});
  profiler.OnProcess({300, 1, "php-fpm8.2", "/usr/sbin/php-fpm8.2", 0});
  RunEvents(profiler, OneBackendRequest().InExitOrder());
  Report r = profiler.BuildReport({1.0, 12, 0});
  EXPECT_THAT(r.backend_timing, Eq("measured"));
  EXPECT_THAT(r.processes, ElementsAre(Field(&ProcessEntry::role, "server"),
                                       Field(&ProcessEntry::role, "backend"),
                                       Field(&ProcessEntry::role, "other")));
  std::vector<std::string> lines;
  for (const auto& e : r.timeline) lines.push_back(e.side + " " + e.name);
  EXPECT_THAT(lines,
              ElementsAre("server accept4", "server read", "server connect",
                          "server writev", "backend accept", "backend read",
                          "backend (work)", "backend write", "server read",
                          "backend close", "server close", "server writev",
                          "server close"));
  EXPECT_THAT(r.timeline[6].mean_us_per_request, Eq(20010.0));
  ASSERT_TRUE(r.phases.queue.has_value());
  EXPECT_THAT(r.phases.queue->max_us, Eq(20.0));
}

// --------------------------------------------------------------------------
// Syscalls count only inside their request; the average request is in
// request order.

const SyscallRecord* FindRecord(const Request& r, Side side, Syscall syscall) {
  for (const SyscallRecord& s : r.syscalls) {
    if (s.side == side && s.syscall == syscall) return &s;
  }
  return nullptr;
}

// `stream` moved `us` later (unseen enters stay unseen).
StreamBuilder Later(StreamBuilder stream, double us) {
  for (SyscallEvent& e : stream.events()) {
    if (e.enter_seen()) e.enter_ns += Us(us);
    e.exit_ns += Us(us);
  }
  return stream;
}

// Gives the first `syscall` of `tgid` in `stream` an enter at `enter_us`.
void SetEnter(StreamBuilder& stream, Syscall syscall, uint32_t tgid,
              double enter_us) {
  for (SyscallEvent& e : stream.events()) {
    if (e.syscall == syscall && e.tgid == tgid) {
      e.flags &= ~SyscallEvent::kNoEnter;
      e.enter_ns = At(enter_us);
      return;
    }
  }
  FAIL() << "no such syscall";
}

TEST(ProfilerTest, BackendBlockedInAcceptCountsOnlyFromTheRequestStart) {
  StreamBuilder s = Later(OneBackendRequest(), 1000);
  SetEnter(s, Syscall::kAccept, kPhp, 500);  // php-fpm waited in accept()
  Profiler profiler;
  auto requests = RunEvents(profiler, s.InExitOrder());
  ASSERT_THAT(requests, SizeIs(1));
  const Request& r = requests[0];
  EXPECT_THAT(r, HasPhases(20205, 115, 80, 20010));
  const SyscallRecord* accept = FindRecord(r, Side::kBackend, Syscall::kAccept);
  ASSERT_NE(accept, nullptr);
  // [500, 1130] clipped to [the exchange's start (nginx's connect, 1100),
  // the request's end]: 30 us (connect + queue), not 630 us.
  EXPECT_THAT(accept->enter_ns, Eq(At(1100)));
  EXPECT_THAT(accept->duration_ns(), Eq(Us(30)));
  for (const SyscallRecord& s : r.syscalls) {
    EXPECT_GE(s.start_ns(), r.start_ns);
    EXPECT_LE(s.exit_ns, At(21305));
  }
  Report report = profiler.BuildReport({});
  bool found = false;
  for (const SyscallSummary& s : report.syscalls) {
    if (s.name == "accept" && s.side == "backend") {
      found = true;
      EXPECT_THAT(s.count, Eq(1u));
      EXPECT_THAT(s.mean_us, Eq(30.0));
    }
  }
  EXPECT_TRUE(found);
}

TEST(ProfilerTest, BackendBlockedInAReadOnAKeptConnectionCountsFromTheStart) {
  StreamBuilder s = Later(OneBackendRequest(), 5000);
  SetEnter(s, Syscall::kRead, kPhp, 2000);  // waited on a kept connection
  auto requests = RunStream(s);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0], HasPhases(20205, 115, 80, 20010));
  const SyscallRecord* read =
      FindRecord(requests[0], Side::kBackend, Syscall::kRead);
  ASSERT_NE(read, nullptr);
  // From the exchange's start (5100), not from 2000.
  EXPECT_THAT(read->duration_ns(), Eq(Us(60)));
}

TEST(ProfilerTest, RequestRecordsItsExchangeAndBackendSpans) {
  auto requests = RunStream(OneBackendRequest());
  ASSERT_THAT(requests, SizeIs(1));
  const Request& r = requests[0];
  EXPECT_THAT(r.exchange_start_ns, Eq(At(100)));
  EXPECT_THAT(r.exchange_end_ns, Eq(At(20190)));
  EXPECT_THAT(r.backend_start_ns, Eq(At(160)));
  EXPECT_THAT(r.backend_end_ns, Eq(At(20170)));
  OneRequestOptions o;
  o.traced_backend = false;
  auto inferred = RunStream(OneBackendRequest(o));
  ASSERT_THAT(inferred, SizeIs(1));
  EXPECT_THAT(inferred[0].backend_start_ns, Eq(At(140)));
  EXPECT_THAT(inferred[0].backend_end_ns, Eq(At(20180)));
}

TEST(ProfilerTest, AverageRequestIsOrderedByMeanStartOffset) {
  // Two requests to a measured backend: in the first php-fpm's accept was
  // already under way at attach (it starts at its exit, 130 us in); in the
  // second it waited before the request (clipped to the exchange's start,
  // nginx's connect at 100).
  StreamBuilder s = OneBackendRequest();
  StreamBuilder b = Later(OneBackendRequest(), 100000);
  SetEnter(b, Syscall::kAccept, kPhp, 99500);
  for (const SyscallEvent& e : b.events()) s.events().push_back(e);
  Profiler profiler;
  RunEvents(profiler, s.InExitOrder());
  Report r = profiler.BuildReport({});
  ASSERT_THAT(r.complete, Eq(2u));
  std::vector<std::string> lines;
  for (const auto& e : r.timeline) {
    lines.push_back(absl::StrFormat("%s %s %s %.1f", e.side, e.name, e.target,
                                    e.mean_offset_us));
  }
  // The backend's accept: (130 + 100) / 2 = 115 us after the start, so
  // between the connect and the send (first appearance put it after the
  // send). The work starts at the backend's first read exit.
  EXPECT_THAT(
      lines, ElementsAre(
                 "server accept4 client 0.0", "server read client 50.0",
                 "server connect backend 100.0", "backend accept server 115.0",
                 "server writev backend 120.0", "backend read server 150.0",
                 "backend (work)  160.0", "backend write server 20160.0",
                 "server read backend 20180.0", "backend close server 20200.0",
                 "server close backend 20210.0", "server writev client 20220.0",
                 "server close client 20300.0"));
  // The accept's mean duration: (0 + 30) / 2 requests.
  EXPECT_THAT(r.timeline[3].mean_us_per_request, Eq(15.0));
}

}  // namespace
}  // namespace reqcost::analyzers
