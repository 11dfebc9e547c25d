// Parsers for the payload prefixes that the collector may capture: the HTTP
// request line of a client request and FastCGI record headers on a backend
// link. Every parser accepts any bytes (short, garbage, truncated) and says
// "not recognised" rather than guessing.
#ifndef REQCOST_ANALYZERS_PAYLOAD_H_
#define REQCOST_ANALYZERS_PAYLOAD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reqcost::analyzers {

// Returns "METHOD /path" (query string and fragment removed) from the start
// of an HTTP/1.x request, or nullopt when `payload` does not begin with a
// plausible request line. A path cut short by the end of the prefix is
// returned as far as it was captured.
std::optional<std::string> ParseHttpRequestLine(std::string_view payload);

// True when `payload` begins like the status line of an interim HTTP/1.x
// response: 1xx other than 101 ("HTTP/1.1 100 Continue"), the status
// captured whole. A response to the same request follows it.
bool IsHttpInterimResponseHead(std::string_view payload);

// True when `payload` begins like the status line of a final HTTP/1.x
// response ("HTTP/1.1 200 ...", or 101 Switching Protocols): at least
// "HTTP/1." captured, and not an interim one.
bool IsHttpFinalResponseHead(std::string_view payload);

// `bytes` as valid UTF-8 (RFC 3629): every byte that does not begin a
// well-formed sequence is replaced by U+FFFD. Process names come from the
// kernel (any bytes a process gave prctl(PR_SET_NAME)) or from a capture
// file, and JSON strings must be UTF-8.
std::string ValidUtf8(std::string_view bytes);

// The length of the well-formed UTF-8 sequence (RFC 3629) at the start of
// `s`, or 0 when its first byte begins none (cut short, overlong, a
// surrogate, above U+10FFFF, a stray continuation byte).
size_t Utf8SequenceLength(std::string_view s);

// `bytes` made safe to print as part of one terminal line: well-formed
// UTF-8 is kept byte for byte except control characters (C0, DEL, C1),
// shown as `\n`, `\t`, `\r` or `\xHH` per byte; a byte that begins no
// well-formed sequence is shown as `\xHH`. A backslash is kept as it is, so
// a name with no control and no invalid byte comes out unchanged. The
// result is ASCII apart from well-formed non-control characters.
std::string TerminalText(std::string_view bytes);

// `bytes` as a Prometheus label value: valid UTF-8 (invalid bytes become
// U+FFFD, as ValidUtf8), with control characters shown as TerminalText
// shows them, since the exposition format has no escape for them and the
// file is read in terminals; a newline is kept (the exposition escapes it
// as `\n`, and it round-trips). Clean names are unchanged. JSON needs only
// ValidUtf8: its own escapes cover every control character.
std::string LabelText(std::string_view bytes);

// FastCGI record types that reqcost acts on.
inline constexpr uint8_t kFcgiBeginRequest = 1;
inline constexpr uint8_t kFcgiEndRequest = 3;
inline constexpr uint8_t kFcgiMaxType = 11;  // FCGI_UNKNOWN_TYPE
inline constexpr size_t kFcgiHeaderSize = 8;

// One FastCGI record header (version, type, requestId, contentLength,
// paddingLength, reserved), integers decoded from big endian.
struct FastCgiHeader {
  uint8_t version = 0;
  uint8_t type = 0;
  uint16_t request_id = 0;
  uint16_t content_length = 0;
  uint8_t padding_length = 0;

  friend bool operator==(const FastCgiHeader& a, const FastCgiHeader& b) {
    return a.version == b.version && a.type == b.type &&
           a.request_id == b.request_id &&
           a.content_length == b.content_length &&
           a.padding_length == b.padding_length;
  }
};

// Returns the header at the start of `bytes` when it has at least 8 bytes,
// version 1 and a type in 1..11; nullopt otherwise.
std::optional<FastCgiHeader> ParseFastCgiHeader(std::string_view bytes);

// Follows the FastCGI record structure of one direction of a byte stream of
// which only a prefix of each read or write is visible. It walks from header
// to header across reads and writes; when a header falls outside the
// captured prefix it loses sync and reports nothing until a read or write
// starts with a header again (and the caller allows resyncing there).
class FastCgiStream {
 public:
  // `synced`: the stream is known to start at a record boundary (the
  // connection was opened while tracing).
  explicit FastCgiStream(bool synced = false) : synced_(synced) {}

  // Feeds one read or write that moved `bytes` bytes, of which `prefix` is
  // the captured start. `may_resync`: this chunk may start a new message
  // (resync on a plausible header at offset 0). Returns the headers that
  // start within this chunk, in order.
  std::vector<FastCgiHeader> Feed(std::string_view prefix, uint64_t bytes,
                                  bool may_resync);

  // True while record boundaries are known.
  bool synced() const { return synced_; }

 private:
  bool synced_;
  uint64_t remaining_ = 0;  // content + padding left in the current record
  std::string header_;      // bytes of a header split across chunks
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PAYLOAD_H_
