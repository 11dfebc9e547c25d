// reqcost-resolving-front: a small HTTP/1.x front server that, like workers
// which resolve their upstream per request, calls getaddrinfo() on its
// backend's host name for every request before it talks FastCGI over TCP to
// the backend (samples/fcgi-backend), then answers the client. It is the
// fixture for fronts that resolve names: the netlink exchange of getaddrinfo
// (and, with
// --udp-echo / --unix-echo, one UDP and one unix datagram round trip per
// request) must not be taken for the backend exchange.
//
//   reqcost-resolving-front --listen 127.0.0.1:PORT --backend HOST:PORT
//                           [--threads N] [--udp-echo 127.0.0.1:PORT]
//                           [--unix-echo /path]
//   reqcost-resolving-front --echo --udp-listen 127.0.0.1:PORT
//                           [--unix-listen /path]
//
// Front mode, per request, in this order:
//   1. read the request's header block from the client (HTTP/1.0 or 1.1;
//      "Connection: keep-alive" / HTTP/1.1 keep the connection, as ab -k
//      expects; request bodies are not supported);
//   2. getaddrinfo(HOST, PORT) with AI_ADDRCONFIG and AF_UNSPEC: glibc opens
//      a NETLINK_ROUTE socket and dumps RTM_GETADDR (sendto, recvmsg x2),
//      tries nscd's unix socket (connect fails with ENOENT when no nscd
//      runs), then reads /etc/hosts ("localhost" needs no DNS);
//   3. with --udp-echo: one sendto + recvfrom on a UDP socket to the echo;
//      with --unix-echo: the same on an AF_UNIX SOCK_DGRAM socket; both
//      sockets are opened and closed per request, like a resolver's;
//   4. connect to the first AF_INET address, FastCGI BEGIN_REQUEST + PARAMS
//      + empty PARAMS + empty STDIN in one write, read STDOUT until
//      END_REQUEST, close;
//   5. write "HTTP/1.1 <status>" with the backend's headers and body.
// --threads N (default 4) threads accept on the listening socket; each serves
// one client connection at a time (so ab -c N needs N threads).
//
// Echo mode answers every datagram on --udp-listen (and --unix-listen) with
// the same bytes; it is a separate process so the profiled front's datagram
// peers are outside the traced set.
//
// "listening on ADDRESS" is printed to stderr once the sockets are ready.
// SIGTERM / SIGINT end the process (default action).

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "samples/common/fastcgi_records.h"
#include "samples/common/sample_io.h"

namespace reqcost::samples {
namespace {

struct Options {
  bool echo = false;
  std::string listen;        // front: 127.0.0.1:PORT
  std::string backend_host;  // front: name given to getaddrinfo
  std::string backend_port;
  int threads = 4;
  std::string udp_echo;     // front: 127.0.0.1:PORT of the echo
  std::string unix_echo;    // front: path of the echo's unix socket
  std::string udp_listen;   // echo
  std::string unix_listen;  // echo
};

constexpr size_t kMaxHeader = 64 * 1024;
constexpr int kIoTimeoutMs = 30'000;

int g_listen_fd = -1;
Options g_opts;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "reqcost-resolving-front: %s\n", message.c_str());
  std::exit(1);
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: reqcost-resolving-front --listen 127.0.0.1:PORT --backend "
      "HOST:PORT\n"
      "         [--threads N] [--udp-echo 127.0.0.1:PORT] [--unix-echo /path]\n"
      "       reqcost-resolving-front --echo --udp-listen 127.0.0.1:PORT\n"
      "         [--unix-listen /path]\n");
}

// Splits "HOST:PORT" at the last colon.
void SplitHostPort(const std::string& flag, const std::string& value,
                   std::string* host, std::string* port) {
  size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) {
    Die("bad " + flag + " '" + value + "' (expected HOST:PORT)");
  }
  *host = value.substr(0, colon);
  *port = value.substr(colon + 1);
}

sockaddr_in Ipv4(const std::string& flag, const std::string& value) {
  std::string host, port;
  SplitHostPort(flag, value, &host, &port);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (*end != '\0' || p < 0 || p > 65535)
    Die("bad port in " + flag + " '" + value + "'");
  sa.sin_port = htons(static_cast<uint16_t>(p));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    Die("bad IPv4 address in " + flag + " '" + value + "'");
  }
  return sa;
}

sockaddr_un UnixAddress(const std::string& flag, const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
    Die(flag + ": unix socket path '" + path + "' is empty or too long");
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return sa;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Usage();
      std::exit(0);
    }
    if (arg == "--echo") {
      o.echo = true;
      continue;
    }
    if (i + 1 >= argc) {
      Usage();
      Die("missing value for " + arg);
    }
    std::string value = argv[++i];
    if (arg == "--listen") {
      o.listen = value;
    } else if (arg == "--backend") {
      SplitHostPort(arg, value, &o.backend_host, &o.backend_port);
    } else if (arg == "--threads") {
      o.threads = std::atoi(value.c_str());
      if (o.threads < 1 || o.threads > 256)
        Die("bad --threads '" + value + "' (1..256)");
    } else if (arg == "--udp-echo") {
      o.udp_echo = value;
    } else if (arg == "--unix-echo") {
      o.unix_echo = value;
    } else if (arg == "--udp-listen") {
      o.udp_listen = value;
    } else if (arg == "--unix-listen") {
      o.unix_listen = value;
    } else {
      Usage();
      Die("unknown option " + arg);
    }
  }
  if (o.echo ? o.udp_listen.empty()
             : (o.listen.empty() || o.backend_host.empty())) {
    Usage();
    Die(o.echo ? "--echo needs --udp-listen"
               : "--listen and --backend are required");
  }
  return o;
}

// Waits until `fd` is readable (or writable); false on timeout or error.
bool WaitFor(int fd, short events) {
  pollfd p{fd, events, 0};
  while (true) {
    int r = poll(&p, 1, kIoTimeoutMs);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

// Appends what one read returns; false on EOF, error or timeout.
bool ReadSome(int fd, std::string* buf) {
  if (!WaitFor(fd, POLLIN)) return false;
  char tmp[16384];
  while (true) {
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf->append(tmp, static_cast<size_t>(n));
    return true;
  }
}

// ------------------------------------------------------------- FastCGI

// Resolves the backend (per request, on purpose) and runs one FastCGI
// exchange; sets `cgi_output` to the concatenated STDOUT. Errors in `error`.
bool AskBackend(const std::string& method, const std::string& target,
                std::string* cgi_output, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(g_opts.backend_host.c_str(), g_opts.backend_port.c_str(),
                       &hints, &res);
  if (rc != 0) {
    *error = std::string("getaddrinfo ") + g_opts.backend_host + ": " +
             gai_strerror(rc);
    return false;
  }
  sockaddr_in sa{};
  bool found = false;
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
    if (p->ai_family == AF_INET && p->ai_addrlen == sizeof(sa)) {
      std::memcpy(&sa, p->ai_addr, sizeof(sa));
      found = true;
      break;
    }
  }
  freeaddrinfo(res);
  if (!found) {
    *error = "getaddrinfo " + g_opts.backend_host + ": no IPv4 address";
    return false;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = ErrnoMessage("socket");
    return false;
  }
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  if (!ok) *error = ErrnoMessage("connect to the backend");
  if (ok && !WriteAll(fd, FcgiRequest(method, target, /*keep_conn=*/false))) {
    ok = false;
    *error = ErrnoMessage("write to the backend");
  }
  std::string buf;
  bool ended = false;
  while (ok && !ended) {
    ended = ConsumeFcgiRecords(&buf, cgi_output);
    if (!ended && !ReadSome(fd, &buf)) {
      ok = false;
      *error = "the backend closed or timed out before END_REQUEST";
    }
  }
  close(fd);
  return ok;
}

// ----------------------------------------------------------- datagrams

// One datagram to `to` and its echo back, on a socket opened for it.
bool DatagramRoundTrip(int family, const sockaddr* to, socklen_t to_len,
                       std::string* error) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = ErrnoMessage("socket(SOCK_DGRAM)");
    return false;
  }
  if (family == AF_UNIX) {
    // An unnamed unix datagram socket cannot be answered: autobind one.
    sockaddr_un self{};
    self.sun_family = AF_UNIX;
    if (bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof(sa_family_t)) !=
        0) {
      *error = ErrnoMessage("bind (autobind) unix datagram socket");
      close(fd);
      return false;
    }
  }
  static const char kPing[] = "reqcost-ping";
  bool ok =
      sendto(fd, kPing, sizeof(kPing) - 1, 0, to, to_len) == sizeof(kPing) - 1;
  if (!ok) *error = ErrnoMessage("sendto the echo");
  char reply[64];
  if (ok && (!WaitFor(fd, POLLIN) ||
             recvfrom(fd, reply, sizeof(reply), 0, nullptr, nullptr) !=
                 static_cast<ssize_t>(sizeof(kPing) - 1))) {
    ok = false;
    *error = "no echo within the timeout";
  }
  close(fd);
  return ok;
}

// ---------------------------------------------------------------- HTTP

// Serves one client connection until it closes or asks to.
void ServeConnection(int fd) {
  std::string buf;
  while (true) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > kMaxHeader || !ReadSome(fd, &buf)) return;
    }
    std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    size_t s1 = line.find(' ');
    size_t s2 = line.rfind(' ');
    if (s1 == std::string::npos || s2 == s1) {
      WriteAll(fd,
               "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: "
               "close\r\n\r\n");
      return;
    }
    std::string method = line.substr(0, s1);
    std::string target = line.substr(s1 + 1, s2 - s1 - 1);
    std::string version = line.substr(s2 + 1);
    std::string connection;
    for (size_t pos = eol == std::string::npos ? head.size() : eol + 2;
         pos < head.size();) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      std::string h = head.substr(pos, next - pos);
      size_t colon = h.find(':');
      if (colon != std::string::npos &&
          Lower(h.substr(0, colon)) == "connection") {
        connection = Lower(h.substr(colon + 1));
      }
      pos = next + 2;
    }
    bool keep = version == "HTTP/1.1"
                    ? connection.find("close") == std::string::npos
                    : connection.find("keep-alive") != std::string::npos;

    std::string error;
    bool ok = true;
    std::string cgi;
    if (!g_opts.udp_echo.empty()) {
      sockaddr_in to = Ipv4("--udp-echo", g_opts.udp_echo);
      ok = DatagramRoundTrip(AF_INET, reinterpret_cast<sockaddr*>(&to),
                             sizeof(to), &error);
    }
    if (ok && !g_opts.unix_echo.empty()) {
      sockaddr_un to = UnixAddress("--unix-echo", g_opts.unix_echo);
      ok = DatagramRoundTrip(AF_UNIX, reinterpret_cast<sockaddr*>(&to),
                             sizeof(to), &error);
    }
    if (ok) ok = AskBackend(method, target, &cgi, &error);

    std::string reply;
    if (!ok) {
      std::fprintf(stderr, "reqcost-resolving-front: %s\n", error.c_str());
      std::string body = error + "\n";
      reply =
          "HTTP/1.1 502 Bad Gateway\r\nContent-Type: "
          "text/plain\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      keep = false;
    } else {
      // The CGI output is headers, a blank line and the body; "Status:"
      // sets the code.
      size_t split = cgi.find("\r\n\r\n");
      std::string cgi_head =
          split == std::string::npos ? "" : cgi.substr(0, split + 2);
      std::string body =
          split == std::string::npos ? cgi : cgi.substr(split + 4);
      std::string status = "200 OK";
      std::string headers;
      for (size_t pos = 0; pos < cgi_head.size();) {
        size_t next = cgi_head.find("\r\n", pos);
        std::string h = cgi_head.substr(pos, next - pos);
        pos = next + 2;
        std::string name = Lower(h.substr(0, h.find(':')));
        if (name == "status") {
          status = h.substr(h.find(':') + 1);
          while (!status.empty() && status[0] == ' ') status.erase(0, 1);
        } else if (name != "content-length" && name != "connection" &&
                   !h.empty()) {
          headers += h + "\r\n";
        }
      }
      reply = "HTTP/1.1 " + status + "\r\n" + headers +
              "Content-Length: " + std::to_string(body.size()) + "\r\n" +
              (keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n") +
              "\r\n" + (method == "HEAD" ? "" : body);
    }
    if (!WriteAll(fd, reply) || !keep) return;
  }
}

void* AcceptLoop(void*) {
  while (true) {
    int fd = accept4(g_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != ECONNABORTED) usleep(10'000);
      continue;
    }
    ServeConnection(fd);
    close(fd);
  }
  return nullptr;
}

int RunFront() {
  sockaddr_in sa = Ipv4("--listen", g_opts.listen);
  g_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (g_listen_fd < 0) Die(ErrnoMessage("socket"));
  int one = 1;
  setsockopt(g_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(g_listen_fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    Die(ErrnoMessage("bind " + g_opts.listen));
  }
  if (listen(g_listen_fd, 128) != 0)
    Die(ErrnoMessage("listen " + g_opts.listen));
  signal(SIGPIPE, SIG_IGN);
  std::vector<pthread_t> threads(static_cast<size_t>(g_opts.threads));
  for (pthread_t& t : threads) {
    int rc = pthread_create(&t, nullptr, AcceptLoop, nullptr);
    if (rc != 0) Die(std::string("pthread_create: ") + std::strerror(rc));
  }
  std::fprintf(stderr,
               "listening on %s (backend %s:%s, threads %d%s%s, pid %d)\n",
               g_opts.listen.c_str(), g_opts.backend_host.c_str(),
               g_opts.backend_port.c_str(), g_opts.threads,
               g_opts.udp_echo.empty() ? "" : ", udp echo",
               g_opts.unix_echo.empty() ? "" : ", unix echo", getpid());
  std::fflush(stderr);
  while (true) pause();
}

// Echoes every datagram on `fd` back to its sender.
void* EchoLoop(void* arg) {
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  while (true) {
    char buf[2048];
    sockaddr_storage from{};
    socklen_t from_len = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0,
                         reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) continue;
    sendto(fd, buf, static_cast<size_t>(n), 0,
           reinterpret_cast<sockaddr*>(&from), from_len);
  }
  return nullptr;
}

int RunEcho() {
  std::vector<int> fds;
  sockaddr_in sa = Ipv4("--udp-listen", g_opts.udp_listen);
  int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (ufd < 0 || bind(ufd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    Die(ErrnoMessage("bind udp " + g_opts.udp_listen));
  }
  fds.push_back(ufd);
  if (!g_opts.unix_listen.empty()) {
    sockaddr_un un = UnixAddress("--unix-listen", g_opts.unix_listen);
    unlink(g_opts.unix_listen.c_str());
    int xfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (xfd < 0 ||
        bind(xfd, reinterpret_cast<sockaddr*>(&un), sizeof(un)) != 0) {
      Die(ErrnoMessage("bind unix datagram " + g_opts.unix_listen));
    }
    chmod(g_opts.unix_listen.c_str(), 0666);
    fds.push_back(xfd);
  }
  for (int fd : fds) {
    pthread_t t;
    int rc = pthread_create(&t, nullptr, EchoLoop,
                            reinterpret_cast<void*>(intptr_t{fd}));
    if (rc != 0) Die(std::string("pthread_create: ") + std::strerror(rc));
  }
  std::fprintf(stderr, "listening on udp %s%s%s (echo, pid %d)\n",
               g_opts.udp_listen.c_str(),
               g_opts.unix_listen.empty() ? "" : " and unix-dgram ",
               g_opts.unix_listen.c_str(), getpid());
  std::fflush(stderr);
  while (true) pause();
}

int Main(int argc, char** argv) {
  g_opts = ParseArgs(argc, argv);
  return g_opts.echo ? RunEcho() : RunFront();
}

}  // namespace
}  // namespace reqcost::samples

int main(int argc, char** argv) { return reqcost::samples::Main(argc, argv); }
