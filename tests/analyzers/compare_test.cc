#include "analyzers/compare.h"

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "analyzers/group_by.h"
#include "analyzers/profiler.h"
#include "analyzers/render/compare_format.h"
#include "analyzers/render/format.h"
#include "analyzers/render/group_format.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using ::nlohmann::json;
using ::testing::DoubleEq;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using ::testing::SizeIs;
using ::testing::StartsWith;

PhaseSummary Phase(double mean) { return {100, mean, mean, mean, mean, mean}; }

// 100 complete requests: total = server + transport + backend.
Report MakeReport(double server, double transport, double backend,
                  uint64_t accepts, uint64_t closes) {
  Report r;
  r.capture = {1.0, 1000, 0};
  r.count = 100;
  r.complete = 100;
  r.rate_per_s = 100;
  r.backend_timing = "measured";
  r.phases.total = Phase(server + transport + backend);
  r.phases.server = Phase(server);
  r.phases.transport = Phase(transport);
  r.phases.backend = Phase(backend);
  r.syscalls = {{"accept4", "server", accepts, 20.0, 20.0, 20.0},
                {"read", "server", 100, 10.0, 10.0, 10.0},
                {"close", "server", closes, 30.0, 30.0, 30.0}};
  return r;
}

TEST(CompareTest, KeepAliveSavingsHaveExactDeltasAndAVerdict) {
  Report a = MakeReport(200, 50, 50, 100, 100);  // 300 us
  Report b = MakeReport(150, 45, 45, 1, 1);      // 240 us
  Comparison c = Compare(a, b);
  ASSERT_THAT(c.phases, SizeIs(6));
  EXPECT_THAT(c.phases[0].phase, Eq("total"));
  EXPECT_THAT(c.phases[0].mean_us, Optional(DoubleEq(-60.0)));
  EXPECT_THAT(c.phases[0].pct, Optional(DoubleEq(-20.0)));
  EXPECT_THAT(c.phases[1].mean_us, Optional(DoubleEq(-50.0)));
  EXPECT_THAT(c.phases[1].pct, Optional(DoubleEq(-25.0)));
  EXPECT_THAT(c.phases[2].mean_us, Optional(DoubleEq(-5.0)));
  EXPECT_THAT(c.phases[4].phase, Eq("queue"));
  EXPECT_THAT(c.phases[4].mean_us, Eq(std::nullopt));
  // Largest change of time per request first: close 30 -> 0.3 us.
  ASSERT_THAT(c.syscalls, SizeIs(3));
  EXPECT_THAT(c.syscalls[0].name, Eq("close"));
  EXPECT_THAT(c.syscalls[0].a_count_per_request, DoubleEq(1.0));
  EXPECT_THAT(c.syscalls[0].b_count_per_request, DoubleEq(0.01));
  EXPECT_THAT(c.syscalls[0].delta_us_per_request, DoubleEq(-29.7));
  EXPECT_THAT(c.syscalls[1].name, Eq("accept4"));
  EXPECT_THAT(c.syscalls[1].delta_us_per_request, DoubleEq(-19.8));
  EXPECT_THAT(c.syscalls[2].name, Eq("read"));
  EXPECT_THAT(c.syscalls[2].delta_us_per_request, DoubleEq(0.0));
  EXPECT_THAT(c.verdict,
              Eq("B saves 60.0 us per request (20.0%) over A, 95% interval "
                 "[-60.0 us, -60.0 us], mostly server "
                 "time (-50.0 us); the syscalls that changed most per "
                 "request: server close -29.7 us (1.00 -> 0.01 calls), server "
                 "accept4 -19.8 us (1.00 -> 0.01 calls)."));
}

TEST(CompareTest, CostsMoreWhenBIsSlower) {
  Comparison c = Compare(MakeReport(150, 45, 45, 1, 1),
                         MakeReport(200, 50, 50, 100, 100), "close", "keep");
  EXPECT_THAT(c.phases[0].pct, Optional(DoubleEq(25.0)));
  EXPECT_THAT(c.verdict,
              Eq("keep costs 60.0 us more per request (25.0%) than close, "
                 "95% interval [+60.0 us, +60.0 us], mostly server time (+50.0 "
                 "us); the syscalls that changed "
                 "most per request: server close +29.7 us (0.01 -> 1.00 "
                 "calls), server accept4 +19.8 us (0.01 -> 1.00 calls)."));
}

TEST(CompareTest, UnderTwoPercentIsNoClearDifference) {
  Comparison c = Compare(MakeReport(200, 50, 50, 100, 100),
                         MakeReport(203, 50, 50, 100, 100));
  EXPECT_THAT(c.phases[0].pct, Optional(DoubleEq(1.0)));
  EXPECT_FALSE(c.phases[0].clear);
  EXPECT_THAT(c.verdict,
              Eq("No clear difference (~): a request takes 303.0 us in B "
                 "and 300.0 us in A (+1.0%; under the 2% threshold)."));
  // A lower threshold makes the same (exactly known) 1% clear.
  CompareOptions low;
  low.threshold_pct = 0.5;
  Comparison d = Compare(MakeReport(200, 50, 50, 100, 100),
                         MakeReport(203, 50, 50, 100, 100), "A", "B", low);
  EXPECT_TRUE(d.phases[0].clear);
  EXPECT_THAT(d.verdict, StartsWith("B costs 3.0 us more per request"));
}

TEST(TQuantileTest, MatchesStudentsTable) {
  EXPECT_THAT(TQuantile975(1), DoubleEq(12.7062));
  EXPECT_THAT(TQuantile975(10), DoubleEq(2.2281));
  EXPECT_THAT(TQuantile975(10.9), DoubleEq(2.2281));  // rounded down
  EXPECT_THAT(TQuantile975(0.2), DoubleEq(12.7062));
  // Past the table, the expansion: t(30) from it agrees with the table's.
  EXPECT_THAT(TQuantile975(31), DoubleNear(2.0395, 1e-4));
  EXPECT_THAT(TQuantile975(60), DoubleNear(2.0003, 1e-4));
  EXPECT_THAT(TQuantile975(120), DoubleNear(1.9799, 1e-4));
  EXPECT_THAT(TQuantile975(1e9), DoubleNear(1.96, 1e-4));
}

PhaseSummary Spread(uint64_t n, double mean, double stddev) {
  PhaseSummary p = {n, mean, mean, mean, mean, mean};
  p.stddev_us = stddev;
  return p;
}

TEST(DeltaOfTest, WelchIntervalOfKnownSamples) {
  // n = 10 each, sd 10: se = sqrt(10 + 10), df = 400 / (100/9 + 100/9) = 18,
  // t = 2.1009: half-width 9.3956.
  PhaseDelta d = DeltaOf("total", Spread(10, 100, 10), Spread(10, 110, 10), 2);
  EXPECT_THAT(d.mean_us, Optional(DoubleEq(10.0)));
  EXPECT_THAT(d.ci_low_us, Optional(DoubleNear(0.6044, 1e-3)));
  EXPECT_THAT(d.ci_high_us, Optional(DoubleNear(19.3956, 1e-3)));
  EXPECT_TRUE(d.clear);
  // The same interval under a 15% threshold: not clear.
  EXPECT_FALSE(
      DeltaOf("total", Spread(10, 100, 10), Spread(10, 110, 10), 15).clear);
  // 5 us more: the interval includes 0.
  PhaseDelta near =
      DeltaOf("total", Spread(10, 100, 10), Spread(10, 105, 10), 2);
  EXPECT_LT(*near.ci_low_us, 0);
  EXPECT_GT(*near.ci_high_us, 0);
  EXPECT_FALSE(near.clear);
  // One value on a side: no interval, not clear.
  PhaseDelta one = DeltaOf("total", Spread(1, 100, 0), Spread(10, 200, 10), 2);
  EXPECT_THAT(one.mean_us, Optional(DoubleEq(100.0)));
  EXPECT_THAT(one.ci_low_us, Eq(std::nullopt));
  EXPECT_FALSE(one.clear);
}

// The verdict agrees with its own statistics: "No clear difference" exactly
// when the total's interval includes 0 or the change is under the threshold.
TEST(CompareTest, VerdictIsConsistentWithItsInterval) {
  int clear = 0, unclear = 0;
  for (double b_mean : {90.0, 97.0, 99.0, 100.5, 101.5, 103.0, 110.0}) {
    for (double sd : {0.0, 1.0, 5.0, 30.0}) {
      for (uint64_t n : {5u, 50u, 5000u}) {
        Report a = MakeReport(100, 0, 0, 100, 100);
        Report b = MakeReport(100, 0, 0, 100, 100);
        a.phases.total = Spread(n, 100, sd);
        b.phases.total = Spread(n, b_mean, sd);
        Comparison c = Compare(a, b);
        const PhaseDelta& t = c.phases[0];
        const bool includes_zero = *t.ci_low_us <= 0 && *t.ci_high_us >= 0;
        const bool small = std::fabs(*t.pct) < kDefaultThresholdPct;
        const bool said_unclear =
            c.verdict.rfind("No clear difference (~)", 0) == 0;
        EXPECT_EQ(said_unclear, includes_zero || small)
            << b_mean << " sd " << sd << " n " << n << ": " << c.verdict;
        EXPECT_EQ(t.clear, !said_unclear);
        (said_unclear ? unclear : clear)++;
      }
    }
  }
  // Both kinds of verdict were exercised.
  EXPECT_GT(clear, 10);
  EXPECT_GT(unclear, 10);
}

TEST(CompareTest, TimeAsleepInASyscallIsNotNamedAsCost) {
  // B's backend recvfrom takes 50 us more per request, all of it asleep
  // (waiting for the server's close); its server close takes 20 us more.
  Report a = MakeReport(200, 50, 50, 100, 100);
  Report b = MakeReport(220, 50, 50, 100, 100);
  a.syscalls.push_back({"recvfrom", "backend", 100, 10.0, 10.0, 10.0});
  b.syscalls.push_back({"recvfrom", "backend", 100, 60.0, 60.0, 60.0});
  b.syscalls.back().slept_us = 100 * 50.0;
  b.syscalls[2].mean_us = 50.0;  // close: 30 -> 50 us
  Comparison c = Compare(a, b);
  ASSERT_THAT(c.syscalls[0].name, Eq("recvfrom"));
  EXPECT_THAT(c.syscalls[0].delta_us_per_request, DoubleEq(50.0));
  EXPECT_THAT(c.syscalls[0].delta_busy_us_per_request, DoubleEq(0.0));
  EXPECT_THAT(c.verdict, HasSubstr("server close +20.0 us"));
  EXPECT_THAT(c.verdict, Not(HasSubstr("recvfrom")));
}

TEST(CompareTest, SaysWhatTheClientSawAndWhenItContradictsThePhases) {
  // B's requests take longer by the phases, yet the client got more of them
  // per second at the same concurrency: work overlapped the next request.
  Report a = MakeReport(100, 50, 50, 100, 100);
  Report b = MakeReport(120, 50, 50, 0, 0);
  a.client.rate_per_s = 4000;
  a.client.in_flight = 0.8;
  a.client.response = Spread(100, 150, 0);
  b.client.rate_per_s = 5000;
  b.client.in_flight = 0.85;
  b.client.response = Spread(100, 170, 0);
  Comparison c = Compare(a, b);
  EXPECT_THAT(c.response.mean_us, Optional(DoubleEq(20.0)));
  EXPECT_THAT(c.verdict,
              HasSubstr("The client saw 4000.0 -> 5000.0 requests/s while "
                        "requests ran (0.80 -> 0.85 in flight) and 150.0 us "
                        "-> 170.0 us"));
  EXPECT_THAT(c.verdict, HasSubstr("disagree (+25.0% requests/s)"));
  // The rate fell with the cost: no disagreement.
  b.client.rate_per_s = 3500;
  EXPECT_THAT(Compare(a, b).verdict, Not(HasSubstr("disagree")));
  // Another concurrency: rates are not compared.
  b.client.rate_per_s = 5000;
  b.client.in_flight = 2.0;
  EXPECT_THAT(Compare(a, b).verdict, Not(HasSubstr("disagree")));
}

TEST(CompareTest, NoCompleteRequestsIsSaidSo) {
  Report empty;
  Comparison c = Compare(MakeReport(200, 50, 50, 100, 100), empty);
  EXPECT_THAT(c.phases[0].mean_us, Eq(std::nullopt));
  EXPECT_THAT(c.verdict, Eq("No comparison: B has no complete requests."));
  json j = ComparisonToJson(c);
  EXPECT_TRUE(j["delta"]["total"]["mean_us"].is_null());
  EXPECT_TRUE(j["delta"]["total"]["pct"].is_null());
}

TEST(CompareTest, JsonIsTheCompareSchemaWithBothReports) {
  Comparison c =
      Compare(MakeReport(200, 50, 50, 100, 100), MakeReport(150, 45, 45, 1, 1));
  json j = ComparisonToJson(c);
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  EXPECT_THAT(keys,
              Eq(std::set<std::string>{"schema", "threshold_pct", "a", "b",
                                       "delta", "client", "calls", "verdict"}));
  EXPECT_THAT(j["schema"], Eq("reqcost.compare/3"));
  EXPECT_THAT(j["verdict"], Eq(c.verdict));
  EXPECT_THAT(j["a"]["schema"], Eq("reqcost.report/2"));
  EXPECT_THAT(j["b"]["requests"]["complete"], Eq(100));
  std::set<std::string> phases;
  for (const auto& [k, v] : j["delta"].items()) {
    phases.insert(k);
    std::set<std::string> fields;
    for (const auto& [f, x] : v.items()) fields.insert(f);
    EXPECT_THAT(fields,
                Eq(std::set<std::string>{"mean_us", "pct", "ci95_us", "clear"}))
        << k;
  }
  EXPECT_THAT(phases, Eq(std::set<std::string>{"total", "server", "transport",
                                               "backend", "queue", "tls"}));
  EXPECT_THAT(j["delta"]["total"], Eq(json{{"mean_us", -60.0},
                                           {"pct", -20.0},
                                           {"ci95_us", {-60.0, -60.0}},
                                           {"clear", true}}));
  EXPECT_TRUE(j["delta"]["queue"]["mean_us"].is_null());
  EXPECT_TRUE(j["delta"]["queue"]["ci95_us"].is_null());
  EXPECT_THAT(j["delta"]["queue"]["clear"], Eq(false));
  EXPECT_TRUE(j["client"]["response_delta"]["ci95_us"].is_null());
}

TEST(CompareTest, TextHasBothSidesDeltasAndTheVerdict) {
  Comparison c =
      Compare(MakeReport(200, 50, 50, 100, 100), MakeReport(150, 45, 45, 1, 1));
  std::string text = FormatComparisonText(c);
  EXPECT_THAT(text, HasSubstr("-60.0 us (-20.0%) [-60.0 us, -60.0 us]"));
  EXPECT_THAT(text, HasSubstr("what the client saw"));
  EXPECT_THAT(text, HasSubstr("x1.00 30.0 us / 30.0 us / 30.0 us"));
  EXPECT_THAT(text, HasSubstr("x0.01 30.0 us"));
  EXPECT_THAT(text, HasSubstr(c.verdict));
}

TEST(ParseGroupByTest, AcceptsEachKeyAndBothAndRefusesOthers) {
  std::string error;
  auto client = ParseGroupBy("client-conn", &error);
  ASSERT_TRUE(client.has_value());
  EXPECT_TRUE(client->client_conn);
  EXPECT_FALSE(client->backend_conn);
  auto both = ParseGroupBy("client-conn,backend-conn", &error);
  ASSERT_TRUE(both.has_value());
  EXPECT_TRUE(both->client_conn && both->backend_conn);
  EXPECT_FALSE(ParseGroupBy("pid", &error).has_value());
  EXPECT_THAT(error, HasSubstr("\"pid\" is not a key"));
  EXPECT_FALSE(ParseGroupBy("", &error).has_value());
  auto url = ParseGroupBy("url", &error);
  ASSERT_TRUE(url.has_value());
  EXPECT_THAT(url->by, Eq(GroupBy::kUrl));
  EXPECT_THAT(ParseGroupBy("process", &error)->by, Eq(GroupBy::kServerProcess));
  EXPECT_THAT(ParseGroupBy("server-process", &error)->by,
              Eq(GroupBy::kServerProcess));
  EXPECT_THAT(ParseGroupBy("backend-process", &error)->by,
              Eq(GroupBy::kBackendProcess));
  EXPECT_FALSE(ParseGroupBy("url,client-conn", &error).has_value());
  EXPECT_THAT(error, HasSubstr("stand alone"));
}

Request Answered(uint64_t id, ConnReuse client, double total_us,
                 bool with_accept) {
  Request r;
  r.id = id;
  r.pid = 100;
  r.client_conn = client;
  r.complete = true;
  r.start_ns = id * 1'000'000;
  r.end_ns = r.start_ns + static_cast<uint64_t>(total_us * 1000);
  r.total_ns = r.server_ns = static_cast<uint64_t>(total_us * 1000);
  r.transport_ns = r.backend_ns = 0;
  SyscallRecord s;
  s.tgid = s.tid = 100;
  if (with_accept) {
    s.syscall = Syscall::kAccept4;
    s.enter_ns = r.start_ns;
    s.exit_ns = r.start_ns + 10'000;
    r.syscalls.push_back(s);
  }
  s.syscall = Syscall::kRead;
  s.enter_ns = r.start_ns + 20'000;
  s.exit_ns = r.start_ns + 25'000;
  s.ret = 100;
  r.syscalls.push_back(s);
  return r;
}

TEST(GroupedStatsTest, ClientConnGroupsCompareNewWithReused) {
  GroupedStats stats(GroupKeys{true, false});
  stats.Add(Answered(1, ConnReuse::kNew, 100, true));
  stats.Add(Answered(2, ConnReuse::kReused, 70, false));
  stats.Add(Answered(3, ConnReuse::kNew, 100, true));
  stats.Add(Answered(4, ConnReuse::kReused, 70, false));
  stats.Add(Answered(5, ConnReuse::kReused, 70, false));
  Report base;
  base.capture = {5.0, 10, 0};
  base.processes = {{100, "nginx", "server"}};
  std::vector<GroupReport> groups = stats.Reports(base);
  ASSERT_THAT(groups, SizeIs(2));
  EXPECT_THAT(groups[0].label, Eq("client new"));
  EXPECT_THAT(groups[0].client_conn, Eq("new"));
  EXPECT_THAT(groups[0].backend_conn, Eq(""));
  EXPECT_THAT(groups[0].report.complete, Eq(2u));
  EXPECT_THAT(groups[0].report.rate_per_s, DoubleEq(0.4));
  EXPECT_THAT(groups[0].report.processes, SizeIs(1));
  EXPECT_THAT(groups[1].label, Eq("client reused"));
  EXPECT_THAT(groups[1].report.complete, Eq(3u));
  std::vector<Comparison> cs = CompareGroups(groups);
  ASSERT_THAT(cs, SizeIs(1));
  EXPECT_THAT(cs[0].phases[0].mean_us, Optional(DoubleEq(-30.0)));
  EXPECT_THAT(cs[0].verdict,
              StartsWith("client reused saves 30.0 us per request (30.0%) "
                         "over client new, 95% interval [-30.0 us, -30.0 us], "
                         "mostly server time (-30.0 us); the syscalls that "
                         "changed most per request: server accept4 -10.0 us "
                         "(1.00 -> 0.00 calls)."));
  json j = GroupComparisonToJson(GroupKeys{true, false}, groups, cs);
  EXPECT_THAT(j["schema"], Eq("reqcost.compare-groups/3"));
  EXPECT_THAT(j["comparisons"][0]["delta"]["total"]["clear"], Eq(true));
  EXPECT_THAT(j["group_by"], Eq(json{"client_conn"}));
  EXPECT_THAT(j["groups"][1]["client_conn"], Eq("reused"));
  EXPECT_FALSE(j["groups"][1].contains("backend_conn"));
  EXPECT_THAT(j["groups"][1]["report"]["requests"]["complete"], Eq(3));
  EXPECT_THAT(j["comparisons"][0]["a"], Eq("client new"));
  EXPECT_THAT(j["comparisons"][0]["delta"]["total"]["pct"], Eq(-30.0));
  std::string text = FormatGroupComparisonText(groups, cs);
  EXPECT_THAT(text, HasSubstr("client new"));
  EXPECT_THAT(text, HasSubstr("2 requests (2 complete)"));
}

TEST(GroupedStatsTest, BothKeysMakeOneGroupPerCombination) {
  GroupedStats stats(GroupKeys{true, true});
  Request a = Answered(1, ConnReuse::kNew, 100, true);
  a.backend_conn = ConnReuse::kNew;
  Request b = Answered(2, ConnReuse::kReused, 70, false);
  b.backend_conn = ConnReuse::kNew;
  Request c = Answered(3, ConnReuse::kReused, 60, false);
  c.backend_conn = ConnReuse::kReused;
  for (const Request& r : {a, b, c}) stats.Add(r);
  std::vector<GroupReport> groups = stats.Reports({});
  std::vector<std::string> labels;
  for (const auto& g : groups) labels.push_back(g.label);
  EXPECT_THAT(labels, ElementsAre("client new, backend new",
                                  "client reused, backend new",
                                  "client reused, backend reused"));
  EXPECT_THAT(CompareGroups(groups), SizeIs(2));
}

TEST(GroupedStatsTest, OneGroupHasNothingToCompare) {
  GroupedStats stats(GroupKeys{true, false});
  stats.Add(Answered(1, ConnReuse::kNew, 100, true));
  std::vector<GroupReport> groups = stats.Reports({});
  EXPECT_THAT(CompareGroups(groups), SizeIs(0));
  EXPECT_THAT(FormatGroupComparisonText(groups, {}),
              HasSubstr("only one group"));
}

// ---------------------------------------------------------------------------
// From a synthetic stream: php-fpm after its reply (shutdown, then a
// recvfrom that sleeps until nginx closes the link) and the client's view.

using test_support::At;
using test_support::StreamBuilder;
using test_support::UnixSock;

constexpr uint32_t kNginx = 100;
constexpr uint32_t kPhp = 200;

// One request at `t0` us: accept, read, a backend exchange with php-fpm,
// whose recvfrom after its reply sleeps until nginx's close of the link
// (`blocked_wait`) or returns at once.
void PhpFpmRequest(StreamBuilder& s, double t0, uint64_t sock,
                   bool blocked_wait) {
  const SocketId link = UnixSock(sock, sock + 1);
  const SocketId side = UnixSock(sock + 1, sock);
  s.Accept(kNginx, 8, t0, t0 + 10)
      .Read(kNginx, 8, t0 + 50, t0 + 60, 120, "GET /hello.php HTTP/1.1\r\n")
      .Connect(kNginx, 9, t0 + 100, t0 + 110, link)
      .Write(kNginx, 9, t0 + 120, t0 + 140, 500)
      .Add(Syscall::kAccept, kPhp, 0, 4, -1, t0 + 130, side)
      .Read(kPhp, 4, t0 + 150, t0 + 160, 500)
      .Write(kPhp, 4, t0 + 360, t0 + 370, 300, "", Syscall::kWrite)
      .Add(Syscall::kShutdown, kPhp, 4, 0, t0 + 372, t0 + 373)
      .Add(Syscall::kRecvfrom, kPhp, 4, 0, t0 + 375,
           blocked_wait ? t0 + 412 : t0 + 376)
      .Read(kNginx, 9, t0 + 380, t0 + 390, 300)
      .Close(kNginx, 9, t0 + 400, t0 + 405)
      .Close(kPhp, 4, t0 + 414, t0 + 415)
      .Write(kNginx, 8, t0 + 420, t0 + 440, 350)
      .Close(kNginx, 8, t0 + 500, t0 + 505);
  if (blocked_wait) {
    for (SyscallEvent& e : s.events()) {
      if (e.syscall == Syscall::kRecvfrom && e.exit_ns == At(t0 + 412)) {
        e.flags |= SyscallEvent::kBlocked;
      }
    }
  }
}

Report ReportOf(const StreamBuilder& s) {
  Profiler profiler;
  std::vector<Request> requests =
      test_support::RunEvents(profiler, s.InExitOrder());
  RequestStats stats;
  for (const Request& r : requests) stats.Add(r);
  Report report;
  stats.Fill(&report);
  return report;
}

const SyscallSummary* Find(const Report& r, const std::string& name,
                           const std::string& side) {
  for (const SyscallSummary& s : r.syscalls) {
    if (s.name == name && s.side == side) return &s;
  }
  return nullptr;
}

TEST(CompareStreamTest, BackendWaitForTheCloseIsSleptTimeNotCost) {
  StreamBuilder quick, waiting;
  for (int i = 0; i < 4; ++i) {
    PhpFpmRequest(quick, i * 1000.0, 0x100 + 2 * i, false);
    PhpFpmRequest(waiting, i * 1000.0, 0x100 + 2 * i, true);
  }
  Report a = ReportOf(quick);
  Report b = ReportOf(waiting);
  ASSERT_THAT(a.complete, Eq(4u));
  ASSERT_THAT(b.complete, Eq(4u));
  const SyscallSummary* wait = Find(b, "recvfrom", "backend");
  ASSERT_NE(wait, nullptr);
  // 375 -> 412: 37 us asleep in each request, inside its span.
  EXPECT_THAT(wait->mean_us, DoubleNear(37.0, 1e-9));
  EXPECT_THAT(wait->slept_us, DoubleNear(4 * 37.0, 1e-9));
  EXPECT_THAT(Find(a, "recvfrom", "backend")->slept_us, Eq(0.0));
  // The phases do not hold the wait: the same in both.
  EXPECT_THAT(b.phases.total->mean_us, DoubleEq(a.phases.total->mean_us));
  Comparison c = Compare(a, b);
  EXPECT_FALSE(c.phases[0].clear);
  EXPECT_THAT(c.syscalls[0].name, Eq("recvfrom"));
  EXPECT_THAT(c.syscalls[0].delta_us_per_request, DoubleNear(36.0, 1e-9));
  EXPECT_THAT(c.syscalls[0].delta_busy_us_per_request, DoubleNear(-1.0, 1e-9));
  EXPECT_THAT(c.verdict, StartsWith("No clear difference (~)"));
  EXPECT_THAT(c.verdict, Not(HasSubstr("recvfrom")));
}

TEST(CompareStreamTest, ClientViewIsRateInFlightAndFirstByteToLastByte) {
  StreamBuilder s;
  for (int i = 0; i < 4; ++i)
    PhpFpmRequest(s, i * 1000.0, 0x100 + 2 * i, false);
  Report r = ReportOf(s);
  ASSERT_THAT(r.complete, Eq(4u));
  // Requests from 0 (accept's enter) to 3440 (the last response write's
  // exit): 4 in 3.44 ms; each open 440 us of it.
  EXPECT_THAT(r.client.busy_s, DoubleNear(3440e-6, 1e-12));
  EXPECT_THAT(r.client.rate_per_s, DoubleNear(4 / 3440e-6, 1e-6));
  EXPECT_THAT(r.client.in_flight, DoubleNear(4 * 440.0 / 3440, 1e-9));
  // The first request byte is read from 50 (the read's enter) to 440.
  ASSERT_TRUE(r.client.response.has_value());
  EXPECT_THAT(r.client.response->mean_us, DoubleNear(390.0, 1e-9));
  EXPECT_THAT(r.client.response->stddev_us, DoubleNear(0.0, 1e-9));
}

TEST(RequestStatsTest, MergeEqualsAddingEverything) {
  StreamBuilder s;
  for (int i = 0; i < 6; ++i) {
    PhpFpmRequest(s, i * 1000.0, 0x100 + 2 * i, i % 2 == 1);
  }
  Profiler profiler;
  std::vector<Request> requests =
      test_support::RunEvents(profiler, s.InExitOrder());
  ASSERT_THAT(requests, SizeIs(6));
  RequestStats all, odd, even;
  for (size_t i = 0; i < requests.size(); ++i) {
    all.Add(requests[i]);
    (i % 2 ? odd : even).Add(requests[i]);
  }
  even.Merge(odd);
  Report x, y;
  all.Fill(&x);
  even.Fill(&y);
  EXPECT_THAT(ReportToJson(y), Eq(ReportToJson(x)));
  EXPECT_THAT(y.client.rate_per_s, DoubleEq(x.client.rate_per_s));
  EXPECT_THAT(y.client.response->mean_us, DoubleEq(x.client.response->mean_us));
  ASSERT_THAT(y.syscalls.size(), Eq(x.syscalls.size()));
  for (size_t i = 0; i < x.syscalls.size(); ++i) {
    EXPECT_THAT(y.syscalls[i].slept_us, DoubleEq(x.syscalls[i].slept_us));
  }
}

Request ForUrl(uint64_t id, const char* line, uint32_t pid, double total_us) {
  Request r = Answered(id, ConnReuse::kNew, total_us, false);
  if (line != nullptr) r.request_line = line;
  r.pid = pid;
  r.backend_pid = pid + 1000;
  return r;
}

TEST(KeyedGroupStatsTest, TopUrlsByTotalTimeThenOther) {
  KeyedGroupStats stats(GroupBy::kUrl);
  for (int i = 0; i < 10; ++i) stats.Add(ForUrl(i, "GET /a.php", 1, 100));
  for (int i = 0; i < 2; ++i) stats.Add(ForUrl(20 + i, "POST /b.php", 1, 800));
  stats.Add(ForUrl(30, "GET /c.php", 1, 50));
  stats.Add(ForUrl(31, nullptr, 1, 10));
  Report base;
  base.capture = {1.0, 100, 0};
  std::vector<GroupReport> groups = stats.Reports(base, 2);
  ASSERT_THAT(groups, SizeIs(3));
  // /b.php: 1600 us in all, /a.php: 1000 us; the rest is "other".
  EXPECT_THAT(groups[0].label, Eq("/b.php"));
  EXPECT_THAT(groups[0].url, Eq("/b.php"));
  EXPECT_THAT(groups[0].report.complete, Eq(2u));
  EXPECT_THAT(groups[1].label, Eq("/a.php"));
  EXPECT_THAT(groups[1].report.complete, Eq(10u));
  EXPECT_TRUE(groups[2].other);
  EXPECT_THAT(groups[2].other_groups, Eq(2u));
  EXPECT_THAT(groups[2].overflow_requests, Eq(0u));
  EXPECT_THAT(groups[2].report.complete, Eq(2u));
  EXPECT_THAT(groups[2].report.phases.total->mean_us, DoubleEq(30.0));
  std::string text =
      FormatGroupTableText(GroupKeys{false, false, GroupBy::kUrl}, groups);
  EXPECT_THAT(text, HasSubstr("requests by url"));
  EXPECT_THAT(text, HasSubstr("/b.php"));
  EXPECT_THAT(text, HasSubstr("60.2%"));  // 1600 of 2660 us
  EXPECT_THAT(text, HasSubstr("other: 2 group(s) past the top 2"));
  json j =
      GroupComparisonToJson(GroupKeys{false, false, GroupBy::kUrl}, groups, {});
  EXPECT_THAT(j["group_by"], Eq(json{"url"}));
  EXPECT_THAT(j["groups"][0]["url"], Eq("/b.php"));
  EXPECT_THAT(j["groups"][2]["other"], Eq(true));
  EXPECT_THAT(j["groups"][2]["other_groups"], Eq(2));
  EXPECT_THAT(j["comparisons"], SizeIs(0));
}

TEST(KeyedGroupStatsTest, KeysPastTheCapAreCountedInOther) {
  KeyedGroupStats stats(GroupBy::kUrl, /*max_keys=*/3);
  for (int i = 0; i < 10; ++i) {
    const std::string line = absl::StrCat("GET /page", i);
    stats.Add(ForUrl(i, line.c_str(), 1, 100 + i));
  }
  std::vector<GroupReport> groups = stats.Reports({}, 5);
  EXPECT_THAT(stats.overflow_requests(), Eq(7u));
  ASSERT_THAT(groups, SizeIs(4));  // the 3 tracked, then other
  EXPECT_THAT(groups[3].label, Eq("other"));
  EXPECT_THAT(groups[3].overflow_requests, Eq(7u));
  EXPECT_THAT(groups[3].report.complete, Eq(7u));
  uint64_t all = 0;
  for (const GroupReport& g : groups) all += g.report.complete;
  EXPECT_THAT(all, Eq(10u));  // nothing dropped
}

TEST(KeyedGroupStatsTest, ProcessesAreLabelledByNameAndPid) {
  KeyedGroupStats server(GroupBy::kServerProcess);
  KeyedGroupStats backend(GroupBy::kBackendProcess);
  for (const Request& r :
       {ForUrl(1, nullptr, 7, 100), ForUrl(2, nullptr, 7, 100),
        ForUrl(3, nullptr, 8, 50)}) {
    server.Add(r);
    backend.Add(r);
  }
  Request unmeasured = ForUrl(4, nullptr, 8, 40);
  unmeasured.backend_pid = 0;
  backend.Add(unmeasured);
  Report base;
  base.processes = {{7, "nginx", "server"}, {1007, "php-fpm8.2", "backend"}};
  std::vector<GroupReport> s = server.Reports(base, 5);
  ASSERT_THAT(s, SizeIs(2));
  EXPECT_THAT(s[0].label, Eq("nginx 7"));
  EXPECT_THAT(s[0].pid, Eq(7u));
  EXPECT_THAT(s[1].label, Eq("pid 8"));
  std::vector<GroupReport> b = backend.Reports(base, 5);
  ASSERT_THAT(b, SizeIs(3));
  EXPECT_THAT(b[0].label, Eq("php-fpm8.2 1007"));
  EXPECT_THAT(b[2].label, Eq("(backend not measured)"));
  EXPECT_THAT(b[2].pid, Eq(0u));
}

}  // namespace
}  // namespace reqcost::analyzers
