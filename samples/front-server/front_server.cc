// reqcost-front-server: a small HTTP/1.1 front server (one thread, epoll)
// that proxies every request to a FastCGI backend over unix or TCP and logs,
// from its own clock, the parts of each request reqcost calls server and
// transport. It is the ground truth of tests/integration/accuracy_test.cc.
//
//   reqcost-front-server --listen 127.0.0.1:PORT --backend ADDRESS
//                        [--backend ADDRESS]... [--keep-backend] [--log FILE]
//
// ADDRESS is unix:/path or 127.0.0.1:PORT. --docroot DIR sends
// SCRIPT_FILENAME = DIR + the request's path (php-fpm needs it; e.g.
// samples/php with /sleep.php?us=N). Query string of a request:
//   pre_us=N        server work before it connects to the backend (µs)
//   post_us=N       server work after it read the backend's reply (µs)
//   pre_mode=spin|sleep, post_mode=spin|sleep   busy CPU work or a sleep
//                   (default sleep)
//   be=K            which --backend (0-based, default 0)
// The whole query goes to the backend as QUERY_STRING (samples/fcgi-backend
// reads work_us and how from it).
//
// Client connections: HTTP/1.1 keeps them unless "Connection: close";
// HTTP/1.0 keeps them only with "Connection: keep-alive". Backend links: new
// per request (connect, one exchange, close) unless --keep-backend, which
// keeps one link per backend (FCGI_KEEP_CONN) and reconnects when it breaks.
// Requests are served one at a time: the backend exchange runs to its end
// (blocking calls) before the loop looks at other connections. Request
// bodies are not supported (400).
//
// The log (--log): one line per request, written once the request is final
// (its connection's next request began, or the connection closed), as
//   seq read_ns link_start_ns reply_end_ns response_end_ns accept_us
//   close_us server_us link_us server_slack_us link_slack_us uri
//   connect_end_ns read_us send_us
// with CLOCK_MONOTONIC instants in ns and durations in µs (3 decimals).
// The instants are those reqcost's phases use in its default mode
// (docs/definitions.md), taken right after (or right before) the syscall:
//   read_ns          the return of the first read that brought the request's
//                    bytes (the request's start)
//   link_start_ns    right before connect() on a new link; on a kept link
//                    right after the first send of the request returns (a
//                    send's start is not hooked by default: its exit is W's
//                    start)
//   reply_end_ns     the return of the read that completed END_REQUEST (the
//                    last reply read: W's end)
//   response_end_ns  the return of the response's last write
//   accept_us        the accept4() call, for the first request on a
//                    connection (reqcost counts it in that request), else 0
//   close_us         the close() of the client connection, for the last
//                    request on it, else 0
//   connect_end_ns   the return of connect() on a new link, else 0 (the
//                    start of reqcost's queue; --responder logs its end)
//   read_us          the time in the first read of the request
//   send_us          the time in the kept link's first send, else 0
//                    (with reqcost's --syscall-times both calls are seen
//                    at their enter: the request and W start that much
//                    earlier than read_ns and link_start_ns)
//   server_us  = accept_us + (response_end - read) + close_us
//                - (reply_end - link_start)
//   link_us    = reply_end - link_start   (reqcost's |W|: transport +
//                backend; the test subtracts the backend's own log to get an
//                independent transport)
//   server_slack_us, link_slack_us   how far off server_us and link_us can
//                be: the time spent inside the syscalls whose instants they
//                use, clock reads included (the accept, the first read, the
//                connect or first send, the last reply read, the response
//                write, the close). reqcost stamps inside a call; a clock
//                read next to it is off by at most the call's time, which is
//                a few µs unless the thread was preempted around it.
// The server reads a client socket only when epoll says it has data (no
// EAGAIN reads, so no client waits; the backend reply is read blocking,
// inside W), and never blocks in accept (one accept per epoll readiness), so
// reqcost's definitions reduce to these spans.
//
// --responder: a FastCGI responder instead (one thread, one connection at a
// time, FCGI_KEEP_CONN honoured) whose work is the query's work_us (sleep)
// and which logs its own backend time at reqcost's instants: the return of
// the request's first read, the return of the write that carries the whole
// reply (see ServeResponderConn). samples/fcgi-backend's log starts after
// libfcgi parsed the request, some µs to tens of µs late on a loaded
// machine; this one is the backend truth of the accuracy test.
//
// "listening on ADDRESS" is printed to stderr once the socket accepts.
// SIGTERM / SIGINT end the process (default action).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "samples/common/fastcgi_records.h"
#include "samples/common/sample_io.h"

namespace reqcost::samples {
namespace {

constexpr size_t kMaxHeader = 16 * 1024;
constexpr int64_t kMaxWorkUs = 10'000'000;

struct Options {
  std::string listen;
  std::vector<std::string> backends;
  bool keep_backend = false;
  bool responder = false;
  std::string log;
  std::string docroot;  // SCRIPT_FILENAME = docroot + path (php-fpm needs it)
};

Options g_opts;
int g_log_fd = -1;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "reqcost-front-server: %s\n", message.c_str());
  std::exit(1);
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: reqcost-front-server --listen 127.0.0.1:PORT --backend ADDRESS\n"
      "         [--backend ADDRESS]... [--keep-backend] [--log FILE]\n"
      "         [--docroot DIR]\n"
      "       reqcost-front-server --responder --listen ADDRESS [--log FILE]\n"
      "ADDRESS: unix:/path or 127.0.0.1:PORT\n"
      "query: pre_us=N post_us=N pre_mode=spin|sleep post_mode=spin|sleep "
      "be=K\n");
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Usage();
      std::exit(0);
    }
    if (arg == "--keep-backend") {
      o.keep_backend = true;
      continue;
    }
    if (arg == "--responder") {
      o.responder = true;
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
      o.backends.push_back(value);
    } else if (arg == "--log") {
      o.log = value;
    } else if (arg == "--docroot") {
      o.docroot = value;
    } else {
      Usage();
      Die("unknown option " + arg);
    }
  }
  if (o.listen.empty() || (o.backends.empty() && !o.responder)) {
    Usage();
    Die(o.responder ? "--listen is required"
                    : "--listen and --backend are required");
  }
  return o;
}

// A socket address parsed from unix:/path or IPV4:PORT.
struct Address {
  sockaddr_storage sa{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

Address ParseAddress(const std::string& text) {
  Address a;
  if (text.rfind("unix:", 0) == 0) {
    std::string path = text.substr(5);
    auto* un = reinterpret_cast<sockaddr_un*>(&a.sa);
    if (path.empty() || path.size() >= sizeof(un->sun_path)) {
      Die("unix socket path '" + path + "' is empty or too long");
    }
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, path.c_str(), path.size() + 1);
    a.len = sizeof(sockaddr_un);
    a.family = AF_UNIX;
    return a;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string::npos)
    Die("bad address '" + text + "' (unix:/path or IPV4:PORT)");
  auto* in = reinterpret_cast<sockaddr_in*>(&a.sa);
  in->sin_family = AF_INET;
  char* end = nullptr;
  long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535)
    Die("bad port in '" + text + "'");
  in->sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &in->sin_addr) != 1) {
    Die("bad IPv4 address in '" + text + "'");
  }
  a.len = sizeof(sockaddr_in);
  a.family = AF_INET;
  return a;
}

Work ParseWork(const std::string& query, const std::string& prefix) {
  return samples::ParseWork(query, prefix + "_us", prefix + "_mode",
                            kMaxWorkUs);
}

// ------------------------------------------------------------- FastCGI

// One backend and its kept link (-1 when none is open).
struct Backend {
  Address address;
  int kept_fd = -1;
};

std::vector<Backend> g_backends;

// The instants of one exchange (see the log's description above).
struct ExchangeTimes {
  int64_t link_start = 0;
  int64_t reply_end = 0;
  // The time spent in the connect (new link) or the first send (kept link),
  // and in the last reply read, clocks included: reqcost's stamps for W lie
  // inside these calls.
  int64_t slack_ns = 0;
  // The return of connect() on a new link (0 on a kept link): where reqcost's
  // queue starts; it ends when the backend's accept of the link returns,
  // which the responder logs.
  int64_t connect_end = 0;
  // The time in the kept link's first send (0 on a new link): with
  // reqcost's --syscall-times W starts at that send's enter, this much
  // before link_start.
  int64_t send_ns = 0;
};

// Waits until `fd` is readable; false on error.
bool WaitReadable(int fd) {
  pollfd p{fd, POLLIN, 0};
  int r;
  while ((r = poll(&p, 1, -1)) < 0 && errno == EINTR) {
  }
  return r > 0;
}

// Runs one FastCGI exchange; fills `cgi` with the STDOUT stream. On error
// returns false with `error` set.
bool Exchange(Backend* be, const std::string& method, const std::string& target,
              ExchangeTimes* t, std::string* cgi, std::string* error) {
  const bool keep = g_opts.keep_backend;
  int fd = keep ? be->kept_fd : -1;
  std::string request = FcgiRequest(method, target, keep, g_opts.docroot);
  if (fd < 0) {
    fd = socket(be->address.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      *error = ErrnoMessage("socket");
      return false;
    }
    t->link_start = NowNs();
    if (connect(fd, reinterpret_cast<sockaddr*>(&be->address.sa),
                be->address.len) != 0) {
      *error = ErrnoMessage("connect to the backend");
      close(fd);
      return false;
    }
    t->connect_end = NowNs();
    t->slack_ns = t->connect_end - t->link_start;
    if (be->address.family == AF_INET) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (!WriteAll(fd, request)) {
      *error = ErrnoMessage("send to the backend");
      close(fd);
      return false;
    }
  } else {
    // A kept link: W starts at the exit of the request's first send.
    int64_t before = NowNs();
    if (!WriteAll(fd, request)) {
      *error = ErrnoMessage("send on the kept link");
      close(fd);
      be->kept_fd = -1;
      return false;
    }
    t->link_start = NowNs();
    t->slack_ns = t->link_start - before;
    t->send_ns = t->slack_ns;
  }
  std::string buf;
  bool ended = false;
  char tmp[16384];
  int64_t read_slack = 0;
  while (!ended) {
    // Wait in poll, not in the read: the read's slack is then the read
    // alone, not the backend's time.
    if (!WaitReadable(fd)) {
      *error = ErrnoMessage("poll the backend link");
      close(fd);
      if (keep) be->kept_fd = -1;
      return false;
    }
    int64_t before = NowNs();
    ssize_t n = read(fd, tmp, sizeof(tmp));
    t->reply_end = NowNs();
    read_slack = t->reply_end - before;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n == 0 ? "the backend closed before END_REQUEST"
                      : ErrnoMessage("read the reply");
      close(fd);
      if (keep) be->kept_fd = -1;
      return false;
    }
    buf.append(tmp, static_cast<size_t>(n));
    ended = ConsumeFcgiRecords(&buf, cgi);
  }
  t->slack_ns += read_slack;
  if (keep) {
    be->kept_fd = fd;
  } else {
    close(fd);
  }
  return true;
}

// ---------------------------------------------------------------- HTTP

// One request's log line, held until the request is final.
struct LogRecord {
  uint64_t seq = 0;
  int64_t read_ns = 0;
  ExchangeTimes ex;
  int64_t response_end = 0;
  int64_t accept_ns = 0;      // accept duration, first request of a connection
  int64_t close_ns = 0;       // close duration, last request of a connection
  int64_t read_slack_ns = 0;  // time in the read that brought it
  int64_t response_slack_ns = 0;  // time in the response's writes
  std::string uri;
};

void WriteLog(const LogRecord& r) {
  if (g_log_fd < 0) return;
  const double link_us = (r.ex.reply_end - r.ex.link_start) / 1e3;
  const double server_us =
      (r.accept_ns + (r.response_end - r.read_ns) + r.close_ns) / 1e3 - link_us;
  // Each instant was read next to its syscall; reqcost's stamp lies in the
  // call, so the true value is within the time spent in these calls.
  const double server_slack_us = (r.accept_ns + r.close_ns + r.read_slack_ns +
                                  r.response_slack_ns + r.ex.slack_ns) /
                                 1e3;
  const double link_slack_us = r.ex.slack_ns / 1e3;
  std::string uri = r.uri.empty() ? "-" : r.uri;
  for (char& c : uri) {
    if (std::isspace(static_cast<unsigned char>(c))) c = '+';
  }
  char line[1024];
  int n = std::snprintf(
      line, sizeof(line),
      "%llu %lld %lld %lld %lld %.3f %.3f %.3f %.3f %.3f %.3f %.400s %lld "
      "%.3f %.3f\n",
      static_cast<unsigned long long>(r.seq), static_cast<long long>(r.read_ns),
      static_cast<long long>(r.ex.link_start),
      static_cast<long long>(r.ex.reply_end),
      static_cast<long long>(r.response_end), r.accept_ns / 1e3,
      r.close_ns / 1e3, server_us, link_us, server_slack_us, link_slack_us,
      uri.c_str(), static_cast<long long>(r.ex.connect_end),
      r.read_slack_ns / 1e3, r.ex.send_ns / 1e3);
  if (n > 0) {
    ssize_t w = write(g_log_fd, line, static_cast<size_t>(n));
    (void)w;
  }
}

struct Conn {
  int fd = -1;
  int64_t accept_ns = 0;  // the accept's duration, until its request takes it
  std::string buf;
  std::optional<LogRecord> pending;  // the last request, not final yet
};

uint64_t g_seq = 0;

// Closes the connection; the pending request owns the close.
void CloseConn(Conn* c) {
  int64_t before = NowNs();
  close(c->fd);
  int64_t after = NowNs();
  if (c->pending) {
    c->pending->close_ns = after - before;
    WriteLog(*c->pending);
  }
  delete c;
}

std::string Reply(const std::string& status, const std::string& headers,
                  const std::string& body, bool keep, bool head) {
  return "HTTP/1.1 " + status + "\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n" +
         (keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n") +
         "\r\n" + (head ? "" : body);
}

// Turns the CGI output into a response.
std::string CgiToResponse(const std::string& cgi, bool keep, bool head) {
  size_t split = cgi.find("\r\n\r\n");
  std::string cgi_head =
      split == std::string::npos ? "" : cgi.substr(0, split + 2);
  std::string body = split == std::string::npos ? cgi : cgi.substr(split + 4);
  std::string status = "200 OK";
  std::string headers;
  for (size_t pos = 0; pos < cgi_head.size();) {
    size_t next = cgi_head.find("\r\n", pos);
    std::string h = cgi_head.substr(pos, next - pos);
    pos = next + 2;
    size_t colon = h.find(':');
    if (colon == std::string::npos) continue;
    std::string name = Lower(h.substr(0, colon));
    std::string value = h.substr(colon + 1);
    while (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (name == "status") {
      status = value;
    } else if (name != "content-length" && name != "connection") {
      headers += h + "\r\n";
    }
  }
  return Reply(status, headers, body, keep, head);
}

// Serves the requests whose header block is in c->buf; returns false when
// the connection must be closed. `read_ns` is the return of the read that
// brought the bytes.
bool ServeBuffered(Conn* c, int64_t read_ns, int64_t read_slack_ns) {
  size_t end;
  while ((end = c->buf.find("\r\n\r\n")) != std::string::npos) {
    if (c->pending) {  // the previous request is final: no close is coming
      WriteLog(*c->pending);
      c->pending.reset();
    }
    std::string head = c->buf.substr(0, end);
    c->buf.erase(0, end + 4);
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    size_t s1 = line.find(' ');
    size_t s2 = line.rfind(' ');
    bool bad = s1 == std::string::npos || s2 == s1;
    std::string method = bad ? "" : line.substr(0, s1);
    std::string target = bad ? "" : line.substr(s1 + 1, s2 - s1 - 1);
    std::string version = bad ? "" : line.substr(s2 + 1);
    std::string connection;
    for (size_t pos = eol == std::string::npos ? head.size() : eol + 2;
         pos < head.size();) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      std::string h = head.substr(pos, next - pos);
      size_t colon = h.find(':');
      std::string name =
          colon == std::string::npos ? "" : Lower(h.substr(0, colon));
      if (name == "connection") connection = Lower(h.substr(colon + 1));
      if (name == "content-length" &&
          std::strtoll(h.c_str() + colon + 1, nullptr, 10) != 0) {
        bad = true;  // bodies are not supported
      }
      pos = next + 2;
    }
    if (bad) {
      WriteAll(c->fd, Reply("400 Bad Request", "", "", false, false));
      return false;
    }
    bool keep = version == "HTTP/1.1"
                    ? connection.find("close") == std::string::npos
                    : connection.find("keep-alive") != std::string::npos;
    LogRecord r;
    r.seq = ++g_seq;
    r.read_ns = read_ns;
    r.read_slack_ns = read_slack_ns;
    r.accept_ns = c->accept_ns;
    c->accept_ns = 0;
    r.uri = target;
    size_t q = target.find('?');
    std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    Work pre = ParseWork(query, "pre");
    Work post = ParseWork(query, "post");
    size_t be = 0;
    if (auto v = QueryValue(query, "be"))
      be = std::strtoul(v->c_str(), nullptr, 10);

    DoWork(NowNs(), pre);
    std::string cgi, error;
    bool ok = be < g_backends.size() &&
              Exchange(&g_backends[be], method, target, &r.ex, &cgi, &error);
    DoWork(NowNs(), post);
    std::string response;
    if (!ok) {
      if (error.empty()) error = "no backend " + std::to_string(be);
      std::fprintf(stderr, "reqcost-front-server: %s\n", error.c_str());
      response = Reply("502 Bad Gateway", "Content-Type: text/plain\r\n",
                       error + "\n", false, method == "HEAD");
      keep = false;
    } else {
      response = CgiToResponse(cgi, keep, method == "HEAD");
    }
    int64_t before_send = NowNs();
    bool sent = WriteAll(c->fd, response);
    r.response_end = NowNs();
    r.response_slack_ns = r.response_end - before_send;
    c->pending = std::move(r);
    if (!sent || !keep) return false;
    // Pipelined requests already in the buffer are served next, without a
    // read: they share the read instant of the bytes they came in.
  }
  return c->buf.size() <= kMaxHeader;
}

// Reads what the client sent (one read: epoll said there is data) and
// serves any complete request; false when the connection must be closed.
bool OnReadable(Conn* c) {
  char tmp[16384];
  ssize_t n;
  int64_t before, read_ns;
  do {
    before = NowNs();
    n = read(c->fd, tmp, sizeof(tmp));
    read_ns = NowNs();
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  c->buf.append(tmp, static_cast<size_t>(n));
  return ServeBuffered(c, read_ns, read_ns - before);
}

// ----------------------------------------------------------- responder

// Binds and listens on unix:/path or IPV4:PORT.
int Listen(const std::string& text) {
  Address a = ParseAddress(text);
  if (a.family == AF_UNIX)
    unlink(reinterpret_cast<sockaddr_un*>(&a.sa)->sun_path);
  int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die(ErrnoMessage("socket"));
  int one = 1;
  if (a.family == AF_INET)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a.sa), a.len) != 0)
    Die(ErrnoMessage("bind " + text));
  if (listen(fd, 128) != 0) Die(ErrnoMessage("listen " + text));
  return fd;
}

// Reads one FastCGI name-value length (1 byte, or 4 with the high bit set)
// at `*i`; false when the body ends first.
bool NameValueLength(const std::string& body, size_t* i, size_t* len) {
  if (*i >= body.size()) return false;
  const auto* b = reinterpret_cast<const unsigned char*>(body.data()) + *i;
  if ((b[0] & 0x80) == 0) {
    *len = b[0];
    *i += 1;
    return true;
  }
  if (*i + 4 > body.size()) return false;
  *len = (size_t{b[0] & 0x7fu} << 24) | (size_t{b[1]} << 16) |
         (size_t{b[2]} << 8) | b[3];
  *i += 4;
  return true;
}

// Serves FastCGI requests on one connection until it closes or a request
// does not ask to keep it. Per request it logs, from its own clock,
//   start_ns end_ns elapsed_us slack_us uri accept_end_ns
// start = the return of the request's first read (it waits in poll, not in
// the read, so the read holds no wait); end = the return of the write that
// carries the whole reply (STDOUT, its end and END_REQUEST): reqcost's
// backend phase. slack_us is the time spent in those two calls.
// accept_end_ns is `accept_end` (the return of the accept of this connection)
// for its first request, 0 for later ones: the end of reqcost's queue.
void ServeResponderConn(int fd, int64_t accept_end) {
  while (true) {
    std::string buf, query, uri;
    int64_t start = 0, start_slack = 0;
    bool keep = false, params_done = false, stdin_done = false;
    while (!(params_done && stdin_done)) {
      if (!WaitReadable(fd)) return;
      char tmp[16384];
      int64_t before = NowNs();
      ssize_t n = read(fd, tmp, sizeof(tmp));
      int64_t after = NowNs();
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      if (start == 0) {
        start = after;
        start_slack = after - before;
      }
      buf.append(tmp, static_cast<size_t>(n));
      while (buf.size() >= 8) {
        const auto* h = reinterpret_cast<const unsigned char*>(buf.data());
        size_t len = (size_t{h[4]} << 8) | h[5];
        size_t total = 8 + len + h[6];
        if (buf.size() < total) break;
        std::string body = buf.substr(8, len);
        if (h[1] == kFcgiBeginRequest && len >= 3) keep = (body[2] & 1) != 0;
        if (h[1] == kFcgiParams && len == 0) params_done = true;
        if (h[1] == kFcgiStdin && len == 0) stdin_done = true;
        if (h[1] == kFcgiParams) {
          size_t i = 0, nl, vl;
          while (NameValueLength(body, &i, &nl) &&
                 NameValueLength(body, &i, &vl) && i + nl + vl <= body.size()) {
            std::string name = body.substr(i, nl),
                        value = body.substr(i + nl, vl);
            if (name == "QUERY_STRING") query = value;
            if (name == "REQUEST_URI") uri = value;
            i += nl + vl;
          }
        }
        buf.erase(0, total);
      }
    }
    Work work;
    if (auto v = QueryValue(query, "work_us"))
      work.us = std::strtoll(v->c_str(), nullptr, 10);
    DoWork(NowNs(), work);
    std::string reply;
    AppendFcgiRecord(&reply, kFcgiStdout,
                     "Content-Type: text/plain\r\n\r\nok\n");
    AppendFcgiRecord(&reply, kFcgiStdout, "");
    AppendFcgiRecord(&reply, kFcgiEndRequest, std::string(8, '\0'));
    int64_t before = NowNs();
    bool sent = WriteAll(fd, reply);
    int64_t end = NowNs();
    if (g_log_fd >= 0) {
      std::string line = std::to_string(start) + " " + std::to_string(end) +
                         " " + std::to_string((end - start) / 1000) + " " +
                         std::to_string((start_slack + end - before) / 1e3) +
                         " " + (uri.empty() ? "-" : uri) + " " +
                         std::to_string(accept_end) + "\n";
      accept_end = 0;
      ssize_t w = write(g_log_fd, line.data(), line.size());
      (void)w;
    }
    if (!sent || !keep) return;
  }
}

// A one-thread FastCGI responder that stamps its own backend time where
// reqcost does (see ServeResponderConn); serves one connection at a time.
int RunResponder() {
  int lfd = Listen(g_opts.listen);
  signal(SIGPIPE, SIG_IGN);
  std::fprintf(stderr, "listening on %s (responder, pid %d)\n",
               g_opts.listen.c_str(), getpid());
  std::fflush(stderr);
  while (true) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    int64_t accept_end = NowNs();
    if (fd < 0) continue;
    ServeResponderConn(fd, accept_end);
    close(fd);
  }
}

int Run() {
  for (const std::string& b : g_opts.backends)
    g_backends.push_back({ParseAddress(b), -1});
  Address listen_at = ParseAddress(g_opts.listen);
  if (listen_at.family != AF_INET) Die("--listen takes IPV4:PORT");
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) Die(ErrnoMessage("socket"));
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, reinterpret_cast<sockaddr*>(&listen_at.sa), listen_at.len) !=
      0) {
    Die(ErrnoMessage("bind " + g_opts.listen));
  }
  if (listen(lfd, 128) != 0) Die(ErrnoMessage("listen " + g_opts.listen));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) Die(ErrnoMessage("epoll_create1"));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
    Die(ErrnoMessage("epoll_ctl"));
  signal(SIGPIPE, SIG_IGN);
  std::fprintf(stderr, "listening on %s (%zu backend(s), %s links, pid %d)\n",
               g_opts.listen.c_str(), g_backends.size(),
               g_opts.keep_backend ? "kept" : "new", getpid());
  std::fflush(stderr);
  while (true) {
    epoll_event events[16];
    int n = epoll_wait(ep, events, 16, -1);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        // One accept per readiness: it never blocks and never fails with
        // EAGAIN, so reqcost counts all of it in the first request.
        int64_t before = NowNs();
        int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        int64_t after = NowNs();
        if (fd < 0) continue;
        auto* c = new Conn;
        c->fd = fd;
        c->accept_ns = after - before;
        epoll_event cev{};
        cev.events = EPOLLIN;
        cev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) CloseConn(c);
        continue;
      }
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (!OnReadable(c)) CloseConn(c);  // close() drops it from the epoll set
    }
  }
}

}  // namespace
}  // namespace reqcost::samples

int main(int argc, char** argv) {
  using namespace reqcost::samples;  // NOLINT
  g_opts = ParseArgs(argc, argv);
  if (!g_opts.log.empty()) {
    g_log_fd = open(g_opts.log.c_str(),
                    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (g_log_fd < 0) Die(ErrnoMessage("open --log " + g_opts.log));
  }
  return g_opts.responder ? RunResponder() : Run();
}
