// Targets beyond PIDs, on real nginx + php-fpm: a cgroup v2 directory the
// test makes and removes, a process that joins it after attach, a php-fpm
// restarted into it, a "unit" found by its cgroup's name, reqcost never
// tracing itself, and an attach that saw no request explained.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "collector/cgroups.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;

// A cgroup v2 directory of the test's own, removed (its processes moved
// back to the root first) when it goes.
class TestCgroup {
 public:
  static absl::StatusOr<TestCgroup> Create(const std::string& name) {
    absl::StatusOr<std::string> mount = collector::Cgroup2Mount();
    if (!mount.ok()) return mount.status();
    TestCgroup cg;
    cg.mount_ = *mount;
    cg.relative_ = absl::StrCat(name, "-", getpid());
    cg.path_ = cg.mount_ + "/" + cg.relative_;
    if (mkdir(cg.path_.c_str(), 0755) != 0) {
      return absl::ErrnoToStatus(errno, "mkdir " + cg.path_);
    }
    return cg;
  }
  TestCgroup() = default;
  TestCgroup(TestCgroup&& o) noexcept
      : mount_(o.mount_), relative_(o.relative_), path_(std::move(o.path_)) {
    o.path_.clear();
  }
  ~TestCgroup() {
    if (path_.empty()) return;
    Empty(path_);
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  const std::string& relative() const { return relative_; }
  // Moves `pid` into `dir` (this cgroup by default).
  absl::Status Move(pid_t pid, const std::string& dir = "") const {
    std::ofstream procs((dir.empty() ? path_ : dir) + "/cgroup.procs");
    procs << pid << "\n";
    procs.flush();
    if (!procs) return absl::InternalError(absl::StrCat("moving ", pid));
    return absl::OkStatus();
  }

 private:
  void Empty(const std::string& dir) {
    for (pid_t pid : collector::CgroupMembers(dir)) (void)Move(pid, mount_);
  }
  std::string mount_, relative_, path_;
};

// Moves every process of `server` (master and workers) into `cg`.
void MoveServer(const Server& server, const TestCgroup& cg) {
  for (pid_t pid : server.AllPids()) ASSERT_TRUE(cg.Move(pid).ok()) << pid;
}

std::vector<int> ProcessPids(const json& report) {
  std::vector<int> pids;
  for (const json& p : report["capture"]["processes"]) pids.push_back(p["pid"].get<int>());
  return pids;
}

TEST(TargetsTest, CgroupTracesItsStackAndWhatJoinsItLater) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-targets"));
  ASSERT_OK_AND_ASSIGN(cg, TestCgroup::Create("reqcost-targets"));
  PhpFpmOptions fopts;
  fopts.listen = dir.File("fpm.sock");
  fopts.pm = "dynamic";
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  MoveServer(nginx, cg);
  MoveServer(fpm, cg);

  // Relative to the v2 mount, as a user types it.
  ASSERT_OK_AND_ASSIGN(run, ReqcostRun::Attach(dir, {"attach", "--cgroup",
                                                     cg.relative(), "-f",
                                                     "json"}));
  AbOptions ab;
  ab.url = nginx.Url("/sleep.php?us=1000");
  ab.requests = 50;
  ab.concurrency = 2;
  ASSERT_OK_AND_ASSIGN(first, RunAb(ab));
  ASSERT_EQ(first.complete, 50);

  // php-fpm restarted (a deploy): the new master and its workers start
  // outside the cgroup and join it after attach.
  const pid_t old_fpm = fpm.pid();
  ASSERT_TRUE(fpm.Stop().ok());
  ASSERT_OK_AND_ASSIGN(fpm2, StartPhpFpm(dir, fopts));
  MoveServer(fpm2, cg);
  ASSERT_OK_AND_ASSIGN(second, RunAb(ab));
  ASSERT_EQ(second.complete, 50);

  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  json report = json::parse(run.out(), nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << run.out();
  // Every request, both before and after the restart, with its backend.
  EXPECT_EQ(report["requests"]["complete"].get<int>(), 100) << run.out();
  std::vector<int> pids = ProcessPids(report);
  EXPECT_THAT(pids, ::testing::Contains(nginx.pid()));
  EXPECT_THAT(pids, ::testing::Contains(old_fpm));
  // Its workers, which served the second half (the master joins only once
  // it makes a traced call or forks).
  for (pid_t worker : fpm2.WorkerPids()) {
    EXPECT_THAT(pids, ::testing::Contains(worker))
        << "the restarted php-fpm's worker " << worker << " was not followed";
  }
  EXPECT_EQ(report["phases"]["backend"]["count"].get<int>(), 100)
      << "requests without their backend";
  EXPECT_THAT(pids, ::testing::Not(::testing::Contains(
                        static_cast<int>(getpid()))));
  EXPECT_THAT(run.err(), HasSubstr("1 cgroups"));
}

TEST(TargetsTest, AUnitIsFoundByItsCgroupAndErrorsHaveTheirCodes) {
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-targets"));
  // No such cgroup: exit 3, naming it and the hierarchy.
  ASSERT_OK_AND_ASSIGN(none, RunReqcost(dir, {"attach", "--cgroup",
                                              "no-such-reqcost-cgroup",
                                              "-d", "1"}));
  EXPECT_EQ(none.code, 3) << none.err;
  EXPECT_THAT(none.err, HasSubstr("no such cgroup directory"));
  // A v1 directory is not a v2 cgroup: exit 2.
  ASSERT_OK_AND_ASSIGN(v1, RunReqcost(dir, {"attach", "--cgroup",
                                            "/proc", "-d", "1"}));
  EXPECT_EQ(v1.code, 2) << v1.err;
  EXPECT_THAT(v1.err, HasSubstr("is not a cgroup v2 directory"));
  // A unit that does not run: 5 without systemd, 3 with it.
  std::ifstream comm("/proc/1/comm");
  std::string init;
  std::getline(comm, init);
  ASSERT_OK_AND_ASSIGN(unit, RunReqcost(dir, {"attach", "--unit",
                                              "no-such-reqcost-unit",
                                              "-d", "1"}));
  if (init == "systemd") {
    EXPECT_EQ(unit.code, 3) << unit.err;
  } else {
    EXPECT_EQ(unit.code, 5) << unit.err;
    EXPECT_THAT(unit.err, HasSubstr("does not run systemd (PID 1 is"));
  }
  // No target at all: exit 2.
  ASSERT_OK_AND_ASSIGN(no_target, RunReqcost(dir, {"attach", "-d", "1"}));
  EXPECT_EQ(no_target.code, 2) << no_target.err;
  EXPECT_THAT(no_target.err, HasSubstr("give at least one target"));

  REQCOST_REQUIRE_BPF_OR_SKIP();
  // A unit's cgroup where systemd would make it: found by its name.
  ASSERT_OK_AND_ASSIGN(cg, TestCgroup::Create("reqcost-test-unit"));
  std::string unit_dir = cg.path() + "/reqcost-probe.service";
  ASSERT_EQ(mkdir(unit_dir.c_str(), 0755), 0);
  ASSERT_OK_AND_ASSIGN(sleeper, Subprocess::Start({"/bin/sleep", "30"},
                                                  dir.File("sleep.out"),
                                                  dir.File("sleep.err")));
  ASSERT_TRUE(cg.Move(sleeper.pid(), unit_dir).ok());
  ASSERT_OK_AND_ASSIGN(found, RunReqcost(dir, {"attach", "--unit",
                                               "reqcost-probe", "-d", "1",
                                               "-f", "json"}));
  (void)sleeper.Stop();
  rmdir(unit_dir.c_str());
  EXPECT_EQ(found.code, 0) << found.err;
  json report = json::parse(found.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << found.out;
  EXPECT_THAT(ProcessPids(report), ::testing::Contains(sleeper.pid()));
}

TEST(TargetsTest, NeverTracesItselfAndExplainsARunWithNoRequest) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-targets"));
  // `attach -p $$` from a shell: reqcost is the shell's child.
  ASSERT_OK_AND_ASSIGN(
      shell, RunReqcost(dir, {"attach", "-p", std::to_string(getpid()),
                              "-d", "1", "-f", "json"}));
  ASSERT_EQ(shell.code, 0) << shell.err;
  json report = json::parse(shell.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << shell.out;
  for (const json& p : report["capture"]["processes"]) {
    EXPECT_NE(p["comm"].get<std::string>(), "reqcost") << shell.out;
  }

  // A process with no socket activity.
  ASSERT_OK_AND_ASSIGN(sleeper, Subprocess::Start({"/bin/sleep", "30"},
                                                  dir.File("sleep.out"),
                                                  dir.File("sleep.err")));
  ASSERT_OK_AND_ASSIGN(
      idle, RunReqcost(dir, {"attach", "-p", std::to_string(sleeper.pid()),
                             "-d", "1"}));
  (void)sleeper.Stop();
  EXPECT_EQ(idle.code, 0) << idle.err;
  EXPECT_THAT(idle.out, HasSubstr("no request seen."));
  EXPECT_THAT(idle.out, HasSubstr("made no socket call"));
  EXPECT_THAT(idle.out, ::testing::Not(HasSubstr("phases (complete")));

  // A client, not a server: connections opened, none accepted.
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, NginxOptions{}));
  ASSERT_OK_AND_ASSIGN(
      client,
      Subprocess::Start(
          {"/bin/sh", "-c",
           absl::StrCat("sleep 1; for i in 1 2 3 4 5; do curl -s -o /dev/null ",
                        nginx.Url("/"), "; sleep 0.1; done; sleep 30")},
          dir.File("client.out"), dir.File("client.err")));
  ASSERT_OK_AND_ASSIGN(
      as_client,
      RunReqcost(dir, {"attach", "-p", std::to_string(client.pid()), "-d",
                       "3"}));
  (void)client.Stop();
  EXPECT_EQ(as_client.code, 0) << as_client.err;
  EXPECT_THAT(as_client.out, HasSubstr("no request seen."));
  EXPECT_THAT(as_client.out, HasSubstr("no connection was accepted"));
}

}  // namespace
}  // namespace reqcost::testing
