// libFuzzer target for the HTTP/2 frame parser and stream tracker
// (analyzers/http2_frames.h): any bytes, cut into any chunks with any part of
// each chunk unseen, give frames or an error value, never a crash, and:
//   - a frame's payload is at most its length and at most what was asked to
//     be kept; no frame is longer than the size limit;
//   - an error is sticky: nothing is yielded after it;
//   - fed fully visible, the chunking changes nothing: the same frames and
//     the same error as one whole chunk.
// The first input byte chooses the options, the next ones the chunk sizes.
// Run: http2_fuzz -max_total_time=60 corpus/
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "analyzers/http2_frames.h"

namespace reqcost::analyzers {
namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "http2_fuzz: %s\n", what);
  std::abort();
}

struct Result {
  std::vector<Http2Frame> frames;
  absl::StatusCode code = absl::StatusCode::kOk;
};

// Feeds `stream` in chunks whose sizes come from `cuts`; `hide` hides the
// tail of chunks (a prefix only is visible) when set.
Result Run(const Http2FrameParser::Options& options, std::string_view stream,
           std::string_view cuts, bool hide) {
  Http2FrameParser parser(options);
  Result r;
  size_t pos = 0, i = 0;
  while (pos < stream.size()) {
    size_t n = cuts.empty() ? stream.size()
                            : 1 + static_cast<uint8_t>(cuts[i % cuts.size()]);
    n = std::min(n, stream.size() - pos);
    size_t visible = n;
    if (hide && !cuts.empty()) {
      visible = static_cast<uint8_t>(cuts[(i + 1) % cuts.size()]) % (n + 1);
    }
    size_t before = r.frames.size();
    absl::Status s = parser.Feed(stream.substr(pos, visible), n, &r.frames);
    if (!s.ok()) {
      if (r.code != absl::StatusCode::kOk && s.code() != r.code) {
        Die("the sticky error changed");
      }
      if (r.code != absl::StatusCode::kOk && r.frames.size() != before) {
        Die("frames after an error");
      }
      r.code = s.code();
      if (parser.status().ok()) Die("an error the parser forgot");
    }
    pos += n;
    ++i;
  }
  for (const Http2Frame& f : r.frames) {
    if (f.payload.size() > f.length) Die("payload longer than the frame");
    if (f.payload.size() > options.max_payload_kept)
      Die("payload over the cap");
    if (!options.keep_payload && !f.payload.empty())
      Die("payload not asked for");
    if (f.length > options.max_frame_size) Die("frame over the size limit");
    if (f.stream_id > 0x7fffffffu) Die("reserved bit kept");
  }
  return r;
}

}  // namespace
}  // namespace reqcost::analyzers

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reqcost::analyzers;
  if (size < 3) return 0;
  Http2FrameParser::Options options;
  options.client_preface = data[0] & 1;
  options.keep_payload = (data[0] & 2) == 0;
  options.max_payload_kept = (data[0] & 4) ? 16 : kHttp2MaxFrameSizeLimit;
  options.max_frame_size =
      (data[0] & 8) ? kHttp2DefaultMaxFrameSize : kHttp2MaxFrameSizeLimit;
  size_t ncuts = data[1] % 16;
  if (size < 2 + ncuts) return 0;
  std::string_view cuts(reinterpret_cast<const char*>(data + 2), ncuts);
  std::string_view stream(reinterpret_cast<const char*>(data + 2 + ncuts),
                          size - 2 - ncuts);

  Result whole = Run(options, stream, "", false);
  Result chunked = Run(options, stream, cuts, false);
  if (whole.code != chunked.code || !(whole.frames == chunked.frames)) {
    Die("chunking changed the result");
  }
  Result hidden = Run(options, stream, cuts, true);
  (void)hidden;

  // The tracker takes any frames in any direction.
  Http2StreamTracker tracker;
  size_t started = 0, ended = 0;
  for (size_t i = 0; i < whole.frames.size(); ++i) {
    uint32_t last = 0;
    Http2StreamEvent e = tracker.OnFrame(whole.frames[i], (i & 1) == 0, &last);
    if (e == Http2StreamEvent::kRequestStart) ++started;
    if (e == Http2StreamEvent::kResponseEnd) ++ended;
  }
  if (ended > started) Die("more responses ended than requests started");
  if (tracker.open_streams() > started) Die("more open streams than started");
  return 0;
}
