// HTTP/2 framing (RFC 9113 section 4): a parser that follows the frames of
// one direction of a connection, fed in chunks of which only a prefix may be
// visible, and a tracker that tells where a stream's request starts and its
// response ends. Pure: no syscalls; malformed input is an error value.
#ifndef REQCOST_ANALYZERS_HTTP2_FRAMES_H_
#define REQCOST_ANALYZERS_HTTP2_FRAMES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace reqcost::analyzers {

inline constexpr size_t kHttp2FrameHeaderSize = 9;
// What a client sends first on every HTTP/2 connection (RFC 9113 3.4).
inline constexpr std::string_view kHttp2ClientPreface =
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// The largest frame payload SETTINGS_MAX_FRAME_SIZE may ever allow.
inline constexpr uint32_t kHttp2MaxFrameSizeLimit = (1u << 24) - 1;
// SETTINGS_MAX_FRAME_SIZE before a peer announces another one.
inline constexpr uint32_t kHttp2DefaultMaxFrameSize = 1u << 14;

// Frame types (RFC 9113 6). Others exist and are ignored, not refused.
enum class Http2FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kPriority = 2,
  kRstStream = 3,
  kSettings = 4,
  kPushPromise = 5,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};

// Frame flags; which apply depends on the type.
inline constexpr uint8_t kHttp2EndStream = 0x1;   // DATA, HEADERS
inline constexpr uint8_t kHttp2Ack = 0x1;         // SETTINGS, PING
inline constexpr uint8_t kHttp2EndHeaders = 0x4;  // HEADERS, CONTINUATION
inline constexpr uint8_t kHttp2Padded = 0x8;      // DATA, HEADERS
inline constexpr uint8_t kHttp2Priority = 0x20;   // HEADERS

// One frame: its 9-byte header decoded, and the payload bytes that were
// visible (all of them, or a prefix when the chunk was only partly captured
// or payload was not asked for).
struct Http2Frame {
  uint32_t length = 0;  // payload bytes on the wire
  uint8_t type = 0;     // an Http2FrameType, or an unknown (ignored) type
  uint8_t flags = 0;
  uint32_t stream_id = 0;  // reserved bit cleared
  std::string payload;     // at most `length` bytes, from its start

  bool is(Http2FrameType t) const { return type == static_cast<uint8_t>(t); }
  bool payload_complete() const { return payload.size() == length; }
  friend bool operator==(const Http2Frame& a, const Http2Frame& b) {
    return a.length == b.length && a.type == b.type && a.flags == b.flags &&
           a.stream_id == b.stream_id && a.payload == b.payload;
  }
};

// Decodes a 9-byte frame header (no checks beyond the size); `bytes` must
// hold at least kHttp2FrameHeaderSize bytes.
Http2Frame DecodeHttp2FrameHeader(std::string_view bytes);

// Encodes a frame header and `payload` (tests and fuzz seeds build streams
// with it). `length` defaults to the payload's size.
std::string EncodeHttp2Frame(uint8_t type, uint8_t flags, uint32_t stream_id,
                             std::string_view payload);

// Follows the frames of one direction of one HTTP/2 connection. Fed the
// bytes in the order they moved, in chunks cut anywhere (a frame header may
// straddle two reads). A malformed stream is an error value, and the parser
// stays in error from then on: it never guesses where frames resume.
class Http2FrameParser {
 public:
  struct Options {
    // The direction starts with the client connection preface (a server's
    // reads, a client's writes, of a connection seen from its start).
    bool client_preface = false;
    // Keep each frame's payload bytes (up to `max_payload_kept`); off, the
    // frames carry headers only.
    bool keep_payload = true;
    size_t max_payload_kept = kHttp2MaxFrameSizeLimit;
    // A frame longer than this is malformed. The default accepts every
    // length the 24-bit field holds.
    uint32_t max_frame_size = kHttp2MaxFrameSizeLimit;
  };

  Http2FrameParser() : Http2FrameParser(Options{}) {}
  explicit Http2FrameParser(const Options& options);

  // Feeds a chunk of `bytes` bytes of which `prefix` is the visible start
  // (prefix.size() <= bytes). Appends to `*frames` every frame whose last
  // byte is in this chunk, in order. Errors (sticky): InvalidArgument for a
  // bad preface, a frame longer than max_frame_size, or a frame that breaks
  // the framing rules (a connection frame on a stream, a stream frame on
  // stream 0, a fixed-size frame of another size, a CONTINUATION out of
  // place); DataLoss when a frame header falls in the unseen part of a chunk.
  absl::Status Feed(std::string_view prefix, uint64_t bytes,
                    std::vector<Http2Frame>* frames);
  // Feed with the whole chunk visible.
  absl::Status Feed(std::string_view chunk, std::vector<Http2Frame>* frames) {
    return Feed(chunk, chunk.size(), frames);
  }

  // The error that stopped the parser, OK while it runs.
  const absl::Status& status() const { return status_; }
  // Bytes consumed so far (preface included).
  uint64_t offset() const { return offset_; }
  // True between frames: no header or payload is half-way.
  bool at_boundary() const {
    return preface_seen_ == preface_len_ && header_have_ == 0 &&
           payload_left_ == 0 && !in_frame_;
  }

 private:
  absl::Status Fail(absl::Status status);
  absl::Status StartFrame(std::vector<Http2Frame>* frames);

  Options options_;
  absl::Status status_;
  uint64_t offset_ = 0;
  size_t preface_len_ = 0;   // bytes of preface expected
  size_t preface_seen_ = 0;  // of them, matched so far
  char header_[kHttp2FrameHeaderSize] = {};
  size_t header_have_ = 0;
  bool in_frame_ = false;  // current_ holds a frame whose payload runs
  uint64_t payload_left_ = 0;
  Http2Frame current_;
  // A HEADERS or PUSH_PROMISE without END_HEADERS: its stream's
  // CONTINUATION must come next.
  uint32_t continuation_stream_ = 0;
};

// What one frame means for the requests of a connection.
enum class Http2StreamEvent {
  kNone,          // nothing for request boundaries
  kRequestStart,  // HEADERS from the client opening a new stream
  kResponseEnd,   // END_STREAM on a server frame of an open stream
  kReset,         // RST_STREAM, either way: the stream ends unfinished
  kGoaway,        // the connection is going away (stream_id = last stream)
};

// Tells request boundaries from the frames of both directions of one
// connection, from the server's point of view.
class Http2StreamTracker {
 public:
  // What `frame` means; `from_client`: sent by the client. A HEADERS frame
  // from the client on a stream already opened (trailers) starts nothing; a
  // server's END_STREAM on a stream never opened (one that began before
  // tracing) ends nothing. For kGoaway the frame's last-stream id, when its
  // payload was seen, is in `*last_stream` (else 0).
  Http2StreamEvent OnFrame(const Http2Frame& frame, bool from_client,
                           uint32_t* last_stream = nullptr);

  // The HTTP/1.1 request a connection upgraded by (`Upgrade: h2c`) is
  // stream 1, its request wholly sent (RFC 7540, 3.2): open, awaiting the
  // server's END_STREAM.
  void OpenUpgradeStream();

  // Streams started and not yet ended or reset.
  size_t open_streams() const { return open_.size(); }

 private:
  absl::flat_hash_set<uint32_t> open_;
  uint32_t highest_client_stream_ = 0;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_HTTP2_FRAMES_H_
