#include "analyzers/compare.h"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "analyzers/report.h"
#include "analyzers/request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {
namespace {

using ::nlohmann::json;
using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Optional;
using ::testing::SizeIs;

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
              Eq("B saves 60.0 us per request (20.0%) over A, mostly server "
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
                 "mostly server time (+50.0 us); the syscalls that changed "
                 "most per request: server close +29.7 us (0.01 -> 1.00 "
                 "calls), server accept4 +19.8 us (0.01 -> 1.00 calls)."));
}

TEST(CompareTest, UnderTwoPercentIsNoSignificantDifference) {
  Comparison c =
      Compare(MakeReport(200, 50, 50, 100, 100), MakeReport(203, 50, 50, 100, 100));
  EXPECT_THAT(c.phases[0].pct, Optional(DoubleEq(1.0)));
  EXPECT_THAT(c.verdict,
              Eq("No significant difference: a request takes 303.0 us in B "
                 "and 300.0 us in A (+1.0%, under 2%)."));
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
  EXPECT_THAT(keys, Eq(std::set<std::string>{"schema", "a", "b", "delta",
                                             "verdict"}));
  EXPECT_THAT(j["verdict"], Eq(c.verdict));
  EXPECT_THAT(j["schema"], Eq("reqcost.compare/2"));
  EXPECT_THAT(j["a"]["schema"], Eq("reqcost.report/2"));
  EXPECT_THAT(j["b"]["requests"]["complete"], Eq(100));
  std::set<std::string> phases;
  for (const auto& [k, v] : j["delta"].items()) {
    phases.insert(k);
    std::set<std::string> fields;
    for (const auto& [f, x] : v.items()) fields.insert(f);
    EXPECT_THAT(fields, Eq(std::set<std::string>{"mean_us", "pct"})) << k;
  }
  EXPECT_THAT(phases, Eq(std::set<std::string>{"total", "server", "transport",
                                               "backend", "queue", "tls"}));
  EXPECT_THAT(j["delta"]["total"],
              Eq(json{{"mean_us", -60.0}, {"pct", -20.0}}));
  EXPECT_TRUE(j["delta"]["queue"]["mean_us"].is_null());
}

TEST(CompareTest, TextHasBothSidesDeltasAndTheVerdict) {
  Comparison c =
      Compare(MakeReport(200, 50, 50, 100, 100), MakeReport(150, 45, 45, 1, 1));
  std::string text = FormatComparisonText(c);
  EXPECT_THAT(text, HasSubstr("-60.0 us (-20.0%)"));
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
              Eq("client reused saves 30.0 us per request (30.0%) over client "
                 "new, mostly server time (-30.0 us); the syscalls that "
                 "changed most per request: server accept4 -10.0 us (1.00 -> "
                 "0.00 calls)."));
  json j = GroupComparisonToJson(GroupKeys{true, false}, groups, cs);
  EXPECT_THAT(j["schema"], Eq("reqcost.compare-groups/2"));
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

}  // namespace
}  // namespace reqcost::analyzers
