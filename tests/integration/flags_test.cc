// Flags and exit codes of docs/reqcost.8.md that no other test covers, each
// checked for its effect, not only its exit code: --service-name, -v, exit
// code 5, `import --force`, `--group-by` with `--format jsonl`, and
// `--events` on nginx + php-fpm (docs/testing.md, "Flags and exit codes →
// tests").
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/loopback.h"
#include "tests/support/otlp_json_check.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kResponse[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

// A child named `name` that answers one request per connection; killed and
// reaped by the returned guard.
struct NamedServer {
  pid_t pid = -1;
  int port = 0;
  ~NamedServer() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

void StartNamedServer(const std::string& name, NamedServer* s) {
  const int listen_fd = ListenLoopback(&s->port);
  ASSERT_GE(listen_fd, 0) << std::strerror(errno);
  s->pid = fork();
  if (s->pid == 0) {
    alarm(60);  // a bound on its life should the test die first
    prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
    char buf[4096];
    while (true) {
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) _exit(1);
      if (read(fd, buf, sizeof(buf)) > 0 &&
          write(fd, kResponse, sizeof(kResponse) - 1) < 0)
        _exit(1);
      close(fd);
    }
  }
  close(listen_fd);
  ASSERT_GT(s->pid, 0);
}

bool OneRequest(int port) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return false;
  const std::string req = "GET /flags HTTP/1.1\r\nHost: x\r\n\r\n";
  bool ok =
      write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size());
  std::string reply;
  char buf[256];
  ssize_t n;
  while (ok && (n = read(fd, buf, sizeof(buf))) > 0)
    reply.append(buf, static_cast<size_t>(n));
  close(fd);
  return ok && reply.rfind("HTTP/1.1 200 OK", 0) == 0;
}

// The service.name of every SERVER span in an --otlp-json file, which the
// strict checker must accept.
std::set<std::string> ServiceNames(const std::string& path, int* spans) {
  std::set<std::string> names;
  OtlpCheck check;
  absl::StatusOr<std::string> text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << path;
  if (!text.ok()) return names;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty()))
    CheckOtlpJson(std::string(line), &check);
  EXPECT_TRUE(check.ok()) << check.ErrorText();
  *spans = 0;
  for (const OtlpSpan& s : check.spans) {
    if (s.kind != 2) continue;
    ++*spans;
    names.insert(s.resource.at("service.name")["stringValue"]);
  }
  return names;
}

// --service-name replaces the server's comm as every span's service.name,
// in attach and in report; without it the comm is used.
TEST(FlagsTest, ServiceNameNamesEverySpan) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-flags"));
  NamedServer server;
  StartNamedServer("flagsrv", &server);
  if (HasFatalFailure()) return;
  const std::string live = dir.File("live.jsonl");
  const std::string capture = dir.File("run.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(server.pid), "--otlp-json",
                     live, "--service-name", "checkout-api", "-o", capture}));
  constexpr int kRequests = 3;
  for (int i = 0; i < kRequests; ++i) ASSERT_TRUE(OneRequest(server.port));
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  int spans = 0;
  EXPECT_EQ(ServiceNames(live, &spans), std::set<std::string>{"checkout-api"});
  EXPECT_EQ(spans, kRequests);

  // report: the flag names the spans of a replay too; without it, the comm.
  const std::string named = dir.File("named.jsonl");
  ASSERT_OK_AND_ASSIGN(
      r1, RunReqcostTo({"report", capture, "--otlp-json", named,
                        "--service-name", "replayed"},
                       dir.File("r1.out"), dir.File("r1.err")));
  ASSERT_EQ(r1.code, 0) << FileTail(dir.File("r1.err"));
  EXPECT_EQ(ServiceNames(named, &spans), std::set<std::string>{"replayed"});
  EXPECT_EQ(spans, kRequests);
  const std::string plain = dir.File("plain.jsonl");
  ASSERT_OK_AND_ASSIGN(r2, RunReqcostTo({"report", capture, "--otlp-json",
                                         plain},
                                        dir.File("r2.out"), dir.File("r2.err")));
  ASSERT_EQ(r2.code, 0) << FileTail(dir.File("r2.err"));
  EXPECT_EQ(ServiceNames(plain, &spans), std::set<std::string>{"flagsrv"});
}

// A process to attach to, killed and reaped at the end.
struct Sleeper {
  pid_t pid = -1;
  Sleeper() {
    pid = fork();
    if (pid == 0) {
      execl("/bin/sleep", "sleep", "60", nullptr);
      _exit(97);
    }
  }
  ~Sleeper() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

// -v shows libbpf's own log ("libbpf: ..." lines on stderr); without it
// there are none.
TEST(FlagsTest, VerboseShowsLibbpfsLog) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-flags"));
  Sleeper target;
  ASSERT_OK_AND_ASSIGN(
      verbose, RunReqcostTo({"attach", "-p", std::to_string(target.pid),
                             "--duration", "1s", "-v"},
                            dir.File("v.out"), dir.File("v.err")));
  ASSERT_EQ(verbose.code, 0) << FileTail(dir.File("v.err"));
  ASSERT_OK_AND_ASSIGN(quiet, RunReqcostTo({"attach", "-p",
                                            std::to_string(target.pid),
                                            "--duration", "1s"},
                                           dir.File("q.out"), dir.File("q.err")));
  ASSERT_EQ(quiet.code, 0) << FileTail(dir.File("q.err"));
  const std::string verr = ReadFileToString(dir.File("v.err")).value_or("");
  const std::string qerr = ReadFileToString(dir.File("q.err")).value_or("");
  EXPECT_THAT(verr, HasSubstr("libbpf: ")) << verr.substr(0, 2000);
  EXPECT_THAT(qerr, Not(HasSubstr("libbpf: "))) << qerr;
}

// Exit code 5: the kernel lacks something reqcost needs. Here BTF: reqcost
// runs in a mount namespace of its own where /sys/kernel/btf is an empty
// tmpfs (nothing changes for other processes).
TEST(FlagsTest, KernelWithoutBtfIsExitFive) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-flags"));
  Sleeper target;
  const std::string out = dir.File("nobtf.out");
  const std::string err = dir.File("nobtf.err");
  const std::string pid = std::to_string(target.pid);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    alarm(60);
    FILE* o = freopen(out.c_str(), "w", stdout);
    FILE* e = freopen(err.c_str(), "w", stderr);
    if (o == nullptr || e == nullptr) _exit(90);
    if (unshare(CLONE_NEWNS) != 0) _exit(91);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      _exit(92);
    if (mount("tmpfs", "/sys/kernel/btf", "tmpfs", 0, nullptr) != 0) _exit(93);
    execl(REQCOST_BINARY, REQCOST_BINARY, "attach", "-p", pid.c_str(),
          "--duration", "1s", nullptr);
    _exit(94);
  }
  int status = 0;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (waitpid(child, &status, WNOHANG) == 0 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(20));
  if (absl::Now() >= deadline) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    FAIL() << "reqcost did not exit within 30 s";
  }
  ASSERT_TRUE(WIFEXITED(status));
  const std::string text = ReadFileToString(err).value_or("");
  EXPECT_EQ(WEXITSTATUS(status), 5) << text;
  EXPECT_THAT(text, HasSubstr("this kernel has no BTF"));
  // The host's BTF is still there: the namespace was the child's only.
  EXPECT_EQ(access("/sys/kernel/btf/vmlinux", R_OK), 0);
}

// The committed real inputs of the fuzz corpora serve as fixtures: a strace
// log of reqcost-front-server and a capture of it.
std::string Fixture(const std::string& path) {
  return std::string(REQCOST_SOURCE_DIR) + "/tests/fuzz/corpus/" + path;
}

// import -o an existing file: exit 2 and the file untouched; with --force
// the file is replaced by the import.
TEST(FlagsTest, ImportForceReplacesAnExistingCapture) {
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-flags"));
  const std::string log = Fixture("strace_fuzz/front_server_ttt_f_yy");
  const std::string capture = dir.File("import.cap");
  {
    FILE* f = std::fopen(capture.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("not a capture\n", f);
    std::fclose(f);
  }
  ASSERT_OK_AND_ASSIGN(refused, RunReqcostTo({"import", "strace", log, "-o",
                                              capture},
                                             dir.File("a.out"),
                                             dir.File("a.err")));
  EXPECT_EQ(refused.code, 2) << FileTail(dir.File("a.err"));
  EXPECT_THAT(ReadFileToString(dir.File("a.err")).value_or(""),
              HasSubstr("--force"));
  EXPECT_EQ(ReadFileToString(capture).value_or(""), "not a capture\n");

  ASSERT_OK_AND_ASSIGN(forced, RunReqcostTo({"import", "strace", log, "-o",
                                             capture, "--force"},
                                            dir.File("b.out"),
                                            dir.File("b.err")));
  ASSERT_EQ(forced.code, 0) << FileTail(dir.File("b.err"));
  // Replaced: the file now reads as a capture with the log's requests.
  ASSERT_OK_AND_ASSIGN(report, RunReqcostTo({"report", capture, "--format",
                                             "json"},
                                            dir.File("c.out"),
                                            dir.File("c.err")));
  ASSERT_EQ(report.code, 0) << FileTail(dir.File("c.err"));
  const nlohmann::json j = nlohmann::json::parse(report.out);
  EXPECT_GT(j["requests"]["count"].get<int>(), 0) << report.out;
}

// --group-by with --format jsonl is a usage error (exit 2, naming both), in
// report and in compare; text and json work on the same capture.
TEST(FlagsTest, GroupByWithJsonlIsAUsageError) {
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-flags"));
  const std::string cap =
      Fixture("capture_fuzz/front_server_proxied_payload64.cap");
  ASSERT_OK_AND_ASSIGN(
      jsonl, RunReqcostTo({"report", cap, "--group-by", "client-conn",
                           "--format", "jsonl"},
                          dir.File("a.out"), dir.File("a.err")));
  EXPECT_EQ(jsonl.code, 2);
  const std::string err = ReadFileToString(dir.File("a.err")).value_or("");
  EXPECT_THAT(err, HasSubstr("--group-by"));
  EXPECT_THAT(err, HasSubstr("jsonl"));
  EXPECT_EQ(jsonl.out, "");
  ASSERT_OK_AND_ASSIGN(
      cmp, RunReqcostTo({"compare", cap, cap, "--group-by", "client-conn",
                         "--format", "jsonl"},
                        dir.File("b.out"), dir.File("b.err")));
  EXPECT_EQ(cmp.code, 2) << FileTail(dir.File("b.err"));
  ASSERT_OK_AND_ASSIGN(
      json, RunReqcostTo({"report", cap, "--group-by", "client-conn",
                          "--format", "json"},
                         dir.File("c.out"), dir.File("c.err")));
  EXPECT_EQ(json.code, 0) << FileTail(dir.File("c.err"));
  EXPECT_NO_THROW((void)nlohmann::json::parse(json.out)) << json.out;
}

// compare --threshold PCT: the JSON carries it, and the verdict's rule
// says it (the default is 2%).
TEST(FlagsTest, ThresholdReachesTheComparison) {
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-flags"));
  const std::string cap =
      Fixture("capture_fuzz/front_server_proxied_payload64.cap");
  ASSERT_OK_AND_ASSIGN(
      set, RunReqcostTo({"compare", cap, cap, "--threshold", "37", "--format",
                         "json"},
                        dir.File("a.out"), dir.File("a.err")));
  ASSERT_EQ(set.code, 0) << FileTail(dir.File("a.err"));
  EXPECT_EQ(nlohmann::json::parse(set.out)["threshold_pct"], 37.0);
  ASSERT_OK_AND_ASSIGN(
      plain, RunReqcostTo({"compare", cap, cap, "--format", "json"},
                          dir.File("b.out"), dir.File("b.err")));
  ASSERT_EQ(plain.code, 0) << FileTail(dir.File("b.err"));
  EXPECT_EQ(nlohmann::json::parse(plain.out)["threshold_pct"], 2.0);
  ASSERT_OK_AND_ASSIGN(
      bad, RunReqcostTo({"compare", cap, cap, "--threshold", "-1"},
                        dir.File("c.out"), dir.File("c.err")));
  EXPECT_EQ(bad.code, 2) << FileTail(dir.File("c.err"));
}

// --events on real nginx + php-fpm (unix socket): one line per call of the
// nginx worker and the php-fpm child that served, each naming its socket.
TEST(FlagsTest, EventsOnNginxAndPhpFpm) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-flags"));
  PhpFpmOptions fopts;
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx.pid()),
                                    "-p", std::to_string(fpm.pid()),
                                    "--events"}));
  constexpr int kRequests = 4;
  for (int i = 0; i < kRequests; ++i) {
    absl::StatusOr<HttpResponse> r = HttpGet(nginx.Url("/hello.php"));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200);
  }
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  const std::string out = run.out();
  SCOPED_TRACE(out.substr(0, 6000));
  auto count = [&](const std::string& pattern) {
    std::regex re(pattern);
    int n = 0;
    for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end;
         ++it)
      ++n;
    return n;
  };
  // nginx's workers: each request accepted from the client (its TCP tuple
  // on the listening port), a connect to php-fpm's unix socket, the
  // response written to the client.
  const std::string client = absl::StrCat("127.0.0.1:", nginx.port(), "->");
  int accepted = 0, connected = 0, answered = 0;
  for (pid_t w : nginx.WorkerPids()) {
    const std::string who = absl::StrCat(" ", w, "/", w, " ");
    accepted += count(who + R"(accept4\([0-9?]+\) = \d+<)" + client);
    connected += count(who + R"(connect\(\d+<unix:)");
    answered += count(who + R"((write|writev|sendfile)\(\d+<)" + client);
  }
  EXPECT_EQ(accepted, kRequests);
  EXPECT_EQ(connected, kRequests);
  EXPECT_GE(answered, kRequests);
  // php-fpm's children: each request accepted on the unix socket, read and
  // answered there.
  int fpm_accepted = 0, fpm_read = 0, fpm_wrote = 0;
  for (pid_t c : fpm.WorkerPids()) {
    const std::string who = absl::StrCat(" ", c, "/", c, " ");
    fpm_accepted += count(who + R"(accept\w*\([0-9?]+\) = \d+<unix:)");
    fpm_read += count(who + R"((read|recvfrom)\(\d+<unix:)");
    fpm_wrote += count(who + R"((write|writev|sendto)\(\d+<unix:)");
  }
  EXPECT_EQ(fpm_accepted, kRequests);
  EXPECT_GE(fpm_read, kRequests);
  EXPECT_GE(fpm_wrote, kRequests);
  // And the summary after the events: every request complete.
  EXPECT_THAT(out, HasSubstr(absl::StrCat("requests: ", kRequests, " (",
                                          kRequests, " complete")));
}

}  // namespace
}  // namespace reqcost::testing
