// The accuracy bar on real processes: real nginx in front of the sample
// FastCGI backend and of real php-fpm, loaded by ab with a bounded count,
// profiled by the reqcost binary; the breakdown is checked against the
// backend's own clock.
#include <signal.h>

#include <cmath>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "collector/event.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/profiled_run.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kWorkUs = 20000;
constexpr int kRequests = 100;

class NginxFcgiBackendBreakdown : public ::testing::TestWithParam<std::string> {
};

TEST_P(NginxFcgiBackendBreakdown, MeasuredBackendMatchesBackendClock) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-breakdown"));
  FcgiBackendOptions bopts;
  bopts.listen = GetParam();
  bopts.workers = 2;
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, bopts));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));

  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(backend.pid()), "--format", "json"}));
  AbOptions ab;
  ab.url = nginx.Url("/fcgi/x?work_us=" + std::to_string(kWorkUs));
  ab.requests = kRequests;
  ab.concurrency = 2;
  ASSERT_OK_AND_ASSIGN(result, RunAb(ab));
  ASSERT_EQ(result.complete, kRequests);
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  ASSERT_OK_AND_ASSIGN(log, ReadBackendLog(backend.request_log()));
  ASSERT_EQ(log.size(), static_cast<size_t>(kRequests));
  json report = json::parse(run.out());
  ExpectBreakdown("nginx + sample backend, " +
                      std::string(GetParam().empty() ? "unix" : "tcp"),
                  report, result, Mean(ElapsedUs(log)));
  // Roles were recognised from the sockets alone.
  std::vector<std::string> roles;
  for (const json& p : report["capture"]["processes"])
    roles.push_back(p["role"]);
  EXPECT_THAT(roles, ::testing::Contains("server"));
  EXPECT_THAT(roles, ::testing::Contains("backend"));
}

INSTANTIATE_TEST_SUITE_P(UnixAndTcp, NginxFcgiBackendBreakdown,
                         ::testing::Values("", "tcp"), [](const auto& info) {
                           return info.param.empty() ? "unix" : "tcp";
                         });

TEST(BreakdownTest, BackendNotTracedIsInferredWithinTenPercent) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-breakdown"));
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, {}));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx.pid()),
                                    "--format", "json"}));
  AbOptions ab;
  ab.url = nginx.Url("/fcgi/x?work_us=" + std::to_string(kWorkUs));
  ab.requests = kRequests;
  ASSERT_OK_AND_ASSIGN(result, RunAb(ab));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGTERM));
  ASSERT_EQ(code, 0) << run.err();
  ASSERT_OK_AND_ASSIGN(log, ReadBackendLog(backend.request_log()));
  ExpectBreakdown("nginx + sample backend, not traced", json::parse(run.out()),
                  result, Mean(ElapsedUs(log)), "inferred", 0.10);
}

TEST(BreakdownTest, PhpFpmSleepMatchesPhpFpmClock) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-breakdown"));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, {}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  // The access log holds the readiness probe's line (if any) already.
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(fpm.request_log()));

  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(fpm.pid()), "--format", "json"}));
  AbOptions ab;
  ab.url = nginx.Url("/sleep.php?us=" + std::to_string(kWorkUs));
  ab.requests = kRequests;
  ab.concurrency = 2;
  ASSERT_OK_AND_ASSIGN(result, RunAb(ab));
  ASSERT_EQ(result.complete, kRequests);
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  ASSERT_OK_AND_ASSIGN(after, ReadPhpFpmAccessLog(fpm.request_log()));
  std::vector<PhpFpmAccessEntry> ours(after.begin() + before.size(),
                                      after.end());
  ASSERT_EQ(ours.size(), static_cast<size_t>(kRequests));
  ExpectBreakdown("nginx + php-fpm, unix", json::parse(run.out()), result,
                  Mean(DurationsUs(ours)), "measured", kMeasuredTolerance,
                  kPhpCleanRunAnomalies);
}

TEST(BreakdownTest, RequestsAsJsonLinesAddUpAndRecordReplays) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-breakdown"));
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, {}));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  std::string capture = dir.File("run.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(backend.pid()), "--requests", "--format",
                     "jsonl", "--payload", "64", "-o", capture}));
  AbOptions ab;
  ab.url = nginx.Url("/fcgi/page?work_us=2000");
  ab.requests = 20;
  ab.keepalive = true;
  ASSERT_OK_AND_ASSIGN(result, RunAb(ab));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  std::istringstream lines(run.out());
  std::string line;
  int complete = 0, reused = 0;
  while (std::getline(lines, line)) {
    json r = json::parse(line);
    SCOPED_TRACE(line);
    if (!r.value("complete", true)) continue;
    ++complete;
    if (r["client_conn"] == "reused") ++reused;
    EXPECT_EQ(r["request_line"], "GET /fcgi/page");
    EXPECT_EQ(r["backend_timing"], "measured");
    EXPECT_GE(r["backend_us"].get<double>(), 2000);
    EXPECT_FALSE(r["syscalls"].empty());
  }
  EXPECT_EQ(complete, result.complete);
  EXPECT_EQ(reused, result.complete - 1);  // ab -k: one connection

  // The capture replays to the very same lines.
  ASSERT_OK_AND_ASSIGN(replay_dir, TempDir::Create("reqcost-replay"));
  ASSERT_OK_AND_ASSIGN(
      replay,
      Subprocess::Start({REQCOST_BINARY, "report", capture, "--requests",
                         "--format", "jsonl"},
                        replay_dir.File("out"), replay_dir.File("err")));
  ASSERT_OK_AND_ASSIGN(status, replay.WaitForExit(absl::Seconds(30)));
  EXPECT_EQ(status, 0);
  ASSERT_OK_AND_ASSIGN(replayed, ReadFileToString(replay_dir.File("out")));
  EXPECT_EQ(replayed, run.out());
}

// --syscall-times: the data syscalls traced at their enter and exit (the
// hooks reqcost used before the socket-layer ones) on the nginx + sample
// backend case: every ab request is one complete request, the backend phase
// within 2% of the backend's own clock, and the per-request syscalls that
// move bytes have a duration. The same stack profiled in the default mode
// (data I/O seen at the socket layer, at its end only) gives the same
// breakdown, and those syscalls have none (dur_us null).
TEST(BreakdownTest, SyscallTimesTimesDataSyscallsAndKeepsTheBreakdown) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  constexpr double kTolerance = 0.02;
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-syscall-times"));
  FcgiBackendOptions bopts;
  bopts.workers = 2;
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, bopts));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));

  size_t logged = 0;  // backend log lines of the earlier runs
  for (bool syscall_times : {true, false}) {
    SCOPED_TRACE(syscall_times ? "--syscall-times" : "default hooks");
    const std::string capture =
        dir.File(syscall_times ? "syscall-times.cap" : "default.cap");
    std::vector<std::string> args = {"attach",
                                     "-p",
                                     std::to_string(nginx.pid()),
                                     "-p",
                                     std::to_string(backend.pid()),
                                     "--format",
                                     "json",
                                     "-o",
                                     capture};
    if (syscall_times) args.push_back("--syscall-times");
    ASSERT_OK_AND_ASSIGN(run, ReqcostRun::Attach(dir, args));
    AbOptions ab;
    ab.url = nginx.Url("/fcgi/x?work_us=" + std::to_string(kWorkUs));
    ab.requests = kRequests;
    ab.concurrency = 2;
    absl::StatusOr<AbResult> result = RunAb(ab);
    ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->complete, kRequests);
    ASSERT_EQ(code, 0) << run.err();

    ASSERT_OK_AND_ASSIGN(log, ReadBackendLog(backend.request_log()));
    ASSERT_EQ(log.size(), logged + kRequests);
    std::vector<BackendLogEntry> this_run(log.begin() + logged, log.end());
    logged = log.size();
    json report = json::parse(run.out());
    EXPECT_EQ(report["requests"]["count"], result->complete);
    ExpectBreakdown(std::string("nginx + sample backend, unix, ") +
                        (syscall_times ? "--syscall-times" : "default hooks"),
                    report, *result, Mean(ElapsedUs(this_run)), "measured",
                    kTolerance);

    // Per request: every syscall that moves bytes is timed with
    // --syscall-times and untimed by default.
    ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(capture));
    ASSERT_EQ(requests.size(), static_cast<size_t>(kRequests));
    int data_calls = 0;
    for (const json& q : requests) {
      ASSERT_EQ(q["complete"], true) << q.dump();
      for (const json& sc : q["syscalls"]) {
        std::optional<Syscall> kind =
            SyscallFromName(sc["name"].get<std::string>());
        ASSERT_TRUE(kind.has_value()) << sc.dump();
        if (!IsRead(*kind) && !IsWrite(*kind)) continue;
        ++data_calls;
        if (syscall_times) {
          EXPECT_TRUE(sc["dur_us"].is_number()) << sc.dump();
        } else {
          EXPECT_TRUE(sc["dur_us"].is_null()) << sc.dump();
        }
      }
    }
    // Each request reads its request, writes its response, and its
    // exchange sends and reads on both sides: at least 6 of them.
    EXPECT_GE(data_calls, 6 * kRequests);
  }
}

}  // namespace
}  // namespace reqcost::testing
