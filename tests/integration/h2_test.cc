// HTTP/2 front ends on real servers: nginx `listen ... ssl http2` in front
// of php-fpm, driven by h2load (1, 4 and 16 streams per connection over 1
// to 4 connections) and curl --http2, profiled by the reqcost binary with
// --tls-probes. Each run's breakdown is checked against h2load's count and
// per-request time and against php-fpm's own clock (its access log).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kWorkUs = 20000;
// The median backend against php-fpm's own clock (its access log's %d):
// within 2% on a new connection per request. On a kept connection
// php-fpm starts its clock when it begins to read the next request, before
// that request is sent (its child waits in that read while nginx keeps the
// connection idle): its figure then holds the idle gap too, 0.3-0.7 ms per
// request under h2load here, so the kept cases get the 5% that the other
// kept-connection tests use.
constexpr double kNewLinkTolerance = 0.02;
constexpr double kKeptLinkTolerance = kMeasuredTolerance;

absl::StatusOr<std::string> H2load() {
  for (const char* p : {"/usr/bin/h2load", "/usr/local/bin/h2load"}) {
    if (access(p, X_OK) == 0) return std::string(p);
  }
  return absl::NotFoundError(
      "h2load not found: apt-get install nghttp2-client "
      "(scripts/bootstrap.sh)");
}

// What h2load printed: requests succeeded and its mean time per request.
struct H2loadResult {
  int succeeded = -1;
  double mean_request_us = 0;
};

absl::StatusOr<H2loadResult> ParseH2load(const std::string& out) {
  H2loadResult r;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"((\d+) succeeded)"))) {
    r.succeeded = std::stoi(m[1]);
  }
  // "time for request:  MIN  MAX  MEAN  SD ..." with units us, ms or s.
  if (std::regex_search(
          out, m,
          std::regex(R"(time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s))"))) {
    double v = std::stod(m[1]);
    r.mean_request_us =
        m[2] == "us" ? v : (m[2] == "ms" ? v * 1000 : v * 1'000'000);
  }
  if (r.succeeded < 0 || r.mean_request_us <= 0) {
    return absl::InternalError("h2load output not understood: " + out);
  }
  return r;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2]
                           : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Runs `argv` to its end (bounded) and returns its stdout.
absl::StatusOr<std::string> RunClient(const TempDir& dir,
                                      const std::vector<std::string>& argv,
                                      const std::string& name) {
  absl::StatusOr<Subprocess> p =
      Subprocess::Start(argv, dir.File(name + ".out"), dir.File(name + ".err"));
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->WaitForExit(absl::Seconds(120));
  if (!status.ok()) return status.status();
  absl::StatusOr<std::string> out = ReadFileToString(dir.File(name + ".out"));
  if (!out.ok()) return out.status();
  if (*status != 0) {
    return absl::InternalError(absl::StrCat(name, " exited ", *status, ": ",
                                            *out));
  }
  return out;
}

struct H2Case {
  std::string name;
  int connections;
  int streams;     // h2load -m
  int requests;    // h2load -n
  bool tcp_fpm;    // php-fpm on TCP, else a unix socket
  bool keep_conn;  // nginx keeps its php-fpm connections
};

class NginxH2 : public ::testing::TestWithParam<H2Case> {};

// Checks one run: complete == what the client got; median backend within
// 2% of php-fpm's median; server and transport above their floors and
// below the client's mean time per request; anomalies zero but the named.
void ExpectStreams(const std::string& what, const json& report, int succeeded,
                   double client_mean_us, std::vector<double> fpm_us,
                   const std::set<std::string>& anomalies, double tolerance) {
  SCOPED_TRACE(report.dump(2));
  ExpectNoAnomaliesExcept(report, anomalies);
  EXPECT_EQ(report["capture"]["dropped_events"], 0);
  EXPECT_EQ(report["requests"]["complete"], succeeded);
  const json& phases = report["phases"];
  ASSERT_TRUE(phases["backend"]["p50_us"].is_number());
  double backend = phases["backend"]["p50_us"].get<double>();
  double server = phases["server"]["p50_us"].get<double>();
  double transport = phases["transport"]["p50_us"].get<double>();
  double fpm = Median(std::move(fpm_us));
  std::printf(
      "[ h2 ] %s: %d sent, %d complete, backend p50 %.1f us vs php-fpm "
      "%.1f us (%+.2f%%), server p50 %.1f us, transport p50 %.1f us, "
      "client mean %.1f us, anomalies %s, requests %s\n",
      what.c_str(), succeeded, report["requests"]["complete"].get<int>(),
      backend, fpm, 100 * (backend - fpm) / fpm, server, transport,
      client_mean_us, report["anomalies"].dump().c_str(),
      report["requests"].dump().c_str());
  EXPECT_NEAR(backend, fpm, fpm * tolerance);
  EXPECT_GT(server, kMinServerUs);
  EXPECT_LT(server, client_mean_us);
  EXPECT_GT(transport, kMinTransportUs);
  EXPECT_LT(transport, client_mean_us);
}

TEST_P(NginxH2, StreamsAreRequestsMatchingPhpFpmClock) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  const H2Case& c = GetParam();
  ASSERT_OK_AND_ASSIGN(h2load, H2load());
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-h2"));
  PhpFpmOptions fopts;
  fopts.listen = c.tcp_fpm ? "tcp" : "";
  // A child per concurrent stream: nginx keeps its php-fpm connections
  // open (keep_conn), and a child stays on its connection while it is kept.
  fopts.children = 16;
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  nopts.ssl_protocols = "TLSv1.2 TLSv1.3";
  nopts.http2 = true;
  nopts.keep_conn = c.keep_conn;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(fpm.request_log()));

  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx.pid()),
                                    "-p", std::to_string(fpm.pid()),
                                    "--tls-probes", "--format", "json"}));
  ASSERT_OK_AND_ASSIGN(
      out, RunClient(dir,
                     {h2load, "-n", std::to_string(c.requests), "-c",
                      std::to_string(c.connections), "-m",
                      std::to_string(c.streams),
                      nginx.Url("/sleep.php?us=" + std::to_string(kWorkUs))},
                     "h2load"));
  ASSERT_OK_AND_ASSIGN(result, ParseH2load(out));
  ASSERT_EQ(result.succeeded, c.requests) << out;
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  ASSERT_OK_AND_ASSIGN(after, ReadPhpFpmAccessLog(fpm.request_log()));
  std::vector<PhpFpmAccessEntry> ours(after.begin() + before.size(),
                                      after.end());
  ASSERT_EQ(ours.size(), static_cast<size_t>(c.requests));
  ExpectStreams(c.name, json::parse(run.out()), result.succeeded,
                result.mean_request_us, DurationsUs(ours),
                kPhpCleanRunAnomalies,
                c.keep_conn ? kKeptLinkTolerance : kNewLinkTolerance);
}

INSTANTIATE_TEST_SUITE_P(
    H2load, NginxH2,
    ::testing::Values(H2Case{"c1_m1_unix", 1, 1, 40, false, false},
                      H2Case{"c2_m4_unix", 2, 4, 100, false, false},
                      H2Case{"c1_m16_tcp", 1, 16, 96, true, false},
                      H2Case{"c4_m4_unix_kept", 4, 4, 96, false, true},
                      H2Case{"c2_m4_tcp_kept", 2, 4, 100, true, true}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace reqcost::testing
