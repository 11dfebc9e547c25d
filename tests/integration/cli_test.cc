// Runs the reqcost binary as a user would: exit codes, messages, and that
// nothing stays loaded whichever way it ends.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/bpf_objects.h"
#include "tests/support/require_bpf.h"

namespace {

using ::reqcost::testing::AllGoneWithin;
using ::reqcost::testing::BpfObjectIds;
using ::reqcost::testing::BpfObjectsHeldBy;
using ::reqcost::testing::StillLoaded;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

struct Child {
  pid_t pid = -1;
  std::string out_path, err_path;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Starts `binary` with `args`, stdout and stderr to temp files; as `uid`
// when not -1.
Child Spawn(const std::vector<std::string>& args, uid_t uid = -1,
            const char* binary = REQCOST_BINARY) {
  static int counter = 0;
  Child c;
  std::string base = "/tmp/reqcost-cli-" + std::to_string(getpid()) + "-" +
                     std::to_string(counter++);
  c.out_path = base + ".out";
  c.err_path = base + ".err";
  c.pid = fork();
  if (c.pid == 0) {
    int out = open(c.out_path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    int err = open(c.err_path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(out, 1);
    dup2(err, 2);
    if (uid != static_cast<uid_t>(-1) &&
        (setgid(uid) != 0 || setuid(uid) != 0)) {
      _exit(99);
    }
    std::vector<char*> argv = {const_cast<char*>(binary)};
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary, argv.data());
    _exit(98);
  }
  return c;
}

// Waits (bounded) and returns the exit code, or -1 on timeout (then kills).
int Wait(const Child& c, int timeout_s = 30) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(c.pid, SIGKILL);
  waitpid(c.pid, &status, 0);
  return -1;
}

struct Result {
  int code;
  std::string out, err;
};

Result RunReqcost(const std::vector<std::string>& args, uid_t uid = -1,
                  const char* binary = REQCOST_BINARY) {
  Child c = Spawn(args, uid, binary);
  int code = Wait(c);
  Result r{code, Slurp(c.out_path), Slurp(c.err_path)};
  unlink(c.out_path.c_str());
  unlink(c.err_path.c_str());
  return r;
}

bool WaitForText(const std::string& path, const std::string& text,
                 int timeout_s) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Slurp(path).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// A process to attach to, stopped by PID in the destructor.
class Sleeper {
 public:
  Sleeper() {
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sleep", "sleep", "60", nullptr);
      _exit(97);
    }
  }
  ~Sleeper() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::string pid() const { return std::to_string(pid_); }

 private:
  pid_t pid_;
};

TEST(CliTest, CheckPassesOnThisMachine) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  Result r = RunReqcost({"check"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("load and attach"));
  EXPECT_THAT(r.out, Not(HasSubstr("FAIL")));
}

TEST(CliTest, AttachWithDurationReportsAndDetaches) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  Sleeper target;
  Child c =
      Spawn({"attach", "-p", target.pid(), "--duration", "2s", "--events"});
  ASSERT_TRUE(WaitForText(c.err_path, "attached to 1 processes", 20))
      << Slurp(c.err_path);
  BpfObjectIds held = BpfObjectsHeldBy(c.pid);
  EXPECT_GE(held.programs.size(), reqcost::testing::kDefaultPrograms);
  EXPECT_EQ(Wait(c), 0) << Slurp(c.err_path);
  EXPECT_THAT(Slurp(c.out_path), HasSubstr("0 dropped, 0 unpaired"));
  EXPECT_TRUE(AllGoneWithin(held, 5));
  unlink(c.out_path.c_str());
  unlink(c.err_path.c_str());
}

class CliSignalTest : public ::testing::TestWithParam<int> {};

TEST_P(CliSignalTest, SignalEndsAttachCleanlyWithItsSummary) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  Sleeper target;
  Child c = Spawn({"attach", "-p", target.pid()});
  ASSERT_TRUE(WaitForText(c.err_path, "attached to", 20)) << Slurp(c.err_path);
  BpfObjectIds held = BpfObjectsHeldBy(c.pid);
  EXPECT_GE(held.programs.size(), reqcost::testing::kDefaultPrograms);
  EXPECT_TRUE(StillLoaded(held).programs.size() == held.programs.size());
  kill(c.pid, GetParam());
  EXPECT_EQ(Wait(c, 10), 0) << Slurp(c.err_path);
  EXPECT_THAT(Slurp(c.out_path), HasSubstr("dropped"));
  EXPECT_TRUE(AllGoneWithin(held, 5));
  unlink(c.out_path.c_str());
  unlink(c.err_path.c_str());
}

INSTANTIATE_TEST_SUITE_P(IntAndTerm, CliSignalTest,
                         ::testing::Values(SIGINT, SIGTERM));

TEST(CliTest, UnknownPidIsExitThreeWithTheReason) {
  Result r = RunReqcost({"attach", "-p", "999999999", "--duration", "1s"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("PID 999999999 does not exist"));
}

TEST(CliTest, KernelThreadIsRefused) {
  Result r = RunReqcost({"attach", "-p", "2", "--duration", "1s"});  // kthreadd
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("kernel thread"));
}

TEST(CliTest, FlagsOutOfRangeAreUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<Case> cases = {
      {{"--payload", "257"}, "--payload 257 is out of range"},
      {{"--ring-buffer", "5000"}, "--ring-buffer 5000 is out of range"},
      {{"--ring-buffer", "1024"}, "--ring-buffer 1024 is out of range"},
      {{"--duration", "soon"}, "--duration soon is not a duration"},
      {{"--duration", "-1s"}, "--duration -1s is out of range"},
      {{"--duration", "9999h"}, "--duration 9999h is out of range"},
  };
  Sleeper target;
  for (const Case& c : cases) {
    std::vector<std::string> args = {"attach", "-p", target.pid()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Result r = RunReqcost(args);
    EXPECT_EQ(r.code, 2) << c.says << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.says));
  }
}

TEST(CliTest, MissingPidAndUnknownCommandAreUsageErrors) {
  EXPECT_EQ(RunReqcost({"attach"}).code, 2);
  EXPECT_EQ(RunReqcost({"frobnicate"}).code, 2);
  EXPECT_EQ(RunReqcost({"attach", "-p", "abc"}).code, 2);
}

TEST(CliTest, WithoutPrivilegesSaysToUseSudo) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to nobody";
  // The build tree may sit in a directory only root can enter (a mktemp -d
  // clone): give nobody a copy it can run.
  char dir[] = "/tmp/reqcost-nobody-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  ASSERT_EQ(chmod(dir, 0755), 0);
  std::string copy = std::string(dir) + "/reqcost";
  ASSERT_EQ(system(("cp " + std::string(REQCOST_BINARY) + " " + copy +
                    " && chmod 0755 " + copy)
                       .c_str()),
            0);
  Sleeper target;
  Result r = RunReqcost({"attach", "-p", target.pid(), "--duration", "1s"},
                        65534, copy.c_str());
  unlink(copy.c_str());
  rmdir(dir);
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_THAT(r.err, HasSubstr("needs root or CAP_BPF+CAP_PERFMON"));
}

}  // namespace
