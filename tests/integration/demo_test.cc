// `reqcost demo` runs to completion inside the test suite: real nginx,
// php-fpm and the sample backend, four ways, and leaves nothing running.
#include <signal.h>

#include <regex>
#include <string>
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

TEST(DemoTest, RunsFourWaysComparesAndStopsEverything) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-demo-test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<Subprocess> demo = Subprocess::Start(
      {REQCOST_BINARY, "demo", "-n", "300"}, dir->File("out"), dir->File("err"));
  ASSERT_TRUE(demo.ok()) << demo.status();
  absl::StatusOr<int> status = demo->WaitForExit(absl::Seconds(120));
  ASSERT_TRUE(status.ok()) << status.status();
  std::string out = ReadFileToString(dir->File("out")).value_or("");
  EXPECT_EQ(*status, 0) << out << FileTail(dir->File("err"));

  for (const char* way :
       {"client close, backend connection per request",
        "client keep-alive, backend per request",
        "client close, fastcgi_keep_conn",
        "client keep-alive, fastcgi_keep_conn"}) {
    EXPECT_THAT(out, ContainsRegex(std::string(way) + " +ab: 300 requests"));
  }
  EXPECT_THAT(out, HasSubstr("compared with client close"));
  EXPECT_THAT(out, HasSubstr("the average request"));
  EXPECT_THAT(out, HasSubstr("0 dropped"));
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
