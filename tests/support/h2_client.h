// A minimal HTTP/2-over-TLS client whose order of frames is fixed, for
// tests that need HTTP/2 detection to see the same records on every run.
//
// curl and h2load send their connection preface and first request as soon
// as the handshake ends, so whether the server writes its SETTINGS before it
// reads them, and whether the client's SETTINGS acknowledgement comes in a
// record of its own, depend on scheduling. This client waits for the
// server's SETTINGS before it sends its preface, sends its acknowledgement
// in a TLS record of its own, and sends each request only after the
// previous response ended: the server speaking first (its SETTINGS on a
// connection with no request) then shows on every run. The short
// acknowledgement shows only when the server reads it apart from the first
// request, which still depends on scheduling (with reqcost's server-first
// sign disabled, one of two runs went undetected).
#ifndef REQCOST_TESTS_SUPPORT_H2_CLIENT_H_
#define REQCOST_TESTS_SUPPORT_H2_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace reqcost::testing {

// Runs `paths` as GET requests one after another on one HTTP/2 connection
// over TLS to 127.0.0.1:`port` (certificate not verified, ALPN "h2"), in
// the fixed order described above. Returns each response's :status, or an
// error when the connection, the protocol or a 10 s socket timeout fails.
inline absl::StatusOr<std::vector<int>> RunHttp2Requests(
    int port, const std::vector<std::string>& paths) {
  constexpr uint8_t kData = 0x0, kHeaders = 0x1, kSettings = 0x4, kPing = 0x6,
                    kGoaway = 0x7;
  constexpr uint8_t kEndStream = 0x1, kAck = 0x1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } fd_closer{fd};
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::InternalError("connect");
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new");
  struct CtxFree {
    SSL_CTX* c;
    ~CtxFree() { SSL_CTX_free(c); }
  } ctx_free{ctx};
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
  SSL* ssl = SSL_new(ctx);
  struct SslFree {
    SSL* s;
    ~SslFree() { SSL_free(s); }
  } ssl_free{ssl};
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) return absl::InternalError("TLS handshake failed");
  const unsigned char* proto = nullptr;
  unsigned proto_len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &proto_len);
  if (absl::string_view(reinterpret_cast<const char*>(proto), proto_len) !=
      "h2") {
    return absl::FailedPreconditionError("the server did not select h2");
  }

  std::string in;  // bytes read, not yet taken as frames
  auto write_all = [&](const std::string& bytes) -> bool {
    return SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) ==
           static_cast<int>(bytes.size());
  };
  auto frame = [](uint8_t type, uint8_t flags, uint32_t stream,
                  const std::string& payload) {
    std::string f;
    const size_t n = payload.size();
    f.push_back(static_cast<char>(n >> 16));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
    f.push_back(static_cast<char>(type));
    f.push_back(static_cast<char>(flags));
    f.push_back(static_cast<char>(stream >> 24));
    f.push_back(static_cast<char>(stream >> 16));
    f.push_back(static_cast<char>(stream >> 8));
    f.push_back(static_cast<char>(stream));
    return f + payload;
  };
  struct Frame {
    uint8_t type = 0, flags = 0;
    uint32_t stream = 0;
    std::string payload;
  };
  // The next whole frame; answers the server's PING and SETTINGS on the way
  // (each acknowledgement in a record of its own).
  auto next_frame = [&](Frame* out) -> absl::Status {
    while (true) {
      if (in.size() >= 9) {
        const auto* b = reinterpret_cast<const unsigned char*>(in.data());
        const size_t len = (size_t{b[0]} << 16) | (size_t{b[1]} << 8) | b[2];
        if (in.size() >= 9 + len) {
          out->type = b[3];
          out->flags = b[4];
          out->stream = ((uint32_t{b[5]} & 0x7f) << 24) |
                        (uint32_t{b[6]} << 16) | (uint32_t{b[7]} << 8) | b[8];
          out->payload = in.substr(9, len);
          in.erase(0, 9 + len);
          if (out->type == kGoaway)
            return absl::AbortedError("GOAWAY from the server");
          if (out->type == kPing && (out->flags & kAck) == 0) {
            if (!write_all(frame(kPing, kAck, 0, out->payload))) {
              return absl::InternalError("write PING ack");
            }
          }
          return absl::OkStatus();
        }
      }
      char buf[16384];
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0)
        return absl::InternalError("read: connection closed or timed out");
      in.append(buf, static_cast<size_t>(n));
    }
  };

  // 1. The server's SETTINGS, before the client sends anything.
  Frame f;
  do {
    if (absl::Status s = next_frame(&f); !s.ok()) return s;
  } while (f.type != kSettings || (f.flags & kAck) != 0);
  // 2. The preface and empty SETTINGS in one record; the acknowledgement of
  // the server's in a record of its own (9 bytes: shorter than any HTTP/1.x
  // request).
  if (!write_all(absl::StrCat("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                              frame(kSettings, 0, 0, "")))) {
    return absl::InternalError("write preface");
  }
  if (!write_all(frame(kSettings, kAck, 0, "")))
    return absl::InternalError("write SETTINGS ack");

  // 3. Each request after the previous response ended. HPACK without
  // Huffman: :method GET (static 2), :scheme https (7), :path and
  // :authority as literals with indexed names (4, 1), never indexed.
  std::vector<int> statuses;
  uint32_t stream = 1;
  const std::string authority = absl::StrCat("127.0.0.1:", port);
  for (const std::string& path : paths) {
    if (path.size() > 126 || authority.size() > 126)
      return absl::InvalidArgumentError("long path");
    std::string block = "\x82\x87";
    block +=
        static_cast<char>(0x14);  // literal never indexed, name index 4 (:path)
    block += static_cast<char>(path.size());
    block += path;
    block += static_cast<char>(0x11);  // name index 1 (:authority)
    block += static_cast<char>(authority.size());
    block += authority;
    if (!write_all(frame(kHeaders, kEndStream | 0x4 /* END_HEADERS */, stream,
                         block))) {
      return absl::InternalError("write HEADERS");
    }
    int status = 0;
    while (true) {
      if (absl::Status s = next_frame(&f); !s.ok()) return s;
      if (f.type == kSettings && (f.flags & kAck) == 0) {
        if (!write_all(frame(kSettings, kAck, 0, "")))
          return absl::InternalError("write ack");
        continue;
      }
      if (f.stream != stream) continue;
      if (f.type == kHeaders && status == 0 && !f.payload.empty()) {
        // nginx encodes :status from the static table: 0x88 is 200, 0x8d 404.
        const auto first = static_cast<unsigned char>(f.payload[0]);
        status = first == 0x88   ? 200
                 : first == 0x8d ? 404
                 : first == 0x8e ? 500
                                 : -first;
      }
      if ((f.type == kHeaders || f.type == kData) &&
          (f.flags & kEndStream) != 0)
        break;
    }
    statuses.push_back(status);
    stream += 2;
  }
  SSL_shutdown(ssl);
  return statuses;
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_SUPPORT_H2_CLIENT_H_
