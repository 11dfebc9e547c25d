// Targets beyond PIDs, on real nginx + php-fpm: a cgroup v2 directory the
// test makes and removes, a process that joins it after attach, a php-fpm
// restarted into it, a "unit" found by its cgroup's name, reqcost never
// tracing itself, and an attach that saw no request explained.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
    // The tests make at most one level below.
    if (DIR* d = opendir(dir.c_str())) {
      std::vector<std::string> subs;
      while (dirent* e = readdir(d)) {
        if (e->d_type == DT_DIR && e->d_name[0] != '.')
          subs.push_back(e->d_name);
      }
      closedir(d);
      for (const std::string& sub : subs) rmdir((dir + "/" + sub).c_str());
    }
  }
  std::string mount_, relative_, path_;
};

// Moves every process of `server` (master and workers) into `cg`.
void MoveServer(const Server& server, const TestCgroup& cg) {
  for (pid_t pid : server.AllPids()) ASSERT_TRUE(cg.Move(pid).ok()) << pid;
}

// The TLS probes of one process and libssl: one uprobe session link on a
// kernel that has them (6.12+, as CI's 6.18), an fd.
constexpr int kTlsLinksPerProcess = 1;

// The perf events and BPF links `pid` holds open: the TLS probes' links
// (kTlsLinksPerProcess per process) plus the fixed ones of the tracepoints.
int LinkFds(pid_t pid) {
  int n = 0;
  const std::string fds = absl::StrCat("/proc/", pid, "/fd");
  if (DIR* d = opendir(fds.c_str())) {
    while (dirent* e = readdir(d)) {
      char target[256];
      ssize_t len = readlink((fds + "/" + e->d_name).c_str(), target,
                             sizeof(target) - 1);
      if (len <= 0) continue;
      const absl::string_view what(target, len);
      if (what == "anon_inode:[perf_event]" || what == "anon_inode:bpf_link") {
        ++n;
      }
    }
    closedir(d);
  }
  return n;
}

// How many times `what` occurs in `text`.
int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// Waits (bounded) until `done()`; returns whether it came.
template <typename F>
bool WaitFor(F done, absl::Duration timeout = absl::Seconds(10)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

std::vector<int> ProcessPids(const json& report) {
  std::vector<int> pids;
  for (const json& p : report["capture"]["processes"])
    pids.push_back(p["pid"].get<int>());
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

  // A process outside the cgroup, given by PID.
  ASSERT_OK_AND_ASSIGN(
      outside, Subprocess::Start({"/bin/sleep", "30"}, dir.File("outside.out"),
                                 dir.File("outside.err")));
  // Relative to the v2 mount, as a user types it.
  ASSERT_OK_AND_ASSIGN(
      run,
      ReqcostRun::Attach(dir, {"attach", "--cgroup", cg.relative(), "-p",
                               std::to_string(outside.pid()), "-f", "json"}));
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
  // The new master, traced at its move though it makes no socket call,
  // and its workers, which served the second half.
  EXPECT_THAT(pids, ::testing::Contains(fpm2.pid()));
  for (pid_t worker : fpm2.WorkerPids()) {
    EXPECT_THAT(pids, ::testing::Contains(worker))
        << "the restarted php-fpm's worker " << worker << " was not followed";
  }
  EXPECT_EQ(report["phases"]["backend"]["count"].get<int>(), 100)
      << "requests without their backend";
  EXPECT_THAT(pids,
              ::testing::Not(::testing::Contains(static_cast<int>(getpid()))));
  // A PID beside the cgroup: targets mix.
  EXPECT_THAT(pids, ::testing::Contains(outside.pid()));
  (void)outside.Stop();
  EXPECT_THAT(run.err(), HasSubstr(" processes and 1 cgroups"));
}

// A process moved out of the traced cgroup (echo PID > other/cgroup.procs)
// is traced no more: its requests stop counting, its TLS uprobes are
// released and the leave is shown; moved back in, it is traced again at
// once (its idle master too), uprobes and all.
TEST(TargetsTest, AProcessThatLeavesTheCgroupIsNoLongerTracedAndOneMovedInIs) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-leave"));
  ASSERT_OK_AND_ASSIGN(cg, TestCgroup::Create("reqcost-leave"));
  ASSERT_OK_AND_ASSIGN(out, TestCgroup::Create("reqcost-leave-out"));
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, NginxOptions{}));
  const std::vector<pid_t> nginx_pids = nginx.AllPids();
  ASSERT_EQ(nginx_pids.size(), 2u);  // master and one worker
  for (pid_t pid : nginx_pids) {
    ASSERT_OK_AND_ASSIGN(maps,
                         ReadFileToString(absl::StrCat("/proc/", pid, "/maps")));
    ASSERT_TRUE(absl::StrContains(maps, "libssl.so"))
        << "nginx " << pid << " does not map libssl: no uprobes to release";
  }
  MoveServer(nginx, cg);
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "--cgroup", cg.path(),
                                    "--tls-probes", "--events"}));
  const int probed = LinkFds(run.pid());
  AbOptions ab;
  ab.url = nginx.Url("/");
  ab.requests = 20;
  ab.concurrency = 1;
  ASSERT_OK_AND_ASSIGN(first, RunAb(ab));
  ASSERT_EQ(first.complete, 20);

  // Out: both processes leave, their TLS links go (released as each leave
  // record is read: that is the sign it was).
  MoveServer(nginx, out);
  ASSERT_TRUE(WaitFor([&] {
    return LinkFds(run.pid()) + kTlsLinksPerProcess * 2 == probed;
  })) << "links held: " << LinkFds(run.pid()) << ", "
      << probed << " before the leave";
  ASSERT_OK_AND_ASSIGN(second, RunAb(ab));  // not traced
  ASSERT_EQ(second.complete, 20);

  // In again: traced at the move (the master, which makes no call, too),
  // uprobes again.
  MoveServer(nginx, cg);
  EXPECT_TRUE(WaitFor([&] { return LinkFds(run.pid()) == probed; }))
      << LinkFds(run.pid()) << " links, " << probed << " at first";
  ASSERT_OK_AND_ASSIGN(third, RunAb(ab));
  ASSERT_EQ(third.complete, 20);

  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  const std::string text = run.out();
  for (pid_t pid : nginx_pids) {
    EXPECT_EQ(Count(text, absl::StrCat(" ", pid,
                                       " left the traced cgroups (nginx): no "
                                       "longer traced")),
              1)
        << pid;
    EXPECT_EQ(Count(text, absl::StrCat(" ", pid, " exec (nginx)")), 1) << pid;
  }
  // The first and the third twenty; nothing of the second.
  EXPECT_THAT(text, HasSubstr("requests: 40 (40 complete"))
      << text.substr(text.size() > 3000 ? text.size() - 3000 : 0);
  EXPECT_EQ(Count(text, " accept4("), 40) << "accepts seen while out";
}

TEST(TargetsTest, AUnitIsFoundByItsCgroupAndErrorsHaveTheirCodes) {
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-targets"));
  // No such cgroup: exit 3, naming it and the hierarchy.
  ASSERT_OK_AND_ASSIGN(
      none, RunReqcost(dir, {"attach", "--cgroup", "no-such-reqcost-cgroup",
                             "-d", "1"}));
  EXPECT_EQ(none.code, 3) << none.err;
  EXPECT_THAT(none.err, HasSubstr("no such cgroup directory"));
  // A v1 directory is not a v2 cgroup: exit 2.
  ASSERT_OK_AND_ASSIGN(
      v1, RunReqcost(dir, {"attach", "--cgroup", "/proc", "-d", "1"}));
  EXPECT_EQ(v1.code, 2) << v1.err;
  EXPECT_THAT(v1.err, HasSubstr("is not a cgroup v2 directory"));
  // A unit that does not run: 5 without systemd, 3 with it.
  std::ifstream comm("/proc/1/comm");
  std::string init;
  std::getline(comm, init);
  ASSERT_OK_AND_ASSIGN(
      unit,
      RunReqcost(dir, {"attach", "--unit", "no-such-reqcost-unit", "-d", "1"}));
  if (init == "systemd") {
    EXPECT_EQ(unit.code, 3) << unit.err;
  } else {
    EXPECT_EQ(unit.code, 5) << unit.err;
    EXPECT_THAT(unit.err, HasSubstr("does not run systemd (PID 1 is"));
  }
  // --interval: out of range, or with -f json: exit 2.
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{
           {"-i", "10ms"}, {"-i", "soon"}, {"-i", "1s", "-f", "json"}}) {
    std::vector<std::string> argv = {"attach", "-p", std::to_string(getpid()),
                                     "-d", "1"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    ASSERT_OK_AND_ASSIGN(bad, RunReqcost(dir, argv));
    EXPECT_EQ(bad.code, 2) << flags[1] << ": " << bad.err;
    EXPECT_THAT(bad.err, HasSubstr("--interval")) << bad.err;
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
  ASSERT_OK_AND_ASSIGN(
      sleeper, Subprocess::Start({"/bin/sleep", "30"}, dir.File("sleep.out"),
                                 dir.File("sleep.err")));
  ASSERT_TRUE(cg.Move(sleeper.pid(), unit_dir).ok());
  ASSERT_OK_AND_ASSIGN(
      found, RunReqcost(dir, {"attach", "--unit", "reqcost-probe", "-d", "1",
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
      shell, RunReqcost(dir, {"attach", "-p", std::to_string(getpid()), "-d",
                              "1", "-f", "json"}));
  ASSERT_EQ(shell.code, 0) << shell.err;
  json report = json::parse(shell.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << shell.out;
  for (const json& p : report["capture"]["processes"]) {
    EXPECT_NE(p["comm"].get<std::string>(), "reqcost") << shell.out;
  }

  // A process with no socket activity.
  ASSERT_OK_AND_ASSIGN(
      sleeper, Subprocess::Start({"/bin/sleep", "30"}, dir.File("sleep.out"),
                                 dir.File("sleep.err")));
  ASSERT_OK_AND_ASSIGN(
      idle, RunReqcost(dir, {"attach", "-p", std::to_string(sleeper.pid()),
                             "-d", "1"}));
  (void)sleeper.Stop();
  EXPECT_EQ(idle.code, 0) << idle.err;
  EXPECT_THAT(idle.out, HasSubstr("no request seen."));
  EXPECT_THAT(idle.out, HasSubstr("made no socket call"));
  EXPECT_THAT(idle.out, ::testing::Not(HasSubstr("phases (complete")));

  // Only datagram sockets: UDP sent by a shell (bash's /dev/udp).
  ASSERT_OK_AND_ASSIGN(
      udp, Subprocess::Start(
               {"/bin/bash", "-c",
                "sleep 1; exec 3>/dev/udp/127.0.0.1/9; for i in 1 2 3 4 5; "
                "do echo ping >&3; sleep 0.1; done; sleep 30"},
               dir.File("udp.out"), dir.File("udp.err")));
  ASSERT_OK_AND_ASSIGN(
      as_udp,
      RunReqcost(dir, {"attach", "-p", std::to_string(udp.pid()), "-d", "3"}));
  (void)udp.Stop();
  EXPECT_EQ(as_udp.code, 0) << as_udp.err;
  EXPECT_THAT(as_udp.out, HasSubstr("no request seen."));
  EXPECT_THAT(as_udp.out, HasSubstr("only non-stream sockets")) << as_udp.out;

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
      as_client, RunReqcost(dir, {"attach", "-p", std::to_string(client.pid()),
                                  "-d", "3"}));
  (void)client.Stop();
  EXPECT_EQ(as_client.code, 0) << as_client.err;
  EXPECT_THAT(as_client.out, HasSubstr("no request seen."));
  EXPECT_THAT(as_client.out, HasSubstr("no connection was accepted"));
}

// The value of `key=` in the unit file's text ("" if absent).
std::string UnitValue(const std::string& unit, const std::string& key) {
  for (absl::string_view line : absl::StrSplit(unit, '\n')) {
    if (absl::StartsWith(line, key + "=")) {
      return std::string(line.substr(key.size() + 1));
    }
  }
  return "";
}

// reqcost as the shipped systemd unit runs it: the unit passes
// systemd-analyze verify, and with exactly the unit's capabilities (root's
// uid, every other capability dropped, as CapabilityBoundingSet does) it
// traces a cgroup's stack, serves its metrics, re-reads its targets on
// SIGHUP and follows a php-fpm restarted into a new cgroup directory of the
// same name (as systemd recreates a restarted unit's cgroup).
TEST(AgentTest, TheUnitsCapabilitiesSufficeAndSighupRereadsTargets) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-agent"));
  ASSERT_OK_AND_ASSIGN(unit, ReadFileToString(std::string(REQCOST_SOURCE_DIR) +
                                              "/cli/reqcost.service"));
  // systemd-analyze checks the unit (with ExecStart pointed at this build).
  if (access("/usr/bin/systemd-analyze", X_OK) == 0) {
    std::string copy = unit;
    const std::string exec = "ExecStart=/usr/bin/reqcost";
    size_t at = copy.find(exec);
    ASSERT_NE(at, std::string::npos);
    copy.replace(at, exec.size(), std::string("ExecStart=") + REQCOST_BINARY);
    ASSERT_TRUE(WriteStringToFile(dir.File("reqcost.service"), copy).ok());
    ASSERT_OK_AND_ASSIGN(
        verify,
        Subprocess::Start({"/usr/bin/systemd-analyze", "verify", "--man=no",
                           dir.File("reqcost.service")},
                          dir.File("verify.out"), dir.File("verify.err")));
    ASSERT_OK_AND_ASSIGN(verified, verify.WaitForExit(absl::Seconds(30)));
    EXPECT_EQ(verified, 0) << FileTail(dir.File("verify.err"));
    EXPECT_EQ(ReadFileToString(dir.File("verify.err")).value_or("x"), "");
  }
  // CapabilityBoundingSet=CAP_BPF CAP_PERFMON -> -all,+bpf,+perfmon
  std::string caps = "-all";
  for (absl::string_view cap : absl::StrSplit(
           UnitValue(unit, "CapabilityBoundingSet"), ' ', absl::SkipEmpty())) {
    ASSERT_TRUE(absl::StartsWith(cap, "CAP_")) << cap;
    caps += ",+" + absl::AsciiStrToLower(cap.substr(4));
  }
  ASSERT_NE(caps, "-all") << "no CapabilityBoundingSet in the unit";

  ASSERT_OK_AND_ASSIGN(cg, TestCgroup::Create("reqcost-agent"));
  PhpFpmOptions fopts;
  fopts.listen = dir.File("fpm.sock");
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  MoveServer(nginx, cg);
  // php-fpm in a cgroup of its own outside the traced one, as a unit's
  // (system.slice/php-fpm.service): traced only through --unit.
  ASSERT_OK_AND_ASSIGN(slice, TestCgroup::Create("reqcost-agent-slice"));
  const std::string fpm_unit = absl::StrCat("reqcost-agent-fpm-", getpid());
  const std::string fpm_dir = slice.path() + "/" + fpm_unit + ".service";
  ASSERT_EQ(mkdir(fpm_dir.c_str(), 0755), 0);
  for (pid_t pid : fpm.AllPids()) ASSERT_TRUE(slice.Move(pid, fpm_dir).ok());

  ASSERT_OK_AND_ASSIGN(port, FreeTcpPort());
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir,
               {"/usr/bin/setpriv", "--bounding-set", caps, "--inh-caps",
                "-all", REQCOST_BINARY, "attach", "--cgroup", cg.relative(),
                "--unit", fpm_unit, "--duration", "0", "--metrics",
                absl::StrCat("127.0.0.1:", port)},
               /*prepend_binary=*/false));
  AbOptions ab;
  ab.url = nginx.Url("/sleep.php?us=500");
  ab.requests = 40;
  ab.concurrency = 2;
  ASSERT_OK_AND_ASSIGN(first, RunAb(ab));
  ASSERT_EQ(first.complete, 40);

  // The php-fpm unit restarted: its cgroup removed and made again (a new
  // cgroup id), the new php-fpm started in it.
  ASSERT_TRUE(fpm.Stop().ok());
  ASSERT_EQ(rmdir(fpm_dir.c_str()), 0);
  ASSERT_EQ(mkdir(fpm_dir.c_str(), 0755), 0);
  ASSERT_OK_AND_ASSIGN(fpm2, StartPhpFpm(dir, fopts));
  for (pid_t pid : fpm2.AllPids()) ASSERT_TRUE(slice.Move(pid, fpm_dir).ok());
  // An agent's reload.
  kill(run.pid(), SIGHUP);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline &&
         !absl::StrContains(run.err(), "SIGHUP: re-read")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  // Seen recreated by the check every second, or by the SIGHUP itself.
  EXPECT_THAT(run.err(), HasSubstr("SIGHUP: re-read 2 cgroup targets ("));
  ASSERT_OK_AND_ASSIGN(second, RunAb(ab));
  ASSERT_EQ(second.complete, 40);

  // The metrics count both halves, with their backend.
  double complete = -1;
  deadline = absl::Now() + absl::Seconds(15);
  std::string body;
  while (absl::Now() < deadline) {
    absl::StatusOr<HttpResponse> r =
        HttpGet(absl::StrCat("http://127.0.0.1:", port, "/metrics"));
    if (r.ok()) {
      body = r->body;
      for (absl::string_view line : absl::StrSplit(body, '\n')) {
        if (absl::StartsWith(line,
                             "reqcost_requests_total{status=\"complete\"} ")) {
          (void)absl::SimpleAtod(line.substr(line.find(' ') + 1), &complete);
        }
      }
    }
    if (complete >= 80) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_EQ(complete, 80) << body;
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGTERM));
  EXPECT_EQ(code, 0) << run.err();
  EXPECT_THAT(run.out(), HasSubstr("requests: 80 (80 complete"));
  // Both php-fpms traced: every backend time measured, none inferred.
  EXPECT_THAT(run.out(), HasSubstr("backend timing: measured"));
  (void)fpm2.Stop();
  rmdir(fpm_dir.c_str());
}

// An agent given PIDs (no terminal on stdin): SIGHUP re-reads them. A -p
// PID that exited is dropped and named; the others are read again with
// their descendants, so a php-fpm master's new children (its workers
// replaced every 3 requests) are followed before and after, and every
// request counts with its backend.
TEST(AgentTest, SighupRereadsPidTargets) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-agent"));
  PhpFpmOptions fopts;
  fopts.listen = dir.File("fpm.sock");
  fopts.max_requests = 3;
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(
      sleeper, Subprocess::Start({"/bin/sleep", "30"}, dir.File("sleep.out"),
                                 dir.File("sleep.err")));
  const std::vector<pid_t> first_workers = fpm.WorkerPids();
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(fpm.pid()), "-p",
                     std::to_string(sleeper.pid()), "--duration", "0", "-f",
                     "json"}));
  AbOptions ab;
  ab.url = nginx.Url("/sleep.php?us=200");
  ab.requests = 20;
  ab.concurrency = 2;
  ASSERT_OK_AND_ASSIGN(first, RunAb(ab));
  ASSERT_EQ(first.complete, 20);

  // The sleeper exits; the reload re-reads the targets.
  const pid_t gone = sleeper.pid();
  (void)sleeper.Stop();
  kill(run.pid(), SIGHUP);
  EXPECT_TRUE(WaitFor([&] {
    return absl::StrContains(run.err(), "SIGHUP: re-read 0 cgroup targets");
  })) << run.err();
  EXPECT_THAT(run.err(),
              HasSubstr(absl::StrCat("SIGHUP: -p ", gone,
                                     " (sleep) has exited: no longer a target")));
  EXPECT_THAT(run.err(), HasSubstr("and 2 PID targets; "));
  ASSERT_OK_AND_ASSIGN(second, RunAb(ab));
  ASSERT_EQ(second.complete, 20);
  // A second reload: the exited PID is not named again.
  kill(run.pid(), SIGHUP);
  EXPECT_TRUE(WaitFor([&] {
    return Count(run.err(), "SIGHUP: re-read 0 cgroup targets") == 2;
  })) << run.err();
  EXPECT_EQ(Count(run.err(), " has exited"), 1) << run.err();

  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGTERM));
  ASSERT_EQ(code, 0) << run.err();
  json report = json::parse(run.out(), nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << run.out();
  EXPECT_EQ(report["requests"]["complete"].get<int>(), 40) << run.out();
  EXPECT_EQ(report["phases"]["backend"]["count"].get<int>(), 40)
      << "requests without their measured backend";
  // Workers forked after attach, replaced as they served: followed.
  std::vector<pid_t> known = first_workers;
  for (pid_t pid : nginx.AllPids()) known.push_back(pid);
  known.push_back(fpm.pid());
  known.push_back(gone);
  int later = 0;
  for (int pid : ProcessPids(report)) {
    if (std::find(known.begin(), known.end(), pid) == known.end()) ++later;
  }
  EXPECT_GE(later, 2) << "no php-fpm worker forked after attach was followed";
}

// In a terminal, SIGHUP is the terminal's hang-up: the run ends cleanly
// with its summary, as with SIGTERM (a run left in a closed terminal must
// not stay behind).
TEST(AgentTest, SighupInATerminalEndsTheRun) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-agent"));
  ASSERT_OK_AND_ASSIGN(
      sleeper, Subprocess::Start({"/bin/sleep", "30"}, dir.File("sleep.out"),
                                 dir.File("sleep.err")));
  // A pseudo-terminal for reqcost's stdin.
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(grantpt(master), 0);
  ASSERT_EQ(unlockpt(master), 0);
  const std::string tty = ptsname(master);
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir,
               {"/bin/sh", "-c", "exec \"$0\" \"$@\" < " + tty, REQCOST_BINARY,
                "attach", "-p", std::to_string(sleeper.pid()), "--duration",
                "0"},
               /*prepend_binary=*/false));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGHUP));
  close(master);
  (void)sleeper.Stop();
  EXPECT_EQ(code, 0) << run.err();
  EXPECT_THAT(run.out(), HasSubstr("no request seen."));
}

// Runs `tmux -S socket args...` to its end (bounded); its stdout.
absl::StatusOr<std::string> Tmux(const TempDir& dir, const std::string& socket,
                                 std::vector<std::string> args) {
  static int n = 0;
  args.insert(args.begin(), {"/usr/bin/tmux", "-S", socket});
  std::string out = dir.File(absl::StrCat("tmux-", n, ".out"));
  std::string err = dir.File(absl::StrCat("tmux-", n++, ".err"));
  absl::StatusOr<Subprocess> p = Subprocess::Start(args, out, err);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->WaitForExit(absl::Seconds(10));
  if (!status.ok()) return status.status();
  if (*status != 0) {
    return absl::InternalError(absl::StrCat("tmux failed: ", FileTail(err)));
  }
  return ReadFileToString(out);
}

TEST(IntervalTest, JsonlIntervalsAddUpToTheRunsSummary) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-interval"));
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, NginxOptions{}));
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx.pid()),
                                    "-i", "500ms", "-f", "jsonl"}));
  AbOptions ab;
  ab.url = nginx.Url("/");
  ab.requests = 300;
  ab.concurrency = 2;
  ASSERT_OK_AND_ASSIGN(abr, RunAb(ab));
  ASSERT_EQ(abr.complete, 300);
  absl::SleepFor(absl::Milliseconds(1200));  // two more intervals
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  int intervals = 0, summed = 0, summaries = 0;
  json summary;
  for (absl::string_view line :
       absl::StrSplit(run.out(), '\n', absl::SkipEmpty())) {
    json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    if (j["type"] == "interval") {
      ++intervals;
      EXPECT_EQ(j["interval"].get<int>(), intervals);
      summed += j["requests"].get<int>();
    } else {
      ASSERT_EQ(j["type"], "summary") << line;
      ++summaries;
      summary = j["report"];
    }
  }
  EXPECT_GE(intervals, 3);
  ASSERT_EQ(summaries, 1);
  EXPECT_EQ(summary["requests"]["count"].get<int>(), 300);
  EXPECT_EQ(summed, 300) << "the intervals do not add up to the run";
}

TEST(IntervalTest, TextIntervalsInARealTerminalAndCtrlCEndsWithTheSummary) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  if (access("/usr/bin/tmux", X_OK) != 0) {
    FAIL() << "/usr/bin/tmux not found: scripts/bootstrap.sh installs it";
  }
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-interval"));
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, NginxOptions{}));
  const std::string socket = dir.File("tmux.sock");
  // A terminal tall enough for the summary's last lines.
  ASSERT_OK_AND_ASSIGN(started, Tmux(dir, socket,
                                     {"new-session", "-d", "-x", "160", "-y",
                                      "50", "-s", "reqcost", "/bin/sh"}));
  (void)started;
  struct KillServer {
    const TempDir& dir;
    std::string socket;
    ~KillServer() { (void)Tmux(dir, socket, {"kill-server"}); }
  } kill_server{dir, socket};
  ASSERT_OK_AND_ASSIGN(
      sent, Tmux(dir, socket,
                 {"send-keys", "-t", "reqcost",
                  absl::StrCat(REQCOST_BINARY, " attach -p ", nginx.pid(),
                               " -i 1s --duration 0"),
                  "Enter"}));
  (void)sent;
  // Load while it runs: intervals with requests.
  std::string screen;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    AbOptions ab;
    ab.url = nginx.Url("/");
    ab.requests = 50;
    ab.concurrency = 1;
    ASSERT_OK_AND_ASSIGN(abr, RunAb(ab));
    ASSERT_EQ(abr.complete, 50);
    absl::StatusOr<std::string> pane = Tmux(
        dir, socket, {"capture-pane", "-p", "-t", "reqcost", "-S", "-200"});
    ASSERT_TRUE(pane.ok()) << pane.status();
    screen = *pane;
    if (Count(screen, " complete, ") >= 2) break;
    absl::SleepFor(absl::Milliseconds(300));
  }
  ASSERT_GE(Count(screen, " complete, "), 2) << screen;
  EXPECT_THAT(screen, HasSubstr("phase        count     p50_us"));
  EXPECT_THAT(screen, ::testing::ContainsRegex("total +[0-9]+ +[0-9.]+"));
  // Ctrl-C: a clean end with the whole run's summary.
  ASSERT_OK_AND_ASSIGN(
      ctrl_c, Tmux(dir, socket, {"send-keys", "-t", "reqcost", "C-c"}));
  (void)ctrl_c;
  // The summary ends with the counters line; then the shell tells the exit
  // code (typed only now: Ctrl-C flushes what was typed ahead).
  bool echoed = false;
  deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> pane = Tmux(
        dir, socket, {"capture-pane", "-p", "-t", "reqcost", "-S", "-400"});
    ASSERT_TRUE(pane.ok()) << pane.status();
    screen = *pane;
    if (!echoed && absl::StrContains(screen, " enter-lost, ")) {
      ASSERT_TRUE(
          Tmux(dir, socket,
               {"send-keys", "-t", "reqcost", "echo reqcost-exit=$?", "Enter"})
              .ok());
      echoed = true;
    }
    // The shell's answer on a line of its own, not the typed command.
    if (absl::StrContains(screen, "\nreqcost-exit=")) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_THAT(screen, HasSubstr("\nreqcost-exit=0")) << screen;
  EXPECT_THAT(screen, HasSubstr("phases (complete requests):")) << screen;
  EXPECT_THAT(screen, ::testing::ContainsRegex("requests: [0-9]+ \\("))
      << screen;
}

}  // namespace
}  // namespace reqcost::testing
