// TLS front ends: real nginx with `listen ... ssl` (a self-signed
// P-256 certificate made by openssl in the test's temp dir) in front of the
// sample FastCGI backend (20 ms of work per request, unix socket), loaded by
// ab over TLS 1.2 and TLS 1.3, with and without keep-alive, and profiled by
// the reqcost binary.
//
// What nginx 1.22 does on the client socket (strace of a worker, recorded
// here; the handshake legs are what reqcost must not take for
// requests):
//   accept4; recvfrom(fd, 1, MSG_PEEK) (nginx checks for plain HTTP on the
//   TLS port); read(16709) = ClientHello; write = ServerHello..Finished
//   (one write); read = the client's second flight (TLS 1.2: 93 bytes,
//   ClientKeyExchange + ChangeCipherSpec + Finished in one read; TLS 1.3:
//   80 bytes, CCS + Finished); TLS 1.2: one write of NewSessionTicket + CCS
//   + Finished; TLS 1.3: two writes of one NewSessionTicket each (271 bytes,
//   outer type 0x17 like application data); then the request read(s).
//   nginx reads ahead (16709-byte reads, several records per read, never a
//   separate 5-byte header read); a TLS 1.3 client may put its Finished and
//   the HTTP request in one read (curl does, ab's two writes race).
//   Without keep-alive nginx ends with its close_notify (TLS 1.2: a 31-byte
//   0x15 record; TLS 1.3: a 24-byte 0x17 record) and close; ab then sends
//   its own close_notify to a closed socket. ab -k closes without
//   close_notify: nginx reads 0 and closes, writing nothing.
//
// These tests fail against reqcost before the TLS work lands (see the
// report of the tlsprobe branch); they state the target.
#include <signal.h>
#include <sys/types.h>

#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/profiled_run.h"
#include "tests/support/h2_client.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kWorkUs = 20000;
constexpr int kRequests = 100;
constexpr int kConcurrency = 2;
// The measured backend within 2% of the backend's own clock.
constexpr double kTlsTolerance = 0.02;

struct TlsCase {
  std::string nginx_protocols;  // ssl_protocols
  std::string ab_protocol;      // ab -f
  bool keepalive;               // ab -k
  bool syscall_times =
      false;  // reqcost --syscall-times (records followed at the syscall exits)
};

std::string TlsName(const TlsCase& c) {
  return absl::StrCat(c.ab_protocol == "TLS1.3" ? "Tls13" : "Tls12",
                      c.keepalive ? "KeepAlive" : "NewConnections",
                      c.syscall_times ? "SyscallTimes" : "");
}

void PrintTo(const TlsCase& c, std::ostream* os) { *os << TlsName(c); }

class NginxTls : public ::testing::TestWithParam<TlsCase> {};

TEST_P(NginxTls, HandshakesAreNotRequestsAndBackendMatchesItsClock) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  const TlsCase& c = GetParam();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-tls"));
  FcgiBackendOptions bopts;
  bopts.workers = 2;
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, bopts));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  nopts.ssl_protocols = c.nginx_protocols;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_TRUE(absl::StartsWith(nginx.Url("/"), "https://")) << nginx.Url("/");

  AbOptions ab;
  ab.url = nginx.Url("/fcgi/x?work_us=" + std::to_string(kWorkUs));
  ab.requests = kRequests;
  ab.concurrency = kConcurrency;
  ab.keepalive = c.keepalive;
  ab.tls_protocol = c.ab_protocol;
  ab.work_dir = dir.path();
  ASSERT_OK_AND_ASSIGN(
      p, ProfileAb(dir, {nginx.pid(), backend.pid()}, ab,
                   c.syscall_times ? std::vector<std::string>{"--syscall-times"}
                                   : std::vector<std::string>{}));

  // The load itself: every request served, over the protocol asked for.
  ASSERT_EQ(p.ab.complete, kRequests) << p.ab.output;
  ASSERT_EQ(p.ab.failed, 0) << p.ab.output;
  ASSERT_THAT(
      p.ab.output,
      ::testing::HasSubstr(c.ab_protocol == "TLS1.3" ? "TLSv1.3" : "TLSv1.2"));
  if (c.keepalive) {
    ASSERT_EQ(p.ab.keepalive_requests, kRequests) << p.ab.output;
  }
  ASSERT_OK_AND_ASSIGN(log, ReadBackendLog(backend.request_log()));
  ASSERT_EQ(log.size(), static_cast<size_t>(kRequests));
  double own = Mean(ElapsedUs(log));

  const json& r = p.report;
  // The whole report once, at the end, if anything failed.
  struct DumpOnFailure {
    const json& r;
    ~DumpOnFailure() {
      if (::testing::Test::HasFailure())
        std::printf("report:\n%s\n", r.dump(2).c_str());
    }
  } dump{r};
  EXPECT_EQ(r["capture"]["dropped_events"], 0);
  // The handshake legs, tickets and close_notify belong to requests or the
  // connection: nothing counted as an anomaly but the two seen on clean
  // runs of every stack (breakdown_expect.h; reclassified_connections came
  // out 1 in three of six TLS cases of one run).
  ExpectNoAnomaliesExcept(r, kCleanRunAnomalies);
  // The handshake legs are not requests: one request per ab request, all
  // complete.
  EXPECT_EQ(r["requests"]["count"], p.ab.complete);
  EXPECT_EQ(r["requests"]["complete"], p.ab.complete);
  EXPECT_EQ(r["requests"]["incomplete"], 0);
  EXPECT_EQ(r["backend_timing"], "measured");

  const json& phases = r["phases"];
  ASSERT_TRUE(phases["backend"]["mean_us"].is_number()) << phases.dump();
  double backend_us = phases["backend"]["mean_us"].get<double>();
  double transport = phases["transport"]["mean_us"].get<double>();
  double server = phases["server"]["mean_us"].get<double>();
  std::printf(
      "[ accuracy ] nginx TLS %s: backend %.1f us vs own clock %.1f us "
      "(%+.2f%%); "
      "transport %.1f us, server %.1f us, %d/%d complete\n",
      TlsName(c).c_str(), backend_us, own, 100 * (backend_us - own) / own,
      transport, server,
      r["requests"]["complete"].is_number()
          ? r["requests"]["complete"].get<int>()
          : -1,
      p.ab.complete);
  EXPECT_NEAR(backend_us, own, own * kTlsTolerance)
      << "backend's own mean " << own << " us";
  // The backend's work is in backend, not transport: under a quarter of it
  // (a fixed 1 ms fails when other processes load the machine).
  EXPECT_LT(transport, own / 4);
  // Floors: a phase that lost its time to another fails here (server also
  // holds the TLS handshake's work). server + transport + backend == total
  // holds by construction and is not checked.
  EXPECT_GT(server, kMinServerUs);
  EXPECT_GT(transport, kMinTransportUs);

  // phases.tls is a phase like the others plus a "count" of the requests
  // that carry a handshake (the first request of each new client connection).
  ASSERT_TRUE(phases.contains("tls")) << "no phases.tls";
  const json& tls = phases["tls"];
  ASSERT_TRUE(tls.is_object()) << tls.dump();
  ASSERT_TRUE(tls.contains("count") && tls["count"].is_number()) << tls.dump();
  EXPECT_GT(tls["count"].get<int>(), 0);
  if (!c.keepalive) {
    // ab without -k: every request has its own connection and handshake.
    EXPECT_EQ(tls["count"].get<int>(), p.ab.complete);
  } else {
    // ab -k -c 2: one connection per concurrent client.
    EXPECT_LE(tls["count"].get<int>(), kConcurrency);
  }
  ASSERT_TRUE(tls["mean_us"].is_number()) << tls.dump();
  EXPECT_GT(tls["mean_us"].get<double>(), 0);
  // The handshake is part of server time, owned by a connection's first
  // request: never more than the server phase's maximum.
  EXPECT_LE(tls["mean_us"].get<double>(),
            phases["server"]["max_us"].get<double>() + 1.0);
}

// HTTP/2 over TLS (nginx `listen ... ssl http2`, curl --http2 with several
// URLs on one connection), with the TLS probes off: reqcost does not split
// HTTP/2's multiplexed requests, so every request it sees on such a
// connection is incomplete with the reason "HTTP/2 connection: requests not
// split", never complete; each backend exchange behind it is a complete
// request of its own, seen from the backend link (server time unknown).
//
// Which records show HTTP/2 depends on the client's order: curl sends its
// preface and first request as soon as the handshake ends, and on a loaded
// machine nginx may read them before it writes its SETTINGS, with curl's
// acknowledgement coming with the next request; then nothing marks the
// connection (a limit, docs/definitions.md). That is why this test does not
// use curl: RunHttp2Requests (tests/support/h2_client.h) waits for nginx's
// SETTINGS before its preface, so the server-speaks-first sign shows on
// every run, and one run must detect it. (Its acknowledgement, in a record
// of its own, may still share nginx's read with the first request: that
// sign alone is not deterministic, and the test does not rely on it.)
TEST(NginxHttp2, RequestsOnAnHttp2ConnectionAreIncompleteNotSplit) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  constexpr int kUrls = 4;
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-h2"));
  FcgiBackendOptions bopts;
  bopts.workers = 1;
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, bopts));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  nopts.ssl_protocols = "TLSv1.2 TLSv1.3";
  nopts.http2 = true;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));

  const std::string capture = dir.File("h2.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx.pid()),
                                    "-p", std::to_string(backend.pid()),
                                    "--no-tls-probes", "--format", "json",
                                    "-o", capture}));
  // One connection, kUrls requests one after another.
  std::vector<std::string> paths;
  for (int i = 0; i < kUrls; ++i)
    paths.push_back(absl::StrCat("/fcgi/h2-", i, "?work_us=5000"));
  absl::StatusOr<std::vector<int>> statuses =
      RunHttp2Requests(nginx.port(), paths);
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  ASSERT_TRUE(statuses.ok()) << statuses.status();
  EXPECT_THAT(*statuses, ::testing::Each(200));
  ASSERT_OK_AND_ASSIGN(log, ReadBackendLog(backend.request_log()));
  ASSERT_EQ(log.size(), static_cast<size_t>(kUrls));
  const json report = json::parse(run.out());

  SCOPED_TRACE(report.dump(2));
  EXPECT_EQ(report["capture"]["dropped_events"], 0);
  // Caused by the scenario: HTTP/2's frames outside a request (nginx's
  // SETTINGS before any request, WINDOW_UPDATEs and acknowledgements) are
  // stray events, and the backend exchange of a request on a connection not
  // split may be attributed to none (seen in one of three runs).
  ExpectNoAnomaliesExcept(report, {"stray_events", "unattributed_exchanges"});
  // Something was seen on the connection, and none of it is a complete
  // request; the complete ones are the backend exchanges, one per URL (or
  // fewer when one was counted unattributed, above).
  EXPECT_GE(report["requests"]["incomplete"].get<int>(), 1);
  EXPECT_LE(report["requests"]["complete"].get<int>(), kUrls);
  EXPECT_EQ(report["requests"]["complete"],
            report["requests"]["origins"].value("backend-link", 0));
  const int not_split_count = report["requests"]["incomplete"].get<int>();

  // The text report names the reason: one "incomplete:" line, for all.
  absl::StatusOr<Subprocess> text =
      Subprocess::Start({REQCOST_BINARY, "report", capture, "--requests"},
                        dir.File("h2.txt"), dir.File("h2.err"));
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_OK_AND_ASSIGN(text_status, text->WaitForExit(absl::Seconds(30)));
  ASSERT_EQ(text_status, 0) << FileTail(dir.File("h2.err"));
  ASSERT_OK_AND_ASSIGN(text_out, ReadFileToString(dir.File("h2.txt")));
  SCOPED_TRACE(text_out);
  std::vector<std::string> incomplete_lines;
  int request_lines = 0, not_split = 0;
  for (absl::string_view line : absl::StrSplit(text_out, '\n')) {
    if (absl::StartsWith(line, "incomplete:"))
      incomplete_lines.emplace_back(line);
    if (absl::StartsWith(line, "#") &&
        !absl::StrContains(line, "[seen from the backend-link]")) {
      ++request_lines;
      if (absl::EndsWith(line,
                         ": incomplete, HTTP/2 connection: requests not split"))
        ++not_split;
    }
  }
  EXPECT_THAT(incomplete_lines,
              ::testing::ElementsAre(absl::StrCat(
                  "incomplete: ", not_split_count,
                  " HTTP/2 connection: requests not split")));
  EXPECT_EQ(request_lines, not_split_count);
  EXPECT_EQ(not_split, request_lines);

  // The per-request jsonl agrees: not one complete request on the client
  // side, and no total anywhere.
  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(capture));
  EXPECT_EQ(static_cast<int>(requests.size()),
            report["requests"]["count"].get<int>());
  for (const json& q : requests) {
    EXPECT_EQ(q["complete"], q["origin"] == "backend-link") << q.dump();
    EXPECT_TRUE(q["total_us"].is_null()) << q.dump();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Tls, NginxTls,
    ::testing::Values(TlsCase{"TLSv1.2", "TLS1.2", false},
                      TlsCase{"TLSv1.2", "TLS1.2", true},
                      TlsCase{"TLSv1.3", "TLS1.3", false},
                      TlsCase{"TLSv1.3", "TLS1.3", true},
                      TlsCase{"TLSv1.2", "TLS1.2", false, true},
                      TlsCase{"TLSv1.3", "TLS1.3", true, true}),
    [](const auto& info) { return TlsName(info.param); });

}  // namespace
}  // namespace reqcost::testing
