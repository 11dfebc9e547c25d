// A backend's calls on synthetic streams: what a call is, whose it is, peer
// names, own time, and the protocol detectors and query extractors.
#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "analyzers/call_protocols.h"
#include "analyzers/profiler.h"
#include "analyzers/render/format.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using namespace ::reqcost::analyzers::test_support;  // NOLINT: test helpers
using ::testing::ElementsAre;
using ::testing::Field;

constexpr uint32_t kBackend = 200;
const std::string kGet = std::string("*2\r\n$3\r\nGET\r\n$1\r\na\r\n");

// The request of OneFastCgiRequest (backend [160, 20170] = 20010 us) with
// php-fpm's calls: Redis on TCP port 6379 (connect, two GETs), then a
// second connection whose call overlaps the second GET.
StreamBuilder RequestWithCalls(bool payload) {
  StreamBuilder s = OneFastCgiRequest();
  const SocketId redis = TcpSock(40000, 6379, 0xC1);
  const SocketId other = TcpSock(40001, 7777, 0xC2);
  s.Connect(kBackend, 5, 1000, 1010, redis)
      .Write(kBackend, 5, 1100, 1105, 20, payload ? kGet : "",
             Syscall::kSendto)
      .Read(kBackend, 5, 1105, 1300, 5, payload ? "$-1\r\n" : "")
      .Write(kBackend, 5, 2000, 2005, 20, payload ? kGet : "",
             Syscall::kSendto)
      .Read(kBackend, 5, 2005, 4000, 5)
      .Connect(kBackend, 6, 3000, 3010, other)
      .Write(kBackend, 6, 3010, 3015, 4, "ping")
      .Read(kBackend, 6, 3015, 5000, 4)
      .Close(kBackend, 5, 6000, 6001)
      .Close(kBackend, 6, 6002, 6003);
  return s;
}

TEST(BackendCallsTest, CallsGoToTheRequestTheThreadServes) {
  std::vector<Request> requests = RunStream(RequestWithCalls(false));
  ASSERT_EQ(requests.size(), 1u);
  const Request& r = requests[0];
  ASSERT_TRUE(r.complete) << r.incomplete_reason;
  ASSERT_EQ(r.backend_ns, Us(20010));
  // Connects are calls of their own; each GET is one call from its send to
  // its reply's last read.
  ASSERT_EQ(r.calls.size(), 5u);
  EXPECT_TRUE(r.calls[0].opens);
  EXPECT_EQ(r.calls[0].duration_ns(), Us(10));
  EXPECT_EQ(r.calls[1].start_ns, At(1100));
  EXPECT_EQ(r.calls[1].end_ns, At(1300));
  EXPECT_EQ(r.calls[2].duration_ns(), Us(2000));
  EXPECT_EQ(r.calls[0].peer, "redis:127.0.0.1:6379");  // by port
  EXPECT_EQ(r.calls[4].peer, "tcp:127.0.0.1:7777");
  // Union of the calls: 10 + 200 + [2000, 5000] = 3210 us.
  EXPECT_EQ(r.backend_own_ns, Us(20010 - 3210));
  EXPECT_THAT(CallsByPeer(r),
              ElementsAre(Field(&PeerTime::calls, 3u),
                          Field(&PeerTime::calls, 2u)));
}

TEST(BackendCallsTest, CallsAreNotUnattributedExchanges) {
  Profiler profiler;
  RunEvents(profiler, RequestWithCalls(false).InExitOrder());
  EXPECT_EQ(profiler.anomalies().unattributed_exchanges, 0u);
  EXPECT_EQ(profiler.anomalies().unattributed_calls, 0u);
}

TEST(BackendCallsTest, PayloadNamesThePeerAndKeepsOnlyTheCommandName) {
  std::vector<Request> requests = RunStream(RequestWithCalls(true));
  ASSERT_EQ(requests.size(), 1u);
  const Request& r = requests[0];
  ASSERT_EQ(r.calls.size(), 5u);
  EXPECT_EQ(r.calls[1].query, "GET");
  EXPECT_EQ(r.calls[1].protocol, "redis");
  const std::string json = RequestToJson(r).dump();
  EXPECT_THAT(json, ::testing::Not(::testing::HasSubstr("\"a\"")));
}

TEST(BackendCallsTest, AProcessWithoutBackendSideMakesNoCalls) {
  StreamBuilder s = OneFastCgiRequest();
  // A process that serves no backend requests: its connect is a backend
  // link as before, and its exchange nobody's.
  s.Connect(300, 5, 30000, 30010, TcpSock(40000, 6379, 0xC1))
      .Write(300, 5, 30020, 30025, 20)
      .Read(300, 5, 30030, 30040, 5);
  Profiler profiler;
  RunEvents(profiler, s.InExitOrder());
  EXPECT_EQ(profiler.anomalies().unattributed_calls, 0u);  // not a backend
  EXPECT_EQ(profiler.anomalies().unattributed_exchanges, 1u);
}

TEST(BackendCallsTest, PreattachConnectionCountsFromItsFirstSend) {
  StreamBuilder s = OneFastCgiRequest();
  // A pooled connection opened before attach: first seen mid-reply, then a
  // whole call.
  s.Read(kBackend, 7, 500, 510, 5, "", TcpSock(40002, 3306, 0xC3))
      .Write(kBackend, 7, 600, 605, 30, "", Syscall::kWrite,
             TcpSock(40002, 3306, 0xC3))
      .Read(kBackend, 7, 605, 900, 50, "", TcpSock(40002, 3306, 0xC3));
  std::vector<Request> requests = RunStream(s);
  ASSERT_EQ(requests.size(), 1u);
  ASSERT_EQ(requests[0].calls.size(), 1u);
  EXPECT_EQ(requests[0].calls[0].peer, "mysql:127.0.0.1:3306");
  EXPECT_EQ(requests[0].calls[0].duration_ns(), Us(300));
}

TEST(BackendCallsTest, ReportHasOwnTimeAndPeersInTextAndJson) {
  std::vector<Request> requests = RunStream(RequestWithCalls(true));
  ASSERT_EQ(requests.size(), 1u);
  requests[0].id = 7;
  RequestStats stats;
  stats.Add(requests[0]);
  Report report;
  stats.Fill(&report);
  ASSERT_TRUE(report.calls.backend_own.has_value());
  EXPECT_DOUBLE_EQ(report.calls.backend_own->mean_us, 20010 - 3210);
  ASSERT_EQ(report.calls.peers.size(), 2u);
  EXPECT_EQ(report.calls.peers[0].peer, "redis:127.0.0.1:6379");
  EXPECT_DOUBLE_EQ(report.calls.peers[0].calls_per_request, 3.0);
  const std::string text = FormatText(report);
  EXPECT_THAT(text, ::testing::HasSubstr("backend own"));
  EXPECT_THAT(text, ::testing::HasSubstr("redis:127.0.0.1:6379"));
  EXPECT_THAT(text, ::testing::HasSubstr("slowest queries"));
  const auto json = ReportToJson(report);
  EXPECT_EQ(json["calls"]["peers"][0]["calls"], 3);
  EXPECT_EQ(json["calls"]["slowest"][0]["query"], "GET");
  EXPECT_EQ(json["calls"]["slowest"][0]["request_id"], 7);
}

TEST(CallProtocolsTest, DetectsFromFirstBytes) {
  EXPECT_EQ(DetectFromSend(kGet, kGet.size()), CallProtocol::kRedis);
  const std::string query = std::string("\x14\0\0\0\x03SELECT SLEEP(0.004)", 24);
  EXPECT_EQ(DetectFromSend(query, query.size()), CallProtocol::kMysql);
  EXPECT_EQ(ExtractQuery(CallProtocol::kMysql, query, 100),
            "SELECT SLEEP(0.004)");
  EXPECT_EQ(ExtractQuery(CallProtocol::kMysql, query, 6), "SELECT");
  const std::string startup =
      std::string("\0\0\0\x29\0\x03\0\0user\0app\0database\0app\0\0", 41);
  EXPECT_EQ(DetectFromSend(startup, startup.size()), CallProtocol::kPostgresql);
  const std::string pgq = std::string("Q\0\0\0\x0dSELECT 1\0", 14);
  EXPECT_EQ(DetectFromSend(pgq, pgq.size()), CallProtocol::kPostgresql);
  EXPECT_EQ(ExtractQuery(CallProtocol::kPostgresql, pgq, 100), "SELECT 1");
  EXPECT_EQ(DetectFromSend("get user:1\r\n", 12), CallProtocol::kMemcached);
  EXPECT_EQ(DetectFromSend("GET /x HTTP/1.1\r\n", 17), CallProtocol::kHttp);
  const std::string greeting =
      std::string("\x64\0\0\0\x0a" "5.5.5-10.11.19-MariaDB\0", 28);
  EXPECT_EQ(DetectFromGreeting(greeting), CallProtocol::kMysql);
  EXPECT_EQ(DetectFromSend("\x16\x03\x01\x02\x00", 5), CallProtocol::kUnknown);
  EXPECT_EQ(ProtocolByPath("/run/mysqld/mysqld.sock"), CallProtocol::kMysql);
  EXPECT_EQ(ProtocolByPath("/tmp/.s.PGSQL.5432"), CallProtocol::kPostgresql);
  EXPECT_EQ(ProtocolByPath("/tmp/app.sock"), CallProtocol::kUnknown);
}

TEST(CallProtocolsTest, RedisArgumentsNeverLeave) {
  const std::string set = "*3\r\n$3\r\nSET\r\n$6\r\nsecret\r\n$5\r\nvalue\r\n";
  EXPECT_EQ(ExtractQuery(CallProtocol::kRedis, set, set.size()), "SET");
  EXPECT_EQ(ExtractQuery(CallProtocol::kRedis, "*1\r\n$99\r\nx", 10), "");
  EXPECT_EQ(ExtractQuery(CallProtocol::kRedis, "*1\r\n$3\r\na b\r\n", 13), "");
}

TEST(CallProtocolsTest, ShortAndBinaryInputsAreUnknown) {
  for (size_t n = 0; n < 12; ++n) {
    const std::string bytes(n, '\xff');
    EXPECT_EQ(DetectFromSend(bytes, n), CallProtocol::kUnknown);
    EXPECT_EQ(DetectFromGreeting(bytes), CallProtocol::kUnknown);
    for (CallProtocol p :
         {CallProtocol::kMysql, CallProtocol::kPostgresql, CallProtocol::kRedis,
          CallProtocol::kMemcached, CallProtocol::kHttp}) {
      EXPECT_EQ(ExtractQuery(p, bytes, 64), "");
    }
  }
}

}  // namespace
}  // namespace reqcost::analyzers
