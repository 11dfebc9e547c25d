#include "collector/proc.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace reqcost::collector {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

// A fake /proc: each process a directory with stat (and status).
class FakeProc {
 public:
  FakeProc() {
    char tmpl[] = "/tmp/reqcost-fakeproc-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  ~FakeProc() { fs::remove_all(root_); }

  // flags: field 9 of stat; start: field 22, in clock ticks.
  void Add(int pid, int ppid, const std::string& comm, unsigned long flags = 0,
           int tgid = 0, unsigned long start = 100) {
    fs::create_directories(Dir(pid));
    std::ofstream(Dir(pid) + "/stat")
        << pid << " (" << comm << ") S " << ppid << " " << pid << " " << pid
        << " 0 -1 " << flags << " 0 0 0 0 0 0 0 0 20 0 1 0 " << start
        << " 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n";
    std::ofstream(Dir(pid) + "/status")
        << "Name:\t" << comm << "\nTgid:\t" << (tgid ? tgid : pid) << "\n";
  }
  const std::string& root() const { return root_; }

 private:
  std::string Dir(int pid) const { return root_ + "/" + std::to_string(pid); }
  std::string root_;
};

TEST(ProcFsTest, ReadsCommParentAndStartTime) {
  FakeProc proc;
  proc.Add(42, 1, "nginx: worker process", 0, 0, 250);
  absl::StatusOr<ProcessInfo> info = ProcFs(proc.root()).ReadProcess(42);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->pid, 42u);
  EXPECT_EQ(info->ppid, 1u);
  EXPECT_EQ(info->comm, "nginx: worker process");
  EXPECT_EQ(info->start_ns, 250 * (1000000000ull / ClockTicksPerSecond()));
}

TEST(ProcFsTest, CommWithParenthesesParses) {
  FakeProc proc;
  proc.Add(7, 1, "a) b (c");
  absl::StatusOr<ProcessInfo> info = ProcFs(proc.root()).ReadProcess(7);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->comm, "a) b (c");
}

TEST(ProcFsTest, MissingPidIsNotFound) {
  FakeProc proc;
  absl::StatusOr<ProcessInfo> info = ProcFs(proc.root()).ReadProcess(4242);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(info.status().message(), HasSubstr("PID 4242 does not exist"));
}

TEST(ProcFsTest, KernelThreadIsRefused) {
  FakeProc proc;
  proc.Add(2, 0, "kthreadd", 0x00200000);
  absl::StatusOr<ProcessInfo> info = ProcFs(proc.root()).ReadProcess(2);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("kernel thread"));
}

TEST(ProcFsTest, ThreadIdIsRefusedNamingItsProcess) {
  FakeProc proc;
  proc.Add(51, 1, "php-fpm", 0, /*tgid=*/50);
  absl::StatusOr<ProcessInfo> info = ProcFs(proc.root()).ReadProcess(51);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(info.status().message(), HasSubstr("thread of process 50"));
}

TEST(ProcFsTest, DescendantsAreFoundAtEveryDepthAndOnlyOnce) {
  FakeProc proc;
  proc.Add(1, 0, "init");
  proc.Add(10, 1, "nginx");    // root given
  proc.Add(11, 10, "nginx");   // child
  proc.Add(12, 11, "helper");  // grandchild
  proc.Add(20, 1, "php-fpm");  // root given
  proc.Add(21, 20, "php-fpm");
  proc.Add(30, 1, "unrelated");
  proc.Add(31, 30, "unrelated");
  absl::StatusOr<std::vector<ProcessInfo>> all =
      ProcFs(proc.root()).WithDescendants({10, 20, 10});
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<uint32_t> pids;
  for (const ProcessInfo& p : *all) pids.push_back(p.pid);
  std::sort(pids.begin(), pids.end());
  EXPECT_THAT(pids, ElementsAre(10, 11, 12, 20, 21));
  EXPECT_THAT((*all)[0], Field(&ProcessInfo::pid, 10u));
}

TEST(ProcFsTest, DescendantsOfMissingRootIsNotFound) {
  FakeProc proc;
  proc.Add(1, 0, "init");
  EXPECT_EQ(ProcFs(proc.root()).WithDescendants({1, 99}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ProcFsTest, LiveProcFsFindsThisProcessAndItsExe) {
  absl::StatusOr<ProcessInfo> self = ProcFs().ReadProcess(getpid());
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_EQ(self->pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(self->ppid, static_cast<uint32_t>(getppid()));
  EXPECT_FALSE(self->exe.empty());
}

}  // namespace
}  // namespace reqcost::collector
