// reqcost feeding the tools fleets run. A real Prometheus server
// (Debian's `prometheus`) scrapes `reqcost attach --metrics` every second
// while ab drives real nginx + php-fpm; the same run writes --metrics-file,
// --otlp-json and POSTs to an in-test OTLP/HTTP receiver, configured
// partly by OTEL_* variables (headers, gzip, resource attributes) as a fleet
// configures its agents. Also the exit codes of bad fleet flags (no BPF
// needed: they fail before attaching).
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/exporters/otlp_receiver.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/otlp_json_check.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kRequests = 200;

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

// The single value of an instant PromQL query, or NotFound while it has
// none (not scraped yet).
absl::StatusOr<double> PromQuery(int port, const std::string& query) {
  absl::StatusOr<HttpResponse> r = HttpGet(absl::StrCat(
      "http://127.0.0.1:", port, "/api/v1/query?query=", UrlEncode(query)));
  if (!r.ok()) return r.status();
  json doc = json::parse(r->body, nullptr, false);
  if (doc.is_discarded() || doc.value("status", "") != "success") {
    return absl::InternalError(absl::StrCat("Prometheus said: ", r->body));
  }
  const json& result = doc["data"]["result"];
  if (result.empty()) return absl::NotFoundError("no sample yet");
  double v = 0;
  if (!absl::SimpleAtod(result[0]["value"][1].get<std::string>(), &v)) {
    return absl::InternalError(absl::StrCat("not a number: ", r->body));
  }
  return v;
}

// `metric` (no labels beyond `labels`) in an exposition text, or -1.
double ExpositionValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double v = -1;
      (void)absl::SimpleAtod(line.substr(series.size() + 1), &v);
      return v;
    }
  }
  return -1;
}

// The bucket (index into reqcost's bounds: 1 us * 10^(k/4)) holding `s`.
int BucketOf(double seconds) {
  int k = 0;
  while (k < 29 && seconds > 1e-6 * std::pow(10.0, k / 4.0) * 1.0001) ++k;
  return k;
}

// Debian's prometheus package puts both tools in /usr/bin.
absl::StatusOr<std::string> PrometheusTool(const std::string& name) {
  std::string path = "/usr/bin/" + name;
  if (access(path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat(path,
                     " not found: install Debian's prometheus package "
                     "(scripts/bootstrap.sh does)"));
  }
  return path;
}

absl::StatusOr<Subprocess> StartPrometheus(const TempDir& dir, int port,
                                           int target_port) {
  std::string config = dir.File("prometheus.yml");
  absl::Status w =
      WriteStringToFile(config, absl::StrCat("global:\n"
                                             "  scrape_interval: 1s\n"
                                             "  evaluation_interval: 1s\n"
                                             "scrape_configs:\n"
                                             "  - job_name: reqcost\n"
                                             "    scrape_interval: 1s\n"
                                             "    static_configs:\n"
                                             "      - targets: ['127.0.0.1:",
                                             target_port, "']\n"));
  if (!w.ok()) return w;
  absl::StatusOr<std::string> bin = PrometheusTool("prometheus");
  if (!bin.ok()) return bin.status();
  absl::StatusOr<Subprocess> p = Subprocess::Start(
      {*bin, absl::StrCat("--config.file=", config),
       absl::StrCat("--storage.tsdb.path=", dir.File("prometheus-data")),
       absl::StrCat("--web.listen-address=127.0.0.1:", port),
       "--log.level=warn"},
      dir.File("prometheus.out"), dir.File("prometheus.err"));
  if (!p.ok()) return p.status();
  absl::Status up = WaitForListening(absl::StrCat("127.0.0.1:", port),
                                     absl::Seconds(30), &*p);
  if (!up.ok()) return up;
  return p;
}

// Sets OTEL_* variables for the commands the test starts; unsets them at
// the end.
class ScopedEnvironment {
 public:
  explicit ScopedEnvironment(
      std::vector<std::pair<std::string, std::string>> vars)
      : vars_(std::move(vars)) {
    for (const auto& [k, v] : vars_) setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnvironment() {
    for (const auto& [k, v] : vars_) unsetenv(k.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::string>> vars_;
};

TEST(FleetTest, PrometheusScrapesWhatReqcostCountedAndSpansGoOut) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  // The span exporter as a hosted backend wants it: a token, gzip, and
  // resource attributes; the flag adds a header of its own.
  const std::string token = "fleet-test-token-9c41";
  ScopedEnvironment otel(
      {{"OTEL_EXPORTER_OTLP_HEADERS",
        "Authorization=Bearer%20" + token + ",x-tenant=env"},
       {"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"},
       {"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci"}});
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-fleet"));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, PhpFpmOptions{}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  OtlpReceiver receiver;
  ASSERT_GT(receiver.port(), 0);

  ASSERT_OK_AND_ASSIGN(metrics_port, FreeTcpPort());
  ASSERT_OK_AND_ASSIGN(prom_port, FreeTcpPort());
  const std::string metrics_file = dir.File("reqcost.prom");
  const std::string spans_file = dir.File("spans.jsonl");
  const std::string capture = dir.File("run.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach",
                                    "-p",
                                    std::to_string(nginx.pid()),
                                    "-p",
                                    std::to_string(fpm.pid()),
                                    "--format",
                                    "json",
                                    "--payload",
                                    "64",
                                    "-o",
                                    capture,
                                    "--metrics",
                                    absl::StrCat("127.0.0.1:", metrics_port),
                                    "--metrics-file",
                                    metrics_file,
                                    "--otlp-json",
                                    spans_file,
                                    "--otlp-endpoint",
                                    receiver.url(),
                                    "--otlp-header",
                                    "X-Tenant=flag"}));
  ASSERT_OK_AND_ASSIGN(prom, StartPrometheus(dir, prom_port, metrics_port));

  // Prometheus has scraped reqcost once before the load.
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::StatusOr<double> up = absl::NotFoundError("");
  while (absl::Now() < deadline) {
    up = PromQuery(prom_port, "up{job=\"reqcost\"}");
    if (up.ok() && *up == 1) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(up.ok() && *up == 1)
      << up.status() << FileTail(dir.File("prometheus.err"));

  AbOptions ab;
  ab.url = nginx.Url("/sleep.php?us=2000");
  ab.requests = kRequests;
  ab.concurrency = 2;
  ASSERT_OK_AND_ASSIGN(abr, RunAb(ab));
  ASSERT_EQ(abr.complete, kRequests);

  // Until Prometheus holds what reqcost serves now (scraped every second).
  const std::string complete_series =
      "reqcost_requests_total{status=\"complete\"}";
  double scraped = -1, served = -2;
  deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    absl::StatusOr<HttpResponse> live =
        HttpGet(absl::StrCat("http://127.0.0.1:", metrics_port, "/metrics"));
    served = live.ok() ? ExpositionValue(live->body, complete_series) : -2;
    absl::StatusOr<double> v = PromQuery(prom_port, complete_series);
    scraped = v.ok() ? *v : -1;
    if (served >= kRequests && scraped == served) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  // Once seen NaN right after the counts matched (a query evaluated
  // between two scrapes' samples of the buckets): asked again, bounded.
  absl::StatusOr<double> quantile = absl::NotFoundError("not asked");
  deadline = absl::Now() + absl::Seconds(10);
  do {
    quantile = PromQuery(
        prom_port,
        "histogram_quantile(0.5, sum by (le) "
        "(reqcost_request_duration_seconds_bucket{phase=\"backend\"}))");
    if (quantile.ok() && std::isfinite(*quantile)) break;
    absl::SleepFor(absl::Milliseconds(250));
  } while (absl::Now() < deadline);
  absl::StatusOr<HttpResponse> exposition =
      HttpGet(absl::StrCat("http://127.0.0.1:", metrics_port, "/metrics"));

  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  (void)prom.Stop(absl::Seconds(10));
  ASSERT_EQ(code, 0) << run.err();
  json report = json::parse(run.out(), nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << run.out();
  const int complete = report["requests"]["complete"].get<int>();
  EXPECT_EQ(complete, kRequests) << run.err();

  // 1. Prometheus's count is reqcost's own.
  EXPECT_EQ(scraped, complete) << "served " << served;
  // 2. Its median backend time is within one bucket of reqcost's p50.
  ASSERT_TRUE(quantile.ok()) << quantile.status();
  ASSERT_TRUE(std::isfinite(*quantile))
      << "histogram_quantile stayed " << *quantile;
  const double p50_s =
      report["phases"]["backend"]["p50_us"].get<double>() / 1e6;
  std::printf(
      "[ fleet ] complete: reqcost %d, Prometheus %.0f; backend p50: "
      "reqcost %.1f us, histogram_quantile %.1f us (buckets %d, %d)\n",
      complete, scraped, p50_s * 1e6, *quantile * 1e6, BucketOf(p50_s),
      BucketOf(*quantile));
  EXPECT_LE(std::abs(BucketOf(p50_s) - BucketOf(*quantile)), 1);

  // 3. The exposition passes promtool; the textfile was written at exit.
  ASSERT_TRUE(exposition.ok());
  std::string live_path = dir.File("live.prom");
  ASSERT_TRUE(WriteStringToFile(live_path, exposition->body).ok());
  ASSERT_OK_AND_ASSIGN(bin, PrometheusTool("promtool"));
  ASSERT_OK_AND_ASSIGN(
      check, Subprocess::Start(
                 {"/bin/sh", "-c",
                  absl::StrCat(bin, " check metrics < ", live_path, " && ", bin,
                               " check metrics < ", metrics_file)},
                 dir.File("promtool.out"), dir.File("promtool.err")));
  ASSERT_OK_AND_ASSIGN(check_status, check.WaitForExit(absl::Seconds(30)));
  EXPECT_EQ(check_status, 0) << FileTail(dir.File("promtool.out"))
                             << FileTail(dir.File("promtool.err"));
  ASSERT_OK_AND_ASSIGN(file_text, ReadFileToString(metrics_file));
  EXPECT_EQ(ExpositionValue(file_text, complete_series), complete);
  std::string socket = fpm.address();
  if (absl::StartsWith(socket, "unix:")) socket = socket.substr(5);
  EXPECT_TRUE(absl::StrContains(file_text, "backend=\"" + socket + "\""))
      << "no backend label " << socket;
  EXPECT_EQ(ExpositionValue(file_text,
                            "reqcost_otlp_requests_total{exporter=\"http\","
                            "outcome=\"exported\"}"),
            complete);

  // 4. Spans: one SERVER span per complete request, in the file and at the
  // receiver, valid OTLP/JSON, with the request line and the backend.
  OtlpCheck from_file;
  ASSERT_OK_AND_ASSIGN(spans_text, ReadFileToString(spans_file));
  for (absl::string_view line :
       absl::StrSplit(spans_text, '\n', absl::SkipEmpty())) {
    CheckOtlpJson(std::string(line), &from_file);
  }
  ASSERT_TRUE(from_file.ok()) << from_file.ErrorText();
  OtlpCheck from_http;
  for (const ReceivedPost& post : receiver.posts()) {
    EXPECT_EQ(post.content_encoding, "gzip");
    EXPECT_EQ(post.Header("authorization"), "Bearer " + token);
    EXPECT_EQ(post.Header("x-tenant"), "flag");
    CheckOtlpJson(post.body, &from_http);
  }
  ASSERT_TRUE(from_http.ok()) << from_http.ErrorText();
  for (const OtlpCheck* c : {&from_file, &from_http}) {
    int servers = 0;
    for (const OtlpSpan& s : c->spans) {
      if (s.kind != 2) continue;
      ++servers;
      EXPECT_EQ(s.name, "GET /sleep.php");
      EXPECT_EQ(s.resource.at("service.name")["stringValue"], "nginx");
      EXPECT_EQ(s.resource.at("deployment.environment")["stringValue"], "ci");
    }
    EXPECT_EQ(servers, complete);
  }
  EXPECT_THAT(run.err(), HasSubstr(absl::StrCat(
                             "--otlp-endpoint ", receiver.url(),
                             "/v1/traces: ", complete, " requests exported")));
  EXPECT_THAT(run.err(), HasSubstr("; 0 dropped"));
  EXPECT_THAT(run.out() + run.err(), Not(HasSubstr(token)));

  // 5. `report --otlp-json` of the run's capture: the same spans, with the
  // same times (the header's clock offset is the one attach used).
  const std::string replayed = dir.File("replayed.jsonl");
  ASSERT_OK_AND_ASSIGN(
      rep, Subprocess::Start(
               {REQCOST_BINARY, "report", capture, "--otlp-json", replayed},
               dir.File("report.out"), dir.File("report.err")));
  ASSERT_OK_AND_ASSIGN(rep_status, rep.WaitForExit(absl::Seconds(60)));
  ASSERT_EQ(rep_status, 0) << FileTail(dir.File("report.err"));
  OtlpCheck from_report;
  ASSERT_OK_AND_ASSIGN(replayed_text, ReadFileToString(replayed));
  for (absl::string_view line :
       absl::StrSplit(replayed_text, '\n', absl::SkipEmpty())) {
    CheckOtlpJson(std::string(line), &from_report);
  }
  ASSERT_TRUE(from_report.ok()) << from_report.ErrorText();
  ASSERT_EQ(from_report.spans.size(), from_file.spans.size());
  std::multiset<std::pair<uint64_t, uint64_t>> live_times, replay_times;
  for (const OtlpSpan& s : from_file.spans) {
    live_times.insert({s.start_unix_nano, s.end_unix_nano});
  }
  for (const OtlpSpan& s : from_report.spans) {
    replay_times.insert({s.start_unix_nano, s.end_unix_nano});
  }
  EXPECT_TRUE(live_times == replay_times);
}

// A bad --metrics address, an unwritable --metrics-file and a bad endpoint
// fail before anything is attached, with exit code 2 (docs/reqcost.8.md).
TEST(FleetTest, BadFleetFlagsExitTwoBeforeAttaching) {
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-fleet"));
  OtlpReceiver taken;  // a port in use
  const std::vector<std::vector<std::string>> cases = {
      {"--metrics", "no-port"},
      {"--metrics", absl::StrCat("127.0.0.1:", taken.port())},
      {"--metrics-file", "/nonexistent-dir/reqcost.prom"},
      {"--otlp-endpoint", "127.0.0.1:4318"},
      {"--otlp-json", "/nonexistent-dir/spans.jsonl"},
  };
  for (const auto& flags : cases) {
    std::vector<std::string> argv = {REQCOST_BINARY, "attach", "-p",
                                     std::to_string(getpid())};
    argv.insert(argv.end(), flags.begin(), flags.end());
    ASSERT_OK_AND_ASSIGN(
        p, Subprocess::Start(argv, dir.File("out"), dir.File("err")));
    ASSERT_OK_AND_ASSIGN(status, p.WaitForExit(absl::Seconds(30)));
    std::string err = ReadFileToString(dir.File("err")).value_or("");
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2)
        << flags[0] << " " << flags[1] << ": " << DescribeWaitStatus(status)
        << " " << err;
    EXPECT_THAT(err, HasSubstr(flags[0])) << err;
    EXPECT_THAT(err, ::testing::Not(HasSubstr("attached"))) << err;
  }
}


// Every panel of the shipped Grafana dashboard (cli/exporters/
// reqcost-dashboard.json) returns data from a real Prometheus scraping
// `reqcost attach --metrics` on nginx + php-fpm, whose PHP page makes an
// HTTP call of its own (a backend call) and some of whose requests the
// client abandons (incomplete). Grafana's $__rate_interval is replaced by
// 10s (scrapes every second).
TEST(FleetTest, EveryDashboardPanelReturnsData) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-dashboard"));
  ASSERT_OK_AND_ASSIGN(
      dashboard_text,
      ReadFileToString(std::string(REQCOST_SOURCE_DIR) +
                       "/cli/exporters/reqcost-dashboard.json"));
  json dashboard = json::parse(dashboard_text, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded());
  struct Query {
    std::string panel, expr;
  };
  std::vector<Query> queries;
  for (const json& panel : dashboard["panels"]) {
    for (const json& target : panel["targets"]) {
      std::string expr = target["expr"].get<std::string>();
      for (size_t at = expr.find("$__rate_interval"); at != std::string::npos;
           at = expr.find("$__rate_interval")) {
        expr.replace(at, std::string("$__rate_interval").size(), "10s");
      }
      ASSERT_EQ(expr.find('$'), std::string::npos)
          << "a template variable the test does not know: " << expr;
      queries.push_back({panel["title"].get<std::string>(), expr});
    }
  }
  ASSERT_GE(queries.size(), 6u);

  // A docroot with a page that calls an HTTP server itself.
  const std::string docroot = dir.File("docroot");
  ASSERT_EQ(mkdir(docroot.c_str(), 0755), 0);
  ASSERT_TRUE(WriteStringToFile(docroot + "/index.html", "hello\n").ok());
  ASSERT_TRUE(WriteStringToFile(
                  docroot + "/call.php",
                  "<?php $b = file_get_contents($_GET['u']); "
                  "if (isset($_GET['us'])) usleep((int)$_GET['us']); "
                  "echo strlen($b), \"\\n\";\n")
                  .ok());
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, PhpFpmOptions{}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  nopts.docroot = docroot;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(metrics_port, FreeTcpPort());
  ASSERT_OK_AND_ASSIGN(prom_port, FreeTcpPort());
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(fpm.pid()), "--duration", "0",
                     "--metrics", absl::StrCat("127.0.0.1:", metrics_port)}));
  ASSERT_OK_AND_ASSIGN(prom, StartPrometheus(dir, prom_port, metrics_port));

  const std::string page = absl::StrCat(
      "/call.php?u=", UrlEncode(nginx.Url("/index.html")));
  std::vector<std::string> missing;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    AbOptions ab;
    ab.url = nginx.Url(page);
    ab.requests = 100;
    ab.concurrency = 2;
    ASSERT_OK_AND_ASSIGN(abr, RunAb(ab));
    ASSERT_EQ(abr.complete, 100);
    // Abandoned by the client before the response: incomplete requests.
    ASSERT_OK_AND_ASSIGN(
        curl, Subprocess::Start(
                  {"/usr/bin/curl", "-s", "-o", "/dev/null", "--max-time",
                   "0.2", nginx.Url(page + "&us=600000")},
                  dir.File("curl.out"), dir.File("curl.err")));
    (void)curl.WaitForExit(absl::Seconds(10));
    missing.clear();
    for (const Query& q : queries) {
      absl::StatusOr<HttpResponse> r = HttpGet(
          absl::StrCat("http://127.0.0.1:", prom_port,
                       "/api/v1/query?query=", UrlEncode(q.expr)));
      bool has_data = false;
      if (r.ok()) {
        json doc = json::parse(r->body, nullptr, false);
        ASSERT_FALSE(doc.is_discarded()) << r->body;
        ASSERT_EQ(doc.value("status", ""), "success")
            << q.panel << ": " << q.expr << ": " << r->body;
        for (const json& series : doc["data"]["result"]) {
          double v = NAN;
          (void)absl::SimpleAtod(series["value"][1].get<std::string>(), &v);
          if (std::isfinite(v)) has_data = true;
        }
      }
      if (!has_data) missing.push_back(q.panel + ": " + q.expr);
    }
    // Every panel, the backend's calls too (the page's HTTP call).
    if (missing.empty()) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  (void)prom.Stop(absl::Seconds(10));
  EXPECT_EQ(code, 0) << run.err();
  for (const std::string& m : missing) {
    ADD_FAILURE() << "no data for the panel " << m;
  }
  std::printf("[ dashboard ] %zu queries, %zu without data\n",
              queries.size(), missing.size());
}

}  // namespace
}  // namespace reqcost::testing
