// Requests seen from the backend link only (RequestOrigin::kBackendLink):
// a backend exchange of a process whose client side cannot be split (an
// HTTP/2 connection reqcost cannot read the frames of) is a request of its
// own with server and total null, not an anomaly; and every output leaves a
// null phase out of that phase's figures and says how many had it null.
// Synthetic streams (stream_builder.h); every value is worked out beside
// its test.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analyzers/compare.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/profiler.h"
#include "analyzers/render/compare_format.h"
#include "analyzers/render/format.h"
#include "analyzers/render/otlp.h"
#include "analyzers/render/trace_export.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/analyzers/stream_builder.h"
#include "tests/support/otlp_json_check.h"

namespace reqcost::analyzers {
namespace {

using ::reqcost::analyzers::test_support::At;
using ::reqcost::analyzers::test_support::RunEvents;
using ::reqcost::analyzers::test_support::StreamBuilder;
using ::reqcost::analyzers::test_support::TcpSock;
using ::reqcost::analyzers::test_support::UnixSock;
using ::reqcost::analyzers::test_support::Us;
using ::reqcost::testing::CheckOtlpJson;
using ::reqcost::testing::OtlpCheck;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using ::testing::SizeIs;

constexpr uint32_t kNginx = 100;
constexpr uint8_t kCcs = kTlsChangeCipherSpec;
constexpr uint8_t kApp = kTlsApplicationData;
constexpr uint8_t kHs = kTlsHandshake;
constexpr int64_t kEagain = -11;

SyscallEvent& Last(StreamBuilder& s) { return s.events().back(); }

void TlsRead(StreamBuilder& s, double enter, double exit, int64_t ret,
             std::initializer_list<std::pair<uint8_t, uint16_t>> recs) {
  s.Read(kNginx, 8, enter, exit, ret);
  TlsRecords& t = Last(s).tls;
  t.flags = TlsRecords::kOn;
  for (const auto& [type, length] : recs) {
    t.type[t.count] = type;
    t.length[t.count] = length;
    ++t.count;
  }
}

// A TLS 1.3 handshake on client fd 8, then nginx's HTTP/2 SETTINGS written
// with no request open: the connection carries HTTP/2 and, without the
// TLS library's data, its streams cannot be split.
void Http2Front(StreamBuilder& s) {
  s.Accept(kNginx, 8, 0, 10);
  TlsRead(s, 20, 22, 517, {{kHs, 512}});
  s.Write(kNginx, 8, 25, 30, 1400, "", Syscall::kWrite);
  s.Read(kNginx, 8, 30, 31, kEagain);
  TlsRead(s, 200, 202, 64, {{kCcs, 1}, {kApp, 53}});
  s.Write(kNginx, 8, 205, 207, 255, "", Syscall::kWrite);
  s.Read(kNginx, 8, 211, 212, kEagain);
  s.Write(kNginx, 8, 300, 302, 40, "", Syscall::kWrite);  // SETTINGS
}

// A FastCGI exchange on a new unix link `fd` (backend not traced) from
// `at`: connect [at, at+2], send [at+5, at+10], reply read
// [at+1010, at+1015], close. W = 1015 us, inferred backend = 1000 us,
// transport 15 us.
void Exchange(StreamBuilder& s, double at, int32_t fd, uint64_t sock) {
  s.Connect(kNginx, fd, at, at + 2, UnixSock(sock, sock + 0x10));
  s.Write(kNginx, fd, at + 5, at + 10, 500);
  s.Read(kNginx, fd, at + 1010, at + 1015, 300);
  s.Close(kNginx, fd, at + 1016, at + 1017);
}

std::vector<Request> Profile(const StreamBuilder& s, Anomalies* anomalies,
                             Report* report = nullptr) {
  Profiler profiler;
  std::vector<Request> requests = RunEvents(profiler, s.InExitOrder());
  *anomalies = profiler.anomalies();
  if (report != nullptr) *report = profiler.BuildReport({});
  return requests;
}

std::vector<Request> OfOrigin(const std::vector<Request>& requests,
                              RequestOrigin origin) {
  std::vector<Request> out;
  for (const Request& r : requests) {
    if (r.origin == origin) out.push_back(r);
  }
  return out;
}

// Two streams on one HTTP/2 connection, each with its exchange: one stream
// takes an exchange when it writes (it is given back: it may be any
// stream's), the other exchange is taken by none. Both become requests
// seen from the backend link: W = 1015, transport 15, backend 1000 (the
// helper's figures), server and total null; no anomaly.
TEST(BackendLinkTest, Http2FrontsExchangesAreRequestsWithServerUnknown) {
  StreamBuilder s;
  Http2Front(s);
  TlsRead(s, 400, 402, 200, {{kApp, 195}});  // preface, SETTINGS, HEADERS
  Exchange(s, 410, 9, 0xA1);                 // reply read [1420, 1425]
  s.Write(kNginx, 8, 1450, 1460, 400, "", Syscall::kWrite);
  TlsRead(s, 2000, 2002, 60, {{kApp, 55}});  // the next stream's HEADERS
  s.Read(kNginx, 8, 2003, 2004, kEagain);
  Exchange(s, 2010, 10, 0xA2);  // reply read [3020, 3025]
  s.Write(kNginx, 8, 3050, 3060, 400, "", Syscall::kWrite);
  s.Close(kNginx, 8, 4000, 4005);
  Anomalies a;
  Report report;
  std::vector<Request> requests = Profile(s, &a, &report);

  std::vector<Request> link = OfOrigin(requests, RequestOrigin::kBackendLink);
  ASSERT_THAT(link, SizeIs(2));
  for (const Request& r : link) {
    EXPECT_TRUE(r.complete) << r.incomplete_reason;
    EXPECT_THAT(r.server_ns, Eq(std::nullopt));
    EXPECT_THAT(r.total_ns, Eq(std::nullopt));
    EXPECT_THAT(r.transport_ns, Optional(Us(15)));
    EXPECT_THAT(r.backend_ns, Optional(Us(1000)));
    EXPECT_THAT(r.backend_timing, Eq(BackendTiming::kInferred));
    EXPECT_THAT(r.client_conn, Eq(ConnReuse::kNone));
    EXPECT_THAT(r.backend_conn, Eq(ConnReuse::kNew));
    EXPECT_THAT(r.end_ns - r.start_ns, Eq(Us(1015)));
    EXPECT_THAT(r.pid, Eq(kNginx));
  }
  EXPECT_THAT(link[0].start_ns + link[1].start_ns, Eq(At(410) + At(2010)));
  // The client side's pseudo-requests stay what they were, without an
  // exchange.
  for (const Request& r : OfOrigin(requests, RequestOrigin::kClient)) {
    EXPECT_FALSE(r.complete);
    EXPECT_THAT(r.backend_conn, Eq(ConnReuse::kNone));
  }
  EXPECT_THAT(a.unattributed_exchanges, Eq(0u));
  EXPECT_THAT(a.clamped_phases, Eq(0u));

  // The statistics: server and total have no values, two unknown each.
  EXPECT_THAT(report.complete, Eq(2u));
  EXPECT_FALSE(report.phases.server.has_value());
  EXPECT_FALSE(report.phases.total.has_value());
  EXPECT_THAT(report.phases.Unknown(Phase::kServer), Eq(2u));
  EXPECT_THAT(report.phases.Unknown(Phase::kTotal), Eq(2u));
  EXPECT_THAT(report.phases.Unknown(Phase::kTransport), Eq(0u));
  ASSERT_TRUE(report.phases.backend.has_value());
  EXPECT_THAT(report.phases.backend->count, Eq(2u));
  EXPECT_THAT(report.origins["backend-link"], Eq(2u));
  // What the client saw needs the client side.
  EXPECT_THAT(report.client.first_start_ns, Eq(0u));
}

// The same shape on a cleartext HTTP/1 connection reqcost splits: an
// exchange that started before the request's read can be no request's,
// and is still an anomaly, not a request.
TEST(BackendLinkTest, UnattributedExchangeBehindHttp1StaysAnAnomaly) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10, TcpSock(80, 50000));
  s.Read(kNginx, 8, 50, 60, 120, "GET / HTTP/1.1\r\n");
  Exchange(s, 30, 10, 0xA2);   // begins before the request was read
  Exchange(s, 100, 9, 0xA1);   // the request's: reply [1110, 1115]
  s.Write(kNginx, 8, 1200, 1210, 300);
  s.Close(kNginx, 8, 1300, 1305);
  Anomalies a;
  std::vector<Request> requests = Profile(s, &a);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_THAT(requests[0].origin, Eq(RequestOrigin::kClient));
  EXPECT_TRUE(requests[0].complete);
  EXPECT_THAT(requests[0].exchange_start_ns, Eq(At(100)));
  EXPECT_THAT(a.unattributed_exchanges, Eq(1u));
}

// An exchange still open when the events end: reported, incomplete.
TEST(BackendLinkTest, ExchangeOpenAtTheEndIsIncompleteNotLost) {
  StreamBuilder s;
  Http2Front(s);
  TlsRead(s, 400, 402, 200, {{kApp, 195}});
  s.Write(kNginx, 8, 403, 404, 30, "", Syscall::kWrite);  // SETTINGS ACK
  s.Connect(kNginx, 9, 410, 412, UnixSock(0xA1, 0xB1));
  s.Write(kNginx, 9, 415, 420, 500);
  s.Read(kNginx, 9, 1420, 1425, 300);  // a reply, but the link goes on
  Anomalies a;
  std::vector<Request> requests = Profile(s, &a);
  std::vector<Request> link = OfOrigin(requests, RequestOrigin::kBackendLink);
  ASSERT_THAT(link, SizeIs(1));
  EXPECT_FALSE(link[0].complete);
  EXPECT_THAT(link[0].incomplete_reason,
              Eq(std::string(Name(IncompleteReason::kStillOpenAtEnd))));
  EXPECT_THAT(a.unattributed_exchanges, Eq(0u));
}

// The server exits while an exchange behind its HTTP/2 connection is still
// open: that exchange is reported, incomplete for the exit, not lost and
// not an anomaly.
TEST(BackendLinkTest, ExchangeOpenWhenItsProcessExitsIsIncomplete) {
  StreamBuilder s;
  Http2Front(s);
  TlsRead(s, 400, 402, 200, {{kApp, 195}});
  s.Write(kNginx, 8, 403, 404, 30, "", Syscall::kWrite);  // SETTINGS ACK
  s.Connect(kNginx, 9, 410, 412, UnixSock(0xA1, 0xB1));
  s.Write(kNginx, 9, 415, 420, 500);
  s.Read(kNginx, 9, 1420, 1425, 300);
  Profiler profiler;
  std::vector<Request> requests;
  profiler.SetRequestCallback([&](const Request& r) { requests.push_back(r); });
  for (const SyscallEvent& e : s.InExitOrder()) profiler.OnEvent(e);
  ProcessEvent exit;
  exit.op = ProcessEvent::Op::kExit;
  exit.tgid = kNginx;
  exit.ts_ns = At(2000);
  profiler.OnProcessEvent(exit);
  profiler.Finish(At(100'000));
  std::vector<Request> link = OfOrigin(requests, RequestOrigin::kBackendLink);
  ASSERT_THAT(link, SizeIs(1));
  EXPECT_FALSE(link[0].complete);
  EXPECT_THAT(link[0].incomplete_reason,
              Eq(std::string(Name(IncompleteReason::kProcessExited))));
  EXPECT_THAT(profiler.anomalies().unattributed_exchanges, Eq(0u));
}

// A request of each origin with the phases it can have: client (all),
// backend link (server and total null), backend side (only backend).
std::vector<Request> MixedRequests() {
  Request client;
  client.id = 1;
  client.pid = kNginx;
  client.complete = true;
  client.start_ns = At(0);
  client.end_ns = At(100);
  client.total_ns = Us(100);
  client.server_ns = Us(10);
  client.transport_ns = Us(20);
  client.backend_ns = Us(70);
  Request link = client;
  link.id = 2;
  link.origin = RequestOrigin::kBackendLink;
  link.client_conn = ConnReuse::kNone;
  link.backend_conn = ConnReuse::kNew;
  link.total_ns.reset();
  link.server_ns.reset();
  link.transport_ns = Us(40);
  link.backend_ns = Us(80);
  link.exchange_start_ns = At(200);
  link.exchange_end_ns = At(320);
  link.start_ns = At(200);
  link.end_ns = At(320);
  link.backend_start_ns = At(220);
  link.backend_end_ns = At(300);
  Request side = client;
  side.id = 3;
  side.origin = RequestOrigin::kBackendSide;
  side.total_ns.reset();
  side.server_ns.reset();
  side.transport_ns.reset();
  side.backend_ns = Us(90);
  return {client, link, side};
}

TEST(BackendLinkTest, StatsLeaveANullPhaseOutAndCountIt) {
  RequestStats stats;
  for (const Request& r : MixedRequests()) stats.Add(r);
  Report report;
  stats.Fill(&report);
  EXPECT_THAT(report.complete, Eq(3u));
  ASSERT_TRUE(report.phases.server.has_value());
  EXPECT_THAT(report.phases.server->count, Eq(1u));
  EXPECT_THAT(report.phases.server->mean_us, Eq(10.0));
  EXPECT_THAT(report.phases.transport->count, Eq(2u));
  EXPECT_THAT(report.phases.transport->mean_us, Eq(30.0));
  EXPECT_THAT(report.phases.backend->count, Eq(3u));
  EXPECT_THAT(report.phases.backend->mean_us, Eq(80.0));
  EXPECT_THAT(report.phases.Unknown(Phase::kTotal), Eq(2u));
  EXPECT_THAT(report.phases.Unknown(Phase::kServer), Eq(2u));
  EXPECT_THAT(report.phases.Unknown(Phase::kTransport), Eq(1u));
  EXPECT_THAT(report.phases.Unknown(Phase::kBackend), Eq(0u));
  EXPECT_THAT(report.origins["client"], Eq(1u));
  EXPECT_THAT(report.origins["backend-link"], Eq(1u));
  EXPECT_THAT(report.origins["backend-side"], Eq(1u));
  // The client's view is the client request's alone.
  EXPECT_THAT(report.client.first_start_ns, Eq(At(0)));
  EXPECT_THAT(report.client.last_end_ns, Eq(At(100)));

  // Merging keeps the counts.
  RequestStats twice;
  twice.Merge(stats);
  twice.Merge(stats);
  Report merged;
  twice.Fill(&merged);
  EXPECT_THAT(merged.phases.Unknown(Phase::kServer), Eq(4u));
  EXPECT_THAT(merged.origins["backend-side"], Eq(2u));

  // Text and JSON say it.
  std::string text = FormatText(report);
  EXPECT_THAT(text, HasSubstr("(2 unknown)"));
  EXPECT_THAT(text, HasSubstr("seen from the backend link only: 1 complete"));
  nlohmann::json j = ReportToJson(report);
  EXPECT_THAT(j["phases"]["server"]["unknown"], Eq(2));
  EXPECT_THAT(j["phases"]["server"]["count"], Eq(1));
  EXPECT_THAT(j["phases"]["transport"]["unknown"], Eq(1));
  EXPECT_THAT(j["requests"]["origins"]["backend-link"], Eq(1));
}

TEST(BackendLinkTest, PerRequestOutputsShowOriginAndNullPhases) {
  std::vector<Request> rs = MixedRequests();
  nlohmann::json j = RequestToJson(rs[1]);
  EXPECT_THAT(j["origin"], Eq("backend-link"));
  EXPECT_TRUE(j["server_us"].is_null());
  EXPECT_TRUE(j["total_us"].is_null());
  EXPECT_THAT(j["transport_us"], Eq(40.0));
  EXPECT_THAT(RequestToJson(rs[0])["origin"], Eq("client"));
  EXPECT_THAT(RequestToJson(rs[2])["origin"], Eq("backend-side"));
  std::string line = FormatRequestLine(rs[1]);
  EXPECT_THAT(line, HasSubstr("[seen from the backend-link]"));
  EXPECT_THAT(line, HasSubstr("total ? = server ? + transport"));
  EXPECT_THAT(FormatRequestLine(rs[2]), HasSubstr("transport ? + backend"));
}

// The SERVER span of a request seen from the backend link is bounded by its
// exchange W, says its origin, and has no attribute for a null phase.
TEST(BackendLinkTest, OtlpServerSpanIsTheExchange) {
  Request r = MixedRequests()[1];
  OtlpBatch batch(1, 0);
  batch.Add(SpanSource::From(r, {"nginx", "web-1", kNginx}));
  std::string doc = batch.Take("test");
  OtlpCheck check;
  CheckOtlpJson(doc, &check);
  ASSERT_TRUE(check.ok()) << check.ErrorText() << doc;
  const ::reqcost::testing::OtlpSpan* server = nullptr;
  for (const auto& span : check.spans) {
    if (span.kind == kSpanKindServer) server = &span;
  }
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->start_unix_nano, Eq(At(200)));
  EXPECT_THAT(server->end_unix_nano, Eq(At(320)));
  EXPECT_THAT(server->attributes.at("reqcost.origin")["stringValue"],
              Eq("backend-link"));
  EXPECT_THAT(server->attributes.count("reqcost.server_us"), Eq(0u));
  EXPECT_THAT(server->attributes.count("reqcost.total_us"), Eq(0u));
  EXPECT_THAT(server->attributes.count("reqcost.transport_us"), Eq(1u));
}

// compare: a phase some requests had null says so in the text and verdict;
// totals missing on one side are not "no complete requests".
TEST(BackendLinkTest, CompareNamesUnknownPhases) {
  std::vector<Request> rs = MixedRequests();
  RequestStats a_stats, b_stats;
  a_stats.Add(rs[0]);
  b_stats.Add(rs[0]);
  b_stats.Add(rs[1]);
  Report a, b;
  a_stats.Fill(&a);
  b_stats.Fill(&b);
  Comparison c = Compare(a, b, "A", "B");
  EXPECT_THAT(c.verdict, HasSubstr("server is unknown for 0 of A's and 1 of "
                                   "B's complete requests"));
  EXPECT_THAT(FormatComparisonText(c), HasSubstr("(unknown in 0 / 1)"));
  RequestStats only_link;
  only_link.Add(rs[1]);
  Report l;
  only_link.Fill(&l);
  Comparison c2 = Compare(a, l, "A", "L");
  EXPECT_THAT(c2.verdict, HasSubstr("L has no complete request with a known "
                                    "total"));
  EXPECT_THAT(c2.verdict, Not(HasSubstr("no complete requests")));
}

}  // namespace
}  // namespace reqcost::analyzers
