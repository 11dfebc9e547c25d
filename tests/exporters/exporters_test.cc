// The fleet exporters on their own: metrics exposition (checked by
// promtool), the label caps, the textfile writer, the span exporter against
// a file and against an in-test OTLP/HTTP receiver that is up, down, slow or
// refusing.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "analyzers/request.h"
#include "cli/exporters/metrics.h"
#include "cli/exporters/span_exporter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
  std::string cmd = "promtool check metrics < " + path + " > " + out_path + " 2>&1";
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
  EXPECT_THAT(m.Exposition(), HasSubstr("reqcost_requests_total{status=\"complete\"} 1"));
  // The histograms get the observations at the collector's next Flush.
  EXPECT_THAT(m.Exposition(), HasSubstr(
      "reqcost_syscall_duration_seconds_count{side=\"server\",syscall=\"connect\"} 0"));
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
        "reqcost_traced_processes 7"}) {
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
    m.OnRequest(MakeRequest(i, "10.0.0.1:" + std::to_string(9000 + i)), "nginx");
  }
  m.Flush();
  std::string text = m.Exposition();
  EXPECT_THAT(text, HasSubstr("backend=\"10.0.0.1:9031\""));
  EXPECT_THAT(text, Not(HasSubstr("backend=\"10.0.0.1:9032\"")));
  EXPECT_THAT(text, HasSubstr(
      "reqcost_request_duration_seconds_count{backend=\"other\","
      "backend_conn=\"new\",client_conn=\"new\",phase=\"total\","
      "server=\"nginx\"} 8"));
  EXPECT_THAT(text, HasSubstr("reqcost_label_overflow_total{label=\"backend\"} 8"));
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
  EXPECT_THAT(ReadAll(path), HasSubstr("reqcost_requests_total{status=\"complete\"} 0"));
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
  EXPECT_THAT(ReadAll(dir + "/reqcost.prom." + std::to_string(getpid()) + ".tmp"),
              Eq(""));
}

TEST(MetricsFileTest, UnwritablePathIsAnInvalidArgument) {
  Metrics m;
  auto file = MetricsFile::Start("/nonexistent-dir/reqcost.prom", m, 1000);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().code(), Eq(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("--metrics-file"));
}

TEST(MetricsServerTest, BadAddressesAreInvalidArguments) {
  Metrics m;
  for (const char* bad : {"9464", "localhost:", ":9464", "127.0.0.1:99999",
                          "127.0.0.1:http"}) {
    auto server = MetricsServer::Start(bad, m);
    ASSERT_FALSE(server.ok()) << bad;
    EXPECT_THAT(server.status().code(), Eq(absl::StatusCode::kInvalidArgument));
  }
  // A port taken by another listener.
  OtlpReceiver taken;
  auto server = MetricsServer::Start("127.0.0.1:" + std::to_string(taken.port()), m);
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

}  // namespace
}  // namespace reqcost::exporters
