// `reqcost record` writes the uprobes' TLS data into the capture and
// `reqcost report` hands it back through EventSink::OnTlsData, the method
// the live tracer calls: a round trip through a real file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/pipeline.h"
#include "collector/capture_file.h"
#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::Eq;

// A pipeline that keeps the TLS data it is handed.
class KeepingPipeline : public Pipeline {
 public:
  KeepingPipeline(const OutputOptions& options, std::FILE* out)
      : Pipeline(options, out) {}
  void OnTlsData(const TlsDataEvent& event) override {
    Pipeline::OnTlsData(event);
    seen.push_back(event);
  }
  std::vector<TlsDataEvent> seen;
};

TlsDataEvent HeadersWrite(uint64_t at, uint32_t stream) {
  TlsDataEvent t;
  t.op = TlsDataEvent::Op::kWrite;
  t.flags = TlsDataEvent::kH2;
  t.tgid = 100;
  t.tid = 100;
  t.enter_ns = at;
  t.exit_ns = at + 500;
  t.ssl = 0xabc;
  t.bytes = 60;
  t.fd = 8;
  t.frames_seen = 2;
  t.frames = {{51, stream, 1, 4}, {0, stream, 0, 1}};
  t.payload = std::string(9, 'h');
  return t;
}

TEST(ReplayTest, TlsDataIsRecordedAndReplayedThroughOnTlsData) {
  for (uint32_t payload : {0u, 64u}) {
    char dir[] = "/tmp/replay_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string path = std::string(dir) + "/c.cap";
    std::FILE* null = std::fopen("/dev/null", "w");
    ASSERT_NE(null, nullptr);
    OutputOptions quiet;
    quiet.summary = false;
    collector::CaptureHeader header;
    header.start_mono_ns = 1'000;
    header.payload_capture_bytes = payload;
    {
      absl::StatusOr<collector::CaptureWriter> w =
          collector::CaptureWriter::Create(path, header);
      ASSERT_TRUE(w.ok()) << w.status();
      Pipeline record(quiet, null);
      record.RecordTo(&*w);
      record.Begin(1'000, {});
      record.OnTlsData(HeadersWrite(2'000, 1));
      record.OnTlsData(HeadersWrite(3'000, 3));
      ASSERT_TRUE(record.End(9'000, KernelCounters{}).ok());
      EXPECT_THAT(record.tls_data_events(), Eq(2u));
    }
    KeepingPipeline replay(quiet, null);
    ASSERT_TRUE(ReplayCapture(path, &replay).ok());
    TlsDataEvent a = HeadersWrite(2'000, 1), b = HeadersWrite(3'000, 3);
    if (payload == 0) a.payload.clear(), b.payload.clear();
    EXPECT_THAT(replay.seen, ElementsAre(a, b)) << payload;
    std::fclose(null);
    unlink(path.c_str());
    rmdir(dir);
  }
}

}  // namespace
}  // namespace reqcost::cli
