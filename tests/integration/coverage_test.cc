// What the other live tests leave out. IPv6 front and backend,
// static files sent with sendfile, pipelined HTTP/1.1, and shutdown, a close
// reqcost cannot see and the --events printer on a real socket workload.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/integration/profiled_run.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/anomaly_counters.h"
#include "tests/support/loopback.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;

#define COVERAGE_ASSERT_OK_AND_ASSIGN(lhs, expr)   \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

void ExpectAnomaliesShown(const json& report) {
  ASSERT_TRUE(report.contains("anomalies")) << report.dump(2);
  for (const char* name : kAnomalyCounters) {
    EXPECT_TRUE(report["anomalies"][name].is_number_unsigned()) << name;
  }
}

// A docroot with one static file of `bytes` bytes, /static.bin.
absl::StatusOr<std::string> WriteStaticDocroot(const TempDir& dir,
                                               size_t bytes) {
  std::string root = dir.File("static");
  if (mkdir(root.c_str(), 0755) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("mkdir ", root));
  }
  std::ofstream out(root + "/static.bin", std::ios::binary);
  for (size_t i = 0; i < bytes; ++i) out.put(static_cast<char>('a' + i % 26));
  out.close();
  if (!out) return absl::InternalError("cannot write static.bin");
  return root;
}

// Sends `request` in one write and reads until the server closes; the bytes
// read, or an error.
absl::StatusOr<std::string> Exchange(int port, const std::string& request) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return absl::ErrnoToStatus(errno, "connect");
  if (write(fd, request.data(), request.size()) !=
      static_cast<ssize_t>(request.size())) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, "write");
  }
  std::string reply;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, "read (10 s timeout)");
    }
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

// `reqcost report CAPTURE` (the text summary), bounded.
absl::StatusOr<std::string> ReportText(const std::string& capture) {
  absl::StatusOr<ReqcostOutput> r =
      RunReqcostTo({"report", capture}, capture + ".txt", capture + ".txt.err",
                   absl::Seconds(30));
  if (!r.ok()) return r.status();
  if (r->code != 0) {
    return absl::InternalError(absl::StrCat("reqcost report exited ", r->code,
                                            ": ",
                                            FileTail(capture + ".txt.err")));
  }
  return r->out;
}

int CountOf(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1))
    ++n;
  return n;
}

// --------------------------------------------------------------------------
// IPv6.

// nginx on [::1], php-fpm over TCP on [::1]: the link pairs by its IPv6
// tuple (backend measured) and every request is counted.
TEST(CoverageTest, Ipv6FrontAndBackendArePairedAndCounted) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  COVERAGE_ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-coverage"));
  COVERAGE_ASSERT_OK_AND_ASSIGN(fpm_port, FreeTcpPort());
  PhpFpmOptions fopts;
  fopts.listen = absl::StrCat("[::1]:", fpm_port);
  COVERAGE_ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.host = "[::1]";
  nopts.upstream = fopts.listen;
  COVERAGE_ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_THAT(nginx.Url("/"), HasSubstr("http://[::1]:"));

  constexpr int kRequests = 100;
  AbOptions ab;
  ab.url = nginx.Url("/sleep.php?us=2000");
  ab.requests = kRequests;
  ab.concurrency = 2;
  COVERAGE_ASSERT_OK_AND_ASSIGN(p,
                                ProfileAb(dir, {nginx.pid(), fpm.pid()}, ab));
  SCOPED_TRACE(p.report.dump(2));
  ASSERT_EQ(p.ab.complete, kRequests);
  ASSERT_EQ(p.ab.non_2xx, 0);
  EXPECT_EQ(p.report["capture"]["dropped_events"], 0);
  EXPECT_EQ(p.report["requests"]["count"], kRequests);
  EXPECT_EQ(p.report["requests"]["complete"], kRequests);
  EXPECT_EQ(p.report["backend_timing"], "measured");
  ASSERT_EQ(p.report["groups"].size(), 1u);
  EXPECT_EQ(p.report["groups"][0]["backend_conn"], "new");
  std::printf(
      "[ coverage ] IPv6: %d requests by ab, reqcost %d complete; server p50 "
      "%.1f us, "
      "transport p50 %.1f us, backend p50 %.1f us\n",
      p.ab.complete, p.report["requests"]["complete"].get<int>(),
      p.report["phases"]["server"]["p50_us"].get<double>(),
      p.report["phases"]["transport"]["p50_us"].get<double>(),
      p.report["phases"]["backend"]["p50_us"].get<double>());
  // php-fpm's own 2 ms of work is inside the backend phase.
  EXPECT_GE(p.report["phases"]["backend"]["p50_us"].get<double>(), 2000.0);
  ExpectAnomaliesShown(p.report);

  // The per-request view names the IPv6 sockets: the client connection and
  // the backend link both come out of the [::1] tuples.
  COVERAGE_ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(p.capture));
  ASSERT_EQ(requests.size(), static_cast<size_t>(kRequests));
  for (const json& r : requests) {
    EXPECT_EQ(r["backend_timing"], "measured") << r.dump();
    EXPECT_EQ(r["backend_conn"], "new") << r.dump();
  }
}

// --------------------------------------------------------------------------
// Static files with sendfile.

// nginx sends /static.bin with sendfile (samples/nginx: `sendfile on`): every
// request is counted, has no backend, and its server time is bounded below
// by its own timed syscalls and above by the client's time per request.
TEST(CoverageTest, StaticFilesSentWithSendfileAreCountedAsServerTime) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  COVERAGE_ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-coverage"));
  constexpr size_t kFileBytes = 256 * 1024;
  COVERAGE_ASSERT_OK_AND_ASSIGN(docroot, WriteStaticDocroot(dir, kFileBytes));
  NginxOptions nopts;
  nopts.docroot = docroot;
  COVERAGE_ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));

  constexpr int kRequests = 200;
  for (bool keepalive : {false, true}) {
    SCOPED_TRACE(keepalive ? "client keep-alive" : "client close");
    AbOptions ab;
    ab.url = nginx.Url("/static.bin");
    ab.requests = kRequests;
    ab.concurrency = 1;
    ab.keepalive = keepalive;
    COVERAGE_ASSERT_OK_AND_ASSIGN(
        p, ProfileAb(dir, {nginx.pid()}, ab, {"--syscall-times"}));
    SCOPED_TRACE(p.report.dump(2));
    ASSERT_EQ(p.ab.complete, kRequests);
    ASSERT_EQ(p.ab.non_2xx, 0);
    EXPECT_EQ(p.report["capture"]["dropped_events"], 0);
    EXPECT_EQ(p.report["requests"]["count"], kRequests);
    EXPECT_EQ(p.report["requests"]["complete"], kRequests);
    EXPECT_EQ(p.report["backend_timing"], "none");
    EXPECT_EQ(p.report["phases"]["backend"]["max_us"], 0.0);
    EXPECT_EQ(p.report["phases"]["transport"]["max_us"], 0.0);
    ExpectAnomaliesShown(p.report);
    // reqcost's request lies inside the client's: with one request at a
    // time, its mean cannot exceed ab's time per request.
    const double server_mean =
        p.report["phases"]["server"]["mean_us"].get<double>();
    std::printf(
        "[ coverage ] static %zu KiB, %s: %d requests; server mean %.1f us, "
        "p99 %.1f "
        "us; ab %.1f us per request\n",
        kFileBytes / 1024, keepalive ? "keep-alive" : "close", kRequests,
        server_mean, p.report["phases"]["server"]["p99_us"].get<double>(),
        p.ab.time_per_request_ms * 1000.0);
    EXPECT_LE(server_mean, p.ab.time_per_request_ms * 1000.0);

    COVERAGE_ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(p.capture));
    ASSERT_EQ(requests.size(), static_cast<size_t>(kRequests));
    for (const json& r : requests) {
      ASSERT_TRUE(r["complete"].get<bool>()) << r.dump();
      EXPECT_EQ(r["backend_conn"], "none") << r.dump();
      EXPECT_EQ(r["transport_us"], 0.0) << r.dump();
      EXPECT_EQ(r["backend_us"], 0.0) << r.dump();
      EXPECT_EQ(r["server_us"], r["total_us"]) << r.dump();
      // The file went out with sendfile, all of it, inside the request.
      int64_t sent = 0;
      double timed_us = 0;
      for (const json& s : r["syscalls"]) {
        if (s["name"] == "sendfile" && s["bytes"].get<int64_t>() > 0) {
          sent += s["bytes"].get<int64_t>();
        }
        if (s["side"] == "server" && s["dur_us"].is_number()) {
          timed_us += s["dur_us"].get<double>();
        }
      }
      EXPECT_EQ(sent, static_cast<int64_t>(kFileBytes)) << r.dump();
      // Lower bound: the request holds its own syscalls' time (1 µs of
      // rounding per call in the jsonl's µs fractions at most).
      EXPECT_GE(r["server_us"].get<double>() + 1.0, timed_us) << r.dump();
    }
  }
}

// --------------------------------------------------------------------------
// Pipelined HTTP/1.1.

// Three requests in one write on each connection: nginx reads them in one
// read and answers each from its buffer, so reqcost sees one request; with
// payload it counts the other two as merged (anomalies.merged_requests), and
// requests + merged = requests sent.
TEST(CoverageTest, PipelinedRequestsAreReportedAsMerged) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  COVERAGE_ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-coverage"));
  COVERAGE_ASSERT_OK_AND_ASSIGN(docroot, WriteStaticDocroot(dir, 1000));
  NginxOptions nopts;
  nopts.docroot = docroot;
  COVERAGE_ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));

  constexpr int kConnections = 20;
  constexpr int kPerConnection = 3;
  const std::string one = "GET /static.bin HTTP/1.1\r\nHost: localhost\r\n\r\n";
  const std::string last =
      "GET /static.bin HTTP/1.1\r\nHost: localhost\r\nConnection: "
      "close\r\n\r\n";
  std::string pipelined;
  for (int i = 0; i + 1 < kPerConnection; ++i) pipelined += one;
  pipelined += last;

  for (bool payload : {true, false}) {
    SCOPED_TRACE(payload ? "--payload 64" : "no payload");
    const std::string capture =
        dir.File(payload ? "pipelined.cap" : "pipelined-np.cap");
    std::vector<std::string> args = {
        "attach", "-p",   std::to_string(nginx.pid()), "--format", "json",
        "-o",     capture};
    if (payload) args.insert(args.end(), {"--payload", "64"});
    COVERAGE_ASSERT_OK_AND_ASSIGN(run, ReqcostRun::Attach(dir, args));
    int answered = 0;
    absl::Status client;
    for (int c = 0; c < kConnections && client.ok(); ++c) {
      absl::StatusOr<std::string> reply = Exchange(nginx.port(), pipelined);
      if (!reply.ok()) {
        client = reply.status();
        break;
      }
      answered += CountOf(*reply, "HTTP/1.1 200 OK");
    }
    COVERAGE_ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
    ASSERT_EQ(code, 0) << run.err();
    ASSERT_TRUE(client.ok()) << client;
    ASSERT_EQ(answered, kConnections * kPerConnection);
    json report = json::parse(run.out());
    SCOPED_TRACE(report.dump(2));
    EXPECT_EQ(report["capture"]["dropped_events"], 0);
    EXPECT_EQ(report["requests"]["incomplete"], 0);
    const int count = report["requests"]["count"].get<int>();
    const int merged = report["anomalies"]["merged_requests"].get<int>();
    std::printf(
        "[ coverage ] %d pipelined requests on %d connections, %s: reqcost %d "
        "requests + %d merged\n",
        answered, kConnections, payload ? "payload 64" : "no payload", count,
        merged);
    EXPECT_GE(count, kConnections);
    if (!payload) {
      // Without the response heads the merge is not seen: fewer requests
      // than were sent, and nothing counted (the documented limit).
      EXPECT_EQ(merged, 0);
      EXPECT_LT(count, answered);
      continue;
    }
    EXPECT_EQ(count + merged, answered);
    EXPECT_GT(merged, 0)
        << "no pipelined request was merged: nothing was tested";
    // The text summary says so too.
    COVERAGE_ASSERT_OK_AND_ASSIGN(text, ReportText(capture));
    EXPECT_THAT(
        text, HasSubstr(absl::StrCat(merged,
                                     " pipelined requests merged into the one "
                                     "before")));
  }
}

// --------------------------------------------------------------------------
// shutdown, "close not seen" and --events.

// The sockets `pid` has open now (-1 if it is gone).
int SocketCount(pid_t pid) {
  const std::string fds = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = opendir(fds.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  char target[64];
  while (dirent* e = readdir(d)) {
    const std::string link = fds + "/" + e->d_name;
    ssize_t len = readlink(link.c_str(), target, sizeof(target) - 1);
    if (len > 0 &&
        std::string(target, static_cast<size_t>(len)).rfind("socket:", 0) == 0)
      ++n;
  }
  closedir(d);
  return n;
}

// A one-thread HTTP server in a child of this test: it answers each
// connection's one request and closes it, the even ones with shutdown(SHUT_WR)
// then close(), the odd ones with close_range(2), which reqcost does not
// trace: the next accept reuses the fd and the old connection's close is
// never seen.
constexpr char kClosingResponse[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

pid_t StartClosingServer(int listen_fd) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  alarm(120);  // a bound on its life should the test die first
  char buf[4096];
  for (int k = 0;; ++k) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) _exit(1);
    if (read(fd, buf, sizeof(buf)) > 0) {
      if (write(fd, kClosingResponse, sizeof(kClosingResponse) - 1) < 0)
        _exit(1);
    }
    if (k % 2 == 0) {
      shutdown(fd, SHUT_WR);
      close(fd);
    } else {
      syscall(SYS_close_range, fd, fd, 0);
    }
  }
}

TEST(CoverageTest, ShutdownUnseenCloseAndEventsOnARealSocketWorkload) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  COVERAGE_ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-coverage"));
  int port = 0;
  const int listen_fd = ListenLoopback(&port);
  ASSERT_GE(listen_fd, 0) << std::strerror(errno);
  const pid_t server = StartClosingServer(listen_fd);
  ASSERT_GT(server, 0);
  close(listen_fd);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reaper{server};

  COVERAGE_ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(server), "--events"}));
  const int idle_sockets = SocketCount(server);  // blocked in its first accept
  ASSERT_GE(idle_sockets, 1);
  // An odd number of connections: the last one (even) is closed normally,
  // so every odd one's fd is reused by the next accept and then closed.
  constexpr int kConnections = 21;
  int answered = 0;
  for (int c = 0; c < kConnections; ++c) {
    absl::StatusOr<std::string> reply =
        Exchange(port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    ASSERT_TRUE(reply.ok()) << reply.status();
    answered += CountOf(*reply, "HTTP/1.1 200 OK");
  }
  ASSERT_EQ(answered, kConnections);
  // The client saw the last reply end at the server's shutdown; its close
  // follows: wait until the server holds no connection any more.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (SocketCount(server) > idle_sockets && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(SocketCount(server), idle_sockets)
      << "the server did not close its last connection";
  COVERAGE_ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  const std::string out = run.out();
  SCOPED_TRACE(out);

  // The --events printer: one line per call of the server's, with its
  // socket. Every connection was accepted and read; shutdown and close only
  // on the even ones.
  const std::string sock = absl::StrCat("127.0.0.1:", port, "->127.0.0.1:");
  auto lines = [&](const std::string& pattern) {
    std::regex re(pattern);
    int n = 0;
    for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end;
         ++it)
      ++n;
    return n;
  };
  const std::string who = absl::StrCat(" ", server, "/", server, " ");
  const int even = (kConnections + 1) / 2;
  // The first accept was blocked since before attach: its listening fd and
  // its start are unknown, and the printer says so.
  EXPECT_EQ(lines(who + R"(accept4\((\d+|\?)\) = \d+<)" + sock), kConnections);
  EXPECT_EQ(lines(who + R"(accept4\(\?\) = \d+<)" + sock +
                  R"(\d+> <started before attach>)"),
            1);
  EXPECT_EQ(lines(who + R"(read\(\d+<)" + sock + R"(\d+>\) = \d+)"),
            kConnections);
  EXPECT_EQ(
      lines(who + R"(write\(\d+<)" + sock +
            absl::StrCat(R"(\d+>\) = )", sizeof(kClosingResponse) - 1, " ")),
      kConnections);
  EXPECT_EQ(lines(who + R"(shutdown\(\d+<)" + sock + R"(\d+>\) = 0 )"), even);
  // A socket the peer already closed after our shutdown is unhashed by the
  // kernel: its close may read local port 0.
  const std::string closed_sock =
      absl::StrCat("127.0.0.1:(", port, "|0)->127.0.0.1:");
  EXPECT_EQ(lines(who + R"(close\(\d+<)" + closed_sock + R"(\d+>\) = 0 )"),
            even);

  // The summary: every connection's request counted; the odd ones, whose
  // close reqcost never saw, are incomplete and say why.
  const int odd = kConnections / 2;
  EXPECT_THAT(out,
              HasSubstr(absl::StrCat("requests: ", kConnections, " (", even,
                                     " complete, ", odd, " incomplete)")));
  EXPECT_THAT(out,
              HasSubstr(absl::StrCat("incomplete: ", odd, " close not seen")));
  EXPECT_THAT(out, HasSubstr("dropped: 0\n"));
}

}  // namespace
}  // namespace reqcost::testing
