// `reqcost demo` runs to completion inside the test suite: real nginx,
// php-fpm and the sample backend, four ways, and leaves nothing running.
#include <dirent.h>
#include <signal.h>

#include <cstdio>

#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
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

// Whether a process named `comm` has `parent` as its parent (/proc).
bool HasChildNamed(pid_t parent, const std::string& comm) {
  DIR* d = opendir("/proc");
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const std::string stat =
        ReadFileToString("/proc/" + name + "/stat").value_or("");
    // "pid (comm) state ppid ...": comm may hold spaces; split at the last ')'.
    const size_t open = stat.find('(');
    const size_t close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2)
      continue;
    if (ppid == parent && stat.substr(open + 1, close - open - 1) == comm) {
      found = true;
      break;
    }
  }
  closedir(d);
  return found;
}

// --rounds R: the requests of each way are split over R interleaved rounds
// (the first takes the remainder) and added up.
TEST(DemoTest, RoundsSplitEachWaysRequests) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-demo-test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<Subprocess> demo = Subprocess::Start(
      {REQCOST_BINARY, "demo", "-n", "31", "--rounds", "3"}, dir->File("out"),
      dir->File("err"));
  ASSERT_TRUE(demo.ok()) << demo.status();
  absl::StatusOr<int> status = demo->WaitForExit(absl::Seconds(120));
  ASSERT_TRUE(status.ok()) << status.status();
  std::string out = ReadFileToString(dir->File("out")).value_or("");
  EXPECT_EQ(*status, 0) << out << FileTail(dir->File("err"));
  EXPECT_THAT(out, HasSubstr("  3 rounds; in each, every way runs in turn"));
  EXPECT_THAT(out, HasSubstr("31 requests each over 3 interleaved rounds"));
  // ab ran 11 + 10 + 10 per way, added up.
  for (const char* way : kWays) {
    EXPECT_THAT(out, ContainsRegex(std::string(way) + " +ab: 31 requests"));
    std::vector<std::pair<int, int>> counts = ReqcostCounts(out, way);
    ASSERT_EQ(counts.size(), 1u) << way << "\n" << out;
    EXPECT_EQ(counts[0].first + counts[0].second, 31) << way << "\n" << out;
  }
  std::vector<pid_t> pids = StartedPids(out);
  EXPECT_EQ(pids.size(), 4u) << out;
  EXPECT_TRUE(WaitForGoneOrKill(pids, absl::Seconds(5)).ok());

  // Out of range: a usage error naming the flag.
  absl::StatusOr<Subprocess> bad = Subprocess::Start(
      {REQCOST_BINARY, "demo", "--rounds", "0"}, dir->File("out0"),
      dir->File("err0"));
  ASSERT_TRUE(bad.ok());
  absl::StatusOr<int> bad_status = bad->WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(bad_status.ok());
  EXPECT_EQ(WEXITSTATUS(*bad_status), 2);
  EXPECT_THAT(ReadFileToString(dir->File("err0")).value_or(""),
              HasSubstr("--rounds"));
}

// Ctrl-C during a run: the demo stops after the way it is running, prints
// the summary of the ways that ran, stops every server it started and
// exits 0.
TEST(DemoTest, CtrlCStopsEverythingAndPrintsTheSummary) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-demo-test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  // Long enough that the signal lands in the middle of the rounds.
  absl::StatusOr<Subprocess> demo = Subprocess::Start(
      {REQCOST_BINARY, "demo", "-n", "20000", "--rounds", "2"},
      dir->File("out"), dir->File("err"));
  ASSERT_TRUE(demo.ok()) << demo.status();
  // The rounds have begun once ab runs as the demo's child (its stdout is
  // a file, so its lines arrive only at exit); then let the way run a while.
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool ab_running = false;
  while (!ab_running && absl::Now() < deadline) {
    ab_running = HasChildNamed(demo->pid(), "ab");
    if (!ab_running) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(ab_running) << "no ab under the demo within 60 s: "
                          << FileTail(dir->File("err"));
  absl::SleepFor(absl::Seconds(2));
  ASSERT_EQ(kill(demo->pid(), SIGINT), 0);
  // ab's run in progress ends at its own pace (its requests are bounded):
  // a generous bound.
  absl::StatusOr<int> status = demo->WaitForExit(absl::Seconds(120));
  ASSERT_TRUE(status.ok()) << status.status();
  const std::string out = ReadFileToString(dir->File("out")).value_or("");
  EXPECT_EQ(*status, 0) << out << FileTail(dir->File("err"));
  // Four ways and the sample backend: five in all, fewer ran.
  EXPECT_THAT(out, ContainsRegex(R"(interrupted: [1-4] of 5 ways ran)"));
  // The summary of the ways that ran: the table and an average request.
  EXPECT_THAT(out, HasSubstr("mean per request (complete requests)"));
  EXPECT_THAT(out, HasSubstr("the average request"));
  EXPECT_THAT(out, HasSubstr("rounds; in each"));
  EXPECT_THAT(out, HasSubstr("stopped nginx, php-fpm and the sample backend"));
  // The kernel counters line is printed whatever ran.
  EXPECT_THAT(out, ContainsRegex(R"(, [0-9]+ dropped, )"));
  std::vector<pid_t> pids = StartedPids(out);
  EXPECT_EQ(pids.size(), 4u) << out;
  EXPECT_TRUE(WaitForGoneOrKill(pids, absl::Seconds(5)).ok())
      << "the demo left a server running after Ctrl-C";
}

}  // namespace
}  // namespace reqcost::testing
