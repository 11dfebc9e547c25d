// `reqcost demo` runs to completion inside the test suite: real nginx,
// php-fpm and the sample backend, four ways, and leaves nothing running.
#include <signal.h>

#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

// The PIDs the demo says it started ("php-fpm 123, ... nginx 456 ...").
std::vector<pid_t> StartedPids(const std::string& out) {
  std::vector<pid_t> pids;
  std::regex started(R"((php-fpm|backend|nginx) (\d+))");
  std::string line = out.substr(0, out.find("attached to"));
  for (std::sregex_iterator it(line.begin(), line.end(), started), end;
       it != end; ++it) {
    pids.push_back(std::stoi((*it)[2]));
  }
  return pids;
}

const char* const kWays[] = {"client close, backend connection per request",
                             "client keep-alive, backend per request",
                             "client close, fastcgi_keep_conn",
                             "client keep-alive, fastcgi_keep_conn"};

// reqcost's counts on the lines that name `way` (every line if empty):
// "... reqcost: 300 complete, 0 incomplete".
std::vector<std::pair<int, int>> ReqcostCounts(const std::string& out,
                                               const std::string& way) {
  std::vector<std::pair<int, int>> counts;
  std::regex line(way + R"([^\n]*reqcost: (\d+) complete, (\d+) incomplete)");
  for (std::sregex_iterator it(out.begin(), out.end(), line), end; it != end;
       ++it) {
    counts.emplace_back(std::stoi((*it)[1]), std::stoi((*it)[2]));
  }
  return counts;
}

TEST(DemoTest, RunsFourWaysComparesAndStopsEverything) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-demo-test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<Subprocess> demo =
      Subprocess::Start({REQCOST_BINARY, "demo", "-n", "300"}, dir->File("out"),
                        dir->File("err"));
  ASSERT_TRUE(demo.ok()) << demo.status();
  absl::StatusOr<int> status = demo->WaitForExit(absl::Seconds(120));
  ASSERT_TRUE(status.ok()) << status.status();
  std::string out = ReadFileToString(dir->File("out")).value_or("");
  EXPECT_EQ(*status, 0) << out << FileTail(dir->File("err"));

  for (const char* way : kWays) {
    EXPECT_THAT(out, ContainsRegex(std::string(way) + " +ab: 300 requests"));
  }
  EXPECT_THAT(out, HasSubstr("compared with client close"));
  EXPECT_THAT(out, HasSubstr("the average request"));
  // The kernel counters line: "..., 0 dropped, ..." (not "10 dropped").
  EXPECT_THAT(out, ContainsRegex(R"(\), 0 dropped, )"));
  // reqcost's own counts, per way and for every run: each request ab made,
  // counted once and complete.
  for (const char* way : kWays) {
    std::vector<std::pair<int, int>> counts = ReqcostCounts(out, way);
    EXPECT_EQ(counts.size(), 1u) << way << "\n" << out;
    if (counts.size() != 1) continue;
    EXPECT_EQ(counts[0].first, 300) << way << "\n" << out;
    EXPECT_EQ(counts[0].second, 0) << way << "\n" << out;
  }
  for (const auto& [complete, incomplete] : ReqcostCounts(out, "")) {
    EXPECT_EQ(complete + incomplete, 300) << out;
  }
  EXPECT_THAT(out, HasSubstr("stopped nginx, php-fpm and the sample backend"));

  std::vector<pid_t> pids = StartedPids(out);
  EXPECT_EQ(pids.size(), 4u) << out;
  EXPECT_TRUE(WaitForGoneOrKill(pids, absl::Seconds(5)).ok())
      << "the demo left a server running";
}

TEST(DemoTest, RequestsOutOfRangeIsAUsageError) {
  absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-demo-test");
  ASSERT_TRUE(dir.ok());
  absl::StatusOr<Subprocess> demo = Subprocess::Start(
      {REQCOST_BINARY, "demo", "-n", "0"}, dir->File("out"), dir->File("err"));
  ASSERT_TRUE(demo.ok());
  absl::StatusOr<int> status = demo->WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(WEXITSTATUS(*status), 2);
  EXPECT_THAT(ReadFileToString(dir->File("err")).value_or(""),
              HasSubstr("--requests 0 is out of range"));
}

}  // namespace
}  // namespace reqcost::testing
