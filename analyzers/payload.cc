#include "analyzers/payload.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reqcost::analyzers {
namespace {

constexpr size_t kMaxMethodLength = 16;

bool IsTokenChar(char c) { return c >= 'A' && c <= 'Z'; }

}  // namespace

std::optional<std::string> ParseHttpRequestLine(std::string_view payload) {
  size_t i = 0;
  while (i < payload.size() && IsTokenChar(payload[i])) ++i;
  if (i == 0 || i > kMaxMethodLength || i >= payload.size() ||
      payload[i] != ' ') {
    return std::nullopt;
  }
  std::string_view method = payload.substr(0, i);
  std::string_view rest = payload.substr(i + 1);
  if (rest.empty()) return std::nullopt;
  // origin-form "/x", asterisk-form "*", absolute-form "http://..".
  if (rest[0] != '/' && rest[0] != '*' && rest.substr(0, 4) != "http") {
    return std::nullopt;
  }
  size_t end = 0;
  while (end < rest.size()) {
    char c = rest[end];
    if (c == ' ' || c == '?' || c == '#' || c == '\r' || c == '\n') break;
    if (static_cast<unsigned char>(c) < 0x21 ||
        static_cast<unsigned char>(c) > 0x7e) {
      return std::nullopt;
    }
    ++end;
  }
  std::string line(method);
  line += ' ';
  line += rest.substr(0, end);
  return line;
}

namespace {

constexpr std::string_view kHttpVersion = "HTTP/1.";
constexpr size_t kStatusAt = 9;  // "HTTP/1.x " then the 3-digit status

bool IsHttpResponseHead(std::string_view payload) {
  return payload.substr(0, kHttpVersion.size()) == kHttpVersion;
}

}  // namespace

bool IsHttpInterimResponseHead(std::string_view payload) {
  if (!IsHttpResponseHead(payload) || payload.size() < kStatusAt + 3) {
    return false;
  }
  std::string_view status = payload.substr(kStatusAt, 3);
  return status[0] == '1' && status != "101";
}

bool IsHttpFinalResponseHead(std::string_view payload) {
  return IsHttpResponseHead(payload) && !IsHttpInterimResponseHead(payload);
}

size_t Utf8SequenceLength(std::string_view s) {
  auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xbf;  // the second byte's range
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // no overlong forms
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;  // no overlong forms
    if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xbf) return 0;
  }
  return n;
}

namespace {

// Appends `\xHH` for each byte of `bytes`.
void AppendHexEscapes(std::string_view bytes, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    *out += "\\x";
    *out += kHex[c >> 4];
    *out += kHex[c & 15];
  }
}

// Whether the well-formed sequence `seq` is a C0 control, DEL or a C1
// control (U+0080..U+009F, which some terminals act on like ESC).
bool IsControl(std::string_view seq) {
  auto c = static_cast<unsigned char>(seq[0]);
  if (seq.size() == 1) return c < 0x20 || c == 0x7f;
  return seq.size() == 2 && c == 0xc2 &&
         static_cast<unsigned char>(seq[1]) < 0xa0;
}

// One rule, two ways to show a byte that begins no well-formed sequence.
std::string SafeText(std::string_view bytes, bool keep_newline,
                     bool invalid_as_replacement) {
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    size_t n = Utf8SequenceLength(bytes);
    if (n == 0) {
      n = 1;
      if (invalid_as_replacement) {
        out += "\xEF\xBF\xBD";  // U+FFFD
      } else {
        AppendHexEscapes(bytes.substr(0, 1), &out);
      }
    } else if (!IsControl(bytes.substr(0, n)) ||
               (keep_newline && bytes[0] == '\n')) {
      out.append(bytes.data(), n);
    } else if (bytes[0] == '\n') {
      out += "\\n";
    } else if (bytes[0] == '\t') {
      out += "\\t";
    } else if (bytes[0] == '\r') {
      out += "\\r";
    } else {
      AppendHexEscapes(bytes.substr(0, n), &out);
    }
    bytes.remove_prefix(n);
  }
  return out;
}

}  // namespace

std::string TerminalText(std::string_view bytes) {
  return SafeText(bytes, /*keep_newline=*/false,
                  /*invalid_as_replacement=*/false);
}

std::string LabelText(std::string_view bytes) {
  return SafeText(bytes, /*keep_newline=*/true,
                  /*invalid_as_replacement=*/true);
}

std::string ValidUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    size_t n = Utf8SequenceLength(bytes);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      n = 1;
    } else {
      out.append(bytes.data(), n);
    }
    bytes.remove_prefix(n);
  }
  return out;
}

std::optional<FastCgiHeader> ParseFastCgiHeader(std::string_view bytes) {
  if (bytes.size() < kFcgiHeaderSize) return std::nullopt;
  auto b = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  FastCgiHeader h;
  h.version = b(0);
  h.type = b(1);
  h.request_id = static_cast<uint16_t>(b(2) << 8 | b(3));
  h.content_length = static_cast<uint16_t>(b(4) << 8 | b(5));
  h.padding_length = b(6);
  if (h.version != 1 || h.type == 0 || h.type > kFcgiMaxType) {
    return std::nullopt;
  }
  return h;
}

std::vector<FastCgiHeader> FastCgiStream::Feed(std::string_view prefix,
                                               uint64_t bytes,
                                               bool may_resync) {
  std::vector<FastCgiHeader> headers;
  prefix = prefix.substr(0, std::min<uint64_t>(prefix.size(), bytes));
  if (may_resync && ParseFastCgiHeader(prefix).has_value()) {
    synced_ = true;
    remaining_ = 0;
    header_.clear();
  }
  uint64_t pos = 0;
  while (synced_ && pos < bytes) {
    if (remaining_ > 0) {
      uint64_t skip = std::min(remaining_, bytes - pos);
      pos += skip;
      remaining_ -= skip;
      continue;
    }
    uint64_t take =
        std::min<uint64_t>(kFcgiHeaderSize - header_.size(), bytes - pos);
    if (pos + take > prefix.size()) {  // header bytes were not captured
      synced_ = false;
      header_.clear();
      break;
    }
    header_.append(prefix.substr(pos, take));
    pos += take;
    if (header_.size() < kFcgiHeaderSize) break;
    std::optional<FastCgiHeader> h = ParseFastCgiHeader(header_);
    header_.clear();
    if (!h.has_value()) {
      synced_ = false;
      break;
    }
    headers.push_back(*h);
    remaining_ = uint64_t{h->content_length} + h->padding_length;
  }
  return headers;
}

}  // namespace reqcost::analyzers
