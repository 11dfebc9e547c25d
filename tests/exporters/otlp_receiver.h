// A small OTLP/HTTP receiver for tests: listens on 127.0.0.1 (an ephemeral
// port), reads HTTP/1.1 POSTs (kept-alive connections too) and answers each
// after an optional delay with a chosen status. It keeps every request's
// path, content type and body. Stands in for an OpenTelemetry Collector,
// which cannot be installed here.
#ifndef REQCOST_TESTS_EXPORTERS_OTLP_RECEIVER_H_
#define REQCOST_TESTS_EXPORTERS_OTLP_RECEIVER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace reqcost::testing {

struct ReceivedPost {
  std::string path;
  std::string content_type;
  std::string body;
};

class OtlpReceiver {
 public:
  // Answers with `status` after `delay_ms`; -1 when it cannot listen.
  OtlpReceiver(int status = 200, int delay_ms = 0)
      : status_(status), delay_ms_(delay_ms) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0 ||
        bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~OtlpReceiver() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
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
      ServeConnection(fd);
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
      buf.erase(0, header_end + 4 + length);
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
      if (send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) return;
    }
  }

  bool ReadMore(int fd, std::string* buf) {
    if (!WaitReadable(fd)) return false;
    char chunk[65536];
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
  mutable std::mutex mu_;
  std::vector<ReceivedPost> posts_;
  std::thread thread_;
};

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_EXPORTERS_OTLP_RECEIVER_H_
