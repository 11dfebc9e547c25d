// `report --html` and `compare --html` on captures of real nginx +
// php-fpm (hello.php over a unix socket), recorded by the reqcost binary with
// and without client keep-alive, rendered by a real headless browser. The
// page must carry exactly the JSON `--format json` prints, draw one bar and
// label per syscall line, show the phase totals of that JSON, show the
// slowest requests the jsonl output lists, and leave a screenshot that is
// not blank. Output paths that cannot be written exit as documented.
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/html/page_checks.h"
#include "tests/integration/profiled_run.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/browser.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;

constexpr int kRequests = 200;
constexpr int kSlowest = 5;

#define ASSERT_OK_AND_ASSIGN(lhs, expr)            \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

// The JSON a page embeds (its <script id="reqcost-data">).
absl::StatusOr<json> PageData(const std::string& html_path) {
  absl::StatusOr<std::string> page = ReadFileToString(html_path);
  if (!page.ok()) return page.status();
  const std::string open =
      "<script type=\"application/json\" id=\"reqcost-data\">";
  size_t a = page->find(open);
  size_t b = a == std::string::npos ? a : page->find("</script>", a);
  if (b == std::string::npos)
    return absl::NotFoundError("no data script in the page");
  try {
    return json::parse(page->substr(a + open.size(), b - a - open.size()));
  } catch (const json::exception& e) {
    return absl::InternalError(absl::StrCat("bad page data: ", e.what()));
  }
}

// Copies `path` to $REQCOST_KEEP_DIR/name when set (scripts/screenshot.sh).
void Keep(const std::string& path, const std::string& name) {
  const char* keep = std::getenv("REQCOST_KEEP_DIR");
  if (keep == nullptr || *keep == '\0') return;
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok() ||
      !WriteStringToFile(absl::StrCat(keep, "/", name), *text).ok()) {
    ADD_FAILURE() << "could not keep " << path << " in " << keep;
  }
}

// nginx + php-fpm, recorded twice (200 requests each, ab -c 1, --payload 64):
// A with a new client connection per request, B with keep-alive.
class HtmlIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!WhyNoBpf().empty()) return;
    absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-html");
    if (!dir.ok()) return Fail(dir.status());
    dir_ = new TempDir(*std::move(dir));
    absl::StatusOr<Server> fpm = StartPhpFpm(*dir_, {});
    if (!fpm.ok()) return Fail(fpm.status());
    NginxOptions nopts;
    nopts.upstream = fpm->address();
    absl::StatusOr<Server> nginx = StartNginx(*dir_, nopts);
    if (!nginx.ok()) return Fail(nginx.status());
    for (bool keepalive : {false, true}) {
      AbOptions ab;
      ab.url = nginx->Url("/hello.php");
      ab.requests = kRequests;
      ab.keepalive = keepalive;
      absl::StatusOr<Profiled> p =
          ProfileAb(*dir_, {nginx->pid(), fpm->pid()}, ab, {"--payload", "64"});
      if (!p.ok()) return Fail(p.status());
      if (p->ab.complete != kRequests) {
        return Fail(
            absl::InternalError(absl::StrCat("ab completed ", p->ab.complete)));
      }
      (keepalive ? capture_b_ : capture_a_) = new std::string(p->capture);
    }
    absl::Status s = nginx->Stop();
    if (s.ok()) s = fpm->Stop();
    if (!s.ok()) return Fail(s);
  }
  static void TearDownTestSuite() {
    delete capture_a_;
    delete capture_b_;
    delete setup_error_;
    delete dir_;
    capture_a_ = capture_b_ = setup_error_ = nullptr;
    dir_ = nullptr;
  }
  static void Fail(const absl::Status& status) {
    setup_error_ = new std::string(status.ToString());
  }
  void SetUp() override {
    REQCOST_REQUIRE_BPF_OR_SKIP();
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
    ASSERT_NE(capture_b_, nullptr);
    ASSERT_TRUE(FindHeadlessBrowser().ok()) << FindHeadlessBrowser().status();
  }

  static TempDir* dir_;
  static std::string* capture_a_;
  static std::string* capture_b_;
  static std::string* setup_error_;
};

TempDir* HtmlIntegrationTest::dir_ = nullptr;
std::string* HtmlIntegrationTest::capture_a_ = nullptr;
std::string* HtmlIntegrationTest::capture_b_ = nullptr;
std::string* HtmlIntegrationTest::setup_error_ = nullptr;

TEST_F(HtmlIntegrationTest, ReportPageShowsTheJsonReportAndTheSlowestRequests) {
  const std::string html = dir_->File("report.html");
  ASSERT_OK_AND_ASSIGN(
      run,
      RunReqcost(*dir_, {"report", *capture_a_, "--html", html, "--slowest",
                         std::to_string(kSlowest), "--force"}));
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("wrote " + html));
  EXPECT_THAT(
      run.out,
      HasSubstr("phases (complete requests)"));  // still the text output
  struct stat st;
  ASSERT_EQ(stat(html.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The page carries exactly what --format json prints.
  ASSERT_OK_AND_ASSIGN(
      js, RunReqcost(*dir_, {"report", *capture_a_, "--format", "json"}));
  ASSERT_EQ(js.code, 0) << js.err;
  json report = json::parse(js.out);
  ASSERT_OK_AND_ASSIGN(data, PageData(html));
  EXPECT_EQ(data["page"], "report");
  EXPECT_EQ(data["report"], report);
  ASSERT_GE(report["requests"]["complete"].get<int>(), kRequests - 1);

  // Its slowest requests are the slowest of the jsonl output, as printed.
  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(*capture_a_));
  std::vector<json> complete;
  for (const json& q : requests) {
    if (q["complete"] == true) complete.push_back(q);
  }
  std::stable_sort(
      complete.begin(), complete.end(), [](const json& a, const json& b) {
        return a["total_us"].get<double>() > b["total_us"].get<double>();
      });
  ASSERT_EQ(data["slowest"].size(), static_cast<size_t>(kSlowest));
  EXPECT_EQ(data["slowest_of"], complete.size());
  for (int i = 0; i < kSlowest; ++i)
    EXPECT_EQ(data["slowest"][i], complete[i]) << i;
  EXPECT_EQ(data["slowest"][0]["request_line"],
            "GET /hello.php");  // --payload 64

  ASSERT_OK_AND_ASSIGN(page, ReadFileToString(html));
  ExpectSelfContained(page);
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(*dir_, html));
  ExpectReportPage(dom, report, data["slowest"], "");
  // The real capture has the queue of a new backend connection per request.
  EXPECT_EQ(Count(SvgOf(dom, "average"), "class=\"band queue\""), 1u);

  const std::string png = dir_->File("report.png");
  BrowserOptions tall;
  tall.height = 1800;
  ASSERT_TRUE(Screenshot(*dir_, html, png, tall).ok());
  ExpectDrawn(png);
  Keep(html, "report.html");
  Keep(*capture_a_, "run.cap");
}

TEST_F(HtmlIntegrationTest, ComparePageShowsTheJsonComparisonSideBySide) {
  const std::string html = dir_->File("compare.html");
  ASSERT_OK_AND_ASSIGN(
      run, RunReqcost(*dir_, {"compare", *capture_a_, *capture_b_, "--html",
                              html, "--slowest", "3", "--force"}));
  ASSERT_EQ(run.code, 0) << run.err;
  ASSERT_OK_AND_ASSIGN(
      js, RunReqcost(*dir_, {"compare", *capture_a_, *capture_b_, "--format",
                             "json"}));
  ASSERT_EQ(js.code, 0) << js.err;
  json c = json::parse(js.out);
  ASSERT_OK_AND_ASSIGN(data, PageData(html));
  EXPECT_EQ(data["page"], "compare");
  EXPECT_EQ(data["compare"], c);
  EXPECT_EQ(data["a_slowest"].size(), 3u);
  EXPECT_EQ(data["b_slowest"].size(), 3u);
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(*dir_, html));
  ExpectComparePage(dom, c, data["a_slowest"], data["b_slowest"]);
  // The phase bars start about 880 px down the page, so a 900 px window cut
  // them off whenever the text above them took a line more.
  const std::string png = dir_->File("compare.png");
  BrowserOptions tall;
  tall.height = 1800;
  ASSERT_TRUE(Screenshot(*dir_, html, png, tall).ok());
  ExpectDrawn(png);
  Keep(html, "compare.html");
}

TEST_F(HtmlIntegrationTest, OutputPathsThatCannotBeWrittenExitAsDocumented) {
  const std::string& cap = *capture_a_;
  // A directory that does not exist: exit 1 before any work, nothing left.
  ASSERT_OK_AND_ASSIGN(missing,
                       RunReqcost(*dir_, {"report", cap, "--html",
                                          dir_->File("no/such/dir/r.html")}));
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err,
              HasSubstr("create " + dir_->File("no/such/dir/r.html") +
                        ": No such file or directory"));
  EXPECT_TRUE(missing.out.empty()) << "worked before failing: " << missing.out;
  // Under a regular file: exit 1.
  ASSERT_OK_AND_ASSIGN(notdir, RunReqcost(*dir_, {"compare", cap, cap, "--html",
                                                  cap + "/c.html"}));
  EXPECT_EQ(notdir.code, 1);
  EXPECT_THAT(notdir.err, HasSubstr(": Not a directory"));
  // An existing file: exit 2 and untouched, unless --force.
  const std::string existing = dir_->File("existing.html");
  ASSERT_TRUE(WriteStringToFile(existing, "keep me").ok());
  ASSERT_OK_AND_ASSIGN(exists,
                       RunReqcost(*dir_, {"report", cap, "--html", existing}));
  EXPECT_EQ(exists.code, 2);
  EXPECT_THAT(
      exists.err,
      HasSubstr("already exists; remove it, choose another path or pass "
                "--force to replace it"));
  EXPECT_EQ(ReadFileToString(existing).value_or(""), "keep me");
  ASSERT_OK_AND_ASSIGN(forced, RunReqcost(*dir_, {"report", cap, "--html",
                                                  existing, "--force"}));
  EXPECT_EQ(forced.code, 0) << forced.err;
  EXPECT_THAT(ReadFileToString(existing).value_or(""),
              HasSubstr("<!DOCTYPE html>"));
  // A bad capture: its own exit code (6), and no page left behind.
  const std::string bad = dir_->File("bad.cap");
  ASSERT_TRUE(WriteStringToFile(bad, "not a capture").ok());
  const std::string never = dir_->File("never.html");
  ASSERT_OK_AND_ASSIGN(bad_run,
                       RunReqcost(*dir_, {"report", bad, "--html", never}));
  EXPECT_EQ(bad_run.code, 6);
  struct stat st;
  EXPECT_NE(stat(never.c_str(), &st), 0) << "a failed run left " << never;
  // Flags out of range or that do not go together: exit 2.
  ASSERT_OK_AND_ASSIGN(
      grouped, RunReqcost(*dir_, {"report", cap, "--html", never, "--group-by",
                                  "client-conn"}));
  EXPECT_EQ(grouped.code, 2);
  EXPECT_THAT(grouped.err, HasSubstr("--html draws the whole capture"));
  ASSERT_OK_AND_ASSIGN(many, RunReqcost(*dir_, {"report", cap, "--html", never,
                                                "--slowest", "1001"}));
  EXPECT_EQ(many.code, 2);
}

}  // namespace
}  // namespace reqcost::testing
