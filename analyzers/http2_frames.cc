#include "analyzers/http2_frames.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"

namespace reqcost::analyzers {
namespace {

uint32_t Be24(const unsigned char* p) {
  return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
}

uint32_t Be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | p[3];
}

// Types that belong to the connection (stream 0) and to a stream.
bool ConnectionFrame(uint8_t type) {
  return type == static_cast<uint8_t>(Http2FrameType::kSettings) ||
         type == static_cast<uint8_t>(Http2FrameType::kPing) ||
         type == static_cast<uint8_t>(Http2FrameType::kGoaway);
}

bool StreamFrame(uint8_t type) {
  switch (static_cast<Http2FrameType>(type)) {
    case Http2FrameType::kData:
    case Http2FrameType::kHeaders:
    case Http2FrameType::kPriority:
    case Http2FrameType::kRstStream:
    case Http2FrameType::kPushPromise:
    case Http2FrameType::kContinuation:
      return true;
    default:
      return false;
  }
}

// The framing rules a frame header alone can break (RFC 9113 section 6).
absl::Status CheckFrame(const Http2Frame& f) {
  if (ConnectionFrame(f.type) && f.stream_id != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("frame of type %d on stream %d: it belongs to stream 0",
                        f.type, f.stream_id));
  }
  if (StreamFrame(f.type) && f.stream_id == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("frame of type %d on stream 0", f.type));
  }
  bool size_ok = true;
  switch (static_cast<Http2FrameType>(f.type)) {
    case Http2FrameType::kPriority:
      size_ok = f.length == 5;
      break;
    case Http2FrameType::kRstStream:
    case Http2FrameType::kWindowUpdate:
      size_ok = f.length == 4;
      break;
    case Http2FrameType::kPing:
      size_ok = f.length == 8;
      break;
    case Http2FrameType::kSettings:
      size_ok = (f.flags & kHttp2Ack) ? f.length == 0 : f.length % 6 == 0;
      break;
    case Http2FrameType::kGoaway:
      size_ok = f.length >= 8;
      break;
    default:
      break;
  }
  if (!size_ok) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "frame of type %d with a %d-byte payload", f.type, f.length));
  }
  return absl::OkStatus();
}

}  // namespace

Http2Frame DecodeHttp2FrameHeader(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  Http2Frame f;
  f.length = Be24(p);
  f.type = p[3];
  f.flags = p[4];
  f.stream_id = Be32(p + 5) & 0x7fffffffu;
  return f;
}

std::string EncodeHttp2Frame(uint8_t type, uint8_t flags, uint32_t stream_id,
                             std::string_view payload) {
  std::string out(kHttp2FrameHeaderSize, '\0');
  auto length = static_cast<uint32_t>(payload.size());
  out[0] = static_cast<char>(length >> 16);
  out[1] = static_cast<char>(length >> 8);
  out[2] = static_cast<char>(length);
  out[3] = static_cast<char>(type);
  out[4] = static_cast<char>(flags);
  out[5] = static_cast<char>(stream_id >> 24);
  out[6] = static_cast<char>(stream_id >> 16);
  out[7] = static_cast<char>(stream_id >> 8);
  out[8] = static_cast<char>(stream_id);
  out.append(payload);
  return out;
}

Http2FrameParser::Http2FrameParser(const Options& options)
    : options_(options),
      preface_len_(options.client_preface ? kHttp2ClientPreface.size() : 0) {}

absl::Status Http2FrameParser::Fail(absl::Status status) {
  status_ = std::move(status);
  return status_;
}

absl::Status Http2FrameParser::StartFrame(std::vector<Http2Frame>* frames) {
  current_ = DecodeHttp2FrameHeader(std::string_view(header_, sizeof(header_)));
  const uint64_t at = offset_ - kHttp2FrameHeaderSize;
  if (current_.length > options_.max_frame_size) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "frame at byte %d is %d bytes long, above the limit of %d", at,
        current_.length, options_.max_frame_size)));
  }
  if (absl::Status s = CheckFrame(current_); !s.ok()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrFormat("at byte %d: %s", at, s.message())));
  }
  const bool continuation = current_.is(Http2FrameType::kContinuation);
  if (continuation_stream_ != 0 &&
      (!continuation || current_.stream_id != continuation_stream_)) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "at byte %d: a frame of type %d interrupts the header block of "
        "stream %d",
        at, current_.type, continuation_stream_)));
  }
  if (continuation && continuation_stream_ == 0) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "at byte %d: CONTINUATION on stream %d follows no header block", at,
        current_.stream_id)));
  }
  const bool opens_block = current_.is(Http2FrameType::kHeaders) ||
                           current_.is(Http2FrameType::kPushPromise) ||
                           continuation;
  if (opens_block) {
    continuation_stream_ =
        (current_.flags & kHttp2EndHeaders) ? 0 : current_.stream_id;
  }
  payload_left_ = current_.length;
  if (payload_left_ == 0) {
    frames->push_back(std::move(current_));
    current_ = Http2Frame();
  } else {
    in_frame_ = true;
  }
  return absl::OkStatus();
}

absl::Status Http2FrameParser::Feed(std::string_view prefix, uint64_t bytes,
                                    std::vector<Http2Frame>* frames) {
  if (!status_.ok()) return status_;
  if (prefix.size() > bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a chunk of %d bytes cannot show %d", bytes, prefix.size()));
  }
  uint64_t pos = 0;
  while (pos < bytes) {
    const uint64_t visible = pos < prefix.size() ? prefix.size() - pos : 0;
    if (preface_seen_ < preface_len_) {
      if (visible == 0) {
        return Fail(absl::DataLossError(absl::StrFormat(
            "the connection preface at byte %d was not captured", offset_)));
      }
      size_t n = std::min<uint64_t>(preface_len_ - preface_seen_, visible);
      if (prefix.substr(pos, n) !=
          kHttp2ClientPreface.substr(preface_seen_, n)) {
        return Fail(absl::InvalidArgumentError(absl::StrFormat(
            "no HTTP/2 client connection preface at byte %d", offset_)));
      }
      preface_seen_ += n;
      pos += n;
      offset_ += n;
      continue;
    }
    if (in_frame_) {
      uint64_t take = std::min(payload_left_, bytes - pos);
      uint64_t seen = std::min(take, visible);
      if (options_.keep_payload &&
          current_.payload.size() < options_.max_payload_kept) {
        // Only a contiguous start of the payload is kept.
        const bool contiguous =
            current_.payload.size() == current_.length - payload_left_;
        if (contiguous) {
          size_t room = options_.max_payload_kept - current_.payload.size();
          current_.payload.append(
              prefix.substr(pos, std::min<uint64_t>(seen, room)));
        }
      }
      payload_left_ -= take;
      pos += take;
      offset_ += take;
      if (payload_left_ == 0) {
        frames->push_back(std::move(current_));
        current_ = Http2Frame();
        in_frame_ = false;
      }
      continue;
    }
    if (visible == 0) {
      return Fail(absl::DataLossError(absl::StrFormat(
          "the frame header at byte %d was not captured: frame boundaries "
          "lost",
          offset_ - header_have_)));
    }
    size_t n =
        std::min<uint64_t>(kHttp2FrameHeaderSize - header_have_, visible);
    std::memcpy(header_ + header_have_, prefix.data() + pos, n);
    header_have_ += n;
    pos += n;
    offset_ += n;
    if (header_have_ == kHttp2FrameHeaderSize) {
      header_have_ = 0;
      if (absl::Status s = StartFrame(frames); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

void Http2StreamTracker::OpenUpgradeStream() {
  open_.insert(1);
  highest_client_stream_ = std::max<uint32_t>(highest_client_stream_, 1);
}

Http2StreamEvent Http2StreamTracker::OnFrame(const Http2Frame& frame,
                                             bool from_client,
                                             uint32_t* last_stream) {
  if (last_stream != nullptr) *last_stream = 0;
  switch (static_cast<Http2FrameType>(frame.type)) {
    case Http2FrameType::kHeaders:
      if (from_client) {
        // Client streams are odd and opened in increasing order: a lower
        // or equal id is an open stream's trailers.
        if (frame.stream_id % 2 == 1 &&
            frame.stream_id > highest_client_stream_) {
          highest_client_stream_ = frame.stream_id;
          open_.insert(frame.stream_id);
          return Http2StreamEvent::kRequestStart;
        }
        return Http2StreamEvent::kNone;
      }
      [[fallthrough]];
    case Http2FrameType::kData:
      if (!from_client && (frame.flags & kHttp2EndStream) &&
          open_.erase(frame.stream_id) > 0) {
        return Http2StreamEvent::kResponseEnd;
      }
      return Http2StreamEvent::kNone;
    case Http2FrameType::kRstStream:
      open_.erase(frame.stream_id);
      return Http2StreamEvent::kReset;
    case Http2FrameType::kGoaway:
      if (last_stream != nullptr && frame.payload.size() >= 4) {
        const auto* p =
            reinterpret_cast<const unsigned char*>(frame.payload.data());
        *last_stream = Be32(p) & 0x7fffffffu;
      }
      return Http2StreamEvent::kGoaway;
    default:
      return Http2StreamEvent::kNone;
  }
}

}  // namespace reqcost::analyzers
