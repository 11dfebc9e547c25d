// libFuzzer target for the payload parsers (analyzers/payload.h): any bytes
// must give a result or "not recognised", never a crash, an out-of-bounds
// read or an unbounded allocation, and the results must keep their promises:
//   - ParseHttpRequestLine returns "METHOD path" made of bytes of the input,
//     with no query, fragment or control characters;
//   - ParseFastCgiHeader accepts exactly version 1, type 1..11, >= 8 bytes;
//   - FastCgiStream::Feed, fed the input cut into chunks (the first bytes
//     choose the chunk sizes, the captured prefix lengths and resync
//     permission), returns only valid headers, never more than one per 8
//     bytes moved, and none from bytes that were not captured.
// Run: payload_fuzz -max_total_time=60 -dict=payload.dict corpus/
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/payload.h"

namespace reqcost::analyzers {
namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "payload_fuzz: %s\n", what);
  std::abort();
}

void CheckRequestLine(std::string_view bytes) {
  std::optional<std::string> line = ParseHttpRequestLine(bytes);
  if (!line.has_value()) return;
  size_t space = line->find(' ');
  if (space == std::string::npos || space == 0)
    Die("request line without method");
  if (line->size() > bytes.size()) Die("request line longer than its input");
  if (bytes.substr(0, space + 1) !=
      std::string_view(*line).substr(0, space + 1)) {
    Die("method not taken from the input");
  }
  for (size_t i = space + 1; i < line->size(); ++i) {
    unsigned char c = static_cast<unsigned char>((*line)[i]);
    if (c < 0x21 || c > 0x7e || c == '?' || c == '#') Die("bad byte in path");
  }
  // The path is a prefix of what followed the method.
  if (bytes.substr(space + 1, line->size() - space - 1) !=
      std::string_view(*line).substr(space + 1)) {
    Die("path not taken from the input");
  }
}

void CheckHeader(std::string_view bytes) {
  std::optional<FastCgiHeader> h = ParseFastCgiHeader(bytes);
  const bool valid = bytes.size() >= kFcgiHeaderSize && bytes[0] == 1 &&
                     static_cast<uint8_t>(bytes[1]) >= 1 &&
                     static_cast<uint8_t>(bytes[1]) <= kFcgiMaxType;
  if (h.has_value() != valid) Die("header accepted/refused wrongly");
  if (h.has_value()) {
    auto b = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
    if (h->request_id != (b(2) << 8 | b(3)) ||
        h->content_length != (b(4) << 8 | b(5)) || h->padding_length != b(6)) {
      Die("header fields misdecoded");
    }
  }
}

// Cuts `data` into chunks steered by a control prefix and feeds a stream.
void CheckStream(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const bool synced_at_start = data[0] & 1;
  size_t controls = 1 + (data[1] % 32);  // control bytes after the first two
  if (size < 2 + controls) return;
  const uint8_t* ctl = data + 2;
  std::string_view rest(reinterpret_cast<const char*>(data + 2 + controls),
                        size - 2 - controls);
  FastCgiStream stream(synced_at_start);
  for (size_t i = 0; i < controls && !rest.empty(); ++i) {
    // Chunk length 1..64 (or all that is left), prefix 0..chunk, resync bit.
    size_t chunk = std::min<size_t>(rest.size(), 1 + (ctl[i] & 0x3f));
    size_t prefix = (ctl[i] & 0x40) ? chunk : chunk / 2;
    bool may_resync = ctl[i] & 0x80;
    // Sometimes the syscall moved more bytes than the input has: only a
    // prefix of a large read was captured.
    uint64_t moved = (ctl[i] % 7 == 0) ? chunk + 4096 : chunk;
    std::vector<FastCgiHeader> headers =
        stream.Feed(rest.substr(0, prefix), moved, may_resync);
    if (headers.size() > moved / kFcgiHeaderSize + 1) Die("too many headers");
    for (const FastCgiHeader& h : headers) {
      if (h.version != 1 || h.type == 0 || h.type > kFcgiMaxType) {
        Die("stream returned an invalid header");
      }
    }
    rest.remove_prefix(chunk);
  }
  // Whatever is left, in one piece, with nothing captured: no header can
  // come out of bytes that were not seen.
  if (!rest.empty() && !stream.Feed({}, rest.size(), true).empty()) {
    Die("a header from bytes that were not captured");
  }
}

}  // namespace
}  // namespace reqcost::analyzers

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reqcost::analyzers;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckRequestLine(bytes);
  CheckHeader(bytes);
  CheckStream(data, size);
  return 0;
}
