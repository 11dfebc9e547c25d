// Real web stacks on loopback, driven through tests/support: nginx and
// lighttpd in front of samples/fcgi-backend, php-fpm and php-cgi. No BPF: this
// checks the harness and the sample configurations that the integration
// tests and the demo profile.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::SizeIs;

#define ASSERT_OK(expr)                    \
  do {                                     \
    const ::absl::Status status_ = (expr); \
    ASSERT_TRUE(status_.ok()) << status_;  \
  } while (0)

#define TEST_CONCAT_INNER_(a, b) a##b
#define TEST_CONCAT_(a, b) TEST_CONCAT_INNER_(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(TEST_CONCAT_(statusor_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  ASSERT_TRUE(statusor.ok()) << statusor.status();      \
  lhs = std::move(statusor).value()

constexpr int kWorkUs = 20000;
constexpr int kRequests = 50;
constexpr int kConcurrency = 2;

// Every PID the test started (masters and the workers they forked), so the
// end of the test can check that none is left.
class PidRecorder {
 public:
  void Add(const Server& s) {
    for (pid_t p : s.AllPids()) pids_.insert(p);
  }
  // Fails the test for each recorded PID still alive (after a short grace
  // for processes that are being reaped by someone else).
  void ExpectAllGone() const {
    std::vector<pid_t> all(pids_.begin(), pids_.end());
    absl::Status gone = WaitForGoneOrKill(all, absl::Seconds(3));
    EXPECT_TRUE(gone.ok()) << gone;
  }
  size_t size() const { return pids_.size(); }

 private:
  std::set<pid_t> pids_;
};

// The backend log's entries whose URI contains `needle`.
std::vector<BackendLogEntry> Matching(const std::vector<BackendLogEntry>& all,
                                      absl::string_view needle) {
  std::vector<BackendLogEntry> out;
  for (const auto& e : all) {
    if (absl::StrContains(e.uri, needle)) out.push_back(e);
  }
  return out;
}

std::vector<PhpFpmAccessEntry> Matching(
    const std::vector<PhpFpmAccessEntry>& all, absl::string_view needle) {
  std::vector<PhpFpmAccessEntry> out;
  for (const auto& e : all) {
    if (absl::StrContains(e.uri, needle)) out.push_back(e);
  }
  return out;
}

void ExpectAllComplete(const AbResult& r, int requests) {
  EXPECT_EQ(r.complete, requests) << r.output;
  EXPECT_EQ(r.failed, 0) << r.output;
  EXPECT_EQ(r.non_2xx, 0) << r.output;
}

// The backend's own durations sit just above the requested work: never below
// (absolute-deadline sleep), typically well within a millisecond above. The
// tail is wake-ups that other processes on a loaded machine delay by tens of
// milliseconds (a run here: p90 31 ms, max 52 ms for 20 ms of work), so it
// is bounded only against a work done twice: p90 under twice the work.
void ExpectNearWork(const std::vector<double>& us, double work_us,
                    absl::string_view what) {
  Summary s = Summarize(us);
  EXPECT_THAT(us, Each(Ge(work_us))) << what;
  EXPECT_LE(s.p50, work_us + 2000) << what;
  EXPECT_LT(s.p90, 2 * work_us) << what;
  std::printf(
      "[ measure  ] %s: n=%zu mean=%.0f p50=%.0f p90=%.0f max=%.0f us (work "
      "%.0f us, "
      "mean error %+.0f us)\n",
      std::string(what).c_str(), s.count, s.mean, s.p50, s.p90, s.max, work_us,
      s.mean - work_us);
}

// ------------------------------------------------------------ harness

TEST(HarnessTest, FillTemplateReplacesAndRejectsUnfilledPlaceholders) {
  ASSERT_OK_AND_ASSIGN(
      std::string filled,
      FillTemplate("listen @HOST@:@PORT@; user@example.com @x@ @@",
                   {{"HOST", "127.0.0.1"}, {"PORT", "80"}, {"UNUSED", "1"}}));
  EXPECT_EQ(filled, "listen 127.0.0.1:80; user@example.com @x@ @@");
  absl::StatusOr<std::string> missing =
      FillTemplate("a @ONE@ b @TWO@ c @ONE@", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              AllOf(HasSubstr("@ONE@"), HasSubstr("@TWO@")));
}

TEST(HarnessTest, EveryShippedTemplateIsFilledByItsStarter) {
  // A placeholder added to a template but not to its starter fails here
  // rather than as a server that does not start.
  for (const char* t : {"nginx/nginx.conf.in", "php-fpm/php-fpm.conf.in",
                        "lighttpd/lighttpd.conf.in"}) {
    ASSERT_OK_AND_ASSIGN(std::string text,
                         ReadFileToString(SamplesDir() + "/" + t));
    EXPECT_THAT(text, HasSubstr("@PREFIX@")) << t;
  }
}

TEST(HarnessTest, ParsesBackendLogAndPhpFpmAccessLog) {
  ASSERT_OK_AND_ASSIGN(
      std::vector<BackendLogEntry> b,
      ParseBackendLog("10 11 1000000 21000000 20000 /fcgi/x?work_us=20000\n"
                      "12 13 5 6005 6 /a b\n"));
  ASSERT_THAT(b, SizeIs(2));
  EXPECT_EQ(b[0].pid, 10);
  EXPECT_EQ(b[0].tid, 11);
  EXPECT_EQ(b[0].elapsed_us, 20000);
  EXPECT_EQ(b[1].uri, "/a b");
  EXPECT_FALSE(ParseBackendLog("10 11 x 2 3 /\n").ok());
  EXPECT_FALSE(
      ParseBackendLog("10 11 9 2 3 /\n").ok());  // ends before it starts

  ASSERT_OK_AND_ASSIGN(
      std::vector<PhpFpmAccessEntry> f,
      ParsePhpFpmAccessLog("20253.000 13079 GET /sleep.php?us=20000 200\n"));
  ASSERT_THAT(f, SizeIs(1));
  EXPECT_DOUBLE_EQ(f[0].duration_us, 20253);
  EXPECT_EQ(f[0].pid, 13079);
  EXPECT_EQ(f[0].uri, "/sleep.php?us=20000");
  EXPECT_EQ(f[0].status, 200);
  EXPECT_FALSE(ParsePhpFpmAccessLog("- 1 GET / 200\n").ok());
}

TEST(HarnessTest, ParsesAbReport) {
  ASSERT_OK_AND_ASSIGN(
      AbResult r, ParseAbOutput("Complete requests:      50\n"
                                "Failed requests:        1\n"
                                "Non-2xx responses:      3\n"
                                "Keep-Alive requests:    49\n"
                                "Requests per second:    91.90 [#/sec] (mean)\n"
                                "Time per request:       21.762 [ms] (mean)\n"
                                "Time per request:       10.881 [ms] (mean, "
                                "across all concurrent requests)\n"));
  EXPECT_EQ(r.complete, 50);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.non_2xx, 3);
  EXPECT_EQ(r.keepalive_requests, 49);
  EXPECT_DOUBLE_EQ(r.requests_per_s, 91.90);
  EXPECT_DOUBLE_EQ(r.time_per_request_ms, 21.762);
  EXPECT_FALSE(
      ParseAbOutput("apr_socket_recv: Connection refused (111)\n").ok());
}

// Whether `pid` ignores `signal` now (its SigIgn mask in /proc/PID/status).
bool Ignores(pid_t pid, int signal) {
  absl::StatusOr<std::string> status =
      ReadFileToString(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return false;
  for (absl::string_view line : absl::StrSplit(*status, '\n')) {
    uint64_t mask = 0;
    if (absl::ConsumePrefix(&line, "SigIgn:") &&
        absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line), &mask)) {
      return (mask >> (signal - 1) & 1) != 0;
    }
  }
  return false;
}

TEST(HarnessTest, SubprocessStopKillsAProcessThatIgnoresSigterm) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  ASSERT_OK_AND_ASSIGN(
      Subprocess p,
      Subprocess::Start({"/bin/sh", "-c", "trap '' TERM; exec sleep 30"},
                        dir.File("out"), dir.File("err")));
  pid_t pid = p.pid();
  // Stopped only once the trap is set (else SIGTERM ends the shell at once).
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!Ignores(pid, SIGTERM) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(Ignores(pid, SIGTERM))
      << "the shell did not set its trap within 10 s";
  absl::Time start = absl::Now();
  absl::StatusOr<int> status = p.Stop(absl::Milliseconds(300));
  EXPECT_EQ(status.status().code(), absl::StatusCode::kDeadlineExceeded)
      << status.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(p.running());
  EXPECT_FALSE(ProcessAlive(pid));
}

TEST(HarnessTest, SubprocessReportsAMissingProgram) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  absl::StatusOr<Subprocess> p = Subprocess::Start(
      {"/nonexistent/reqcost-nothing"}, dir.File("out"), dir.File("err"));
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("/nonexistent/reqcost-nothing"));
}

TEST(HarnessTest, TempDirIsRemovedAtDestruction) {
  std::string path;
  {
    ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
    path = dir.path();
    ASSERT_OK(WriteStringToFile(dir.File("f"), "x"));
    ASSERT_EQ(access(path.c_str(), F_OK), 0);
  }
  const char* keep = std::getenv("REQCOST_KEEP_TMP");
  if (keep == nullptr || std::string(keep) != "1") {
    EXPECT_NE(access(path.c_str(), F_OK), 0) << path;
  }
}

TEST(HarnessTest, FindBinaryNamesWhatToInstall) {
  absl::StatusOr<std::string> unknown = FindBinary("no-such-tool");
  EXPECT_FALSE(unknown.ok());
  for (const char* tool :
       {"nginx", "php-fpm", "php-cgi", "lighttpd", "ab", "wrk"}) {
    absl::StatusOr<std::string> path = FindBinary(tool);
    EXPECT_TRUE(path.ok()) << path.status();
  }
}

// ------------------------------------------------------- fcgi backend

TEST(FcgiBackendTest, SigtermToTheParentStopsEveryWorker) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  ASSERT_OK_AND_ASSIGN(Server backend,
                       StartFcgiBackend(dir, {.workers = 3, .threads = 2}));
  PidRecorder pids;
  pids.Add(backend);
  EXPECT_EQ(pids.size(), 4u);
  EXPECT_THAT(backend.WorkerPids(), SizeIs(3));
  std::string sock = dir.File("backend.sock");
  EXPECT_EQ(access(sock.c_str(), F_OK), 0);
  absl::Time start = absl::Now();
  ASSERT_OK(backend.Stop(absl::Seconds(5)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2))
      << "workers were not woken by SIGTERM";
  pids.ExpectAllGone();
  EXPECT_NE(access(sock.c_str(), F_OK), 0) << "socket file left behind";
}

// -------------------------------------------- nginx + fcgi backend

class NginxFcgiBackendTest : public ::testing::TestWithParam<std::string> {};

TEST_P(NginxFcgiBackendTest, AbWithAndWithoutKeepAliveMatchesTheBackendLog) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  const bool tcp = GetParam() == "tcp";
  ASSERT_OK_AND_ASSIGN(
      Server backend,
      StartFcgiBackend(
          dir, {.listen = tcp ? "tcp" : "", .workers = 2, .threads = 1}));
  EXPECT_EQ(absl::StartsWith(backend.address(), "unix:"), !tcp)
      << backend.address();
  ASSERT_OK_AND_ASSIGN(Server nginx,
                       StartNginx(dir, {.fcgi_upstream = backend.address()}));
  PidRecorder pids;
  pids.Add(backend);
  pids.Add(nginx);
  EXPECT_EQ(pids.size(), 5u);  // 2 masters, 2 backend workers, 1 nginx worker

  ASSERT_OK_AND_ASSIGN(HttpResponse probe,
                       HttpGet(nginx.Url("/fcgi/probe?work_us=1000")));
  EXPECT_EQ(probe.status, 200) << probe.body << nginx.LogTail();
  EXPECT_EQ(probe.headers["content-type"], "text/plain");
  ASSERT_EQ(probe.headers.count("x-backend-us"), 1u);
  EXPECT_GE(std::stoi(probe.headers["x-backend-us"]), 1000);
  EXPECT_EQ(probe.headers["x-backend-conn-reqs"],
            "1");  // fastcgi_keep_conn off

  std::string url = nginx.Url(absl::StrCat("/fcgi/work?work_us=", kWorkUs));
  for (bool keepalive : {false, true}) {
    ASSERT_OK_AND_ASSIGN(AbResult ab, RunAb({.url = url,
                                             .requests = kRequests,
                                             .concurrency = kConcurrency,
                                             .keepalive = keepalive,
                                             .work_dir = dir.path()}));
    ExpectAllComplete(ab, kRequests);
    if (keepalive) {
      EXPECT_GT(ab.keepalive_requests, 0) << ab.output;
    }
    std::printf(
        "[ measure  ] nginx+fcgi-backend (%s) ab -n %d -c %d%s: %.1f req/s, "
        "%.2f ms/req\n",
        GetParam().c_str(), kRequests, kConcurrency, keepalive ? " -k" : "",
        ab.requests_per_s, ab.time_per_request_ms);
  }
  ASSERT_OK_AND_ASSIGN(std::vector<BackendLogEntry> log,
                       WaitForBackendLog(backend.request_log(),
                                         2 * kRequests + 1, absl::Seconds(10)));
  EXPECT_THAT(log, SizeIs(2 * kRequests + 1));
  std::vector<BackendLogEntry> work = Matching(log, "work_us=20000");
  ASSERT_THAT(work, SizeIs(2 * kRequests));
  std::set<pid_t> serving;
  for (const auto& e : work) serving.insert(e.pid);
  EXPECT_THAT(serving, SizeIs(Le(2u)));
  ExpectNearWork(ElapsedUs(work), kWorkUs,
                 absl::StrCat("fcgi-backend log (", GetParam(), ")"));

  ASSERT_OK(nginx.Stop());
  ASSERT_OK(backend.Stop());
  pids.ExpectAllGone();
}

INSTANTIATE_TEST_SUITE_P(Transports, NginxFcgiBackendTest,
                         ::testing::Values("unix", "tcp"),
                         [](const auto& info) { return info.param; });

// ------------------------------------------------- nginx + php-fpm

TEST(NginxPhpFpmTest, SleepPhpDurationsInTheAccessLogMatchTheSleep) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  ASSERT_OK_AND_ASSIGN(Server fpm, StartPhpFpm(dir, {.children = 2}));
  ASSERT_OK_AND_ASSIGN(Server nginx,
                       StartNginx(dir, {.upstream = fpm.address()}));
  PidRecorder pids;
  pids.Add(fpm);
  pids.Add(nginx);
  EXPECT_THAT(fpm.WorkerPids(), SizeIs(2));

  ASSERT_OK_AND_ASSIGN(HttpResponse hello, HttpGet(nginx.Url("/hello.php")));
  EXPECT_EQ(hello.status, 200)
      << hello.body << nginx.LogTail() << fpm.LogTail();
  EXPECT_EQ(hello.body, "123");

  ASSERT_OK_AND_ASSIGN(
      AbResult ab,
      RunAb({.url = nginx.Url(absl::StrCat("/sleep.php?us=", kWorkUs)),
             .requests = kRequests,
             .concurrency = kConcurrency,
             .work_dir = dir.path()}));
  ExpectAllComplete(ab, kRequests);

  // Throughput of the cheapest PHP request, one at a time, over a unix socket.
  constexpr int kHello = 500;
  ASSERT_OK_AND_ASSIGN(AbResult rate, RunAb({.url = nginx.Url("/hello.php"),
                                             .requests = kHello,
                                             .concurrency = 1,
                                             .work_dir = dir.path()}));
  ExpectAllComplete(rate, kHello);
  std::printf(
      "[ measure  ] nginx+php-fpm (unix) hello.php ab -n %d -c 1: %.0f req/s, "
      "%.3f ms/req\n",
      kHello, rate.requests_per_s, rate.time_per_request_ms);

  ASSERT_OK_AND_ASSIGN(std::vector<PhpFpmAccessEntry> log,
                       ReadPhpFpmAccessLog(fpm.request_log()));
  // One line per request, none for the harness's readiness probe.
  EXPECT_THAT(log, SizeIs(1 + kRequests + kHello));
  std::vector<PhpFpmAccessEntry> sleeps = Matching(log, "/sleep.php");
  ASSERT_THAT(sleeps, SizeIs(kRequests));
  for (const auto& e : sleeps) EXPECT_EQ(e.status, 200);
  ExpectNearWork(DurationsUs(sleeps), kWorkUs, "php-fpm access log sleep.php");

  ASSERT_OK(nginx.Stop());
  ASSERT_OK(fpm.Stop());
  pids.ExpectAllGone();
}

TEST(NginxKeepConnTest, FastcgiKeepConnReusesBackendConnections) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  // A kept FastCGI connection holds a backend thread (as it holds a php-fpm
  // child): give the backend more threads than nginx opens connections.
  ASSERT_OK_AND_ASSIGN(Server backend,
                       StartFcgiBackend(dir, {.workers = 2, .threads = 2}));
  ASSERT_OK_AND_ASSIGN(Server fpm, StartPhpFpm(dir, {.children = 4}));
  ASSERT_OK_AND_ASSIGN(Server nginx,
                       StartNginx(dir, {.upstream = fpm.address(),
                                        .fcgi_upstream = backend.address(),
                                        .keep_conn = true}));
  PidRecorder pids;
  pids.Add(backend);
  pids.Add(fpm);
  pids.Add(nginx);

  ASSERT_OK_AND_ASSIGN(AbResult ab,
                       RunAb({.url = nginx.Url("/fcgi/k?work_us=1000"),
                              .requests = kRequests,
                              .concurrency = kConcurrency,
                              .keepalive = true,
                              .work_dir = dir.path()}));
  ExpectAllComplete(ab, kRequests);
  // One request at a time now: nginx takes a cached connection.
  int max_reqs = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(HttpResponse r,
                         HttpGet(nginx.Url("/fcgi/after?work_us=100")));
    EXPECT_EQ(r.status, 200);
    max_reqs = std::max(max_reqs, std::stoi(r.headers["x-backend-conn-reqs"]));
  }
  EXPECT_GT(max_reqs, 1) << "nginx did not reuse a FastCGI connection";
  ASSERT_OK_AND_ASSIGN(std::vector<BackendLogEntry> log,
                       WaitForBackendLog(backend.request_log(), kRequests + 3,
                                         absl::Seconds(10)));
  EXPECT_THAT(log, SizeIs(kRequests + 3));

  ASSERT_OK_AND_ASSIGN(AbResult php,
                       RunAb({.url = nginx.Url("/sleep.php?us=1000"),
                              .requests = kRequests,
                              .concurrency = kConcurrency,
                              .keepalive = true,
                              .work_dir = dir.path()}));
  ExpectAllComplete(php, kRequests);
  ASSERT_OK_AND_ASSIGN(std::vector<PhpFpmAccessEntry> fpm_log,
                       ReadPhpFpmAccessLog(fpm.request_log()));
  EXPECT_THAT(fpm_log, SizeIs(kRequests));

  // Backend first, while nginx still holds kept connections: its threads
  // wait in read() on them, not in accept(), and must still stop promptly.
  absl::Time start = absl::Now();
  ASSERT_OK(backend.Stop(absl::Seconds(5)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  ASSERT_OK(fpm.Stop());
  ASSERT_OK(nginx.Stop());
  pids.ExpectAllGone();
}

// ---------------------------------------- nginx proxy_pass (http mode)

class NginxProxyTest : public ::testing::TestWithParam<bool> {};

TEST_P(NginxProxyTest, ProxyPassToTheBackendInHttpMode) {
  const bool keep = GetParam();
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  ASSERT_OK_AND_ASSIGN(Server backend,
                       StartFcgiBackend(dir, {.listen = "tcp",
                                              .workers = 1,
                                              .threads = 2,
                                              .mode = "http",
                                              .name = "http-backend"}));
  ASSERT_OK_AND_ASSIGN(
      Server nginx,
      StartNginx(dir, {.http_upstream = backend.address(), .keep_conn = keep}));
  PidRecorder pids;
  pids.Add(backend);
  pids.Add(nginx);

  ASSERT_OK_AND_ASSIGN(
      AbResult ab,
      RunAb({.url = nginx.Url(absl::StrCat("/proxy/p?work_us=", kWorkUs)),
             .requests = kRequests,
             .concurrency = kConcurrency,
             .keepalive = keep,
             .work_dir = dir.path()}));
  ExpectAllComplete(ab, kRequests);
  int max_reqs = 0;
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(HttpResponse r, HttpGet(nginx.Url("/proxy/after")));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers.count("x-backend-us"), 1u);
    max_reqs = std::max(max_reqs, std::stoi(r.headers["x-backend-conn-reqs"]));
  }
  if (keep) {
    EXPECT_GT(max_reqs, 1) << "nginx did not keep the upstream HTTP connection";
  } else {
    EXPECT_EQ(max_reqs, 1);
  }
  // The 20 ms requests and the two after them.
  ASSERT_OK_AND_ASSIGN(std::vector<BackendLogEntry> log,
                       WaitForBackendLog(backend.request_log(), kRequests + 2,
                                         absl::Seconds(10)));
  std::vector<BackendLogEntry> work = Matching(log, "work_us=20000");
  ASSERT_THAT(work, SizeIs(kRequests));
  EXPECT_THAT(work[0].uri, HasSubstr("/proxy/p?work_us=20000"));
  ExpectNearWork(ElapsedUs(work), kWorkUs,
                 absl::StrCat("http backend log (proxy_pass, keep-alive ",
                              keep ? "on" : "off", ")"));

  ASSERT_OK(nginx.Stop());
  ASSERT_OK(backend.Stop());
  pids.ExpectAllGone();
}

INSTANTIATE_TEST_SUITE_P(KeepAlive, NginxProxyTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "KeepAlive" : "Close";
                         });

// ---------------------------------------------------------- lighttpd

TEST(LighttpdTest, ServesHelloPhpThroughPhpFpm) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  ASSERT_OK_AND_ASSIGN(Server fpm, StartPhpFpm(dir, {.children = 2}));
  ASSERT_OK_AND_ASSIGN(Server lighttpd,
                       StartLighttpd(dir, {.php_fpm = fpm.address()}));
  PidRecorder pids;
  pids.Add(fpm);
  pids.Add(lighttpd);

  ASSERT_OK_AND_ASSIGN(HttpResponse hello, HttpGet(lighttpd.Url("/hello.php")));
  EXPECT_EQ(hello.status, 200) << lighttpd.LogTail();
  EXPECT_EQ(hello.body, "123");
  ASSERT_OK_AND_ASSIGN(AbResult ab, RunAb({.url = lighttpd.Url("/hello.php"),
                                           .requests = kRequests,
                                           .concurrency = kConcurrency,
                                           .work_dir = dir.path()}));
  ExpectAllComplete(ab, kRequests);
  ASSERT_OK_AND_ASSIGN(std::vector<PhpFpmAccessEntry> log,
                       ReadPhpFpmAccessLog(fpm.request_log()));
  EXPECT_THAT(log, SizeIs(kRequests + 1));
  std::printf(
      "[ measure  ] lighttpd+php-fpm (unix) hello.php ab -n %d -c %d: %.0f "
      "req/s\n",
      kRequests, kConcurrency, ab.requests_per_s);

  ASSERT_OK(lighttpd.Stop());
  ASSERT_OK(fpm.Stop());
  pids.ExpectAllGone();
}

TEST(LighttpdTest, ServesHelloPhpThroughSpawnedPhpCgi) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  ASSERT_OK_AND_ASSIGN(
      Server lighttpd,
      StartLighttpd(dir, {.spawn_php_cgi = true, .php_cgi_children = 2}));
  ASSERT_OK_AND_ASSIGN(HttpResponse hello, HttpGet(lighttpd.Url("/hello.php")));
  EXPECT_EQ(hello.status, 200) << lighttpd.LogTail();
  EXPECT_EQ(hello.body, "123");
  PidRecorder pids;
  pids.Add(lighttpd);  // lighttpd, the php-cgi parent and its 2 children
  EXPECT_EQ(pids.size(), 4u);
  ASSERT_OK_AND_ASSIGN(AbResult ab, RunAb({.url = lighttpd.Url("/hello.php"),
                                           .requests = kRequests,
                                           .concurrency = kConcurrency,
                                           .work_dir = dir.path()}));
  ExpectAllComplete(ab, kRequests);
  std::printf(
      "[ measure  ] lighttpd+php-cgi (spawned) hello.php ab -n %d -c %d: %.0f "
      "req/s\n",
      kRequests, kConcurrency, ab.requests_per_s);

  ASSERT_OK(lighttpd.Stop());
  pids.ExpectAllGone();
}

}  // namespace
}  // namespace reqcost::testing
