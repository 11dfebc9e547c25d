// A small OTLP/HTTP receiver for tests: listens on 127.0.0.1 (an ephemeral
// port), reads HTTP/1.1 POSTs (kept-alive connections too) and answers each
// after an optional delay with a chosen status. It keeps every request's
// path, headers and body (a gzip body inflated, as a Collector does). Given
// a certificate and key it speaks TLS (OpenSSL). Stands in for an
// OpenTelemetry Collector, which cannot be installed here.
#ifndef REQCOST_TESTS_EXPORTERS_OTLP_RECEIVER_H_
#define REQCOST_TESTS_EXPORTERS_OTLP_RECEIVER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace reqcost::testing {

struct ReceivedPost {
  std::string path;
  std::string content_type;
  std::string content_encoding;
  std::string body;       // inflated when content_encoding is gzip
  size_t wire_bytes = 0;  // the body as it came
  std::vector<std::pair<std::string, std::string>> headers;  // names lowered

  // The value of header `name` (lowercase), "" if absent.
  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

// `in` inflated from gzip; false if it is not a whole gzip stream.
inline bool Gunzip(const std::string& in, std::string* out) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return false;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char chunk[65536];
  int rc = Z_OK;
  out->clear();
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof(chunk);
    rc = inflate(&z, Z_NO_FLUSH);
    out->append(chunk, sizeof(chunk) - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END && z.avail_in == 0;
}

class OtlpReceiver {
 public:
  // Answers with `status` after `delay_ms`; -1 when it cannot listen. With
  // `cert_pem` and `key_pem` (files), over TLS.
  // With `client_ca_pem` too, it wants a client certificate signed by that
  // CA (mTLS).
  OtlpReceiver(int status = 200, int delay_ms = 0,
               const std::string& cert_pem = "",
               const std::string& key_pem = "",
               const std::string& client_ca_pem = "")
      : status_(status), delay_ms_(delay_ms) {
    if (!cert_pem.empty()) {
      ssl_ctx_ = SSL_CTX_new(TLS_server_method());
      if (ssl_ctx_ == nullptr ||
          SSL_CTX_use_certificate_chain_file(ssl_ctx_, cert_pem.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ssl_ctx_, key_pem.c_str(),
                                      SSL_FILETYPE_PEM) != 1) {
        return;
      }
      if (!client_ca_pem.empty()) {
        if (SSL_CTX_load_verify_locations(ssl_ctx_, client_ca_pem.c_str(),
                                          nullptr) != 1) {
          return;
        }
        SSL_CTX_set_verify(ssl_ctx_,
                           SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           nullptr);
      }
    }
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0 ||
        bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
            0 ||
        listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) !=
            0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~OtlpReceiver() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) close(listen_fd_);
    if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
  }

  int port() const { return port_; }
  std::string url() const {
    return std::string(ssl_ctx_ != nullptr ? "https" : "http") +
           "://127.0.0.1:" + std::to_string(port_);
  }
  // TLS handshakes that failed (the client refused our certificate).
  int handshakes_failed() const { return handshakes_failed_; }
  std::vector<ReceivedPost> posts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return posts_;
  }
  int requests_seen() const { return seen_; }

  // A port nothing listens on (bound, then closed): connections are refused.
  static int ClosedPort() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }

 private:
  // Waits (in 50 ms steps, so that stop is seen) until `fd` is readable.
  bool WaitReadable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      int n = poll(&p, 1, 50);
      if (n > 0) return true;
      if (n < 0) return false;
    }
    return false;
  }

  void Serve() {
    while (WaitReadable(listen_fd_)) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      if (ssl_ctx_ != nullptr) {
        // A client that never finishes its handshake is given up on.
        timeval tv{2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssl_ = SSL_new(ssl_ctx_);
        SSL_set_fd(ssl_, fd);
        if (SSL_accept(ssl_) == 1) {
          ServeConnection(fd);
          SSL_shutdown(ssl_);
        } else {
          ++handshakes_failed_;
        }
        SSL_free(ssl_);
        ssl_ = nullptr;
      } else {
        ServeConnection(fd);
      }
      close(fd);
    }
  }

  void ServeConnection(int fd) {
    std::string buf;
    while (true) {
      size_t header_end;
      while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!ReadMore(fd, &buf)) return;
      }
      std::string head = buf.substr(0, header_end);
      size_t length = 0;
      ReceivedPost post;
      size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
      post.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t pos = 0;
      while ((pos = head.find("\r\n", pos)) != std::string::npos) {
        pos += 2;
        std::string line = head.substr(pos, head.find("\r\n", pos) - pos);
        std::string lower;
        for (char c : line) lower += static_cast<char>(std::tolower(c));
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
          size_t v = line.find_first_not_of(' ', colon + 1);
          post.headers.emplace_back(
              lower.substr(0, colon),
              v == std::string::npos ? "" : line.substr(v));
        }
        if (lower.rfind("content-encoding:", 0) == 0) {
          post.content_encoding = post.headers.back().second;
        }
        if (lower.rfind("content-length:", 0) == 0) {
          length = std::strtoul(line.c_str() + 15, nullptr, 10);
        } else if (lower.rfind("content-type:", 0) == 0) {
          post.content_type = line.substr(line.find_first_not_of(' ', 13));
        }
      }
      while (buf.size() < header_end + 4 + length) {
        if (!ReadMore(fd, &buf)) return;
      }
      post.body = buf.substr(header_end + 4, length);
      post.wire_bytes = length;
      buf.erase(0, header_end + 4 + length);
      if (post.content_encoding == "gzip") {
        std::string inflated;
        if (!Gunzip(post.body, &inflated)) inflated = "(not gzip)";
        post.body = std::move(inflated);
      }
      ++seen_;
      for (int waited = 0; waited < delay_ms_ && !stop_; waited += 10) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (status_ >= 200 && status_ < 300) {
        std::lock_guard<std::mutex> lock(mu_);
        posts_.push_back(post);
      }
      std::string reply = "HTTP/1.1 " + std::to_string(status_) +
                          " X\r\nContent-Type: application/json\r\n"
                          "Content-Length: 2\r\n\r\n{}";
      if (ssl_ != nullptr) {
        if (SSL_write(ssl_, reply.data(), static_cast<int>(reply.size())) <=
            0) {
          return;
        }
      } else if (send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) {
        return;
      }
    }
  }

  bool ReadMore(int fd, std::string* buf) {
    char chunk[65536];
    if (ssl_ != nullptr) {
      if (SSL_pending(ssl_) == 0 && !WaitReadable(fd)) return false;
      int n = SSL_read(ssl_, chunk, sizeof(chunk));
      if (n <= 0) return false;
      buf->append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (!WaitReadable(fd)) return false;
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) return false;
    buf->append(chunk, static_cast<size_t>(n));
    return true;
  }

  int status_;
  int delay_ms_;
  int listen_fd_ = -1;
  int port_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> seen_{0};
  std::atomic<int> handshakes_failed_{0};
  SSL_CTX* ssl_ctx_ = nullptr;
  SSL* ssl_ = nullptr;  // of the connection being served (one at a time)
  mutable std::mutex mu_;
  std::vector<ReceivedPost> posts_;
  std::thread thread_;
};

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_EXPORTERS_OTLP_RECEIVER_H_
