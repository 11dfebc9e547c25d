// A backend's call to a traced peer nests the peer's request: pairing by
// socket identity and position on the connection (byte offset, or TCP
// sequence number), the split of the call into transport and the peer's
// time, the outputs, and a call whose peer's accept was not seen.
#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "analyzers/nested_requests.h"
#include "analyzers/profiler.h"
#include "analyzers/render/format.h"
#include "analyzers/render/otlp.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using namespace ::reqcost::analyzers::test_support;  // NOLINT: test helpers
using ::testing::HasSubstr;

constexpr uint32_t kBackend = 200;  // the outer php-fpm
constexpr uint32_t kPeer = 300;     // the inner nginx, traced
const std::string kGet = "GET /inner HTTP/1.1\r\nHost: x\r\n\r\n";

struct PeerOptions {
  bool accept_seen = true;
  double accept_exit = 1015;  // after the connect, before the first send
  bool seq = false;           // the records carry TCP sequence numbers
};

// OneFastCgiRequest (its backend [160, 20170]) whose php-fpm makes two HTTP
// calls on one kept connection to a traced nginx on port 8081, which
// answers each itself: call 1 [1100, 1520], call 2 [2000, 2320].
StreamBuilder RequestCallingTracedPeer(const PeerOptions& o = {}) {
  StreamBuilder s = OneFastCgiRequest();
  const SocketId out = TcpSock(41000, 8081, 0xD1);
  const SocketId in = TcpSock(8081, 41000, 0xD2);
  const int64_t n = static_cast<int64_t>(kGet.size());
  s.Connect(kBackend, 5, 1000, 1010, out);
  if (o.accept_seen) s.Accept(kPeer, 6, 1012, o.accept_exit, in);
  s.Write(kBackend, 5, 1100, 1105, n, kGet, Syscall::kSendto, out)
      .Read(kPeer, 6, 1120, 1125, n, kGet, in)
      .Write(kPeer, 6, 1500, 1510, 100, "", Syscall::kWritev, in)
      .Read(kBackend, 5, 1510, 1520, 100, "", out)
      .Write(kBackend, 5, 2000, 2005, n, kGet, Syscall::kSendto, out)
      .Read(kPeer, 6, 2010, 2015, n, kGet, in)
      .Write(kPeer, 6, 2300, 2310, 100, "", Syscall::kWritev, in)
      .Read(kBackend, 5, 2310, 2320, 100, "", out)
      .Close(kBackend, 5, 3000, 3001)
      .Read(kPeer, 6, 3002, 3003, 0, "", in)
      .Close(kPeer, 6, 3005, 3006);
  if (o.seq) {
    // Client's sequence numbers: its first byte is 1000 + 1; the second
    // request's first byte follows the first's.
    const uint32_t isn = 1001;
    for (SyscallEvent& e : s.events()) {
      const bool client_bytes =
          (e.tgid == kBackend && e.fd == 5 && IsWrite(e.syscall)) ||
          (e.tgid == kPeer && e.fd == 6 && IsRead(e.syscall) && e.ret > 0);
      if (!client_bytes) continue;
      e.flags |= SyscallEvent::kTcpSeq;
      e.tcp_seq = isn + (e.exit_ns < At(1900) ? 0 : n);
    }
  }
  return s;
}

const Request* Find(const std::vector<Request>& requests, uint32_t pid,
                    bool first) {
  const Request* found = nullptr;
  for (const Request& r : requests) {
    if (r.pid != pid) continue;
    if (found == nullptr || (first ? r.start_ns < found->start_ns
                                   : r.start_ns > found->start_ns)) {
      found = &r;
    }
  }
  return found;
}

TEST(NestedCallsTest, EachCallNestsThePeersRequestByOffset) {
  Profiler profiler;
  std::vector<Request> requests =
      RunEvents(profiler, RequestCallingTracedPeer().InExitOrder());
  ASSERT_EQ(requests.size(), 3u);
  const Request* outer = Find(requests, 100, true);
  const Request* inner1 = Find(requests, kPeer, true);
  const Request* inner2 = Find(requests, kPeer, false);
  ASSERT_NE(outer, nullptr);
  ASSERT_TRUE(outer->complete) << outer->incomplete_reason;
  ASSERT_TRUE(inner1->complete) << inner1->incomplete_reason;
  ASSERT_TRUE(inner2->complete) << inner2->incomplete_reason;
  // The connect is a call of its own, served by no request of the peer.
  ASSERT_EQ(outer->calls.size(), 3u);
  EXPECT_TRUE(outer->calls[0].opens);
  EXPECT_FALSE(outer->calls[0].nested_id.has_value());
  const CallRecord& c1 = outer->calls[1];
  const CallRecord& c2 = outer->calls[2];
  EXPECT_EQ(c1.nested_id, inner1->id);
  EXPECT_EQ(c2.nested_id, inner2->id);
  // Inner 1: accept 3 + [1120, 1510]; inner 2: [2010, 2310] + its close 1.
  EXPECT_EQ(inner1->total_ns, Us(393));
  EXPECT_EQ(inner2->total_ns, Us(301));
  EXPECT_EQ(c1.duration_ns(), Us(420));
  EXPECT_EQ(c1.peer_ns, Us(393));
  EXPECT_EQ(c1.transport_ns, Us(27));
  EXPECT_EQ(c2.peer_ns, Us(301));
  EXPECT_EQ(c2.transport_ns, Us(19));
  for (const CallRecord* c : {&c1, &c2}) {
    EXPECT_EQ(*c->peer_ns + *c->transport_ns, c->duration_ns());
    EXPECT_FALSE(c->peer_capped);
  }
  EXPECT_EQ(c1.nested_server_ns, inner1->server_ns);
  ASSERT_TRUE(inner1->nested_in.has_value());
  EXPECT_EQ(inner1->nested_in->request_id, outer->id);
  EXPECT_EQ(inner1->nested_in->call, 1u);
  EXPECT_EQ(inner2->nested_in->call, 2u);
  // Requests of their own: counted once each, nothing unattributed.
  EXPECT_EQ(profiler.anomalies().unattributed_calls, 0u);
  EXPECT_EQ(profiler.anomalies().unattributed_exchanges, 0u);
  Report report = profiler.BuildReport({});
  EXPECT_EQ(report.count, 3u);
  EXPECT_EQ(report.complete, 3u);
}

TEST(NestedCallsTest, AcceptStampedAfterTheFirstSendStillPairs) {
  PeerOptions o;
  o.accept_exit = 1107;  // the peer woke after the client's send returned
  std::vector<Request> requests = RunStream(RequestCallingTracedPeer(o));
  const Request* outer = Find(requests, 100, true);
  const Request* inner1 = Find(requests, kPeer, true);
  ASSERT_NE(outer, nullptr);
  ASSERT_EQ(outer->calls.size(), 3u);
  EXPECT_EQ(outer->calls[1].nested_id, inner1->id);
  EXPECT_TRUE(outer->calls[2].nested_id.has_value());
}

TEST(NestedCallsTest, UnseenAcceptLeavesTheCallsUnnestedAndCounted) {
  PeerOptions o;
  o.accept_seen = false;  // the peer's end is first seen on its read
  Profiler profiler;
  std::vector<Request> requests =
      RunEvents(profiler, RequestCallingTracedPeer(o).InExitOrder());
  const Request* outer = Find(requests, 100, true);
  ASSERT_NE(outer, nullptr);
  ASSERT_TRUE(outer->complete);
  // Still the backend's calls (the call connection did not turn into a
  // backend link), none nested: byte offsets on a connection whose accept
  // was not seen do not say which request served which call.
  ASSERT_EQ(outer->calls.size(), 3u);
  for (const CallRecord& c : outer->calls) {
    EXPECT_FALSE(c.nested_id.has_value());
    EXPECT_FALSE(c.transport_ns.has_value());
  }
  EXPECT_EQ(outer->calls[1].duration_ns(), Us(420));
  // The peer's requests are still requests (its first incomplete: opened
  // before attach as far as reqcost knows), counted once.
  int peer_requests = 0;
  for (const Request& r : requests) peer_requests += r.pid == kPeer;
  EXPECT_EQ(peer_requests, 2);
  EXPECT_EQ(profiler.anomalies().unattributed_calls, 0u);
  Report report = profiler.BuildReport({});
  ASSERT_FALSE(report.calls.peers.empty());
  EXPECT_EQ(report.calls.peers[0].calls, 3u);
  EXPECT_EQ(report.calls.peers[0].nested_calls, 0u);
}

TEST(NestedCallsTest, SequenceNumbersPairWhereOffsetsCannot) {
  PeerOptions o;
  o.accept_seen = false;
  o.seq = true;
  std::vector<Request> requests = RunStream(RequestCallingTracedPeer(o));
  const Request* outer = Find(requests, 100, true);
  const Request* inner1 = Find(requests, kPeer, true);
  const Request* inner2 = Find(requests, kPeer, false);
  ASSERT_EQ(outer->calls.size(), 3u);
  // The first is paired but incomplete (opened before attach, as far as
  // reqcost knows): no split. The second is split.
  EXPECT_EQ(outer->calls[1].nested_id, inner1->id);
  EXPECT_FALSE(inner1->complete);
  EXPECT_FALSE(outer->calls[1].peer_ns.has_value());
  EXPECT_EQ(outer->calls[2].nested_id, inner2->id);
  EXPECT_EQ(outer->calls[2].peer_ns, inner2->total_ns);
}

TEST(NestedCallsTest, OutputsCarryTheNestedRequest) {
  Profiler profiler;
  std::vector<Request> requests =
      RunEvents(profiler, RequestCallingTracedPeer().InExitOrder());
  const Request* outer = Find(requests, 100, true);
  const Request* inner1 = Find(requests, kPeer, true);
  nlohmann::json j = RequestToJson(*outer);
  ASSERT_TRUE(j["calls"][1].contains("nested"));
  EXPECT_EQ(j["calls"][1]["nested"]["id"], inner1->id);
  EXPECT_DOUBLE_EQ(j["calls"][1]["nested"]["transport_us"].get<double>(), 27);
  EXPECT_DOUBLE_EQ(j["calls"][1]["nested"]["peer_us"].get<double>(), 393);
  EXPECT_EQ(RequestToJson(*inner1)["nested_in"]["request"], outer->id);
  EXPECT_THAT(FormatRequestLine(*inner1),
              HasSubstr(absl::StrCat("[nested in #", outer->id, "]")));

  Report report = profiler.BuildReport({});
  ASSERT_EQ(report.calls.peers.size(), 1u);
  const PeerSummary& p = report.calls.peers[0];
  EXPECT_EQ(p.nested_calls, 2u);
  ASSERT_TRUE(p.transport.has_value());
  EXPECT_DOUBLE_EQ(p.transport->mean_us, 23);
  EXPECT_DOUBLE_EQ(p.peer_time->mean_us, 347);
  EXPECT_THAT(FormatText(report), HasSubstr("transport, per call (2 nested)"));

  // OTLP: the nested request's SERVER span is the call's CLIENT span's
  // child, in the caller's trace.
  constexpr uint64_t kSeed = 42;
  const SpanIds caller = SpanIds::For(kSeed, outer->id);
  std::string spans;
  AppendRequestSpans(SpanSource::From(*inner1, {}), kSeed, 0, &spans);
  EXPECT_THAT(spans, HasSubstr(absl::StrCat("\"traceId\":\"",
                                            Hex64(caller.trace_hi),
                                            Hex64(caller.trace_lo))));
  EXPECT_THAT(spans, HasSubstr(absl::StrCat("\"parentSpanId\":\"",
                                            Hex64(CallSpanId(caller, 1)),
                                            "\"")));
}

// A caller finalized before the request that served its call (the peer's
// request on a kept connection ends only when the next one begins): held
// until it comes, then both go on, linked.
TEST(NestedRequestsTest, CallerFirstWaitsForTheNestedRequest) {
  std::vector<Request> out;
  NestedRequests nested([&out](Request& r) { out.push_back(r); });
  Request caller;
  caller.id = 1;
  caller.end_ns = At(5000);
  CallRecord call;
  call.start_ns = At(100);
  call.end_ns = At(600);
  call.peer_conn = 9;
  call.send_offset = 300;
  call.offset_valid = true;
  caller.calls = {call};
  nested.Add(caller, RequestPosition());
  EXPECT_TRUE(out.empty());
  Request served;
  served.id = 2;
  served.complete = true;
  served.total_ns = Us(450);
  served.end_ns = At(6000);
  RequestPosition at;
  at.conn_uid = 9;
  at.call_peer = true;
  at.first_offset = 300;
  at.end_offset = 380;
  nested.Add(served, at);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].id, 1u);
  EXPECT_EQ(out[0].calls[0].nested_id, 2u);
  EXPECT_EQ(out[0].calls[0].transport_ns, Us(50));
  ASSERT_TRUE(out[1].nested_in.has_value());
  EXPECT_EQ(out[1].nested_in->request_id, 1u);
  EXPECT_EQ(nested.held(), 0u);
}

// A request on a call's connection whose call never comes (made while its
// process served no request: unattributed) goes on after kNestWaitNs, and
// everything still held goes on at the end.
TEST(NestedRequestsTest, HeldRequestsGoOnAfterTheWaitAndAtTheEnd) {
  std::vector<uint64_t> ids;
  NestedRequests nested([&ids](Request& r) { ids.push_back(r.id); });
  RequestPosition at;
  at.conn_uid = 9;
  at.call_peer = true;
  Request served;
  served.id = 1;
  served.end_ns = At(1000);
  nested.Add(served, at);
  EXPECT_EQ(nested.held(), 1u);
  nested.AdvanceTo(At(1000) + kNestWaitNs / 2);
  EXPECT_TRUE(ids.empty());
  nested.AdvanceTo(At(1000) + kNestWaitNs + 1);
  EXPECT_EQ(ids, std::vector<uint64_t>{1});
  served.id = 2;
  nested.Add(served, at);
  nested.Flush();
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 2}));
}

}  // namespace
}  // namespace reqcost::analyzers
