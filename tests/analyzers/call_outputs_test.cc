// The backend's own calls in the outputs that are not the text table:
// OTLP spans, --group-by peer, compare and the HTML report's data. Synthetic
// requests, so every figure is known.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "analyzers/compare.h"
#include "analyzers/group_by.h"
#include "analyzers/report.h"
#include "analyzers/render/compare_format.h"
#include "analyzers/peer_calls.h"
#include "analyzers/render/otlp.h"
#include "analyzers/render/peer_format.h"
#include "analyzers/request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/otlp_json_check.h"

namespace reqcost::analyzers {
namespace {

using ::reqcost::testing::CheckOtlpJson;
using ::reqcost::testing::OtlpCheck;
using ::reqcost::testing::OtlpSpan;
using ::testing::Eq;
using ::testing::SizeIs;

constexpr uint64_t kMs = 1'000'000;
constexpr int64_t kOffset = 1'700'000'000'000'000'000;

CallRecord Call(std::string protocol, std::string address, uint64_t start,
                uint64_t end, std::string query = "") {
  CallRecord c;
  c.protocol = protocol;
  c.address = address;
  c.peer = protocol.empty() ? address : protocol + ":" + address;
  c.tid = 201;
  c.start_ns = start;
  c.end_ns = end;
  c.has_reply = true;
  c.query = std::move(query);
  return c;
}

// A complete request: 100 ms .. 130 ms, exchange 101 .. 129, backend
// 102 .. 128, its backend's calls as given.
Request WithCalls(uint64_t id, std::vector<CallRecord> calls) {
  Request r;
  r.id = id;
  r.complete = true;
  r.pid = 100;
  r.backend_pid = 200;
  r.request_line = "GET /calls.php";
  r.backend_protocol = "fastcgi";
  r.backend_address = "/run/php/fpm.sock";
  r.backend_timing = BackendTiming::kMeasured;
  r.start_ns = 100 * kMs;
  r.end_ns = 130 * kMs;
  r.exchange_start_ns = 101 * kMs;
  r.exchange_end_ns = 129 * kMs;
  r.backend_start_ns = 102 * kMs;
  r.backend_end_ns = 128 * kMs;
  r.total_ns = 30 * kMs;
  r.backend_ns = 26 * kMs;
  r.transport_ns = 2 * kMs;
  r.server_ns = 2 * kMs;
  r.calls = std::move(calls);
  r.backend_own_ns = *r.backend_ns - CallUnionNs(r.calls);
  return r;
}

const OtlpSpan* Named(const OtlpCheck& check, const std::string& name) {
  for (const OtlpSpan& s : check.spans) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string Attr(const OtlpSpan& span, const std::string& key) {
  auto it = span.attributes.find(key);
  if (it == span.attributes.end()) return "<absent>";
  if (it->second.contains("intValue")) return it->second["intValue"];
  return it->second.value("stringValue", "<not a string>");
}

TEST(CallSpansTest, EachCallIsAClientSpanUnderTheBackendSpan) {
  Request r = WithCalls(
      7, {Call("mysql", "/run/mysqld/mysqld.sock", 103 * kMs, 108 * kMs,
               "select id from t where k = 3"),
          Call("redis", "127.0.0.1:6379", 110 * kMs, 111 * kMs, "GET"),
          Call("http", "[::1]:8081", 112 * kMs, 120 * kMs,
               "GET /api/user HTTP/1.1")});
  OtlpBatch batch(42, kOffset);
  batch.Add(SpanSource::From(r, {"nginx", "web-1", 100}));
  EXPECT_THAT(batch.spans(), Eq(5u + 3u));
  std::string line = batch.Take("test");
  OtlpCheck check;
  CheckOtlpJson(line, &check);  // also: every parent resolves in its trace
  ASSERT_TRUE(check.ok()) << check.ErrorText() << line;

  const OtlpSpan* backend = Named(check, "backend");
  const OtlpSpan* mysql = Named(check, "mysql SELECT");
  const OtlpSpan* redis = Named(check, "redis GET");
  const OtlpSpan* http = Named(check, "http GET");
  ASSERT_TRUE(backend && mysql && redis && http) << line;
  for (const OtlpSpan* s : {mysql, redis, http}) {
    EXPECT_THAT(s->kind, Eq(kSpanKindClient));
    EXPECT_THAT(s->parent_span_id, Eq(backend->span_id));
    EXPECT_THAT(s->trace_id, Eq(backend->trace_id));
    EXPECT_NE(s->span_id, backend->span_id);
  }
  EXPECT_NE(mysql->span_id, redis->span_id);
  EXPECT_THAT(mysql->start_unix_nano, Eq(103 * kMs + kOffset));
  EXPECT_THAT(mysql->end_unix_nano, Eq(108 * kMs + kOffset));

  EXPECT_THAT(Attr(*mysql, "db.system"), Eq("mysql"));
  EXPECT_THAT(Attr(*mysql, "db.operation.name"), Eq("SELECT"));
  EXPECT_THAT(Attr(*mysql, "db.query.text"),
              Eq("select id from t where k = 3"));
  EXPECT_THAT(Attr(*mysql, "network.transport"), Eq("unix"));
  EXPECT_THAT(Attr(*mysql, "server.address"), Eq("/run/mysqld/mysqld.sock"));
  EXPECT_THAT(Attr(*mysql, "network.peer.address"),
              Eq("/run/mysqld/mysqld.sock"));

  EXPECT_THAT(Attr(*redis, "db.system"), Eq("redis"));
  EXPECT_THAT(Attr(*redis, "server.address"), Eq("127.0.0.1"));
  EXPECT_THAT(Attr(*redis, "server.port"), Eq("6379"));
  EXPECT_THAT(Attr(*redis, "network.peer.address"), Eq("127.0.0.1"));

  EXPECT_THAT(Attr(*http, "db.system"), Eq("<absent>"));
  EXPECT_THAT(Attr(*http, "http.request.method"), Eq("GET"));
  EXPECT_THAT(Attr(*http, "url.path"), Eq("/api/user"));
  EXPECT_THAT(Attr(*http, "server.address"), Eq("::1"));
  EXPECT_THAT(Attr(*http, "server.port"), Eq("8081"));
}

TEST(CallSpansTest, WithoutPayloadTheNameIsTheProtocolAndNoQueryIsSent) {
  Request r = WithCalls(
      8, {Call("postgresql", "127.0.0.1:5432", 103 * kMs, 104 * kMs),
          Call("", "127.0.0.1:9999", 105 * kMs, 106 * kMs)});
  OtlpBatch batch(1, kOffset);
  batch.Add(SpanSource::From(r, {"nginx", "web-1", 100}));
  std::string line = batch.Take("test");
  OtlpCheck check;
  CheckOtlpJson(line, &check);
  ASSERT_TRUE(check.ok()) << check.ErrorText() << line;
  const OtlpSpan* pg = Named(check, "postgresql");
  const OtlpSpan* tcp = Named(check, "tcp");
  ASSERT_TRUE(pg && tcp) << line;
  EXPECT_THAT(Attr(*pg, "db.system"), Eq("postgresql"));
  EXPECT_THAT(Attr(*pg, "db.query.text"), Eq("<absent>"));
  EXPECT_THAT(Attr(*pg, "db.operation.name"), Eq("<absent>"));
  EXPECT_THAT(Attr(*tcp, "db.system"), Eq("<absent>"));
  EXPECT_THAT(Attr(*tcp, "server.port"), Eq("9999"));
}

TEST(CallSpansTest, CallIdsAreDistinctAndNeverZero) {
  SpanIds ids = SpanIds::For(3, 9);
  std::vector<uint64_t> seen = {ids.server, ids.client, ids.backend};
  for (size_t i = 0; i < 64; ++i) {
    uint64_t id = CallSpanId(ids, i);
    EXPECT_NE(id, 0u);
    for (uint64_t other : seen) EXPECT_NE(id, other);
    seen.push_back(id);
  }
}

TEST(PeerGroupsTest, ParseGroupByPeerStandsAlone) {
  std::string error;
  std::optional<GroupKeys> keys = ParseGroupBy("peer", &error);
  ASSERT_TRUE(keys.has_value()) << error;
  EXPECT_THAT(keys->by, Eq(GroupBy::kPeer));
  EXPECT_FALSE(ParseGroupBy("peer,url", &error).has_value());
  EXPECT_THAT(error, ::testing::HasSubstr("stand alone"));
}

TEST(PeerGroupsTest, CallsTimePerCallAndCallsPerRequestPerPeer) {
  PeerCallStats stats;
  // Request 1: two mysql calls (1 ms, 3 ms) and one redis call (0.5 ms);
  // request 2: one mysql call (2 ms); request 3: no call.
  stats.Add(WithCalls(
      1, {Call("mysql", "/run/mysqld/mysqld.sock", 103 * kMs, 104 * kMs),
          Call("redis", "127.0.0.1:6379", 105 * kMs, 105 * kMs + kMs / 2),
          Call("mysql", "/run/mysqld/mysqld.sock", 106 * kMs, 109 * kMs)}));
  stats.Add(WithCalls(
      2, {Call("mysql", "/run/mysqld/mysqld.sock", 103 * kMs, 105 * kMs)}));
  stats.Add(WithCalls(3, {}));
  Request incomplete = WithCalls(
      4, {Call("redis", "127.0.0.1:6379", 103 * kMs, 190 * kMs)});
  incomplete.complete = false;
  stats.Add(incomplete);  // not counted: no breakdown

  EXPECT_THAT(stats.requests(), Eq(3u));
  EXPECT_THAT(stats.calls(), Eq(4u));
  std::vector<PeerCallRow> rows = stats.Rows();
  ASSERT_THAT(rows, SizeIs(2));
  const PeerCallRow& mysql = rows[0];  // most summed time first
  EXPECT_THAT(mysql.peer, Eq("mysql:/run/mysqld/mysqld.sock"));
  EXPECT_THAT(mysql.calls, Eq(3u));
  EXPECT_THAT(mysql.requests, Eq(2u));
  EXPECT_DOUBLE_EQ(mysql.calls_per_request, 1.0);
  EXPECT_DOUBLE_EQ(mysql.mean_us, 2000.0);
  EXPECT_DOUBLE_EQ(mysql.total_ms, 6.0);
  EXPECT_DOUBLE_EQ(mysql.max_us, 3000.0);
  // Percentiles come from the histogram: within its published 1% bucket.
  EXPECT_NEAR(mysql.p50_us, 2000.0, 20.0);
  EXPECT_NEAR(mysql.p99_us, 3000.0, 30.0);
  const PeerCallRow& redis = rows[1];
  EXPECT_THAT(redis.calls, Eq(1u));
  EXPECT_NEAR(redis.calls_per_request, 1.0 / 3, 1e-9);
  EXPECT_DOUBLE_EQ(redis.mean_us, 500.0);

  std::string text = FormatPeerGroupsText(stats);
  EXPECT_THAT(text, ::testing::HasSubstr("mysql:/run/mysqld/mysqld.sock"));
  EXPECT_THAT(text, ::testing::HasSubstr("3 requests with a measured backend, "
                                         "4 calls"));
  nlohmann::json json = PeerGroupsToJson(stats);
  EXPECT_THAT(json["schema"], Eq(kPeerGroupsSchema));
  ASSERT_THAT(json["peers"], SizeIs(2));
  EXPECT_THAT(json["peers"][0]["calls"], Eq(3));
  EXPECT_THAT(json["peers"][1]["peer"], Eq("redis:127.0.0.1:6379"));
  EXPECT_DOUBLE_EQ(json["peers"][0]["call_us"]["mean"].get<double>(), 2000.0);
}

TEST(PeerGroupsTest, PeersPastTheCapAreFoldedAndCounted) {
  PeerCallStats stats(/*max_peers=*/2);
  for (uint16_t port = 1; port <= 5; ++port) {
    stats.Add(WithCalls(port, {Call("http", absl::StrCat("10.0.0.1:", port),
                                    103 * kMs, 104 * kMs)}));
  }
  std::vector<PeerCallRow> rows = stats.Rows();
  ASSERT_THAT(rows, SizeIs(3));
  EXPECT_TRUE(rows.back().other);
  EXPECT_THAT(rows.back().folded, Eq(3u));
  EXPECT_THAT(rows.back().calls, Eq(3u));
  uint64_t calls = 0;
  for (const PeerCallRow& r : rows) calls += r.calls;
  EXPECT_THAT(calls, Eq(5u));  // none lost
}

TEST(PeerGroupsTest, NoCallIsASentence) {
  PeerCallStats stats;
  stats.Add(WithCalls(1, {}));
  EXPECT_THAT(FormatPeerGroupsText(stats),
              ::testing::HasSubstr("no backend call seen"));
}

// A report of `n` requests whose mysql calls take `mysql_ms` each (two per
// request) and whose backend does `own_ms` of its own work; redis only
// when `with_redis`.
Report CallsReport(int n, uint64_t mysql_ms, uint64_t own_ms,
                   bool with_redis) {
  RequestStats stats;
  for (int i = 0; i < n; ++i) {
    // A little spread, so that the intervals are finite.
    uint64_t jitter = static_cast<uint64_t>(i % 5) * 10'000;
    std::vector<CallRecord> calls = {
        Call("mysql", "/run/mysqld/mysqld.sock", 103 * kMs,
             103 * kMs + mysql_ms * kMs + jitter),
        Call("mysql", "/run/mysqld/mysqld.sock", 110 * kMs,
             110 * kMs + mysql_ms * kMs)};
    if (with_redis) {
      calls.push_back(Call("redis", "127.0.0.1:6379", 101 * kMs, 102 * kMs));
    }
    Request r = WithCalls(i + 1, std::move(calls));
    r.backend_own_ns = own_ms * kMs + jitter;
    stats.Add(r);
  }
  Report report;
  stats.Fill(&report);
  return report;
}

TEST(CompareCallsTest, BackendOwnAndEachPeersTimeAreCompared) {
  Report a = CallsReport(50, 2, 10, /*with_redis=*/true);
  Report b = CallsReport(50, 4, 10, /*with_redis=*/false);
  ASSERT_TRUE(a.calls.backend_own.has_value());
  Comparison c = Compare(a, b);
  ASSERT_TRUE(c.calls.any());
  // The own time is the same in both: no clear difference.
  ASSERT_TRUE(c.calls.backend_own.mean_us.has_value());
  EXPECT_NEAR(*c.calls.backend_own.mean_us, 0.0, 1.0);
  EXPECT_FALSE(c.calls.backend_own.clear);
  ASSERT_THAT(c.calls.peers, SizeIs(2));
  const PeerCallsDelta& mysql = c.calls.peers[0].peer.rfind("mysql", 0) == 0
                                    ? c.calls.peers[0]
                                    : c.calls.peers[1];
  const PeerCallsDelta& redis = &mysql == &c.calls.peers[0]
                                    ? c.calls.peers[1]
                                    : c.calls.peers[0];
  // Two calls per request, each 2 ms longer in B: +4 ms per request.
  ASSERT_TRUE(mysql.time.mean_us.has_value());
  EXPECT_NEAR(*mysql.time.mean_us, 4000.0, 1.0);
  EXPECT_TRUE(mysql.time.clear);
  EXPECT_DOUBLE_EQ(mysql.a_calls_per_request, 2.0);
  EXPECT_DOUBLE_EQ(mysql.b_calls_per_request, 2.0);
  // Redis only in A: shown, with no delta.
  EXPECT_THAT(redis.peer, Eq("redis:127.0.0.1:6379"));
  EXPECT_TRUE(redis.time.a.has_value());
  EXPECT_FALSE(redis.time.b.has_value());
  EXPECT_FALSE(redis.time.mean_us.has_value());
  EXPECT_DOUBLE_EQ(redis.b_calls_per_request, 0.0);

  std::string text = FormatComparisonText(c);
  EXPECT_THAT(text, ::testing::HasSubstr("backend own"));
  EXPECT_THAT(text, ::testing::HasSubstr("mysql:/run/mysqld/mysqld.sock"));
  nlohmann::json json = ComparisonToJson(c);
  ASSERT_THAT(json["calls"]["peers"], SizeIs(2));
  EXPECT_TRUE(json["calls"]["backend_own"].contains("mean_us"));
  bool found = false;
  for (const nlohmann::json& p : json["calls"]["peers"]) {
    if (p["peer"] != "mysql:/run/mysqld/mysqld.sock") continue;
    found = true;
    EXPECT_NEAR(p["delta"]["mean_us"].get<double>(), 4000.0, 1.0);
    EXPECT_EQ(p["delta"]["clear"], true);
  }
  EXPECT_TRUE(found);
}

TEST(CompareCallsTest, RunsWithoutCallsPrintNoCallsBlock) {
  Report a, b;
  Comparison c = Compare(a, b);
  EXPECT_FALSE(c.calls.any());
  EXPECT_THAT(FormatCallsComparisonText(c.calls), Eq(""));
  EXPECT_THAT(ComparisonToJson(c)["calls"]["peers"], SizeIs(0));
}

}  // namespace
}  // namespace reqcost::analyzers
