// FastCGI records as a front server writes them (the FastCGI 1.0 spec,
// section 3.3: an 8-byte header, the content, padding to 8 bytes; name-value
// pairs with 1- or 4-byte lengths), and the whole request a sample front
// sends. Header-only, for the sample fronts.
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
inline void AppendFcgiRecord(std::string* out, uint8_t type,
                             const std::string& content) {
  const size_t len = content.size();
  const size_t pad = (8 - len % 8) % 8;
  const char header[8] = {1,
                          static_cast<char>(type),
                          0,
                          1,
                          static_cast<char>(len >> 8),
                          static_cast<char>(len & 0xff),
                          static_cast<char>(pad),
                          0};
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

// A whole FastCGI request for `method` and `target` (path?query), to be sent
// with one write: BEGIN_REQUEST (responder; FCGI_KEEP_CONN when
// `keep_conn`), PARAMS, an empty PARAMS and an empty STDIN. SCRIPT_FILENAME
// (docroot + path) is sent only when `docroot` is non-empty.
inline std::string FcgiRequest(const std::string& method,
                               const std::string& target, bool keep_conn,
                               const std::string& docroot = "") {
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  std::string params;
  AppendFcgiParam(&params, "REQUEST_METHOD", method);
  AppendFcgiParam(&params, "REQUEST_URI", target);
  AppendFcgiParam(&params, "SCRIPT_NAME", path);
  AppendFcgiParam(&params, "QUERY_STRING",
                  q == std::string::npos ? "" : target.substr(q + 1));
  AppendFcgiParam(&params, "SERVER_PROTOCOL", "HTTP/1.1");
  AppendFcgiParam(&params, "GATEWAY_INTERFACE", "CGI/1.1");
  if (!docroot.empty())
    AppendFcgiParam(&params, "SCRIPT_FILENAME", docroot + path);
  std::string out;
  const char begin[8] = {0, 1, static_cast<char>(keep_conn ? 1 : 0), 0, 0, 0,
                         0, 0};
  AppendFcgiRecord(&out, kFcgiBeginRequest, std::string(begin, 8));
  AppendFcgiRecord(&out, kFcgiParams, params);
  AppendFcgiRecord(&out, kFcgiParams, "");
  AppendFcgiRecord(&out, kFcgiStdin, "");
  return out;
}

// Consumes the whole records at the front of `buf`, appending STDOUT
// contents to `stdout_data`; returns true once END_REQUEST was consumed (the
// bytes after it stay in `buf`).
inline bool ConsumeFcgiRecords(std::string* buf, std::string* stdout_data) {
  while (buf->size() >= 8) {
    const auto* h = reinterpret_cast<const unsigned char*>(buf->data());
    const size_t len = (size_t{h[4]} << 8) | h[5];
    const size_t total = 8 + len + h[6];
    if (buf->size() < total) return false;
    if (h[1] == kFcgiStdout) stdout_data->append(*buf, 8, len);
    const bool end = h[1] == kFcgiEndRequest;
    buf->erase(0, total);
    if (end) return true;
  }
  return false;
}

}  // namespace reqcost::samples

#endif  // REQCOST_SAMPLES_COMMON_FASTCGI_RECORDS_H_
