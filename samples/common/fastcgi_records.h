// FastCGI records as a front server writes them (the FastCGI 1.0 spec,
// section 3.3: an 8-byte header, the content, padding to 8 bytes; name-value
// pairs with 1- or 4-byte lengths). Header-only, for the sample fronts.
#ifndef REQCOST_SAMPLES_COMMON_FASTCGI_RECORDS_H_
#define REQCOST_SAMPLES_COMMON_FASTCGI_RECORDS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace reqcost::samples {

enum : uint8_t {
  kFcgiBeginRequest = 1,
  kFcgiEndRequest = 3,
  kFcgiParams = 4,
  kFcgiStdin = 5,
  kFcgiStdout = 6,
  kFcgiStderr = 7,
};

// Appends one record of `type` for request 1 (content up to 65535 bytes).
inline void AppendFcgiRecord(std::string* out, uint8_t type, const std::string& content) {
  const size_t len = content.size();
  const size_t pad = (8 - len % 8) % 8;
  const char header[8] = {1, static_cast<char>(type), 0, 1,
                          static_cast<char>(len >> 8), static_cast<char>(len & 0xff),
                          static_cast<char>(pad), 0};
  out->append(header, 8);
  out->append(content);
  out->append(pad, '\0');
}

// Appends a name-value pair's length: one byte under 128, else four with
// the top bit set.
inline void AppendFcgiLength(std::string* out, size_t n) {
  if (n < 128) {
    out->push_back(static_cast<char>(n));
    return;
  }
  out->push_back(static_cast<char>(((n >> 24) & 0x7f) | 0x80));
  out->push_back(static_cast<char>((n >> 16) & 0xff));
  out->push_back(static_cast<char>((n >> 8) & 0xff));
  out->push_back(static_cast<char>(n & 0xff));
}

// Appends one name-value pair to a PARAMS body.
inline void AppendFcgiParam(std::string* out, const std::string& name,
                            const std::string& value) {
  AppendFcgiLength(out, name.size());
  AppendFcgiLength(out, value.size());
  out->append(name);
  out->append(value);
}

}  // namespace reqcost::samples

#endif  // REQCOST_SAMPLES_COMMON_FASTCGI_RECORDS_H_
