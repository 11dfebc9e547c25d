// lighttpd as a second HTTP/2 front end: lighttpd 1.4.69 (mod_openssl,
// HTTP/2 by ALPN) in front of php-fpm over a unix socket and over TCP,
// driven by h2load (1 and 4 streams per connection over 1 and 2
// connections; once in cleartext, h2c by prior knowledge) and curl --http2
// and --http1.1, profiled by the reqcost binary with --tls-probes. lighttpd reads a turn's TLS records in several
// SSL_read calls before it parses any frame, and opens a new FastCGI
// connection per request: the pairing rule of a stream with its exchange
// (docs/definitions.md, "HTTP/2 streams") is checked on that server too.
// Each run is checked against h2load's count and time per request and
// against php-fpm's own clock (its access log).
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/h2_clients.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kWorkUs = 20000;
// lighttpd opens a new FastCGI connection for every request (it never asks
// php-fpm to keep one), so php-fpm's clock starts at the request's first
// read: the median backend is within 2% of it both ways.
constexpr double kTolerance = 0.02;

// php-fpm (over `tcp` or a unix socket) behind lighttpd with TLS, both
// started in `dir`.
struct Stack {
  Server fpm;
  Server lighttpd;
};

absl::StatusOr<Stack> StartStack(const TempDir& dir, bool tcp, int children,
                                 bool tls = true) {
  PhpFpmOptions fopts;
  fopts.listen = tcp ? "tcp" : "";
  fopts.children = children;
  absl::StatusOr<Server> fpm = StartPhpFpm(dir, fopts);
  if (!fpm.ok()) return fpm.status();
  LighttpdOptions lopts;
  lopts.php_fpm = fpm->address();
  lopts.tls = tls;
  absl::StatusOr<Server> lighttpd = StartLighttpd(dir, lopts);
  if (!lighttpd.ok()) return lighttpd.status();
  return Stack{*std::move(fpm), *std::move(lighttpd)};
}

// reqcost attached to both with --tls-probes and `extra`; a capture is
// written beside (REQCOST_KEEP_TMP=1 keeps it for `reqcost report`).
absl::StatusOr<ReqcostRun> AttachTo(const TempDir& dir, const Stack& s,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> args = {
      "attach", "-p", std::to_string(s.lighttpd.pid()), "-p",
      std::to_string(s.fpm.pid()), "--tls-probes", "-o",
      dir.File("capture.rcap")};
  args.insert(args.end(), extra.begin(), extra.end());
  return ReqcostRun::Attach(dir, args);
}

// php-fpm's own durations of the requests it logged after `before` entries.
absl::StatusOr<std::vector<double>> FpmSince(const Server& fpm,
                                             size_t before) {
  absl::StatusOr<std::vector<PhpFpmAccessEntry>> after =
      ReadPhpFpmAccessLog(fpm.request_log());
  if (!after.ok()) return after.status();
  std::vector<PhpFpmAccessEntry> ours(after->begin() + before, after->end());
  return DurationsUs(ours);
}

// The phases of each complete request of the run captured in `dir`,
// replayed from its capture.
struct Phases {
  std::vector<double> backend, server, transport;
};

absl::StatusOr<Phases> RequestPhases(const TempDir& dir) {
  absl::StatusOr<ReqcostOutput> replay = RunReqcost(
      dir, {"report", dir.File("capture.rcap"), "--format", "jsonl"});
  if (!replay.ok()) return replay.status();
  if (replay->code != 0) {
    return absl::InternalError("reqcost report: " + replay->err);
  }
  Phases p;
  std::istringstream lines(replay->out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    json q = json::parse(line);
    if (!q["complete"].get<bool>()) continue;
    p.backend.push_back(q["backend_us"].get<double>());
    p.server.push_back(q["server_us"].get<double>());
    p.transport.push_back(q["transport_us"].get<double>());
  }
  return p;
}

struct H2Case {
  std::string name;
  int connections;
  int streams;   // h2load -m
  int requests;  // h2load -n
  bool tcp_fpm;  // php-fpm on TCP, else a unix socket
  bool tls = true;  // else cleartext HTTP/2 (h2load's prior knowledge)
};

// Its name, where gtest would print the struct's bytes (a pointer among
// them) into ctest's test names.
void PrintTo(const H2Case& c, std::ostream* os) { *os << c.name; }

class LighttpdH2 : public ::testing::TestWithParam<H2Case> {};

TEST_P(LighttpdH2, StreamsAreRequestsMatchingPhpFpmClock) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  const H2Case& c = GetParam();
  ASSERT_OK_AND_ASSIGN(h2load, H2load());
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-lighttpd-h2"));
  // A child per concurrent stream.
  ASSERT_OK_AND_ASSIGN(
      stack, StartStack(dir, c.tcp_fpm, c.connections * c.streams, c.tls));
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(stack.fpm.request_log()));
  ASSERT_OK_AND_ASSIGN(run, AttachTo(dir, stack, {"--format", "json"}));
  ASSERT_OK_AND_ASSIGN(
      out, RunClient(dir,
                     {h2load, "-n", std::to_string(c.requests), "-c",
                      std::to_string(c.connections), "-m",
                      std::to_string(c.streams),
                      stack.lighttpd.Url(absl::StrCat("/sleep.php?us=",
                                                      kWorkUs))},
                     "h2load"));
  ASSERT_OK_AND_ASSIGN(result, ParseH2load(out));
  ASSERT_EQ(result.succeeded, c.requests) << out;
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  ASSERT_OK_AND_ASSIGN(fpm_us, FpmSince(stack.fpm, before.size()));
  ASSERT_EQ(fpm_us.size(), static_cast<size_t>(c.requests));

  json report = json::parse(run.out());
  SCOPED_TRACE(report.dump(2));
  ExpectNoAnomaliesExcept(report, kHttp2CleanRunAnomalies);
  EXPECT_EQ(report["capture"]["dropped_events"], 0);
  EXPECT_EQ(report["requests"]["complete"], result.succeeded);
  EXPECT_EQ(report["requests"]["incomplete"], 0);
  // The medians of the requests themselves, taken as php-fpm's is (the
  // mean of the middle two of an even count): on a loaded machine the
  // script's 20 ms sleep spreads over 20-60 ms, and two neighbours in the
  // middle can be milliseconds apart.
  ASSERT_OK_AND_ASSIGN(phases, RequestPhases(dir));
  ASSERT_EQ(phases.backend.size(), static_cast<size_t>(c.requests));
  double backend = Median(phases.backend);
  double server = Median(phases.server);
  double transport = Median(phases.transport);
  double fpm = Median(fpm_us);
  std::printf(
      "[ lighttpd h2 ] %s: %d sent, %d complete, backend median %.1f us vs "
      "php-fpm %.1f us (%+.2f%%), server median %.1f us, transport median "
      "%.1f us, "
      "h2load mean %.1f us, anomalies %s\n",
      c.name.c_str(), result.succeeded,
      report["requests"]["complete"].get<int>(), backend, fpm,
      100 * (backend - fpm) / fpm, server, transport, result.mean_request_us,
      report["anomalies"].dump().c_str());
  EXPECT_NEAR(backend, fpm, fpm * kTolerance);
  EXPECT_GT(server, kMinServerUs);
  EXPECT_LT(server, result.mean_request_us);
  EXPECT_GT(transport, kMinTransportUs);
  EXPECT_LT(transport, result.mean_request_us);
}

INSTANTIATE_TEST_SUITE_P(
    H2load, LighttpdH2,
    ::testing::Values(H2Case{"c1_m1_unix", 1, 1, 40, false},
                      H2Case{"c2_m4_unix", 2, 4, 100, false},
                      H2Case{"c1_m4_tcp", 1, 4, 60, true},
                      H2Case{"h2c_c2_m4_unix", 2, 4, 100, false, false}),
    [](const auto& info) { return info.param.name; });

// Streams of unequal work on one connection, 4 at a time: h2load takes
// its URIs in turn, a 50 ms sleep and hello.php (well under a
// millisecond), so a stream paired with another stream's exchange would
// show the other's backend. With --payload each request has its path, and
// its backend lies within php-fpm's own range for that script.
TEST(LighttpdH2Paths, EachStreamHasItsOwnExchange) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  constexpr int kRequests = 40;
  ASSERT_OK_AND_ASSIGN(h2load, H2load());
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-lighttpd-paths"));
  ASSERT_OK_AND_ASSIGN(stack, StartStack(dir, false, 4));
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(stack.fpm.request_log()));
  ASSERT_OK_AND_ASSIGN(
      run, AttachTo(dir, stack, {"--format", "jsonl", "--payload", "256"}));
  ASSERT_OK_AND_ASSIGN(
      out, RunClient(dir,
                     {h2load, "-n", std::to_string(kRequests), "-c", "1",
                      "-m", "4", stack.lighttpd.Url("/sleep.php?us=50000"),
                      stack.lighttpd.Url("/hello.php")},
                     "h2load"));
  ASSERT_OK_AND_ASSIGN(result, ParseH2load(out));
  ASSERT_EQ(result.succeeded, kRequests) << out;
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  ASSERT_OK_AND_ASSIGN(after, ReadPhpFpmAccessLog(stack.fpm.request_log()));
  ASSERT_EQ(after.size(), before.size() + kRequests);
  // php-fpm's range per script.
  std::map<std::string, std::pair<double, double>> fpm;
  for (size_t i = before.size(); i < after.size(); ++i) {
    std::string path = after[i].uri.substr(0, after[i].uri.find('?'));
    auto [it, added] = fpm.try_emplace(
        path, after[i].duration_us, after[i].duration_us);
    it->second.first = std::min(it->second.first, after[i].duration_us);
    it->second.second = std::max(it->second.second, after[i].duration_us);
  }
  ASSERT_EQ(fpm.size(), 2u);
  std::istringstream lines(run.out());
  std::string line;
  std::map<std::string, int> seen;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    json q = json::parse(line);
    SCOPED_TRACE(q.dump());
    ASSERT_TRUE(q["complete"].get<bool>());
    ASSERT_TRUE(q["request_line"].is_string());
    std::string path = q["request_line"].get<std::string>().substr(4);
    ASSERT_EQ(fpm.count(path), 1u);
    double backend = q["backend_us"].get<double>();
    EXPECT_GE(backend, fpm[path].first * (1 - kTolerance)) << path;
    if (path == "/sleep.php") {
      EXPECT_LE(backend, fpm[path].second * (1 + kTolerance));
    } else {
      // PHP's start-up and flush (~0.1 ms here) are outside php-fpm's
      // clock and a large part of hello.php's time: 1 ms more is allowed,
      // far below a sleep's 50 ms.
      EXPECT_LE(backend, fpm[path].second * (1 + kTolerance) + 1000);
    }
    ++seen[path];
  }
  EXPECT_EQ(seen["/sleep.php"], kRequests / 2);
  EXPECT_EQ(seen["/hello.php"], kRequests / 2);
  std::printf(
      "[ lighttpd h2 ] sleep + hello, -m 4: php-fpm's /sleep.php %.0f-%.0f "
      "us, /hello.php %.0f-%.0f us; every stream's backend within its own "
      "script's range\n",
      fpm["/sleep.php"].first, fpm["/sleep.php"].second,
      fpm["/hello.php"].first, fpm["/hello.php"].second);
}

// curl with several URLs on one connection (`curl_flags` choose the
// protocol), reqcost with --payload: every request line is the script's
// path, and the median backend is php-fpm's.
void ExpectCurlRequests(const std::string& what,
                        const std::vector<std::string>& curl_flags,
                        bool tcp_fpm, bool tls = true) {
  constexpr int kUrls = 6;
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-lighttpd-curl"));
  ASSERT_OK_AND_ASSIGN(stack, StartStack(dir, tcp_fpm, 2, tls));
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(stack.fpm.request_log()));
  ASSERT_OK_AND_ASSIGN(
      run, AttachTo(dir, stack, {"--format", "jsonl", "--payload", "256"}));
  std::vector<std::string> argv = {"/usr/bin/curl", "-s", "-k", "-o",
                                   "/dev/null"};
  argv.insert(argv.end(), curl_flags.begin(), curl_flags.end());
  for (int i = 0; i < kUrls; ++i) {
    argv.push_back(stack.lighttpd.Url(
        absl::StrCat("/sleep.php?us=", kWorkUs, "&i=", i)));
  }
  ASSERT_OK_AND_ASSIGN(out, RunClient(dir, argv, "curl"));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  ASSERT_OK_AND_ASSIGN(fpm_us, FpmSince(stack.fpm, before.size()));
  ASSERT_EQ(fpm_us.size(), static_cast<size_t>(kUrls));

  std::vector<json> requests;
  std::istringstream lines(run.out());
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty()) requests.push_back(json::parse(line));
  }
  ASSERT_EQ(requests.size(), static_cast<size_t>(kUrls)) << run.out();
  // The report of the same run, replayed from its capture.
  ASSERT_OK_AND_ASSIGN(
      replay,
      RunReqcost(dir, {"report", dir.File("capture.rcap"), "--format", "json"}));
  ASSERT_EQ(replay.code, 0) << replay.err;
  json report = json::parse(replay.out);
  SCOPED_TRACE(report.dump(2));
  ExpectNoAnomaliesExcept(report, kHttp2CleanRunAnomalies);
  EXPECT_EQ(report["requests"]["complete"], kUrls);
  std::vector<double> backend, server, transport;
  for (int i = 0; i < kUrls; ++i) {
    const json& q = requests[i];
    SCOPED_TRACE(q.dump());
    ASSERT_TRUE(q["complete"].get<bool>());
    EXPECT_EQ(q["request_line"], "GET /sleep.php");  // the query left out
    EXPECT_EQ(q["client_conn"], i == 0 ? "new" : "reused");
    backend.push_back(q["backend_us"].get<double>());
    server.push_back(q["server_us"].get<double>());
    transport.push_back(q["transport_us"].get<double>());
  }
  double fpm = Median(fpm_us);
  std::printf(
      "[ lighttpd h2 ] curl %s %d URLs: backend median %.1f us vs php-fpm "
      "%.1f us (%+.2f%%), server median %.1f us, transport median %.1f us\n",
      what.c_str(), kUrls, Median(backend), fpm,
      100 * (Median(backend) - fpm) / fpm, Median(server), Median(transport));
  EXPECT_NEAR(Median(backend), fpm, fpm * kTolerance);
  EXPECT_GT(Median(server), kMinServerUs);
  EXPECT_GT(Median(transport), kMinTransportUs);
  // Each request is inside curl's wait for it, which is at least its
  // backend plus a server and a transport part.
  EXPECT_LT(Median(server), fpm);
  EXPECT_LT(Median(transport), fpm);
}

// curl --http2: one connection, one stream after the other; with --payload
// the HEADERS are HPACK-decoded into method and :path.
TEST(LighttpdCurl, H2StreamsHaveTheirPaths) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ExpectCurlRequests("--http2 (php-fpm on a unix socket)", {"--http2"}, false);
}

// Cleartext HTTP/2 by upgrade: curl --http2 on an http:// URL sends its
// first request as HTTP/1.1 with `Upgrade: h2c`; lighttpd answers 101 and
// goes on in HTTP/2 (the first request's response on stream 1), and curl
// sends the other URLs as streams on the same connection.
TEST(LighttpdCurl, H2cByUpgradeStreamsHaveTheirPaths) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ExpectCurlRequests("--http2, Upgrade: h2c", {"--http2"}, false, false);
}

// HTTPS/1.1 on one kept connection: requests split from the decrypted
// bytes, with their request lines.
TEST(LighttpdCurl, Https11RequestLinesFromDecryptedBytes) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ExpectCurlRequests("--http1.1", {"--http1.1"}, false);
}

}  // namespace
}  // namespace reqcost::testing
