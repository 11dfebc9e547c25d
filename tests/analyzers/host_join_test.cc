#include "analyzers/host_join.h"

#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

#include "analyzers/profiler.h"
#include "analyzers/render/otlp.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Field;
using ::testing::Optional;
using ::testing::SizeIs;
using test_support::At;
using test_support::FcgiRecord;
using test_support::RunStream;
using test_support::StreamBuilder;
using test_support::Us;

constexpr uint32_t kNginx = 100;
constexpr uint32_t kPhpFpm = 200;

SocketId Tcp(std::array<uint8_t, 4> local, uint16_t local_port,
             std::array<uint8_t, 4> remote, uint16_t remote_port) {
  SocketId s;
  s.family = 2;
  s.type = 1;
  std::copy(local.begin(), local.end(), s.local_addr.begin());
  std::copy(remote.begin(), remote.end(), s.remote_addr.begin());
  s.local_port = local_port;
  s.remote_port = remote_port;
  return s;
}

// The last event added carries TCP sequence number `seq`.
void Seq(StreamBuilder* s, uint32_t seq) {
  SyscallEvent& e = s->events().back();
  e.flags |= SyscallEvent::kTcpSeq;
  e.tcp_seq = seq;
}

// The front host: nginx serves two clients, each request's FastCGI exchange
// on one kept TCP link 10.0.0.1:40000 -> `backend`:9000 (first bytes at
// sequence numbers 1000 and 1500). Its own clock.
StreamBuilder FrontHost(std::array<uint8_t, 4> backend = {10, 0, 0, 2}) {
  const SocketId link = Tcp({10, 0, 0, 1}, 40000, backend, 9000);
  StreamBuilder s;
  for (int i = 0; i < 2; ++i) {
    const double t = i * 100'000;
    const int32_t fd = 8 + 2 * i;
    s.Accept(kNginx, fd, t, t + 10,
             Tcp({10, 0, 0, 1}, 80, {192, 168, 1, 9}, 50000 + i))
        .Read(kNginx, fd, t + 50, t + 60, 120, "GET /x.php HTTP/1.1\r\n");
    if (i == 0) s.Connect(kNginx, 9, t + 100, t + 110, link);
    s.Write(kNginx, 9, t + 120, t + 140, 500, "", Syscall::kWritev, link);
    Seq(&s, 1000 + 500 * i);
    s.Read(kNginx, 9, t + 20180, t + 20190, 300, "", link);
    s.Write(kNginx, fd, t + 20220, t + 20240, 350)
        .Close(kNginx, fd, t + 20300, t + 20305);
  }
  return s;
}

// The backend host: php-fpm accepts the link and reads each request (the
// first's last 8 bytes, its empty FCGI_STDIN, only after its reply, as
// php-fpm does), works `work_us`, and replies. Its clock is `clock_us`
// ahead of the front's.
StreamBuilder BackendHost(double clock_us, double work_us = 20000,
                          std::string first_payload = "",
                          bool closes = false) {
  // With the payload, the tail reads show their FCGI_STDIN header.
  const std::string tail = first_payload.empty() ? "" : FcgiRecord(5, 1, 0);
  const SocketId side = Tcp({10, 0, 0, 2}, 9000, {10, 0, 0, 1}, 40000);
  const double c = clock_us;
  StreamBuilder s;
  s.Add(Syscall::kAccept, kPhpFpm, 0, 4, -1, c + 125, side);
  // Request 1: 492 bytes, then the reply; its last 8 bytes after it.
  s.Read(kPhpFpm, 4, c + 150, c + 160, 492, first_payload, side);
  Seq(&s, 1000);
  s.Write(kPhpFpm, 4, c + 160 + work_us, c + 170 + work_us, 300, "",
          Syscall::kWrite, side);
  s.Read(kPhpFpm, 4, c + 175 + work_us, c + 176 + work_us, 8, tail, side);
  Seq(&s, 1492);
  // Request 2.
  const double t = c + 100'000;
  s.Read(kPhpFpm, 4, t + 150, t + 160, 500, first_payload, side);
  Seq(&s, 1500);
  s.Write(kPhpFpm, 4, t + 160 + work_us, t + 170 + work_us, 300, "",
          Syscall::kWrite, side);
  if (closes) {
    s.Read(kPhpFpm, 4, t + 175 + work_us, t + 176 + work_us, 8, tail, side);
    Seq(&s, 1992);
    s.Close(kPhpFpm, 4, t + 180 + work_us, t + 181 + work_us);
  }
  return s;
}

HostRequests Host(const std::string& name, const StreamBuilder& s,
                  int64_t mono_to_wall = 0) {
  HostRequests h;
  h.name = name;
  h.host = name;
  h.mono_to_wall_ns = mono_to_wall;
  h.requests = RunStream(s);
  return h;
}

// The front's requests (pid kNginx) among `requests`.
std::vector<Request> Fronts(const std::vector<Request>& requests) {
  std::vector<Request> out;
  for (const Request& r : requests) {
    if (r.pid == kNginx) out.push_back(r);
  }
  return out;
}

TEST(HostJoinTest, FrontAloneInfersItsBackend) {
  std::vector<Request> front = RunStream(FrontHost());
  ASSERT_THAT(front, SizeIs(2));
  for (const Request& r : front) {
    ASSERT_TRUE(r.complete) << r.incomplete_reason;
    EXPECT_EQ(r.backend_timing, BackendTiming::kInferred);
    ASSERT_TRUE(r.exchange_wire.has_value());
    EXPECT_EQ(r.exchange_wire->server_port, 9000);
    EXPECT_EQ(r.exchange_wire->client_port, 40000);
  }
  EXPECT_THAT(front[0].exchange_seq, Optional(Eq(1000u)));
  EXPECT_THAT(front[1].exchange_seq, Optional(Eq(1500u)));
}

TEST(HostJoinTest, KeptConnectionJoinsEachExchangeBySequence) {
  const std::vector<Request> alone = RunStream(FrontHost());
  JoinResult j = JoinHosts(
      {Host("front", FrontHost()), Host("backend", BackendHost(5e9))});
  EXPECT_EQ(j.summary.matched, 2u);
  EXPECT_EQ(j.summary.unmatched_exchanges, 0u);
  EXPECT_EQ(j.summary.unmatched_backend, 0u);
  std::vector<Request> fronts = Fronts(j.requests);
  ASSERT_THAT(fronts, SizeIs(2));
  for (size_t i = 0; i < 2; ++i) {
    const Request& r = fronts[i];
    ASSERT_TRUE(r.complete) << r.incomplete_reason;
    EXPECT_EQ(r.backend_timing, BackendTiming::kMeasured);
    EXPECT_EQ(r.backend_pid, kPhpFpm);
    EXPECT_EQ(r.backend_host, "backend");
    // From the exit of the read that holds the exchange's first byte (not
    // the previous request's tail) to the reply's exit.
    EXPECT_THAT(r.backend_ns, Optional(Eq(Us(20010))));
    const uint64_t w = *alone[i].transport_ns + *alone[i].backend_ns;
    EXPECT_THAT(r.transport_ns, Optional(Eq(w - Us(20010))));
    EXPECT_EQ(r.server_ns, alone[i].server_ns);
    EXPECT_EQ(r.total_ns, alone[i].total_ns);
    EXPECT_FALSE(r.queue_ns.has_value());
    EXPECT_EQ(*r.server_ns + *r.transport_ns + *r.backend_ns, *r.total_ns);
  }
  // The backend's requests were folded into the front's.
  EXPECT_THAT(j.requests, SizeIs(2));
}

TEST(HostJoinTest, ShiftingOneCaptureClocksChangesNoFigure) {
  JoinResult a = JoinHosts(
      {Host("front", FrontHost()), Host("backend", BackendHost(0), 7)});
  // Three hours ahead, and a wall clock that disagrees by one more.
  JoinResult b = JoinHosts(
      {Host("front", FrontHost()),
       Host("backend", BackendHost(3 * 3600e6), 3'600'000'000'000)});
  std::vector<Request> fa = Fronts(a.requests), fb = Fronts(b.requests);
  ASSERT_THAT(fa, SizeIs(2));
  ASSERT_THAT(fb, SizeIs(2));
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(fa[i].total_ns, fb[i].total_ns);
    EXPECT_EQ(fa[i].server_ns, fb[i].server_ns);
    EXPECT_EQ(fa[i].transport_ns, fb[i].transport_ns);
    EXPECT_EQ(fa[i].backend_ns, fb[i].backend_ns);
    EXPECT_EQ(fa[i].backend_start_ns, fb[i].backend_start_ns);
    ASSERT_EQ(fa[i].syscalls.size(), fb[i].syscalls.size());
    for (size_t k = 0; k < fa[i].syscalls.size(); ++k) {
      EXPECT_EQ(fa[i].syscalls[k].exit_ns, fb[i].syscalls[k].exit_ns);
    }
  }
  RequestStats sa, sb;
  for (const Request& r : a.requests) sa.Add(r);
  for (const Request& r : b.requests) sb.Add(r);
  Report ra, rb;
  sa.Fill(&ra);
  sb.Fill(&rb);
  ASSERT_TRUE(ra.phases.transport.has_value());
  EXPECT_EQ(ra.phases.transport->mean_us, rb.phases.transport->mean_us);
  EXPECT_EQ(ra.phases.backend->p99_us, rb.phases.backend->p99_us);
}

TEST(HostJoinTest, BackendLongerThanItsExchangeIsClampedAndCounted) {
  // A backend that says it worked longer than the front waited: impossible
  // on one clock, so it is clamped to the exchange, and counted.
  JoinResult j = JoinHosts({Host("front", FrontHost()),
                            Host("backend", BackendHost(0, 30000))});
  EXPECT_EQ(j.summary.matched, 2u);
  EXPECT_EQ(j.summary.clamped, 2u);
  for (const Request& r : Fronts(j.requests)) {
    EXPECT_THAT(r.transport_ns, Optional(Eq(0u)));
    EXPECT_EQ(r.clamped, 1u);
  }
}

TEST(HostJoinTest, NatKeepsExchangesApartCountedAndNamed) {
  // The front connects to a virtual address that a NAT rewrites: the
  // backend sees 10.0.0.2:9000, the front 10.0.0.100:9000.
  JoinResult j = JoinHosts(
      {Host("front.cap", FrontHost({10, 0, 0, 100})),
       Host("backend.cap", BackendHost(0, 20000, FcgiRecord(1, 1, 8)))});
  EXPECT_EQ(j.summary.matched, 0u);
  EXPECT_EQ(j.summary.unmatched_exchanges, 2u);
  EXPECT_EQ(j.summary.unmatched_backend, 2u);
  ASSERT_THAT(j.summary.unmatched, SizeIs(2));
  EXPECT_THAT(j.summary.unmatched,
              testing::UnorderedElementsAre(
                  testing::AllOf(
                      Field(&UnmatchedEndpoints::side, "front"),
                      Field(&UnmatchedEndpoints::client, "10.0.0.1"),
                      Field(&UnmatchedEndpoints::server, "10.0.0.100:9000"),
                      Field(&UnmatchedEndpoints::capture, "front.cap"),
                      Field(&UnmatchedEndpoints::count, 2u)),
                  testing::AllOf(
                      Field(&UnmatchedEndpoints::side, "backend"),
                      Field(&UnmatchedEndpoints::client, "10.0.0.1"),
                      Field(&UnmatchedEndpoints::server, "10.0.0.2:9000"),
                      Field(&UnmatchedEndpoints::capture, "backend.cap"),
                      Field(&UnmatchedEndpoints::count, 2u))));
  for (const Request& r : Fronts(j.requests)) {
    EXPECT_EQ(r.backend_timing, BackendTiming::kInferred);
  }
}

TEST(HostJoinTest, WrappedSequenceNumbersStillMatch) {
  // The exchange's first byte just before the sequence space wraps, the
  // backend's read holding it beginning before: the distance is mod 2^32.
  StreamBuilder front = FrontHost();
  StreamBuilder backend = BackendHost(0);
  for (SyscallEvent& e : front.events()) {
    if (e.flags & SyscallEvent::kTcpSeq) e.tcp_seq -= 1010;
  }
  for (SyscallEvent& e : backend.events()) {
    if (e.flags & SyscallEvent::kTcpSeq) e.tcp_seq -= 1010;
  }
  JoinResult j = JoinHosts({Host("f", front), Host("b", backend)});
  EXPECT_EQ(j.summary.matched, 2u);
}

TEST(HostJoinTest, BackendHostAloneReportsExactBackendAndNullServer) {
  // With the payload (FastCGI BEGIN_REQUEST seen), php-fpm's requests from
  // an untraced front are the backend's side of exchanges, not a server's.
  // Its last request's tail, read after the reply, then the close: no
  // third request.
  std::vector<Request> rs =
      RunStream(BackendHost(0, 20000, FcgiRecord(1, 1, 8), true));
  ASSERT_THAT(rs, SizeIs(2));
  const Request& first = rs[0];
  ASSERT_TRUE(first.complete) << first.incomplete_reason;
  EXPECT_EQ(first.origin, RequestOrigin::kBackendSide);
  EXPECT_EQ(first.backend_pid, kPhpFpm);
  EXPECT_EQ(first.backend_timing, BackendTiming::kMeasured);
  EXPECT_THAT(first.backend_ns, Optional(Eq(Us(20010))));
  EXPECT_FALSE(first.server_ns.has_value());
  EXPECT_FALSE(first.transport_ns.has_value());
  // The second request began with the first's tail: measured from its own
  // BEGIN_REQUEST read.
  const Request& second = rs[1];
  ASSERT_TRUE(second.complete) << second.incomplete_reason;
  EXPECT_EQ(second.origin, RequestOrigin::kBackendSide);
  EXPECT_THAT(second.backend_ns, Optional(Eq(Us(20010))));

  // Not anomalies, and the unknown phases are left out of the statistics.
  RequestStats stats;
  for (const Request& r : rs) stats.Add(r);
  Report report;
  stats.Fill(&report);
  EXPECT_EQ(report.complete, 2u);
  EXPECT_FALSE(report.phases.server.has_value());
  EXPECT_FALSE(report.phases.transport.has_value());
  ASSERT_TRUE(report.phases.backend.has_value());
  EXPECT_EQ(report.phases.backend->count, 2u);
}

// The spans of `r` (complete), parsed.
std::vector<nlohmann::json> Spans(const Request& r, uint64_t seed) {
  std::string out = "[";
  AppendRequestSpans(SpanSource::From(r, OtlpResource{"x", "h", r.pid}), seed,
                     0, &out);
  out += "]";
  return nlohmann::json::parse(out).get<std::vector<nlohmann::json>>();
}

TEST(HostJoinTest, AgentsDeriveLinkingSpanIdsOnTheirOwn) {
  // Two agents that never talk: the front's and the backend's.
  std::vector<Request> front = RunStream(FrontHost());
  std::vector<Request> backend =
      RunStream(BackendHost(42e6, 20000, FcgiRecord(1, 1, 8)));
  ASSERT_THAT(front, SizeIs(2));
  ASSERT_THAT(backend, SizeIs(2));
  for (size_t i = 0; i < 2; ++i) {
    std::vector<nlohmann::json> f = Spans(front[i], 1111);
    std::vector<nlohmann::json> b = Spans(backend[i], 2222);
    ASSERT_FALSE(f.empty());
    ASSERT_FALSE(b.empty());
    std::string client_id;
    for (const auto& span : f) {
      if (span["kind"] == kSpanKindClient) client_id = span["spanId"];
      EXPECT_EQ(span["traceId"], f[0]["traceId"]);
    }
    ASSERT_FALSE(client_id.empty());
    const nlohmann::json& server = b[0];
    EXPECT_EQ(server["kind"], kSpanKindServer);
    EXPECT_EQ(server["traceId"], f[0]["traceId"]) << "request " << i;
    EXPECT_EQ(server["parentSpanId"], client_id) << "request " << i;
  }
  // Two exchanges, two traces.
  EXPECT_NE(Spans(front[0], 1)[0]["traceId"], Spans(front[1], 1)[0]["traceId"]);
}

}  // namespace
}  // namespace reqcost::analyzers
