// The fleet exporters on their own: metrics exposition (checked by
// promtool), the label caps, the textfile writer, the span exporter against
// a file and against an in-test OTLP/HTTP receiver that is up, down, slow or
// refusing.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "analyzers/request.h"
#include "cli/exporters/metrics.h"
#include "cli/exporters/otlp_config.h"
#include "cli/exporters/span_exporter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/exporters/otlp_receiver.h"
#include "tests/support/otlp_json_check.h"

namespace reqcost::exporters {
namespace {

using analyzers::ConnReuse;
using analyzers::Request;
using ::reqcost::testing::CheckOtlpJson;
using ::reqcost::testing::OtlpCheck;
using ::reqcost::testing::OtlpReceiver;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

constexpr uint64_t kUs = 1000;

// A complete request through a backend at `backend`, ids from `id`.
Request MakeRequest(uint64_t id, const std::string& backend = "/run/php.sock") {
  Request r;
  r.id = id;
  r.pid = 100;
  r.complete = true;
  r.client_conn = ConnReuse::kNew;
  r.backend_conn = ConnReuse::kNew;
  r.backend_timing = analyzers::BackendTiming::kMeasured;
  r.backend_address = backend;
  r.request_line = "GET /x.php";
  r.client_sock.family = 2;
  r.client_sock.local_port = 80;
  r.client_sock.remote_port = 40000;
  r.start_ns = 1'000'000'000 + id * 1000 * kUs;
  r.exchange_start_ns = r.start_ns + 50 * kUs;
  r.backend_start_ns = r.start_ns + 80 * kUs;
  r.backend_end_ns = r.start_ns + 280 * kUs;
  r.exchange_end_ns = r.start_ns + 300 * kUs;
  r.end_ns = r.start_ns + 350 * kUs;
  r.total_ns = 350 * kUs;
  r.server_ns = 100 * kUs;
  r.transport_ns = 50 * kUs;
  r.backend_ns = 200 * kUs;
  analyzers::SyscallRecord s;
  s.syscall = Syscall::kConnect;
  s.enter_ns = r.exchange_start_ns;
  s.exit_ns = s.enter_ns + 7 * kUs;
  r.syscalls.push_back(s);
  return r;
}

// A fresh directory under /tmp, removed with its contents at the end of
// the test.
class ScratchDir {
 public:
  ScratchDir() {
    char dir[] = "/tmp/reqcost-exporters-XXXXXX";
    path_ = mkdtemp(dir) != nullptr ? dir : "/tmp";
  }
  ~ScratchDir() {
    if (path_ != "/tmp") std::filesystem::remove_all(path_);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// promtool check metrics on `text`: its exit code (0: passes) and output.
int Promtool(const std::string& text, std::string* output) {
  ScratchDir dir;
  std::string path = dir.File("metrics.prom");
  std::ofstream(path) << text;
  std::string out_path = path + ".out";
  std::string cmd =
      "promtool check metrics < " + path + " > " + out_path + " 2>&1";
  int status = std::system(cmd.c_str());
  *output = ReadAll(out_path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(MetricsTest, ExpositionPassesPromtoolWithEveryFamily) {
  Metrics m;
  m.OnRequest(MakeRequest(1), "nginx");
  Request incomplete = MakeRequest(2);
  incomplete.complete = false;
  incomplete.incomplete_reason = "no response";
  m.OnRequest(incomplete, "nginx");
  m.SetEventCounts(1234, 5);
  m.SetTracedProcesses(7);
  analyzers::Anomalies anomalies;
  anomalies.stray_events = 3;
  m.SetAnomalies(anomalies);
  anomalies.stray_events = 4;
  m.SetAnomalies(anomalies);  // a total: only the growth is added
  EXPECT_THAT(m.Exposition(),
              HasSubstr("reqcost_requests_total{status=\"complete\"} 1"));
  // The histograms get the observations at the collector's next Flush.
  EXPECT_THAT(m.Exposition(),
              HasSubstr("reqcost_syscall_duration_seconds_count{side="
                        "\"server\",syscall=\"connect\"} 0"));
  m.Flush();
  std::string text = m.Exposition();
  for (const char* want :
       {"reqcost_request_duration_seconds_bucket{backend=\"/run/php.sock\","
        "backend_conn=\"new\",client_conn=\"new\",phase=\"backend\","
        "server=\"nginx\",le=\"0.0003162\"} 1",
        "reqcost_requests_total{status=\"complete\"} 1",
        "reqcost_requests_total{status=\"incomplete\"} 1",
        "reqcost_incomplete_requests_total{reason=\"no response\"} 1",
        "reqcost_syscall_duration_seconds_count{side=\"server\","
        "syscall=\"connect\"} 1",
        "reqcost_events_total 1234", "reqcost_dropped_events_total 5",
        "reqcost_traced_processes 7",
        "reqcost_anomalies_total{counter=\"stray_events\"} 4",
        "reqcost_anomalies_total{counter=\"late_events\"} 0"}) {
    EXPECT_THAT(text, HasSubstr(want));
  }
  std::string output;
  EXPECT_THAT(Promtool(text, &output), Eq(0)) << output << text;
}

TEST(MetricsTest, BucketsAreExponentialFromOneMicrosecondToTenSeconds) {
  std::vector<double> b = DurationBuckets();
  ASSERT_THAT(b, SizeIs(29));
  EXPECT_DOUBLE_EQ(b.front(), 1e-6);
  EXPECT_DOUBLE_EQ(b.back(), 10.0);
  for (size_t i = 1; i < b.size(); ++i) {
    EXPECT_NEAR(b[i] / b[i - 1], 1.778, 0.002) << i;
  }
}

TEST(MetricsTest, BackendLabelsPastTheCapAreOtherAndCounted) {
  Metrics m;
  for (size_t i = 0; i < kMaxBackends + 8; ++i) {
    m.OnRequest(MakeRequest(i, "10.0.0.1:" + std::to_string(9000 + i)),
                "nginx");
  }
  m.Flush();
  std::string text = m.Exposition();
  EXPECT_THAT(text, HasSubstr("backend=\"10.0.0.1:9031\""));
  EXPECT_THAT(text, Not(HasSubstr("backend=\"10.0.0.1:9032\"")));
  EXPECT_THAT(
      text,
      HasSubstr("reqcost_request_duration_seconds_count{backend=\"other\","
                "backend_conn=\"new\",client_conn=\"new\",phase=\"total\","
                "server=\"nginx\"} 8"));
  EXPECT_THAT(text,
              HasSubstr("reqcost_label_overflow_total{label=\"backend\"} 8"));
}

// A request seen from the backend link only: its null server and total get
// no observation (not a zero), its transport and backend do.
TEST(MetricsTest, NullPhasesAreNotObserved) {
  Metrics m;
  Request r = MakeRequest(1);
  r.origin = analyzers::RequestOrigin::kBackendLink;
  r.client_conn = ConnReuse::kNone;
  r.total_ns.reset();
  r.server_ns.reset();
  m.OnRequest(r, "nginx");
  m.Flush();
  const std::string text = m.Exposition();
  const std::string series =
      "reqcost_request_duration_seconds_count{backend=\"/run/php.sock\","
      "backend_conn=\"new\",client_conn=\"none\",phase=\"";
  EXPECT_THAT(text, HasSubstr(series + "transport\",server=\"nginx\"} 1"));
  EXPECT_THAT(text, HasSubstr(series + "backend\",server=\"nginx\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr(series + "server\",server=\"nginx\"} 1")));
  EXPECT_THAT(text, Not(HasSubstr(series + "total\",server=\"nginx\"} 1")));
  EXPECT_THAT(text, HasSubstr("reqcost_requests_total{status=\"complete\"} 1"));
}

// A request whose backend made `n` calls of 100 us to `peer`.
Request WithCalls(uint64_t id, const std::string& peer, int n) {
  Request r = MakeRequest(id);
  for (int i = 0; i < n; ++i) {
    analyzers::CallRecord c;
    c.peer = peer;
    c.protocol = "redis";
    c.start_ns = r.backend_start_ns + i * 100 * kUs;
    c.end_ns = c.start_ns + 100 * kUs;
    r.calls.push_back(c);
  }
  return r;
}

TEST(MetricsTest, BackendCallsByPeerAndProtocolUnderTheCap) {
  Metrics m;
  m.OnRequest(WithCalls(1, "redis:127.0.0.1:6379", 3), "nginx");
  for (size_t i = 0; i < kMaxPeers + 4; ++i) {
    m.OnRequest(WithCalls(2 + i, "redis:10.0.0.1:" + std::to_string(7000 + i), 1),
                "nginx");
  }
  m.Flush();
  std::string text = m.Exposition();
  EXPECT_THAT(text, HasSubstr("reqcost_backend_call_duration_seconds_count{"
                              "peer=\"redis:127.0.0.1:6379\",protocol="
                              "\"redis\"} 3"));
  // 32 peers have a series; the 5 after them share "other".
  EXPECT_THAT(text, HasSubstr("reqcost_backend_call_duration_seconds_count{"
                              "peer=\"other\",protocol=\"other\"} 5"));
  EXPECT_THAT(text,
              HasSubstr("reqcost_label_overflow_total{label=\"peer\"} 5"));
  std::string output;
  EXPECT_THAT(Promtool(text, &output), Eq(0)) << output;
}

TEST(MetricsTest, CountersOnlyGrow) {
  Metrics m;
  m.SetEventCounts(100, 0);
  m.SetEventCounts(90, 0);  // never goes back
  m.SetEventCounts(150, 2);
  EXPECT_THAT(m.Exposition(), HasSubstr("reqcost_events_total 150"));
  m.SetSpanOutcome("http", "dropped_queue_full", 7);
  m.SetSpanOutcome("http", "dropped_queue_full", 12);
  EXPECT_THAT(m.Exposition(),
              HasSubstr("reqcost_otlp_requests_total{exporter=\"http\","
                        "outcome=\"dropped_queue_full\"} 12"));
}

TEST(MetricsFileTest, WritesAtStartPeriodicallyAndAtStopByRename) {
  ScratchDir scratch;
  std::string path = scratch.File("reqcost.prom");
  Metrics m;
  auto file = MetricsFile::Start(path, m, /*period_ms=*/100);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT(ReadAll(path),
              HasSubstr("reqcost_requests_total{status=\"complete\"} 0"));
  m.OnRequest(MakeRequest(1), "nginx");
  m.Flush();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((*file)->writes() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_GE((*file)->writes(), 3u);
  m.OnRequest(MakeRequest(2), "nginx");
  m.Flush();
  ASSERT_TRUE((*file)->Stop().ok());
  std::string text = ReadAll(path);
  EXPECT_THAT(text, HasSubstr("reqcost_requests_total{status=\"complete\"} 2"));
  std::string output;
  EXPECT_THAT(Promtool(text, &output), Eq(0)) << output;
  // Only the file itself is left: the temporary files were renamed.
  std::string dir = path.substr(0, path.rfind('/'));
  EXPECT_THAT(
      ReadAll(dir + "/reqcost.prom." + std::to_string(getpid()) + ".tmp"),
      Eq(""));
}

TEST(MetricsFileTest, UnwritablePathIsAnInvalidArgument) {
  Metrics m;
  auto file = MetricsFile::Start("/nonexistent-dir/reqcost.prom", m, 1000);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().code(), Eq(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(file.status().message()),
              HasSubstr("--metrics-file"));
}

TEST(MetricsServerTest, BadAddressesAreInvalidArguments) {
  Metrics m;
  for (const char* bad :
       {"9464", "localhost:", ":9464", "127.0.0.1:99999", "127.0.0.1:http"}) {
    auto server = MetricsServer::Start(bad, m);
    ASSERT_FALSE(server.ok()) << bad;
    EXPECT_THAT(server.status().code(), Eq(absl::StatusCode::kInvalidArgument));
  }
  // A port taken by another listener.
  OtlpReceiver taken;
  auto server =
      MetricsServer::Start("127.0.0.1:" + std::to_string(taken.port()), m);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().code(), Eq(absl::StatusCode::kInvalidArgument));
}

// --- spans ---------------------------------------------------------------

SpanExporterOptions HttpOptions(const std::string& url) {
  SpanExporterOptions o;
  o.endpoint = url;
  o.seed = 9;
  o.mono_to_wall_ns = 1'700'000'000'000'000'000;
  o.version = "test";
  return o;
}

analyzers::OtlpResource Resource() { return {"nginx", "host-1", 100}; }

// Offers `n` requests and returns how long all the Offer calls took.
absl::Duration OfferMany(SpanExporter* ex, int n, uint64_t first_id = 1) {
  absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) ex->Offer(MakeRequest(first_id + i), Resource());
  return absl::Now() - start;
}

TEST(SpanExporterTest, FileHoldsOneValidExportPerLine) {
  ScratchDir dir;
  std::string path = dir.File("spans.jsonl");
  SpanExporterOptions o = HttpOptions("");
  o.endpoint.clear();
  o.file = path;
  o.max_batch = 100;
  o.block_when_full = true;
  auto ex = SpanExporter::Start(o);
  ASSERT_TRUE(ex.ok()) << ex.status();
  OfferMany(ex->get(), 250);
  Request incomplete = MakeRequest(999);
  incomplete.complete = false;
  (*ex)->Offer(incomplete, Resource());
  SpanExportStats stats = (*ex)->Finish(absl::Seconds(10));
  EXPECT_THAT(stats.exported_requests, Eq(250u));
  EXPECT_THAT(stats.incomplete_skipped, Eq(1u));
  EXPECT_THAT(stats.dropped(), Eq(0u));
  std::ifstream in(path);
  std::string line;
  OtlpCheck check;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    CheckOtlpJson(line, &check);
  }
  EXPECT_THAT(lines, Eq(3));  // 100 + 100 + 50
  ASSERT_TRUE(check.ok()) << check.ErrorText();
  // Per request: SERVER, CLIENT, transport request, backend, transport reply.
  EXPECT_THAT(check.spans, SizeIs(250 * 5));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_THAT(st.st_mode & 0777, Eq(0600u));

  // An existing file is not overwritten.
  auto again = SpanExporter::Start(o);
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.status().code(), Eq(absl::StatusCode::kInvalidArgument));
}

TEST(SpanExporterTest, ReceiverGetsValidOtlpJsonBatchesAtV1Traces) {
  OtlpReceiver receiver;
  ASSERT_GT(receiver.port(), 0);
  SpanExporterOptions o = HttpOptions(receiver.url() + "/v1/traces");
  o.max_batch = 200;
  auto ex = SpanExporter::Start(o);
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_THAT((*ex)->Describe(), HasSubstr(receiver.url() + "/v1/traces"));
  OfferMany(ex->get(), 700);
  SpanExportStats stats = (*ex)->Finish(absl::Seconds(20));
  EXPECT_THAT(stats.exported_requests, Eq(700u));
  EXPECT_THAT(stats.dropped(), Eq(0u)) << stats.last_error;
  std::vector<testing::ReceivedPost> posts = receiver.posts();
  EXPECT_GE(posts.size(), 4u);  // 200 + 200 + 200 + 100
  OtlpCheck check;
  for (const auto& post : posts) {
    EXPECT_THAT(post.path, Eq("/v1/traces"));
    EXPECT_THAT(post.content_type, Eq("application/json"));
    CheckOtlpJson(post.body, &check);
  }
  ASSERT_TRUE(check.ok()) << check.ErrorText();
  int servers = 0;
  for (const auto& s : check.spans) servers += s.kind == 2;
  EXPECT_THAT(servers, Eq(700));
}

TEST(SpanExporterTest, ReceiverDownNeverBlocksOfferAndCountsEveryDrop) {
  SpanExporterOptions o = HttpOptions(
      "http://127.0.0.1:" + std::to_string(OtlpReceiver::ClosedPort()));
  o.max_queue = 100;
  o.max_batch = 50;
  o.first_backoff = absl::Milliseconds(20);
  auto ex = SpanExporter::Start(o);
  ASSERT_TRUE(ex.ok()) << ex.status();
  absl::Duration offering = OfferMany(ex->get(), 20000);
  // 20000 pushes onto a bounded queue: far below a second on any machine;
  // a blocked Offer would wait out retries and time-outs instead.
  EXPECT_LT(offering, absl::Seconds(2));
  absl::Time start = absl::Now();
  SpanExportStats stats = (*ex)->Finish(absl::Seconds(1));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_THAT(stats.exported_requests, Eq(0u));
  EXPECT_THAT(stats.dropped(), Eq(20000u));
  EXPECT_GT(stats.dropped_queue_full, 0u);
  EXPECT_GT(stats.retries, 0u);
  EXPECT_THAT(stats.last_error, HasSubstr("POST"));
}

TEST(SpanExporterTest, SlowReceiverTimesOutWithoutBlockingAndDropsAreCounted) {
  OtlpReceiver slow(200, /*delay_ms=*/3000);
  SpanExporterOptions o = HttpOptions(slow.url());
  o.max_queue = 300;
  o.max_batch = 100;
  o.export_timeout = absl::Milliseconds(300);
  o.max_attempts = 2;
  o.first_backoff = absl::Milliseconds(20);
  auto ex = SpanExporter::Start(o);
  ASSERT_TRUE(ex.ok()) << ex.status();
  absl::Duration offering = OfferMany(ex->get(), 5000);
  EXPECT_LT(offering, absl::Seconds(2));
  SpanExportStats stats = (*ex)->Finish(absl::Seconds(1));
  EXPECT_THAT(stats.exported_requests + stats.dropped(), Eq(5000u));
  EXPECT_THAT(stats.exported_requests, Eq(0u));
  EXPECT_GT(stats.dropped_failed, 0u);
  // The latest attempt timed out, or was still waiting when the exit
  // deadline passed and was cut short.
  EXPECT_THAT(stats.last_error, ::testing::AnyOf(HasSubstr("imeout"),
                                                 HasSubstr("exit deadline")));
  EXPECT_GE(slow.requests_seen(), 1);
}

TEST(SpanExporterTest, RetryableStatusIsRetriedThenDroppedRefusalIsNot) {
  OtlpReceiver busy(503);
  SpanExporterOptions o = HttpOptions(busy.url());
  o.max_attempts = 3;
  o.first_backoff = absl::Milliseconds(10);
  auto ex = SpanExporter::Start(o);
  ASSERT_TRUE(ex.ok());
  OfferMany(ex->get(), 10);
  SpanExportStats stats = (*ex)->Finish(absl::Seconds(10));
  EXPECT_THAT(stats.dropped_failed, Eq(10u));
  EXPECT_THAT(stats.retries, Eq(2u));
  EXPECT_THAT(busy.requests_seen(), Eq(3));

  OtlpReceiver refusing(400);
  auto ex2 = SpanExporter::Start(HttpOptions(refusing.url()));
  ASSERT_TRUE(ex2.ok());
  OfferMany(ex2->get(), 10);
  stats = (*ex2)->Finish(absl::Seconds(10));
  EXPECT_THAT(stats.dropped_failed, Eq(10u));
  EXPECT_THAT(stats.retries, Eq(0u));
  EXPECT_THAT(stats.last_error, HasSubstr("400"));
}

TEST(SpanExporterTest, EndpointMustBeHttp) {
  auto ex = SpanExporter::Start(HttpOptions("127.0.0.1:4318"));
  ASSERT_FALSE(ex.ok());
  EXPECT_THAT(ex.status().code(), Eq(absl::StatusCode::kInvalidArgument));
}

// --- the OTEL_* configuration through the exporter ------------------------

// A header value that must appear in no output, message or error.
constexpr char kSecret[] = "s3cret-Bearer-Token-7f3a";

// The exporter options for `env` and `flags`, as `attach` builds them.
SpanExporterOptions FromEnvironment(
    const std::map<std::string, std::string>& env, OtlpFlags flags = {}) {
  absl::StatusOr<OtlpConfig> config = ResolveOtlpConfig(
      flags, [env](const char* name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
      });
  EXPECT_TRUE(config.ok()) << config.status();
  SpanExporterOptions o = HttpOptions("");
  if (config.ok()) ApplyOtlpConfig(*config, &o);
  return o;
}

// Runs an exporter with `o` over `n` requests; its stats.
SpanExportStats Export(SpanExporterOptions o, int n) {
  auto ex = SpanExporter::Start(std::move(o));
  EXPECT_TRUE(ex.ok()) << ex.status();
  if (!ex.ok()) return {};
  OfferMany(ex->get(), n);
  return (*ex)->Finish(absl::Seconds(20));
}

TEST(OtlpEnvironmentTest, HeadersArriveEnvAndFlagsCombinedValuesShownNowhere) {
  OtlpReceiver receiver;
  OtlpFlags flags;
  flags.headers = {"X-Scope-OrgID=from-flag"};
  SpanExporterOptions o =
      FromEnvironment({{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()},
                       {"OTEL_EXPORTER_OTLP_HEADERS",
                        std::string("Authorization=Bearer%20") + kSecret +
                            ",x-scope-orgid=from-env, x-team = web%2Cops "}},
                      flags);
  auto ex = SpanExporter::Start(o);
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_THAT((*ex)->Describe(), Not(HasSubstr(kSecret)));
  EXPECT_THAT((*ex)->Describe(), Eq("OTEL_EXPORTER_OTLP_ENDPOINT " +
                                    receiver.url() + "/v1/traces"));
  OfferMany(ex->get(), 20);
  SpanExportStats stats = (*ex)->Finish(absl::Seconds(20));
  EXPECT_THAT(stats.exported_requests, Eq(20u)) << stats.last_error;
  std::vector<testing::ReceivedPost> posts = receiver.posts();
  ASSERT_THAT(posts, Not(::testing::IsEmpty()));
  for (const auto& post : posts) {
    EXPECT_THAT(post.path, Eq("/v1/traces"));
    EXPECT_THAT(post.Header("authorization"),
                Eq(std::string("Bearer ") + kSecret));
    EXPECT_THAT(post.Header("x-scope-orgid"), Eq("from-flag"));
    EXPECT_THAT(post.Header("x-team"), Eq("web,ops"));
    EXPECT_THAT(post.Header("user-agent"), HasSubstr("reqcost/"));
    EXPECT_THAT(post.content_type, Eq("application/json"));
  }

  // A collector that refuses the credentials: the error says so, and still
  // holds no header value.
  OtlpReceiver refusing(401);
  o.endpoint = refusing.url() + "/v1/traces";
  stats = Export(o, 5);
  EXPECT_THAT(stats.dropped_failed, Eq(5u));
  EXPECT_THAT(stats.last_error, HasSubstr("HTTP status 401"));
  EXPECT_THAT(stats.last_error, HasSubstr("refused the credentials"));
  EXPECT_THAT(stats.last_error, Not(HasSubstr(kSecret)));
}

TEST(OtlpEnvironmentTest, TracesVariablesOverGenericOnesAndTheV1TracesRule) {
  OtlpReceiver receiver;
  // The generic endpoint: its path, then v1/traces.
  Export(FromEnvironment(
             {{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url() + "/otlp/"}}),
         3);
  // The traces endpoint wins and is used as is; so do its headers, which
  // replace the generic list.
  Export(FromEnvironment(
             {{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url() + "/otlp"},
              {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
               receiver.url() + "/api/spans"},
              {"OTEL_EXPORTER_OTLP_HEADERS", "a=generic,b=generic"},
              {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=traces"}}),
         3);
  // The flag wins over both, with v1/traces appended.
  OtlpFlags flags;
  flags.endpoint = receiver.url();
  Export(FromEnvironment(
             {{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/x"}},
             flags),
         3);
  std::vector<testing::ReceivedPost> posts = receiver.posts();
  ASSERT_THAT(posts, SizeIs(3));
  EXPECT_THAT(posts[0].path, Eq("/otlp/v1/traces"));
  EXPECT_THAT(posts[1].path, Eq("/api/spans"));
  EXPECT_THAT(posts[1].Header("a"), Eq("traces"));
  EXPECT_THAT(posts[1].Header("b"), Eq(""));
  EXPECT_THAT(posts[2].path, Eq("/v1/traces"));
}

TEST(OtlpEnvironmentTest, GzipBodyInflatesToTheSameSpans) {
  OtlpReceiver plain, gzipped;
  SpanExporterOptions o =
      FromEnvironment({{"OTEL_EXPORTER_OTLP_ENDPOINT", plain.url()}});
  EXPECT_THAT(Export(o, 300).exported_requests, Eq(300u));
  o = FromEnvironment({{"OTEL_EXPORTER_OTLP_ENDPOINT", gzipped.url()},
                       {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"}});
  EXPECT_TRUE(o.gzip);
  EXPECT_THAT(Export(o, 300).exported_requests, Eq(300u));
  std::vector<testing::ReceivedPost> a = plain.posts(), b = gzipped.posts();
  ASSERT_THAT(a, SizeIs(1));
  ASSERT_THAT(b, SizeIs(1));
  EXPECT_THAT(a[0].content_encoding, Eq(""));
  EXPECT_THAT(b[0].content_encoding, Eq("gzip"));
  // The same seed, requests and batch: the very same document.
  EXPECT_THAT(b[0].body, Eq(a[0].body));
  EXPECT_LT(b[0].wire_bytes * 5, a[0].wire_bytes)
      << "spans of similar requests compress well";
  OtlpCheck check;
  CheckOtlpJson(b[0].body, &check);
  ASSERT_TRUE(check.ok()) << check.ErrorText();
  EXPECT_THAT(check.spans, SizeIs(300 * 5));
}

TEST(OtlpEnvironmentTest, ResourceAttributesAndServiceNameReachTheResource) {
  OtlpReceiver receiver;
  SpanExporterOptions o = FromEnvironment(
      {{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()},
       {"OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment=prod,host.name=web-7,service.name=ignored"}});
  EXPECT_THAT(Export(o, 2).exported_requests, Eq(2u));
  std::vector<testing::ReceivedPost> posts = receiver.posts();
  ASSERT_THAT(posts, SizeIs(1));
  nlohmann::json doc = nlohmann::json::parse(posts[0].body);
  std::map<std::string, std::string> attrs;
  for (const auto& a : doc["resourceSpans"][0]["resource"]["attributes"]) {
    attrs[a["key"]] = a["value"].contains("stringValue")
                          ? a["value"]["stringValue"].get<std::string>()
                          : a["value"]["intValue"].get<std::string>();
  }
  EXPECT_THAT(attrs["deployment.environment"], Eq("prod"));
  EXPECT_THAT(attrs["host.name"], Eq("web-7"));     // replaces the detected one
  EXPECT_THAT(attrs["service.name"], Eq("nginx"));  // set by the caller
  EXPECT_THAT(attrs["process.pid"], Eq("100"));
  EXPECT_THAT(attrs, SizeIs(4));
}

// --- TLS -------------------------------------------------------------------

// A CA, a server certificate it signs for 127.0.0.1 and a client
// certificate it signs, and a second CA that signed nothing, made with
// openssl in a scratch directory.
class TestPki {
 public:
  TestPki() {
    std::string d = dir_.File("");
    std::string cmd =
        "cd " + d + " && (" +
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca "
        "-keyout ca.key -out ca.pem && "
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca "
        "-keyout other.key -out other.pem && "
        "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
        "-keyout server.key -out server.csr && "
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -days 2 -extfile san.ext -out server.pem && "
        "openssl req -newkey rsa:2048 -nodes -subj /CN=reqcost-client "
        "-keyout client.key -out client.csr && "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -days 2 -out client.pem"
        ") > openssl.log 2>&1";
    ok_ = std::system(cmd.c_str()) == 0;
    log_ = ReadAll(d + "openssl.log");
  }
  bool ok() const { return ok_; }
  const std::string& log() const { return log_; }
  std::string File(const std::string& name) const { return dir_.File(name); }

 private:
  ScratchDir dir_;
  bool ok_ = false;
  std::string log_;
};

TEST(OtlpTlsTest, RightCaDeliversWrongCaIsRefusedClearlyAndCounted) {
  TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.log();
  OtlpReceiver receiver(200, 0, pki.File("server.pem"), pki.File("server.key"));
  ASSERT_GT(receiver.port(), 0)
      << "the receiver could not load its certificate";
  ASSERT_THAT(receiver.url(), HasSubstr("https://"));

  SpanExporterOptions o = FromEnvironment(
      {{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()},
       {"OTEL_EXPORTER_OTLP_CERTIFICATE", pki.File("ca.pem")},
       {"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"},
       {"OTEL_EXPORTER_OTLP_HEADERS", std::string("api-key=") + kSecret}});
  SpanExportStats stats = Export(o, 50);
  EXPECT_THAT(stats.exported_requests, Eq(50u)) << stats.last_error;
  EXPECT_THAT(stats.dropped(), Eq(0u));
  std::vector<testing::ReceivedPost> posts = receiver.posts();
  ASSERT_THAT(posts, SizeIs(1));
  EXPECT_THAT(posts[0].Header("api-key"), Eq(kSecret));
  OtlpCheck check;
  CheckOtlpJson(posts[0].body, &check);
  EXPECT_TRUE(check.ok()) << check.ErrorText();

  // Another CA: the handshake fails, the batch is dropped and counted, not
  // retried (a certificate does not get better), and the error says what to
  // check.
  o = FromEnvironment(
      {{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()},
       {"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", pki.File("other.pem")},
       {"OTEL_EXPORTER_OTLP_HEADERS", std::string("api-key=") + kSecret}});
  stats = Export(o, 50);
  EXPECT_THAT(stats.exported_requests, Eq(0u));
  EXPECT_THAT(stats.dropped_failed, Eq(50u));
  EXPECT_THAT(stats.retries, Eq(0u));
  EXPECT_THAT(stats.last_error,
              HasSubstr("the collector's TLS certificate is not signed by the "
                        "CA in " +
                        pki.File("other.pem") +
                        " (OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE)"));
  EXPECT_THAT(stats.last_error, Not(HasSubstr(kSecret)));
  // The receiver counts the failed handshake once it has read the client's
  // alert, which may be after the exporter has already given up.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (receiver.handshakes_failed() < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GE(receiver.handshakes_failed(), 1);
  EXPECT_THAT(receiver.posts(), SizeIs(1));  // nothing more arrived

  // No CA given: the system's store does not know the test CA either.
  o = FromEnvironment({{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()}});
  stats = Export(o, 5);
  EXPECT_THAT(stats.dropped_failed, Eq(5u));
  EXPECT_THAT(stats.last_error,
              HasSubstr("set OTEL_EXPORTER_OTLP_CERTIFICATE"));
}

TEST(OtlpTlsTest, ClientCertificateAndKeyGiveMutualTls) {
  TestPki pki;
  ASSERT_TRUE(pki.ok()) << pki.log();
  OtlpReceiver receiver(200, 0, pki.File("server.pem"), pki.File("server.key"),
                        /*client_ca_pem=*/pki.File("ca.pem"));
  ASSERT_GT(receiver.port(), 0);
  SpanExporterOptions o = FromEnvironment(
      {{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()},
       {"OTEL_EXPORTER_OTLP_CERTIFICATE", pki.File("ca.pem")},
       {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", pki.File("client.pem")},
       {"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", pki.File("client.key")}});
  SpanExportStats stats = Export(o, 10);
  EXPECT_THAT(stats.exported_requests, Eq(10u)) << stats.last_error;
  EXPECT_THAT(receiver.posts(), SizeIs(1));

  // Without the client certificate the receiver ends the handshake: every
  // request of the batch is counted as dropped, with the error.
  o = FromEnvironment({{"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()},
                       {"OTEL_EXPORTER_OTLP_CERTIFICATE", pki.File("ca.pem")}});
  o.max_attempts = 2;
  o.first_backoff = absl::Milliseconds(10);
  stats = Export(o, 10);
  EXPECT_THAT(stats.exported_requests, Eq(0u));
  EXPECT_THAT(stats.dropped_failed, Eq(10u));
  EXPECT_THAT(stats.last_error, HasSubstr("POST " + receiver.url()));
  EXPECT_THAT(receiver.posts(), SizeIs(1));
}

// --- the command ------------------------------------------------------------

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `reqcost ARGS` with the environment `env` added (and any OTEL_*
// variable of the test's own environment removed).
CommandResult RunReqcost(
    const std::vector<std::pair<std::string, std::string>>& env,
    const std::string& args) {
  ScratchDir dir;
  std::string out = dir.File("out.txt");
  std::string cmd = "env";
  for (const char* name :
       {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}) {
    cmd += std::string(" -u ") + name;
  }
  for (const auto& [k, v] : env) cmd += " '" + k + "=" + v + "'";
  cmd += std::string(" ") + REQCOST_BINARY + " " + args + " > " + out + " 2>&1";
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = ReadAll(out);
  return r;
}

// A process to attach to: sleeps, and is reaped at the end of the test.
class Sleeper {
 public:
  Sleeper() {
    pid_ = fork();
    if (pid_ == 0) {
      execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~Sleeper() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::string pid() const { return std::to_string(pid_); }

 private:
  pid_t pid_ = -1;
};

TEST(OtlpCommandTest, MalformedVariableExitsTwoBeforeAttachingNamingIt) {
  Sleeper target;
  const std::string args = "attach -p " + target.pid() +
                           " --duration 1s --otlp-endpoint http://127.0.0.1:1";
  struct Case {
    std::string name, value, want;
  };
  for (const Case& c : std::vector<Case>{
           {"OTEL_EXPORTER_OTLP_TIMEOUT", "ten",
            "OTEL_EXPORTER_OTLP_TIMEOUT=ten"},
           {"OTEL_EXPORTER_OTLP_COMPRESSION", "br",
            "OTEL_EXPORTER_OTLP_COMPRESSION=br"},
           {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf",
            "sends OTLP as http/json"},
           {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc"},
           {"OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem",
            "OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem cannot be "
            "read"},
           {"OTEL_EXPORTER_OTLP_HEADERS",
            std::string("Authorization=Bearer%2") + kSecret,
            "OTEL_EXPORTER_OTLP_HEADERS: the value of Authorization"},
           {"OTEL_RESOURCE_ATTRIBUTES", "novalue",
            "OTEL_RESOURCE_ATTRIBUTES: entry 1"},
       }) {
    CommandResult r = RunReqcost({{c.name, c.value}}, args);
    EXPECT_THAT(r.exit_code, Eq(2)) << c.name << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.want)) << c.name;
    EXPECT_THAT(r.output, Not(HasSubstr("attached to"))) << c.name;
    EXPECT_THAT(r.output, Not(HasSubstr(kSecret))) << c.name;
  }
  // Without the flag, an endpoint variable alone turns the exporter on and
  // is checked the same way.
  CommandResult r =
      RunReqcost({{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"}},
                 "attach -p " + target.pid() + " --duration 1s");
  EXPECT_THAT(r.exit_code, Eq(2)) << r.output;
  EXPECT_THAT(r.output,
              HasSubstr("OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318 is not"));
  // --otlp-header without '=' names the flag, not the text.
  r = RunReqcost({}, args + " --otlp-header " + kSecret);
  EXPECT_THAT(r.exit_code, Eq(2)) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--otlp-header takes NAME=VALUE"));
  EXPECT_THAT(r.output, Not(HasSubstr(kSecret)));
}

// These two attach for a second when the user may load BPF (and exit 4
// before anything is sent when not): nothing reaches the receiver either way
// with OTEL_SDK_DISABLED, and no header value is ever printed.
TEST(OtlpCommandTest, SdkDisabledSendsNothing) {
  Sleeper target;
  OtlpReceiver receiver;
  CommandResult r =
      RunReqcost({{"OTEL_SDK_DISABLED", "true"},
                  {"OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()}},
                 "attach -p " + target.pid() +
                     " --duration 1s --otlp-endpoint " + receiver.url());
  EXPECT_THAT(r.exit_code, ::testing::AnyOf(Eq(0), Eq(4))) << r.output;
  EXPECT_THAT(r.output,
              HasSubstr("OTEL_SDK_DISABLED=true: no spans are sent to a "
                        "collector (--otlp-endpoint is ignored)"));
  EXPECT_THAT(r.output, Not(HasSubstr("requests exported")));
  EXPECT_THAT(receiver.requests_seen(), Eq(0));
}

TEST(OtlpCommandTest, HeaderValuesAppearInNoOutput) {
  Sleeper target;
  OtlpReceiver refusing(401);
  CommandResult r = RunReqcost(
      {{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", refusing.url() + "/v1/traces"},
       {"OTEL_EXPORTER_OTLP_HEADERS",
        std::string("authorization=Bearer%20") + kSecret}},
      "attach -p " + target.pid() +
          " --duration 1s --format json --otlp-header "
          "X-Other=" +
          kSecret + "-flag");
  EXPECT_THAT(r.exit_code, ::testing::AnyOf(Eq(0), Eq(4))) << r.output;
  if (r.exit_code == 0) {
    EXPECT_THAT(r.output,
                HasSubstr("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT " +
                          refusing.url() + "/v1/traces: 0 requests exported"));
  }
  EXPECT_THAT(r.output, Not(HasSubstr(kSecret)));
}

}  // namespace
}  // namespace reqcost::exporters
