#include "analyzers/render/format.h"

#include <set>
#include <string>
#include <vector>

#include "analyzers/profiler.h"
#include "analyzers/render/trace_export.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using ::nlohmann::json;
using ::reqcost::analyzers::test_support::At;
using ::reqcost::analyzers::test_support::RunEvents;
using ::reqcost::analyzers::test_support::StreamBuilder;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

std::set<std::string> Keys(const json& j) {
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  return keys;
}

// The timing fields of a phase; each phase also has its "count".
const std::set<std::string> kPhaseTimes = {"mean_us", "p50_us", "p90_us",
                                           "p99_us", "max_us"};
const std::set<std::string> kPhaseKeys = {"count",  "mean_us", "p50_us",
                                          "p90_us", "p99_us",  "max_us",
                                          "unknown"};
const std::set<std::string> kPhaseNames = {"total",   "server", "transport",
                                           "backend", "queue",  "tls"};

PhaseSummary Phase(double v) { return {1, v, v, v, v, v}; }

Report SampleReport() {
  Report r;
  r.capture = {10.0, 123456, 7};
  r.processes = {{9376, "nginx", "server"}, {9334, "php-fpm8.2", "backend"}};
  r.count = 5000;
  r.complete = 4998;
  r.incomplete = 2;
  r.rate_per_s = 500.0;
  r.backend_timing = "measured";
  r.phases.total = Phase(2000);
  r.phases.server = Phase(100);
  r.phases.transport = Phase(150);
  r.phases.backend = Phase(1750);
  r.syscalls = {{"accept4", "server", 5000, 12.5, 40.0}};
  r.timeline = {{"accept4", "server", "client", 12.5, 1.0},
                {"(work)", "backend", "", 20100.0, 1.0}};
  GroupSummary g;
  g.client_conn = "new";
  g.backend_conn = "reused";
  g.requests = 2500;
  g.phases.total = Phase(2100);
  r.groups = {g};
  return r;
}

TEST(ReportToJsonTest, MatchesTheReportSchemaFieldByField) {
  json j = ReportToJson(SampleReport());
  EXPECT_THAT(Keys(j),
              Eq(std::set<std::string>{"schema", "capture", "requests",
                                       "backend_timing", "phases", "syscalls",
                                       "groups", "timeline", "calls",
                                       "anomalies"}));
  EXPECT_THAT(j["schema"], Eq("reqcost.report/2"));

  EXPECT_THAT(Keys(j["capture"]),
              Eq(std::set<std::string>{"duration_s", "events", "dropped_events",
                                       "processes", "processes_not_listed",
                                       "socketpair_calls",
                                       "socketpair_ends_forgotten"}));
  EXPECT_THAT(j["capture"]["duration_s"], Eq(10.0));
  EXPECT_THAT(j["capture"]["events"], Eq(123456));
  EXPECT_THAT(j["capture"]["dropped_events"], Eq(7));
  ASSERT_THAT(j["capture"]["processes"], SizeIs(2));
  EXPECT_THAT(
      j["capture"]["processes"][1],
      Eq(json{{"pid", 9334}, {"comm", "php-fpm8.2"}, {"role", "backend"}}));

  EXPECT_THAT(j["requests"], Eq(json{{"count", 5000},
                                     {"complete", 4998},
                                     {"incomplete", 2},
                                     {"rate_per_s", 500.0},
                                     {"origins", json::object()}}));
  EXPECT_THAT(j["backend_timing"], Eq("measured"));

  EXPECT_THAT(Keys(j["phases"]), Eq(kPhaseNames));
  for (const auto& [name, phase] : j["phases"].items()) {
    EXPECT_THAT(Keys(phase), Eq(kPhaseKeys)) << name;
  }
  EXPECT_THAT(j["phases"]["backend"]["p99_us"], Eq(1750.0));
  EXPECT_TRUE(j["phases"]["backend"]["mean_us"].is_number_float());
  // No queue data: every field null, the shape stays.
  for (const auto& key : kPhaseTimes) {
    EXPECT_TRUE(j["phases"]["queue"][key].is_null()) << key;
  }
  EXPECT_THAT(j["phases"]["queue"]["count"], Eq(0));

  ASSERT_THAT(j["syscalls"], SizeIs(1));
  EXPECT_THAT(j["syscalls"][0], Eq(json{{"name", "accept4"},
                                        {"side", "server"},
                                        {"peer", nullptr},
                                        {"count", 5000},
                                        {"timed", 5000},
                                        {"mean_us", 12.5},
                                        {"p99_us", 40.0}}));

  ASSERT_THAT(j["groups"], SizeIs(1));
  EXPECT_THAT(Keys(j["groups"][0]),
              Eq(std::set<std::string>{"client_conn", "backend_conn",
                                       "requests", "phases"}));
  EXPECT_THAT(j["groups"][0]["client_conn"], Eq("new"));
  EXPECT_THAT(j["groups"][0]["backend_conn"], Eq("reused"));
  EXPECT_THAT(j["groups"][0]["requests"], Eq(2500));
  EXPECT_THAT(Keys(j["groups"][0]["phases"]), Eq(kPhaseNames));
  EXPECT_THAT(j["groups"][0]["phases"]["total"]["max_us"], Eq(2100.0));
  EXPECT_TRUE(j["groups"][0]["phases"]["server"]["max_us"].is_null());
}

TEST(ReportToJsonTest, EmptyReportHasNullPhasesAndEmptyLists) {
  Report r;
  r.backend_timing = "none";
  json j = ReportToJson(r);
  EXPECT_TRUE(j["phases"]["total"]["mean_us"].is_null());
  EXPECT_TRUE(j["syscalls"].is_array());
  EXPECT_TRUE(j["groups"].is_array());
  EXPECT_TRUE(j["capture"]["processes"].is_array());
  EXPECT_THAT(j["backend_timing"], Eq("none"));
}

Request SampleRequest() {
  Request q;
  q.id = 17;
  q.pid = 9376;
  q.backend_pid = 9334;
  q.client_conn = ConnReuse::kNew;
  q.backend_conn = ConnReuse::kReused;
  q.backend_timing = BackendTiming::kMeasured;
  q.request_line = "GET /index.php";
  q.start_ns = 5'000'000;
  q.complete = true;
  q.total_ns = 21'500;
  q.server_ns = 1'000;
  q.transport_ns = 500;
  q.backend_ns = 20'000;
  SyscallRecord read;
  read.syscall = Syscall::kRead;
  read.enter_ns = 5'000'000;
  read.exit_ns = 5'001'500;
  read.ret = 91;
  SyscallRecord accept;
  accept.syscall = Syscall::kAccept;
  accept.side = Side::kBackend;
  accept.enter_ns = 0;  // not seen
  accept.exit_ns = 5'002'000;
  accept.ret = 4;
  q.syscalls = {read, accept};
  return q;
}

TEST(RequestToJsonTest, HasTheJsonlFields) {
  json j = RequestToJson(SampleRequest());
  EXPECT_THAT(
      Keys(j),
      Eq(std::set<std::string>{
          "id", "pid", "origin", "client_conn", "backend_conn",
          "request_line",
          "start_ns", "total_us", "server_us", "transport_us", "backend_us",
          "queue_us", "tls_us", "span_us", "exchange_offset_us", "exchange_us",
          "backend_offset_us", "backend_timing", "complete", "syscalls",
          "backend_own_us", "calls", "peers"}));
  EXPECT_THAT(j["id"], Eq(17));
  EXPECT_THAT(j["pid"], Eq(9376));
  EXPECT_THAT(j["client_conn"], Eq("new"));
  EXPECT_THAT(j["backend_conn"], Eq("reused"));
  EXPECT_THAT(j["request_line"], Eq("GET /index.php"));
  EXPECT_THAT(j["start_ns"], Eq(5'000'000));
  EXPECT_THAT(j["total_us"], Eq(21.5));
  EXPECT_THAT(j["server_us"], Eq(1.0));
  EXPECT_THAT(j["transport_us"], Eq(0.5));
  EXPECT_THAT(j["backend_us"], Eq(20.0));
  EXPECT_TRUE(j["queue_us"].is_null());
  EXPECT_THAT(j["backend_timing"], Eq("measured"));
  EXPECT_THAT(j["complete"], Eq(true));
  ASSERT_THAT(j["syscalls"], SizeIs(2));
  EXPECT_THAT(j["syscalls"][0], Eq(json{{"name", "read"},
                                        {"side", "server"},
                                        {"peer", "client"},
                                        {"offset_us", 0.0},
                                        {"dur_us", 1.5},
                                        {"bytes", 91}}));
  EXPECT_THAT(j["syscalls"][1], Eq(json{{"name", "accept"},
                                        {"side", "backend"},
                                        {"peer", "client"},
                                        {"offset_us", 2.0},
                                        {"dur_us", nullptr},
                                        {"bytes", nullptr}}));
  // One line of jsonl: no newline inside.
  EXPECT_THAT(j.dump(), Not(HasSubstr("\n")));
}

TEST(RequestToJsonTest, IncompleteRequestHasNullPhasesAndTiming) {
  Request q = SampleRequest();
  q.complete = false;
  q.incomplete_reason = "events dropped";
  q.total_ns.reset();
  q.server_ns.reset();
  q.transport_ns.reset();
  q.backend_ns.reset();
  q.request_line.reset();
  json j = RequestToJson(q);
  EXPECT_TRUE(j["total_us"].is_null());
  EXPECT_TRUE(j["backend_us"].is_null());
  EXPECT_TRUE(j["backend_timing"].is_null());
  EXPECT_TRUE(j["request_line"].is_null());
  EXPECT_THAT(j["complete"], Eq(false));
}

TEST(FormatRequestLineTest, SaysWhereTheTimeWent) {
  EXPECT_THAT(FormatRequestLine(SampleRequest()),
              Eq("#17 pid 9376 GET /index.php (client new, backend reused): "
                 "total 21.5 us = server 1.0 us + transport 0.5 us + backend "
                 "20.0 us (measured)"));
  Request q = SampleRequest();
  q.complete = false;
  q.incomplete_reason = "still open at end";
  EXPECT_THAT(FormatRequestLine(q),
              HasSubstr(": incomplete, still open at end"));
}

TEST(FormatDurationTest, PicksAReadableUnit) {
  EXPECT_THAT(FormatDuration(12.34), Eq("12.3 us"));
  EXPECT_THAT(FormatDuration(20100), Eq("20.100 ms"));
  EXPECT_THAT(FormatDuration(2.5e6), Eq("2.500 s"));
}

TEST(FormatTextTest, PrintsHeaderPhaseTableAndAverageTimeline) {
  std::string text = FormatText(SampleReport());
  EXPECT_THAT(text, HasSubstr("requests: 5000 (4998 complete, 2 incomplete)"));
  EXPECT_THAT(text, HasSubstr("dropped: 7"));
  EXPECT_THAT(text, HasSubstr("backend timing: measured"));
  EXPECT_THAT(text, HasSubstr("  9376     nginx            server\n"));
  EXPECT_THAT(text, HasSubstr("  backend      1.750 ms"));
  EXPECT_THAT(text,
              HasSubstr("  server   accept4       12.5 us  x1.00  client\n"));
  EXPECT_THAT(text, HasSubstr("  backend  (work)      20.100 ms  x1.00\n"));
  EXPECT_THAT(text, HasSubstr("client new, backend reused: 2500 requests"));
}

TEST(FormatTextTest, EndToEndFromAProfiler) {
  StreamBuilder s;
  s.Accept(100, 8, 0, 10)
      .Read(100, 8, 50, 60, 100, "GET /x HTTP/1.1\r\n")
      .Write(100, 8, 100, 130, 500)
      .Close(100, 8, 200, 205);
  Profiler profiler;
  profiler.OnProcess({100, 1, "lighttpd", "/usr/sbin/lighttpd", 0});
  std::vector<Request> requests = RunEvents(profiler, s.InExitOrder());
  ASSERT_THAT(requests, SizeIs(1));
  Report report = profiler.BuildReport({1.0, 4, 0});
  std::string text = FormatText(report);
  EXPECT_THAT(text, HasSubstr("lighttpd"));
  EXPECT_THAT(text, HasSubstr("  server   accept4       10.0 us"));
  EXPECT_THAT(text, HasSubstr("  server   close          5.0 us"));
  json j = ReportToJson(report);
  EXPECT_THAT(j["phases"]["total"]["max_us"], Eq(95.0));
  EXPECT_THAT(j["backend_timing"], Eq("none"));
  EXPECT_THAT(RequestToJson(requests[0])["request_line"], Eq("GET /x"));
}

// The average request as the HTML waterfall reads it: each timeline line
// with its mean start and time per request, and the backend exchange.
TEST(ReportToJsonTest, TimelineHasTheAverageRequestAndItsExchange) {
  Report r = SampleReport();
  json j = ReportToJson(r);
  EXPECT_TRUE(j["timeline"]["exchange"].is_null());
  EXPECT_THAT(j["timeline"]["span_us"], Eq(0.0));
  ASSERT_THAT(j["timeline"]["lines"], SizeIs(2));
  EXPECT_THAT(j["timeline"]["lines"][0], Eq(json{{"name", "accept4"},
                                                 {"side", "server"},
                                                 {"peer", "client"},
                                                 {"offset_us", 0.0},
                                                 {"us_per_request", 12.5},
                                                 {"calls_per_request", 1.0},
                                                 {"timed", true}}));
  EXPECT_TRUE(j["timeline"]["lines"][1]["peer"].is_null());
  r.exchange = TimelineEntry{"(exchange)", "server", "backend", 30.0, 1.0, 4.0};
  j = ReportToJson(r);
  EXPECT_THAT(j["timeline"]["exchange"]["offset_us"], Eq(4.0));
  EXPECT_THAT(j["timeline"]["exchange"]["us_per_request"], Eq(30.0));
}

// A request through a backend: the exchange and the backend phase are
// placed on the request's time axis, in the report and in its jsonl line.
TEST(RequestToJsonTest, PlacesTheExchangeAndBackendOnTheRequestAxis) {
  StreamBuilder s;
  const auto link = test_support::UnixSock(0x10, 0x20);
  const auto side = test_support::UnixSock(0x20, 0x10);
  s.Accept(100, 8, 0, 10)
      .Read(100, 8, 20, 30, 100)
      .Connect(100, 9, 40, 50, link)
      .Add(Syscall::kAccept, 200, 3, 5, 0, 55, side)
      .Write(100, 9, 60, 70, 300, "", Syscall::kWritev, link)
      .Read(200, 5, 72, 80, 300, "", side)
      .Write(200, 5, 180, 190, 200, "", Syscall::kWrite, side)
      .Read(100, 9, 195, 200, 200, "", link)
      .Close(100, 9, 205, 210)
      .Close(200, 5, 206, 212)
      .Write(100, 8, 220, 230, 500)
      .Close(100, 8, 240, 245);
  Profiler profiler;
  std::vector<Request> requests = RunEvents(profiler, s.InExitOrder());
  ASSERT_THAT(requests, SizeIs(1));
  ASSERT_TRUE(requests[0].complete) << requests[0].incomplete_reason;
  json q = RequestToJson(requests[0]);
  // W runs from the server's connect to the end of its reply read; the
  // backend from its read of the request to its reply write.
  EXPECT_THAT(q["exchange_offset_us"], Eq(40.0));
  EXPECT_THAT(q["exchange_us"], Eq(160.0));
  EXPECT_THAT(q["backend_offset_us"], Eq(80.0));
  EXPECT_THAT(q["backend_us"], Eq(110.0));
  // From the accept's enter to the end of the client close.
  EXPECT_THAT(q["span_us"], Eq(245.0));
  json j = ReportToJson(profiler.BuildReport({1.0, 12, 0}));
  EXPECT_THAT(j["timeline"]["span_us"], Eq(245.0));
  EXPECT_THAT(j["timeline"]["exchange"]["offset_us"], Eq(40.0));
  EXPECT_THAT(j["timeline"]["exchange"]["us_per_request"], Eq(160.0));
  EXPECT_THAT(j["timeline"]["exchange"]["calls_per_request"], Eq(1.0));
}

// Found by profiler_fuzz: a process name is whatever bytes a process gave
// prctl(PR_SET_NAME) (or a capture file holds), and nlohmann::json threw on
// dumping one that is not UTF-8, killing `report --format json` and
// `timeline`. The report carries it as UTF-8, bad bytes as U+FFFD.
TEST(ReportToJsonTest, ProcessNameThatIsNotUtf8IsReplacedNotThrown) {
  StreamBuilder s;
  s.Accept(100, 8, 0, 10)
      .Read(100, 8, 50, 60, 100)
      .Write(100, 8, 100, 130, 500)
      .Close(100, 8, 200, 205);
  Profiler profiler;
  profiler.OnProcess({100, 1, "ngi\xffnx\xc3", "/usr/sbin/nginx", 0});
  std::vector<Request> requests = RunEvents(profiler, s.InExitOrder());
  Report report = profiler.BuildReport({1.0, 4, 0});
  ASSERT_THAT(report.processes, SizeIs(1));
  EXPECT_THAT(report.processes[0].comm, Eq("ngi\uFFFDnx\uFFFD"));
  std::string dumped;
  EXPECT_NO_THROW(dumped = ReportToJson(report).dump());
  EXPECT_THAT(dumped, HasSubstr("\"comm\":\"ngi\uFFFDnx\uFFFD\""));
  EXPECT_NO_THROW((void)ChromeTrace(requests, report.processes, At(0)).dump());
}

}  // namespace
}  // namespace reqcost::analyzers
