#include "analyzers/render/otlp.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "analyzers/profiler.h"
#include "analyzers/render/format.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/analyzers/stream_builder.h"
#include "tests/support/otlp_json_check.h"

namespace reqcost::analyzers {
namespace {

using ::reqcost::analyzers::test_support::At;
using ::reqcost::analyzers::test_support::FcgiRecord;
using ::reqcost::analyzers::test_support::OneFastCgiRequest;
using ::reqcost::analyzers::test_support::OneRequestOptions;
using ::reqcost::analyzers::test_support::RunStream;
using ::reqcost::analyzers::test_support::StreamBuilder;
using ::reqcost::analyzers::test_support::TcpSock;
using ::reqcost::analyzers::test_support::UnixSock;
using ::reqcost::testing::CheckOtlpJson;
using ::reqcost::testing::OtlpCheck;
using ::reqcost::testing::OtlpSpan;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr uint32_t kNginx = 100;
constexpr uint32_t kPhp = 200;
constexpr int64_t kOffset = 1'700'000'000'000'000'000;  // mono -> wall

// nginx accepts a client on TCP, connects to php-fpm over a unix socket
// (connect's path captured), which accepts after 20 us (queue) and works
// 20 ms; the payload shows the request line and FastCGI.
StreamBuilder UnixFastCgiRequest() {
  OneRequestOptions o;
  o.client = TcpSock(8080, 50123);
  o.send_payload = FcgiRecord(1, 1, 8);
  StreamBuilder s = OneFastCgiRequest(o);
  SyscallEvent& connect = s.events()[2];
  connect.flags |= SyscallEvent::kPeerPath;
  connect.payload = std::string("/run/php/fpm.sock") + '\0';
  return s;
}

Request OnlyRequest(const StreamBuilder& s) {
  std::vector<Request> requests = RunStream(s);
  EXPECT_THAT(requests, SizeIs(1));
  return requests.empty() ? Request{} : requests[0];
}

OtlpResource Nginx() { return {"nginx", "web-1", kNginx}; }

const OtlpSpan* Named(const OtlpCheck& check, const std::string& name) {
  for (const OtlpSpan& s : check.spans) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string Str(const OtlpSpan& span, const std::string& key) {
  auto it = span.attributes.find(key);
  return it == span.attributes.end()
             ? "<absent>"
             : it->second.value("stringValue", "<not a string>");
}
std::string Int(const OtlpSpan& span, const std::string& key) {
  auto it = span.attributes.find(key);
  return it == span.attributes.end()
             ? "<absent>"
             : it->second.value("intValue", "<not an int>");
}

TEST(BackendAddressTest, UnixLinkIsNamedByItsConnectPathTcpByHostPort) {
  Request unix_request = OnlyRequest(UnixFastCgiRequest());
  ASSERT_TRUE(unix_request.complete) << unix_request.incomplete_reason;
  EXPECT_THAT(unix_request.backend_address, Eq("/run/php/fpm.sock"));
  EXPECT_THAT(unix_request.backend_protocol, Eq("fastcgi"));
  EXPECT_THAT(unix_request.queue_start_ns, Eq(At(110)));

  StreamBuilder tcp;
  tcp.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 120, "GET / HTTP/1.1\r\n")
      .Connect(kNginx, 9, 100, 110, TcpSock(40000, 9000))
      .Write(kNginx, 9, 120, 140, 500, "GET / HTTP/1.0\r\n")
      .Read(kNginx, 9, 20180, 20190, 300)
      .Write(kNginx, 8, 20220, 20240, 350)
      .Close(kNginx, 8, 20300, 20305);
  Request tcp_request = OnlyRequest(tcp);
  ASSERT_TRUE(tcp_request.complete) << tcp_request.incomplete_reason;
  EXPECT_THAT(tcp_request.backend_address, Eq("127.0.0.1:9000"));
  EXPECT_THAT(tcp_request.backend_protocol, Eq("http"));
}

TEST(BackendAddressTest, UnixLinkWithoutItsPathIsUnix) {
  StreamBuilder s = UnixFastCgiRequest();
  s.events()[2].flags &= ~SyscallEvent::kPeerPath;
  s.events()[2].payload.clear();
  Request r = OnlyRequest(s);
  EXPECT_THAT(r.backend_address, Eq("unix"));
}

// A unix path is bytes, not text: one that is not UTF-8 is shown with
// U+FFFD for its bad bytes, so that the request's JSON can be written.
TEST(BackendAddressTest, UnixPathThatIsNotUtf8IsShownValid) {
  StreamBuilder s = UnixFastCgiRequest();
  s.events()[2].payload = std::string("/run/\xff\xfe_\xd0.sock") + '\0';
  Request r = OnlyRequest(s);
  EXPECT_THAT(r.backend_address, Eq("/run/\xEF\xBF\xBD\xEF\xBF\xBD_"
                                    "\xEF\xBF\xBD.sock"));
  EXPECT_NO_THROW((void)RequestToJson(r).dump());
}

// Live outputs: once the collector knows nothing older is still to come,
// the last request of an idle stack is finalized without a later event.
TEST(ProfilerAdvanceTest, IdleStacksLastRequestIsFinalizedByAdvanceTo) {
  Profiler profiler;
  std::vector<Request> requests;
  profiler.SetRequestCallback([&](const Request& r) { requests.push_back(r); });
  for (const SyscallEvent& e : UnixFastCgiRequest().InExitOrder()) {
    profiler.OnEvent(e);
  }
  EXPECT_THAT(requests, SizeIs(0));  // within the reorder window
  profiler.AdvanceTo(At(20305) + 19'000'000);
  EXPECT_THAT(requests, SizeIs(0));  // the close is not 20 ms old yet
  profiler.AdvanceTo(At(20305) + 20'000'000);
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_TRUE(requests[0].complete) << requests[0].incomplete_reason;
  profiler.Finish(At(20305) + 30'000'000);
  EXPECT_THAT(requests, SizeIs(1));
  EXPECT_THAT(profiler.anomalies().late_events, Eq(0u));
}

TEST(OtlpTest, CompleteRequestIsServerClientAndInternalSpansOfOneTrace) {
  Request r = OnlyRequest(UnixFastCgiRequest());
  ASSERT_TRUE(r.complete);
  OtlpBatch batch(/*seed=*/42, kOffset);
  batch.Add(SpanSource::From(r, Nginx()));
  EXPECT_THAT(batch.requests(), Eq(1u));
  std::string line = batch.Take("test");
  EXPECT_TRUE(batch.empty());

  OtlpCheck check;
  CheckOtlpJson(line, &check);
  ASSERT_TRUE(check.ok()) << check.ErrorText() << line;
  std::vector<std::string> names;
  for (const OtlpSpan& s : check.spans) names.push_back(s.name);
  EXPECT_THAT(
      names, UnorderedElementsAre("GET /index.php", "fastcgi /run/php/fpm.sock",
                                  "transport request", "backend",
                                  "transport reply", "queue"));
  const OtlpSpan* server = Named(check, "GET /index.php");
  const OtlpSpan* client = Named(check, "fastcgi /run/php/fpm.sock");
  const OtlpSpan* backend = Named(check, "backend");
  const OtlpSpan* queue = Named(check, "queue");
  const OtlpSpan* treq = Named(check, "transport request");
  ASSERT_TRUE(server && client && backend && queue && treq);
  for (const OtlpSpan& s : check.spans) {
    EXPECT_THAT(s.trace_id, Eq(server->trace_id));
    EXPECT_THAT(s.resource.at("service.name")["stringValue"], Eq("nginx"));
    EXPECT_THAT(s.resource.at("host.name")["stringValue"], Eq("web-1"));
    EXPECT_THAT(s.resource.at("process.pid")["intValue"], Eq("100"));
  }
  EXPECT_THAT(server->kind, Eq(kSpanKindServer));
  EXPECT_TRUE(server->parent_span_id.empty());
  EXPECT_THAT(client->kind, Eq(kSpanKindClient));
  EXPECT_THAT(client->parent_span_id, Eq(server->span_id));
  EXPECT_THAT(backend->kind, Eq(kSpanKindInternal));
  EXPECT_THAT(backend->parent_span_id, Eq(client->span_id));
  EXPECT_THAT(queue->parent_span_id, Eq(treq->span_id));

  // Unix nanoseconds: the monotonic stamps plus the capture's one offset.
  EXPECT_THAT(server->start_unix_nano, Eq(r.start_ns + kOffset));
  EXPECT_THAT(server->end_unix_nano, Eq(r.end_ns + kOffset));
  EXPECT_THAT(client->start_unix_nano, Eq(At(100) + kOffset));
  EXPECT_THAT(client->end_unix_nano, Eq(At(20190) + kOffset));
  EXPECT_THAT(backend->end_unix_nano - backend->start_unix_nano,
              Eq(*r.backend_ns));
  EXPECT_THAT(queue->end_unix_nano - queue->start_unix_nano, Eq(*r.queue_ns));

  // HTTP semantic conventions on the SERVER span, the backend on CLIENT.
  EXPECT_THAT(Str(*server, "http.request.method"), Eq("GET"));
  EXPECT_THAT(Str(*server, "url.path"), Eq("/index.php"));
  EXPECT_THAT(Int(*server, "server.port"), Eq("8080"));
  EXPECT_THAT(Str(*server, "client.address"), Eq("127.0.0.1"));
  EXPECT_THAT(Int(*server, "client.port"), Eq("50123"));
  EXPECT_THAT(Str(*server, "network.transport"), Eq("tcp"));
  EXPECT_THAT(Str(*server, "network.type"), Eq("ipv4"));
  EXPECT_THAT(Str(*client, "network.transport"), Eq("unix"));
  EXPECT_THAT(Str(*client, "server.address"), Eq("/run/php/fpm.sock"));
  EXPECT_THAT(Str(*client, "reqcost.backend.protocol"), Eq("fastcgi"));
}

TEST(OtlpTest, IdsDifferPerRequestAndSeedAndAreNeverZero) {
  SpanIds a = SpanIds::For(1, 1), b = SpanIds::For(1, 2),
          c = SpanIds::For(2, 1);
  EXPECT_NE(a.trace_hi, b.trace_hi);
  EXPECT_NE(a.trace_hi, c.trace_hi);
  EXPECT_NE(a.server, a.client);
  EXPECT_THAT(Hex64(0x1a), Eq("000000000000001a"));
  for (uint64_t id = 0; id < 1000; ++id) {
    SpanIds ids = SpanIds::For(0, id);
    EXPECT_NE(ids.trace_hi, 0u);
    EXPECT_NE(ids.server, 0u);
  }
}

TEST(OtlpTest, RequestWithoutBackendOrPayloadIsOneHttpServerSpan) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 50, 60, 120)
      .Write(kNginx, 8, 100, 130, 500)
      .Close(kNginx, 8, 200, 205);
  Request r = OnlyRequest(s);
  ASSERT_TRUE(r.complete);
  OtlpBatch batch(7, kOffset);
  batch.Add(SpanSource::From(r, Nginx()));
  OtlpCheck check;
  CheckOtlpJson(batch.Take("test"), &check);
  ASSERT_TRUE(check.ok()) << check.ErrorText();
  ASSERT_THAT(check.spans, SizeIs(1));
  EXPECT_THAT(check.spans[0].name, Eq("HTTP"));
  EXPECT_THAT(Str(check.spans[0], "http.request.method"), Eq("<absent>"));
}

TEST(OtlpTest, TwoServersAreTwoResources) {
  Request r = OnlyRequest(UnixFastCgiRequest());
  OtlpBatch batch(3, kOffset);
  batch.Add(SpanSource::From(r, Nginx()));
  Request r2 = r;
  r2.id = 2;
  batch.Add(SpanSource::From(r2, {"lighttpd", "web-1", 300}));
  nlohmann::json doc = nlohmann::json::parse(batch.Take("test"));
  EXPECT_THAT(doc["resourceSpans"], SizeIs(2));
  OtlpCheck check;
  CheckOtlpJson(doc.dump(), &check);
  EXPECT_TRUE(check.ok()) << check.ErrorText();
  EXPECT_THAT(check.spans, SizeIs(12));
}

// Payload bytes are not always UTF-8 nor printable: the output stays valid
// JSON and says what the bytes were.
TEST(OtlpTest, RequestLineBytesAreEscaped) {
  Request r = OnlyRequest(UnixFastCgiRequest());
  r.request_line = std::string("GET /a\"b\\c\x01\xff");
  OtlpBatch batch(5, kOffset);
  batch.Add(SpanSource::From(r, Nginx()));
  std::string line = batch.Take("test");
  OtlpCheck check;
  CheckOtlpJson(line, &check);
  ASSERT_TRUE(check.ok()) << check.ErrorText() << line;
  EXPECT_THAT(Named(check, "GET /a\"b\\c\x01\u00ff"), ::testing::NotNull())
      << line;
  std::string out;
  AppendJsonString("x\ny", &out);
  EXPECT_THAT(out, Eq("\"x\\u000ay\""));
  // Well-formed UTF-8 (here 2 and 4 bytes) is kept; a stray byte is not
  // read as part of it.
  out.clear();
  AppendJsonString("caf\xc3\xa9\xf0\x9f\x98\x80\xc3", &out);
  EXPECT_THAT(out, Eq("\"caf\xc3\xa9\xf0\x9f\x98\x80\\u00c3\""));
}

// The checker itself rejects what the encoding forbids (else the tests
// above could not fail).
TEST(OtlpJsonCheckTest, RejectsBase64IdsNumericTimesEnumNamesAndOrphans) {
  auto errors_of = [](const std::string& span_json) {
    OtlpCheck check;
    CheckOtlpJson(
        R"({"resourceSpans":[{"scopeSpans":[{"spans":[)" + span_json + "]}]}]}",
        &check);
    return check.errors.size();
  };
  const std::string good =
      R"({"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",)"
      R"("name":"x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"})";
  EXPECT_THAT(errors_of(good), Eq(0u));
  EXPECT_GT(
      errors_of(
          R"({"traceId":"AQIDBAUGBwgJCgsMDQ4PEA==","spanId":"0102030405060708","name":"x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"})"),
      0u);
  EXPECT_GT(
      errors_of(
          R"({"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","kind":2,"startTimeUnixNano":1,"endTimeUnixNano":"2"})"),
      0u);
  EXPECT_GT(
      errors_of(
          R"({"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1","endTimeUnixNano":"2"})"),
      0u);
  EXPECT_GT(
      errors_of(
          R"({"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","parentSpanId":"0f0f0f0f0f0f0f0f","name":"x","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2"})"),
      0u);
}

}  // namespace
}  // namespace reqcost::analyzers
