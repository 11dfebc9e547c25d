// The TLS probes' records in a capture, on real processes: `reqcost attach
// --tls-probes -o FILE` on nginx (`listen ... ssl http2`) under h2load
// writes a version 3 capture whose TLS data records hold every stream's
// HEADERS frame header (and no plaintext bytes without --payload), and
// `reqcost report FILE` reads it back.
#include <signal.h>
#include <unistd.h>

#include <set>
#include <string>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collector/capture_file.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/profiled_run.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

constexpr uint8_t kHeadersFrame = 1;

TEST(TlsCapture, ProbesRecordsAreInTheCaptureAndReportReadsThem) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  constexpr int kRequests = 40;
  std::string h2load;
  for (const char* p : {"/usr/bin/h2load", "/usr/local/bin/h2load"}) {
    if (access(p, X_OK) == 0) h2load = p;
  }
  ASSERT_FALSE(h2load.empty()) << "h2load: apt-get install nghttp2-client";
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-tls-capture"));
  ASSERT_TRUE(WriteStringToFile(dir.File("hello.txt"), "hello\n").ok());
  NginxOptions nopts;
  nopts.ssl_protocols = "TLSv1.2 TLSv1.3";
  nopts.http2 = true;
  nopts.docroot = dir.path();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  const std::string capture = dir.File("tls.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx.pid()),
                                    "--tls-probes", "--format", "json", "-o",
                                    capture}));
  ASSERT_OK_AND_ASSIGN(
      client, Subprocess::Start({h2load, "-n", std::to_string(kRequests), "-c",
                                 "2", "-m", "4", nginx.Url("/hello.txt")},
                                dir.File("h2load.out"), dir.File("h2load.err")));
  ASSERT_OK_AND_ASSIGN(client_status, client.WaitForExit(absl::Seconds(60)));
  // The probes' last records are on their way: let the drain see them.
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  ASSERT_EQ(client_status, 0) << FileTail(dir.File("h2load.out"));

  absl::StatusOr<collector::CaptureReader> reader =
      collector::CaptureReader::Open(capture);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->format_version(), collector::kCaptureFormatVersion);
  absl::StatusOr<collector::Capture> c = collector::ReadCapture(capture);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_FALSE(c->tls_data.empty()) << "no TLS data record in the capture";
  // Each request's HEADERS, read by nginx: one per (connection, stream).
  std::set<std::pair<uint64_t, uint32_t>> streams;
  for (const TlsDataEvent& t : c->tls_data) {
    EXPECT_EQ(t.tgid != 0, true);
    EXPECT_TRUE(t.payload.empty()) << "plaintext kept without --payload";
    if (!t.is_read() || !t.h2()) continue;
    for (const H2FrameHeader& f : t.frames) {
      if (f.type == kHeadersFrame) streams.insert({t.ssl, f.stream_id});
    }
  }
  EXPECT_EQ(static_cast<int>(streams.size()), kRequests);
  ASSERT_FALSE(c->counters.empty());
  EXPECT_GT(c->counters.back().counters.tls_calls, 0u);

  // report reads the version 3 capture (TLS data records and all).
  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(capture));
  EXPECT_FALSE(requests.empty());
}

}  // namespace
}  // namespace reqcost::testing
