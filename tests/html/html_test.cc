// The --html page rendered by a real headless browser, from synthetic event
// streams run through the real profiler: its DOM after the scripts ran (bars,
// labels, the phase numbers against the JSON report), its screenshot (not
// blank, the phase colours drawn), a narrow window, and a page that fetches
// nothing.
#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "analyzers/compare.h"
#include "analyzers/profiler.h"
#include "analyzers/render/compare_format.h"
#include "analyzers/render/format.h"
#include "analyzers/render/html_report.h"
#include "analyzers/slowest.h"
#include "nlohmann/json.hpp"
#include "tests/analyzers/stream_builder.h"
#include "tests/html/page_checks.h"
#include "tests/support/browser.h"

namespace reqcost::testing {
namespace {

using analyzers::Profiler;
using analyzers::Report;
using analyzers::Request;
using analyzers::test_support::StreamBuilder;
using analyzers::test_support::TcpSock;
using analyzers::test_support::UnixSock;
using ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

#define ASSERT_OK_AND_ASSIGN(lhs, expr)            \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

// One request of nginx (pid 100) through php-fpm (pid 200) on a new client
// connection and a new unix backend link, starting at `t` us, the backend
// working `work` us.
void AddRequest(StreamBuilder& s, int k, double t, double work) {
  const int32_t client = 10 + 3 * k, link = 11 + 3 * k, side = 12 + 3 * k;
  const auto link_sock = UnixSock(0x1000 + 2 * k, 0x2000 + 2 * k);
  const auto side_sock = UnixSock(0x2000 + 2 * k, 0x1000 + 2 * k);
  const double b = t + 75 + work;  // the backend's reply
  s.Accept(100, client, t, t + 10)
      .Read(100, client, t + 20, t + 30, 100)
      .Connect(100, link, t + 40, t + 50, link_sock)
      .Add(Syscall::kAccept, 200, 3, side, t + 38, t + 55, side_sock)
      .Write(100, link, t + 60, t + 70, 300, "", Syscall::kWritev, link_sock)
      .Read(200, side, t + 72, t + 75, 300, "", side_sock)
      .Write(200, side, b, b + 10, 200, "", Syscall::kWrite, side_sock)
      .Read(100, link, b + 15, b + 20, 200, "", link_sock)
      .Close(100, link, b + 25, b + 30)
      .Close(200, side, b + 26, b + 32)
      .Write(100, client, b + 40, b + 50, 500)
      .Close(100, client, b + 60, b + 65);
}

// The same request with php-fpm's calls while it works (`work` >= 1400 us):
// Redis on port 6379 (connect 10 us, then kGets GETs of 25 us each), then
// MariaDB on port 3306 (connect and greeting 30 us, then `query` whose
// reply takes `query_us`). With their payload, so the queries are named.
constexpr int kGets = 5;
const std::string kHostileQuery = "SELECT '</script><b id=\"x\">x</b>'";

void AddCalls(StreamBuilder& s, int k, double t, double query_us,
              const std::string& query) {
  const int32_t redis = 1000 + 2 * k, mysql = 1001 + 2 * k;
  const auto redis_sock = TcpSock(40000 + k, 6379, 0x5000 + k);
  const auto mysql_sock = TcpSock(41000 + k, 3306, 0x6000 + k);
  const std::string get = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
  s.Connect(200, redis, t + 80, t + 90, redis_sock);
  for (int i = 0; i < kGets; ++i) {
    const double at = t + 100 + 30 * i;
    s.Write(200, redis, at, at + 2, 20, get, Syscall::kSendto, redis_sock)
        .Read(200, redis, at + 2, at + 25, 5, "$-1\r\n", redis_sock);
  }
  std::string packet(4, '\0');
  packet[0] = static_cast<char>(query.size() + 1);
  packet += '\x03';
  packet += query;
  s.Connect(200, mysql, t + 300, t + 310, mysql_sock)
      .Read(200, mysql, t + 310, t + 330, 80, "", mysql_sock)
      .Write(200, mysql, t + 400, t + 402, packet.size(), packet,
             Syscall::kWrite, mysql_sock)
      .Read(200, mysql, t + 402, t + 400 + query_us, 40, "", mysql_sock)
      .Close(200, redis, t + 410 + query_us, t + 411 + query_us)
      .Close(200, mysql, t + 412 + query_us, t + 413 + query_us);
}

struct Profiled {
  Report report;
  std::vector<Request> slowest;
  uint64_t offered = 0;
};

// `query_us`, when given, is per request the MariaDB query's time of
// AddCalls (the last request's query is kHostileQuery).
Profiled Profile(const std::vector<double>& work_us, size_t keep,
                 const std::vector<double>& query_us = {}) {
  StreamBuilder s;
  double t = 0;
  for (size_t k = 0; k < work_us.size(); ++k) {
    AddRequest(s, static_cast<int>(k), t, work_us[k]);
    if (k < query_us.size()) {
      AddCalls(s, static_cast<int>(k), t, query_us[k],
               k + 1 == query_us.size() ? kHostileQuery
                                        : "SELECT SLEEP(0.004)");
    }
    t += work_us[k] + 500;
  }
  Profiler profiler;
  profiler.OnProcess({100, 1, "nginx", "/usr/sbin/nginx", 0});
  profiler.OnProcess({200, 1, "php-fpm8.2", "/usr/sbin/php-fpm8.2", 0});
  analyzers::SlowestRequests slowest(keep);
  std::vector<Request> all =
      analyzers::test_support::RunEvents(profiler, s.InExitOrder());
  for (const Request& r : all) slowest.Add(r);
  Profiled run;
  run.report = profiler.BuildReport({t / 1e6, s.events().size(), 0});
  run.slowest = slowest.Sorted();
  run.offered = slowest.offered();
  return run;
}

class HtmlPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> browser = FindHeadlessBrowser();
    ASSERT_TRUE(browser.ok()) << browser.status();
    absl::StatusOr<stack::TempDir> dir = stack::TempDir::Create("reqcost-html");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(*std::move(dir));
  }
  std::string Write(const std::string& name, const std::string& page) {
    std::string path = dir_->File(name);
    EXPECT_TRUE(stack::WriteStringToFile(path, page).ok());
    return path;
  }
  std::optional<stack::TempDir> dir_;
};

TEST_F(HtmlPageTest, ReportPageDrawsWaterfallsAndPhasesOfTheJson) {
  Profiled run = Profile({100, 400, 250, 900, 50, 300}, 3);
  ASSERT_EQ(run.report.complete, 6u);
  ASSERT_EQ(run.slowest.size(), 3u);
  json data = analyzers::ReportPageData("synthetic.cap", run.report,
                                        run.slowest, run.offered);
  std::string page = analyzers::HtmlPage("reqcost report synthetic.cap", data,
                                         analyzers::FormatText(run.report));
  ExpectSelfContained(page);
  std::string path = Write("report.html", page);
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(*dir_, path));
  ExpectReportPage(dom, data["report"], data["slowest"], "");
  // The slowest request is the one the backend worked 900 us on.
  EXPECT_EQ(run.slowest[0].backend_ns, 900'000u + 10'000u);

  std::string png = dir_->File("report.png");
  ASSERT_TRUE(Screenshot(*dir_, path, png).ok());
  ExpectDrawn(png);
}

TEST_F(HtmlPageTest, NarrowWindowGetsChartsThatFit) {
  Profiled run = Profile({100, 400, 250}, 2);
  json data = analyzers::ReportPageData("synthetic.cap", run.report,
                                        run.slowest, run.offered);
  std::string path =
      Write("narrow.html", analyzers::HtmlPage("narrow", data, ""));
  BrowserOptions narrow;
  narrow.width = 360;
  narrow.height = 1400;
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(*dir_, path, narrow));
  ExpectReportPage(dom, data["report"], data["slowest"], "");
  std::vector<int> widths = SvgWidths(dom);
  ASSERT_FALSE(widths.empty());
  for (int w : widths) EXPECT_LE(w, 360) << "an SVG wider than the window";
  std::string png = dir_->File("narrow.png");
  ASSERT_TRUE(Screenshot(*dir_, path, png, narrow).ok());
  ExpectDrawn(png);
}

// The compare page from the compare JSON: A and B per phase, the verdict,
// and, once compare carries them, each phase's interval and "clear" flag.
TEST_F(HtmlPageTest,
       ComparePageShowsBothSidesTheVerdictAndIntervalsWhenPresent) {
  Profiled a = Profile({300, 320, 310, 330}, 2);
  Profiled b = Profile({100, 120, 110, 900}, 2);
  analyzers::Comparison c = analyzers::Compare(a.report, b.report, "A", "B");
  json data = analyzers::ComparePageData("a.cap", "b.cap", c, a.slowest,
                                         a.offered, b.slowest, b.offered);
  // A comparison without intervals (a reqcost.compare/2 document): the
  // plain deltas, and no interval column.
  json without_ci = data;
  for (auto& [phase, delta] : without_ci["compare"]["delta"].items()) {
    delta.erase("ci95_us");
    delta.erase("clear");
  }
  std::string path = Write(
      "compare.html", analyzers::HtmlPage("reqcost compare", without_ci,
                                          analyzers::FormatComparisonText(c)));
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(*dir_, path));
  ExpectComparePage(dom, without_ci["compare"], without_ci["a_slowest"],
                    without_ci["b_slowest"]);
  EXPECT_THAT(dom, Not(HasSubstr("<th scope=\"col\">95% interval</th>")));
  EXPECT_THAT(dom, Not(HasSubstr("<td class=\"ci\">")));

  // With confidence intervals, as compare computes them: shown as given.
  ASSERT_TRUE(data["compare"]["delta"]["total"].contains("ci95_us"));
  json with_ci = data;
  with_ci["compare"]["delta"]["total"]["ci95_us"] = {-12.5, 30.25};
  with_ci["compare"]["delta"]["total"]["clear"] = false;
  with_ci["compare"]["delta"]["backend"]["ci95_us"] = {-250.0, -120.0};
  with_ci["compare"]["delta"]["backend"]["clear"] = true;
  path = Write("compare-ci.html",
               analyzers::HtmlPage("reqcost compare", with_ci, ""));
  ASSERT_OK_AND_ASSIGN(dom_ci, DumpDom(*dir_, path));
  ExpectComparePage(dom_ci, with_ci["compare"], with_ci["a_slowest"],
                    with_ci["b_slowest"]);
  EXPECT_THAT(dom_ci, HasSubstr("<th scope=\"col\">95% interval</th>"));
  EXPECT_THAT(dom_ci, HasSubstr("[-12.5 us, +30.3 us]"));
  EXPECT_THAT(dom_ci, HasSubstr(">~ no clear difference</td>"));
  EXPECT_THAT(dom_ci, HasSubstr("[-250.0 us, -120.0 us]"));

  std::string png = dir_->File("compare.png");
  ASSERT_TRUE(Screenshot(*dir_, path, png).ok());
  ExpectDrawn(png);
}

// The attribute `name` of the element whose opening tag is `tag`, as a
// number.
double Attr(const std::string& tag, const std::string& name) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(
      tag, m, std::regex(absl::StrCat(" ", name, "=\"([-0-9.e+]+)\""))))
      << name << " in " << tag;
  return m.empty() ? NAN : std::strtod(m[1].str().c_str(), nullptr);
}

// Every opening tag in `scope` that starts with `start` ("<rect class=\"call\"").
std::vector<std::string> Tags(const std::string& scope,
                              const std::string& start) {
  std::vector<std::string> out;
  for (size_t at = scope.find(start); at != std::string::npos;
       at = scope.find(start, at + 1)) {
    out.push_back(scope.substr(at, scope.find('>', at) - at + 1));
  }
  return out;
}

// A backend's calls: each request's calls drawn inside its backend bar at
// their own start and end, coloured by peer, its own time written out; the
// per-peer table and the slowest queries with the report's numbers; a
// query is text, never markup.
TEST_F(HtmlPageTest, BackendCallsAreBarsInsideTheBackendAndTablesOfPeers) {
  const std::vector<double> work = {1500, 1600, 1700, 1800, 1900, 2000};
  const std::vector<double> query = {400, 500, 600, 700, 800, 900};
  Profiled run = Profile(work, 3, query);
  ASSERT_EQ(run.report.complete, 6u);
  ASSERT_EQ(run.slowest.size(), 3u);
  json data = analyzers::ReportPageData("calls.cap", run.report, run.slowest,
                                        run.offered);
  const json& calls = data["report"]["calls"];
  ASSERT_EQ(calls["peers"].size(), 2u) << calls.dump();
  std::string page = analyzers::HtmlPage("calls", data,
                                         analyzers::FormatText(run.report));
  ExpectSelfContained(page);
  std::string path = Write("calls.html", page);
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(*dir_, path));
  ExpectReportPage(dom, data["report"], data["slowest"], "");

  // The per-peer table: backend own, then each peer with its mean, p50 and
  // p99 per request and its calls per request, as the JSON has them and as
  // the stream made them (Redis: 10 + 5 x 25 us in 6 calls; MariaDB: 30 us
  // + the query in 2 calls).
  std::string table = Between(dom, "<table class=\"calls\"", "</table>");
  ASSERT_FALSE(table.empty());
  std::map<std::string, double> expected_mean = {
      {"redis:127.0.0.1:6379", 10 + kGets * 25},
      {"mysql:127.0.0.1:3306", 30 + 650}};
  std::map<std::string, double> expected_per_request = {
      {"redis:127.0.0.1:6379", 1 + kGets}, {"mysql:127.0.0.1:3306", 2}};
  for (const json& p : calls["peers"]) {
    const std::string peer = p["peer"];
    SCOPED_TRACE(peer);
    std::string row = Between(
        table, absl::StrCat("<tr data-peer=\"", peer, "\""), "</tr>");
    ASSERT_FALSE(row.empty());
    EXPECT_DOUBLE_EQ(Attr(row, "data-mean-us"),
                     p["time"]["mean_us"].get<double>());
    EXPECT_DOUBLE_EQ(Attr(row, "data-p50-us"),
                     p["time"]["p50_us"].get<double>());
    EXPECT_DOUBLE_EQ(Attr(row, "data-p99-us"),
                     p["time"]["p99_us"].get<double>());
    EXPECT_NEAR(p["time"]["mean_us"].get<double>(), expected_mean[peer], 1e-6);
    EXPECT_DOUBLE_EQ(Attr(row, "data-calls-per-request"),
                     expected_per_request[peer]);
    EXPECT_THAT(row, HasSubstr(absl::StrFormat(
                         "data-field=\"calls_per_request\">%.2f<",
                         expected_per_request[peer])));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(
        row, m, std::regex("data-field=\"mean_us\">([^<]+)<")));
    EXPECT_NEAR(DisplayedUs(m[1].str()), expected_mean[peer], 0.051);
  }
  // Backend own: backend (work + 10 us) less the calls, which do not
  // overlap.
  double own_sum = 0;
  for (size_t k = 0; k < work.size(); ++k) {
    own_sum += work[k] + 10 - (10 + kGets * 25) - (30 + query[k]);
  }
  std::string own_row = Between(table, "<tr data-peer=\"(own)\"", "</tr>");
  ASSERT_FALSE(own_row.empty());
  EXPECT_NEAR(Attr(own_row, "data-mean-us"), own_sum / work.size(), 1e-6);
  EXPECT_DOUBLE_EQ(Attr(own_row, "data-mean-us"),
                   calls["backend_own"]["mean_us"].get<double>());

  // The slowest queries (GETs are named by their command), slowest first:
  // the last request's query, as text.
  std::string slow =
      Between(dom, "<table class=\"slowest-queries\"", "</table>");
  ASSERT_FALSE(slow.empty());
  std::vector<std::string> rows = Tags(slow, "<tr data-us=");
  ASSERT_EQ(rows.size(), calls["slowest"].size());
  ASSERT_FALSE(rows.empty());
  EXPECT_DOUBLE_EQ(Attr(rows[0], "data-us"), query.back());
  EXPECT_EQ(Attr(rows[0], "data-request-id"),
            calls["slowest"][0]["request_id"].get<double>());
  EXPECT_EQ(calls["slowest"][0]["query"], kHostileQuery);
  EXPECT_THAT(slow, HasSubstr(EscapedText(kHostileQuery)));
  for (size_t i = 1; i < rows.size(); ++i) {
    EXPECT_GE(Attr(rows[i - 1], "data-us"), Attr(rows[i], "data-us"));
  }
  // The hostile query made no element anywhere.
  EXPECT_THAT(dom, Not(HasSubstr("<b id=\"x\">")));

  // Each slowest request's waterfall: one bar per call inside the backend
  // bar, at the call's start and end, in its peer's colour; the tooltip
  // names the peer, the protocol and the query; backend own written out.
  for (const json& q : data["slowest"]) {
    SCOPED_TRACE(absl::StrCat("request ", q["id"].get<uint64_t>()));
    std::string svg = SvgOf(dom, absl::StrCat(q["id"].get<uint64_t>()));
    ASSERT_FALSE(svg.empty());
    std::vector<std::string> bars = Tags(svg, "<rect class=\"call\"");
    ASSERT_EQ(bars.size(), q["calls"].size());
    ASSERT_EQ(bars.size(), static_cast<size_t>(1 + kGets + 2));
    std::vector<std::string> band =
        Tags(svg, "<rect class=\"band lane-backend\"");
    ASSERT_EQ(band.size(), 1u);
    const double band_x = Attr(band[0], "x"), band_w = Attr(band[0], "width");
    const double backend_start = q["backend_offset_us"].get<double>();
    const double backend_end = backend_start + q["backend_us"].get<double>();
    std::map<std::string, std::string> fill_of;
    for (size_t i = 0; i < bars.size(); ++i) {
      const json& c = q["calls"][i];
      const std::string& bar = bars[i];
      EXPECT_DOUBLE_EQ(Attr(bar, "data-start-us"), c["offset_us"].get<double>());
      EXPECT_NEAR(Attr(bar, "data-end-us"),
                  c["offset_us"].get<double>() + c["dur_us"].get<double>(),
                  1e-9);
      EXPECT_GE(Attr(bar, "data-start-us"), backend_start);
      EXPECT_LE(Attr(bar, "data-end-us"), backend_end + 1e-9);
      EXPECT_GE(Attr(bar, "x"), band_x - 0.01);
      EXPECT_LE(Attr(bar, "x") + Attr(bar, "width"), band_x + band_w + 0.01);
      EXPECT_THAT(bar, HasSubstr(absl::StrCat(
                           "data-peer=\"", c["peer"].get<std::string>(), "\"")));
      std::smatch m;
      ASSERT_TRUE(std::regex_search(bar, m, std::regex("fill=\"(#[0-9a-f]+)\"")));
      auto [it, fresh] = fill_of.emplace(c["peer"], m[1].str());
      EXPECT_EQ(it->second, m[1].str()) << "one peer, two colours";
    }
    ASSERT_EQ(fill_of.size(), 2u);
    EXPECT_NE(fill_of["redis:127.0.0.1:6379"], fill_of["mysql:127.0.0.1:3306"]);
    EXPECT_THAT(svg, HasSubstr("<title>redis:127.0.0.1:6379 (redis): GET: 25.0 us"));
    EXPECT_THAT(svg, HasSubstr("<title>mysql:127.0.0.1:3306 (mysql): "));
    // The line under the request's title: each peer's time and calls.
    std::string article = Between(
        dom, absl::StrCat("<article class=\"req\" data-id=\"",
                          q["id"].get<uint64_t>(), "\""),
        "</article>");
    std::vector<std::string> peer_times =
        Tags(article, "<span class=\"peer-time\"");
    ASSERT_EQ(peer_times.size(), q["peers"].size());
    for (size_t i = 0; i < peer_times.size(); ++i) {
      EXPECT_DOUBLE_EQ(Attr(peer_times[i], "data-us"),
                       q["peers"][i]["us"].get<double>());
      EXPECT_EQ(Attr(peer_times[i], "data-calls"),
                q["peers"][i]["calls"].get<double>());
    }
    std::vector<std::string> own = Tags(svg, "<text class=\"value own\"");
    ASSERT_EQ(own.size(), 1u);
    EXPECT_DOUBLE_EQ(Attr(own[0], "data-own-us"),
                     q["backend_own_us"].get<double>());
  }
  // The slowest request holds the hostile query, escaped in its tooltip.
  EXPECT_THAT(SvgOf(dom, absl::StrCat(data["slowest"][0]["id"].get<uint64_t>())),
              HasSubstr(EscapedText(kHostileQuery)));

  std::string png = dir_->File("calls.png");
  ASSERT_TRUE(Screenshot(*dir_, path, png).ok());
  ExpectDrawn(png);
  // compare: each side has its calls table.
  analyzers::Comparison c =
      analyzers::Compare(run.report, run.report, "A", "B");
  json cdata = analyzers::ComparePageData("a.cap", "b.cap", c, run.slowest,
                                          run.offered, run.slowest,
                                          run.offered);
  std::string cpath =
      Write("calls-compare.html", analyzers::HtmlPage("compare", cdata, ""));
  ASSERT_OK_AND_ASSIGN(cdom, DumpDom(*dir_, cpath));
  ExpectComparePage(cdom, cdata["compare"], cdata["a_slowest"],
                    cdata["b_slowest"]);
  for (const char* side : {"A", "B"}) {
    std::string calls_of = Between(
        cdom, absl::StrCat("<section class=\"calls\" data-side=\"", side),
        "</table>");
    EXPECT_EQ(Count(calls_of, "<tr data-peer="), 3u) << side;  // own + 2
  }
  EXPECT_EQ(Count(cdom, "<rect class=\"call\""),
            2 * 3 * static_cast<size_t>(1 + kGets + 2));

  // To look at the page: REQCOST_KEEP_DIR=DIR keeps it and its screenshot.
  if (const char* keep = std::getenv("REQCOST_KEEP_DIR")) {
    for (const char* name : {"calls.html", "calls.png"}) {
      absl::StatusOr<std::string> text =
          stack::ReadFileToString(dir_->File(name));
      ASSERT_TRUE(text.ok());
      ASSERT_TRUE(stack::WriteStringToFile(absl::StrCat(keep, "/", name),
                                           *text)
                      .ok());
    }
  }
}

// A request line is data, not markup: it cannot end the data <script>.
TEST_F(HtmlPageTest, RequestLinesCannotBreakOutOfThePage) {
  Profiled run = Profile({100}, 1);
  ASSERT_EQ(run.slowest.size(), 1u);
  run.slowest[0].request_line =
      "GET /</script><script>document.title='x'</script>";
  json data = analyzers::ReportPageData("<b>cap</b>", run.report, run.slowest,
                                        run.offered);
  std::string page = analyzers::HtmlPage("<b>title</b>", data, "<pre>");
  EXPECT_THAT(page, Not(HasSubstr("</script><script>document")));
  std::string path = Write("escape.html", page);
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(*dir_, path));
  EXPECT_THAT(dom, HasSubstr("data-rendered=\"ok\""));
  EXPECT_THAT(dom, HasSubstr("&lt;/script&gt;&lt;script&gt;document.title"));
  EXPECT_THAT(dom, HasSubstr("<title>&lt;b&gt;title&lt;/b&gt;</title>"));
}

}  // namespace
}  // namespace reqcost::testing
