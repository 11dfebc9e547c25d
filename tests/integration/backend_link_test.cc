// Every backend exchange is reported, whatever the front end speaks: real
// nginx with `listen ... ssl http2` in front of real php-fpm, profiled with
// the TLS probes off (--no-tls-probes), so that reqcost cannot split the
// HTTP/2 streams, driven by h2load. Each php-fpm exchange is one complete
// request seen from the backend link: transport and backend measured,
// server and total null, and no anomaly for it.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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
// The accuracy bar of a measured backend phase (docs/accuracy.md).
constexpr double kBackendTolerance = 0.02;

// h2load (Debian's nghttp2-client), which the stack launcher does not know.
absl::StatusOr<std::string> H2load() {
  for (const char* p : {"/usr/bin/h2load", "/usr/local/bin/h2load"}) {
    if (access(p, X_OK) == 0) return std::string(p);
  }
  return absl::NotFoundError(
      "h2load not found: apt-get install nghttp2-client "
      "(scripts/bootstrap.sh)");
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

TEST(BackendLink, Http2FrontWithoutProbesReportsEveryPhpFpmExchange) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(h2load, H2load());
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-backend-link"));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, {}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  nopts.ssl_protocols = "TLSv1.2 TLSv1.3";
  nopts.http2 = true;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  // The access log holds the readiness probe's line (if any) already.
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(fpm.request_log()));

  const std::string capture = dir.File("h2.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(fpm.pid()), "--no-tls-probes", "--format",
                     "json", "-o", capture}));
  ASSERT_OK_AND_ASSIGN(
      client, Subprocess::Start(
                  {h2load, "-n", std::to_string(kRequests), "-c", "2", "-m",
                   "4", nginx.Url("/sleep.php?us=" + std::to_string(kWorkUs))},
                  dir.File("h2load.out"), dir.File("h2load.err")));
  ASSERT_OK_AND_ASSIGN(client_status, client.WaitForExit(absl::Seconds(120)));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  ASSERT_OK_AND_ASSIGN(out, ReadFileToString(dir.File("h2load.out")));
  ASSERT_EQ(client_status, 0) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"((\d+) succeeded)")))
      << out;
  const int succeeded = std::stoi(m[1]);
  ASSERT_EQ(succeeded, kRequests) << out;

  ASSERT_OK_AND_ASSIGN(after, ReadPhpFpmAccessLog(fpm.request_log()));
  std::vector<PhpFpmAccessEntry> ours(after.begin() + before.size(),
                                      after.end());
  ASSERT_EQ(ours.size(), static_cast<size_t>(succeeded));

  const json report = json::parse(run.out());
  SCOPED_TRACE(report.dump(2));
  EXPECT_EQ(report["capture"]["dropped_events"], 0);
  // Named on purpose: stray_events counts the HTTP/2 connection's frames
  // outside any request (SETTINGS, WINDOW_UPDATE, GOAWAY at its close),
  // which reqcost cannot split here. unattributed_exchanges is not named:
  // no exchange may be dropped.
  ExpectNoAnomaliesExcept(report, kHttp2CleanRunAnomalies);
  EXPECT_EQ(report["requests"]["origins"]["backend-link"], succeeded);
  EXPECT_EQ(report["requests"]["complete"], succeeded);
  EXPECT_EQ(report["backend_timing"], "measured");
  EXPECT_EQ(report["phases"]["server"]["count"], 0);
  EXPECT_EQ(report["phases"]["server"]["unknown"], succeeded);
  EXPECT_EQ(report["phases"]["total"]["unknown"], succeeded);
  EXPECT_EQ(report["phases"]["backend"]["count"], succeeded);
  EXPECT_EQ(report["phases"]["transport"]["count"], succeeded);

  // Per request (the capture replayed): each php-fpm exchange once.
  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(capture));
  std::vector<double> backend_us;
  int link = 0;
  for (const json& q : requests) {
    if (q["origin"] != "backend-link") {
      // The client side's own requests: HTTP/2, not split, none complete.
      EXPECT_EQ(q["complete"], false) << q.dump();
      continue;
    }
    ++link;
    SCOPED_TRACE(q.dump());
    ASSERT_EQ(q["complete"], true);
    EXPECT_TRUE(q["server_us"].is_null());
    EXPECT_TRUE(q["total_us"].is_null());
    EXPECT_EQ(q["backend_timing"], "measured");
    EXPECT_EQ(q["client_conn"], "none");
    const double backend = q["backend_us"].get<double>();
    const double transport = q["transport_us"].get<double>();
    EXPECT_GE(backend, kWorkUs);
    EXPECT_GT(transport, 0);
    // The exchange as nginx saw it is transport + backend.
    EXPECT_NEAR(q["exchange_us"].get<double>(), transport + backend, 0.01);
    backend_us.push_back(backend);
  }
  EXPECT_EQ(link, succeeded);
  const double ours_median = Median(backend_us);
  const double fpm_median = Median(DurationsUs(ours));
  std::printf(
      "[ accuracy ] nginx h2 (TLS, no probes) + php-fpm: %d requests seen "
      "from the backend link, median backend %.1f us vs php-fpm's %.1f us "
      "(%+.2f%%)\n",
      link, ours_median, fpm_median,
      100.0 * (ours_median - fpm_median) / fpm_median);
  EXPECT_NEAR(ours_median, fpm_median, kBackendTolerance * fpm_median);
}

}  // namespace
}  // namespace reqcost::testing
