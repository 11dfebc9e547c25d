// The --html page rendered by a real headless browser, from synthetic event
// streams run through the real profiler: its DOM after the scripts ran (bars,
// labels, the phase numbers against the JSON report), its screenshot (not
// blank, the phase colours drawn), a narrow window, and a page that fetches
// nothing.
#include <cmath>
#include <cstdlib>
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

struct Profiled {
  Report report;
  std::vector<Request> slowest;
  uint64_t offered = 0;
};

Profiled Profile(const std::vector<double>& work_us, size_t keep) {
  StreamBuilder s;
  double t = 0;
  for (size_t k = 0; k < work_us.size(); ++k) {
    AddRequest(s, static_cast<int>(k), t, work_us[k]);
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
