// reqcost-fcgi-backend: a FastCGI responder (libfcgi, FCGX_* API) or a
// minimal HTTP/1.1 server whose per-request work is set by the query string,
// and which measures and logs each request itself so that reqcost's numbers
// can be checked against the backend's own clock.
//
//   reqcost-fcgi-backend --listen unix:/tmp/x/backend.sock|127.0.0.1:PORT
//                        [--mode fcgi|http] [--workers N] [--threads N]
//                        [--log FILE] [--backlog N]
//
// Query string: work_us=MICROSECONDS (default 0), how=sleep|spin (default
// sleep). Responses are text/plain with headers
//   X-Backend-Us: <µs>          the backend's own measurement (see below)
//   X-Backend-Conn-Reqs: <n>    n-th request served on this connection
//                               (> 1 means the connection was kept alive)
//
// Measurement (CLOCK_MONOTONIC), matching reqcost's definition of backend
// time (end of the request's first read to end of the reply's last write):
//   fcgi: start = FCGX_Accept_r returned (BEGIN_REQUEST and PARAMS have been
//         read). The log's end = the reply's last write returned: the
//         output streams are closed explicitly (FCGX_FClose writes the rest
//         of STDOUT, its empty end record and END_REQUEST) before
//         FCGX_Finish_r. Not included: FCGX_Finish_r's close, which in
//         libfcgi is a lingering close (shutdown(SHUT_WR), then select/read
//         until the web server closes its end, up to 2 s) and so measures
//         the web server, not the backend (0.1-0.5 ms on loopback).
//   http: start = the request's header block (and body, if any) has been
//         read. The log's end = the reply's last write returned (before the
//         close, when the connection is not kept alive).
//   X-Backend-Us cannot include the write that carries it: it is taken after
//   the work, right before the reply is written, so it is shorter than the
//   log's elapsed_us by the write time (tens of µs on loopback).
//
// --log appends one line per request, written with a single write(2) on an
// O_APPEND descriptor shared by all workers (lines never interleave):
//   pid tid start_ns end_ns elapsed_us uri
// with elapsed_us = (end_ns - start_ns) / 1000 as an integer.
//
// Processes: --workers N (default 1) forks N children that share the
// listening socket; the parent only waits and reaps. SIGTERM or SIGINT to the
// parent stops every child (SIGKILL after 5 s) and exits 0. --workers 0 serves
// in the parent itself. Each serving process runs --threads N (default 1)
// threads that all accept on the shared socket. "listening on ADDRESS" is
// printed to stderr once the socket accepts connections.
//
// Connection reuse: in fcgi mode a connection the web server keeps
// (fastcgi_keep_conn on) stays with the thread that accepted it until the
// server closes it, exactly like a php-fpm child; so give the backend at
// least as many threads in total as the server may hold connections. In
// http mode each process waits in one epoll set on the listening socket and
// on its idle kept-alive connections, so any thread serves any connection.

#include <arpa/inet.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "samples/common/sample_io.h"

namespace reqcost::samples {
namespace {

enum class Mode { kFcgi, kHttp };

struct Options {
  std::string listen;
  Mode mode = Mode::kFcgi;
  int workers = 1;
  int threads = 1;
  int backlog = 128;
  std::string log;
};

// Process-wide state of a serving process.
int g_listen_fd = -1;
int g_log_fd = -1;
Mode g_mode = Mode::kFcgi;
std::atomic<bool> g_stop{false};
std::string g_unix_path;  // unlinked by the process that created it

constexpr int64_t kMaxWorkUs = 60'000'000;
constexpr int kHttpIdleTimeoutMs = 30'000;
constexpr size_t kHttpMaxHeader = 64 * 1024;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "reqcost-fcgi-backend: %s\n", message.c_str());
  std::exit(1);
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: reqcost-fcgi-backend --listen unix:/path|127.0.0.1:PORT\n"
      "         [--mode fcgi|http] [--workers N] [--threads N]\n"
      "         [--log FILE] [--backlog N]\n"
      "query string: work_us=N (default 0), how=sleep|spin\n");
}

int ParseInt(const std::string& flag, const std::string& value, int min,
             int max) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(value.c_str(), &end, 10);
  if (errno != 0 || end == value.c_str() || *end != '\0' || v < min ||
      v > max) {
    Die("bad value for " + flag + ": '" + value + "' (expected " +
        std::to_string(min) + ".." + std::to_string(max) + ")");
  }
  return static_cast<int>(v);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (arg == "--help" || arg == "-h") {
      Usage();
      std::exit(0);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      Usage();
      Die("missing value for " + arg);
    }
    if (arg == "--listen") {
      o.listen = value;
    } else if (arg == "--mode") {
      if (value == "fcgi") {
        o.mode = Mode::kFcgi;
      } else if (value == "http") {
        o.mode = Mode::kHttp;
      } else {
        Die("bad --mode '" + value + "' (expected fcgi or http)");
      }
    } else if (arg == "--workers") {
      o.workers = ParseInt(arg, value, 0, 256);
    } else if (arg == "--threads") {
      o.threads = ParseInt(arg, value, 1, 256);
    } else if (arg == "--backlog") {
      o.backlog = ParseInt(arg, value, 1, 65535);
    } else if (arg == "--log") {
      o.log = value;
    } else {
      Usage();
      Die("unknown option " + arg);
    }
  }
  if (o.listen.empty()) {
    Usage();
    Die("--listen is required");
  }
  return o;
}

// Binds and listens; returns the fd and sets `shown` to the address to print.
int OpenListener(const Options& o, std::string* shown) {
  if (o.listen.rfind("unix:", 0) == 0 || o.listen[0] == '/') {
    std::string path =
        o.listen.rfind("unix:", 0) == 0 ? o.listen.substr(5) : o.listen;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
      Die("unix socket path '" + path + "' is empty or longer than " +
          std::to_string(sizeof(sa.sun_path) - 1) + " bytes");
    }
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) Die(path + " exists and is not a socket");
      unlink(path.c_str());
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) Die(ErrnoMessage("socket(AF_UNIX)"));
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      Die(ErrnoMessage("bind " + path));
    }
    chmod(path.c_str(), 0666);
    if (listen(fd, o.backlog) != 0) Die(ErrnoMessage("listen " + path));
    g_unix_path = path;
    *shown = "unix:" + path;
    return fd;
  }
  size_t colon = o.listen.rfind(':');
  if (colon == std::string::npos) {
    Die("bad --listen '" + o.listen +
        "' (expected unix:/path or 127.0.0.1:PORT)");
  }
  std::string host = o.listen.substr(0, colon);
  int port = ParseInt("--listen port", o.listen.substr(colon + 1), 0, 65535);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty()) host = "127.0.0.1";
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    Die("bad IPv4 address '" + host + "' in --listen");
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die(ErrnoMessage("socket(AF_INET)"));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    Die(ErrnoMessage("bind " + o.listen));
  }
  if (listen(fd, o.backlog) != 0) Die(ErrnoMessage("listen " + o.listen));
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *shown = host + ":" + std::to_string(ntohs(sa.sin_port));
  return fd;
}

Work ParseWork(const std::string& query) {
  return samples::ParseWork(query, "work_us", "how", kMaxWorkUs);
}

std::string SanitizeUri(std::string uri) {
  if (uri.empty()) return "-";
  for (char& c : uri) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = '+';
  }
  return uri;
}

void LogRequest(int64_t start_ns, int64_t end_ns, const std::string& uri) {
  if (g_log_fd < 0) return;
  char line[4096];
  int n = std::snprintf(line, sizeof(line), "%d %ld %lld %lld %lld %s\n",
                        getpid(), static_cast<long>(syscall(SYS_gettid)),
                        static_cast<long long>(start_ns),
                        static_cast<long long>(end_ns),
                        static_cast<long long>((end_ns - start_ns) / 1000),
                        SanitizeUri(uri).c_str());
  if (n < 0) return;
  if (n >= static_cast<int>(sizeof(line))) {
    n = sizeof(line) - 1;
    line[n - 1] = '\n';
  }
  // One write on an O_APPEND fd: lines from all workers never interleave.
  ssize_t w = write(g_log_fd, line, n);
  (void)w;
}

std::string Body(int64_t elapsed_us, const Work& work, int conn_reqs) {
  char body[256];
  // Fixed width: ab counts a body whose length differs from the first as a
  // failed request.
  std::snprintf(
      body, sizeof(body),
      "pid=%8d work_us=%10lld how=%-5s elapsed_us=%10lld conn_reqs=%8d\n",
      getpid(), static_cast<long long>(work.us), work.spin ? "spin" : "sleep",
      static_cast<long long>(elapsed_us), conn_reqs);
  return body;
}

// Per-thread state visible to the process's main thread at shutdown.
struct ThreadSlot {
  pthread_t thread{};
  std::atomic<bool> busy{false};  // inside a request: do not interrupt
  std::atomic<bool> done{false};
};

void* FcgiThread(void* arg) {
  auto* slot = static_cast<ThreadSlot*>(arg);
  FCGX_Request req;
  if (FCGX_InitRequest(&req, g_listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
    std::fprintf(stderr, "reqcost-fcgi-backend: FCGX_InitRequest failed\n");
    slot->done = true;
    return nullptr;
  }
  int conn_reqs = 0;
  while (!g_stop.load()) {
    // A connection the web server asked to keep (FCGI_KEEP_CONN) stays open
    // in req.ipcFd between requests.
    bool kept = req.ipcFd >= 0;
    int rc = FCGX_Accept_r(&req);
    int64_t start = NowNs();
    if (rc < 0) {
      if (g_stop.load()) break;
      if (rc == -EINTR) continue;
      // Anything else (EMFILE, ...) would spin; back off and retry.
      std::fprintf(stderr, "reqcost-fcgi-backend: FCGX_Accept_r: %s\n",
                   std::strerror(-rc));
      usleep(10'000);
      continue;
    }
    slot->busy = true;
    conn_reqs = kept ? conn_reqs + 1 : 1;
    const char* q = FCGX_GetParam("QUERY_STRING", req.envp);
    const char* ru = FCGX_GetParam("REQUEST_URI", req.envp);
    const char* sn = FCGX_GetParam("SCRIPT_NAME", req.envp);
    std::string query = q ? q : "";
    std::string uri =
        ru ? ru
           : (std::string(sn ? sn : "") + (query.empty() ? "" : "?" + query));
    Work work = ParseWork(query);
    DoWork(start, work);
    int64_t before_write = NowNs();
    int64_t us = (before_write - start) / 1000;
    std::string body = Body(us, work, conn_reqs);
    // libfcgi's FCGX_FPrintF knows no %zu/%lld-safe subset: format here.
    std::string reply =
        "Content-Type: text/plain\r\nX-Backend-Us: " + std::to_string(us) +
        "\r\nX-Backend-Conn-Reqs: " + std::to_string(conn_reqs) +
        "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
        body;
    FCGX_PutStr(reply.data(), static_cast<int>(reply.size()), req.out);
    // Closing the streams writes the rest of the reply, the empty STDOUT
    // record and END_REQUEST: the backend's last write. FCGX_Finish_r then
    // closes the connection (unless kept) with libfcgi's lingering close,
    // which waits for the web server to close its end: not backend work.
    FCGX_FClose(req.err);
    FCGX_FClose(req.out);
    int64_t end = NowNs();
    FCGX_Finish_r(&req);
    LogRequest(start, end, uri);
    slot->busy = false;
  }
  FCGX_Free(&req, 1);
  slot->done = true;
  return nullptr;
}

// An HTTP connection. Between requests an idle kept-alive connection sits
// in the process's epoll set (EPOLLONESHOT), so it holds no thread.
struct HttpConn {
  int fd = -1;
  int reqs = 0;
  std::string buf;  // bytes read but not yet consumed (pipelining)
};

int g_epoll_fd = -1;
std::mutex g_conns_mu;
std::set<HttpConn*> g_idle_conns;  // guarded by g_conns_mu

// Reads more bytes into `buf`, waiting at most kHttpIdleTimeoutMs. Returns
// false on EOF, error, timeout, or shutdown while `idle` (no request begun).
bool ReadMore(int fd, std::string* buf, bool idle) {
  int waited_ms = 0;
  while (true) {
    if (idle && g_stop.load()) return false;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) return false;
    if (r <= 0) {
      waited_ms += 100;
      if (waited_ms >= kHttpIdleTimeoutMs) return false;
      continue;
    }
    char tmp[16384];
    ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return false;
    buf->append(tmp, static_cast<size_t>(n));
    return true;
  }
}

void CloseConn(HttpConn* conn) {
  close(conn->fd);
  delete conn;
}

// Parks a kept-alive connection in the epoll set until its next request.
void ParkConn(HttpConn* conn) {
  std::lock_guard<std::mutex> lock(g_conns_mu);
  if (g_stop.load()) {
    CloseConn(conn);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = conn;
  if (epoll_ctl(g_epoll_fd, EPOLL_CTL_MOD, conn->fd, &ev) != 0 &&
      epoll_ctl(g_epoll_fd, EPOLL_CTL_ADD, conn->fd, &ev) != 0) {
    CloseConn(conn);
    return;
  }
  g_idle_conns.insert(conn);
}

// Serves requests on `conn` while they are already there (or, for a new or
// just-woken connection, until the first one arrives); then parks or closes it.
void ServeHttpConnection(HttpConn* conn, ThreadSlot* slot) {
  bool first = true;
  while (!g_stop.load()) {
    size_t header_end;
    while ((header_end = conn->buf.find("\r\n\r\n")) == std::string::npos) {
      if (!first && conn->buf.empty()) {
        ParkConn(conn);  // nothing pipelined: wait in epoll, not in a thread
        return;
      }
      if (conn->buf.size() > kHttpMaxHeader ||
          !ReadMore(conn->fd, &conn->buf, conn->buf.empty())) {
        CloseConn(conn);
        return;
      }
    }
    first = false;
    slot->busy = true;
    std::string head = conn->buf.substr(0, header_end);
    conn->buf.erase(0, header_end + 4);
    size_t eol = head.find("\r\n");
    std::string request_line = head.substr(0, eol);
    size_t s1 = request_line.find(' ');
    size_t s2 = request_line.rfind(' ');
    if (s1 == std::string::npos || s2 == s1) {
      WriteAll(conn->fd,
               "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: "
               "close\r\n\r\n");
      CloseConn(conn);
      slot->busy = false;
      return;
    }
    std::string method = request_line.substr(0, s1);
    std::string target = request_line.substr(s1 + 1, s2 - s1 - 1);
    std::string version = request_line.substr(s2 + 1);
    size_t content_length = 0;
    std::string connection;
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      std::string line = head.substr(pos, next - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = Lower(line.substr(0, colon));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value[0] == ' ') value.erase(0, 1);
        if (name == "content-length")
          content_length = std::strtoull(value.c_str(), nullptr, 10);
        if (name == "connection") connection = Lower(value);
      }
      pos = next + 2;
    }
    while (conn->buf.size() < content_length) {
      if (!ReadMore(conn->fd, &conn->buf, false)) {
        CloseConn(conn);
        slot->busy = false;
        return;
      }
    }
    conn->buf.erase(0, content_length);
    int64_t start = NowNs();
    ++conn->reqs;
    bool keep = version == "HTTP/1.1"
                    ? connection.find("close") == std::string::npos
                    : connection.find("keep-alive") != std::string::npos;
    size_t qmark = target.find('?');
    std::string query =
        qmark == std::string::npos ? "" : target.substr(qmark + 1);
    Work work = ParseWork(query);
    DoWork(start, work);
    int64_t us = (NowNs() - start) / 1000;
    std::string body = Body(us, work, conn->reqs);
    std::string reply =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend-Us: " +
        std::to_string(us) +
        "\r\nX-Backend-Conn-Reqs: " + std::to_string(conn->reqs) +
        "\r\nContent-Length: " + std::to_string(body.size()) +
        (keep ? "\r\nConnection: keep-alive" : "\r\nConnection: close") +
        "\r\n\r\n" + (method == "HEAD" ? "" : body);
    bool ok = WriteAll(conn->fd, reply);
    int64_t end = NowNs();
    if (!ok || !keep) {
      close(conn->fd);
      conn->fd = -1;
    }
    LogRequest(start, end, target);
    slot->busy = false;
    if (conn->fd < 0) {
      delete conn;
      return;
    }
  }
  CloseConn(conn);
}

void* HttpThread(void* arg) {
  auto* slot = static_cast<ThreadSlot*>(arg);
  while (!g_stop.load()) {
    epoll_event ev{};
    int n = epoll_wait(g_epoll_fd, &ev, 1, -1);
    if (n <= 0) continue;          // EINTR: check g_stop
    if (ev.data.ptr == nullptr) {  // the listening socket (non-blocking)
      int fd = accept4(g_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED &&
            errno != EPROTO) {
          std::fprintf(stderr, "reqcost-fcgi-backend: accept: %s\n",
                       std::strerror(errno));
          usleep(10'000);
        }
        continue;
      }
      auto* conn = new HttpConn;
      conn->fd = fd;
      ServeHttpConnection(conn, slot);
      continue;
    }
    auto* conn = static_cast<HttpConn*>(ev.data.ptr);
    {
      std::lock_guard<std::mutex> lock(g_conns_mu);
      g_idle_conns.erase(conn);
    }
    ServeHttpConnection(conn, slot);
  }
  slot->done = true;
  return nullptr;
}

// Sets up the process's epoll set with the (non-blocking) listening socket.
void InitHttpProcess() {
  g_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (g_epoll_fd < 0) Die(ErrnoMessage("epoll_create1"));
  int flags = fcntl(g_listen_fd, F_GETFL);
  fcntl(g_listen_fd, F_SETFL, flags | O_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (epoll_ctl(g_epoll_fd, EPOLL_CTL_ADD, g_listen_fd, &ev) != 0) {
    Die(ErrnoMessage("epoll_ctl(listen)"));
  }
}

// Closes the kept-alive connections nobody is serving.
void CloseIdleHttpConns() {
  std::lock_guard<std::mutex> lock(g_conns_mu);
  for (HttpConn* conn : g_idle_conns) CloseConn(conn);
  g_idle_conns.clear();
}

void WakeHandler(int) {}

// Runs the serving threads of one process until SIGTERM/SIGINT; returns the
// exit code. Requests in progress are finished (bounded: threads still busy
// after 5 s, or idle threads that cannot be woken, are abandoned).
int ServeProcess(int threads) {
  if (g_mode == Mode::kFcgi && FCGX_Init() != 0) Die("FCGX_Init failed");
  if (g_mode == Mode::kHttp) InitHttpProcess();
  // SIGUSR2 interrupts a thread blocked in accept/read (no SA_RESTART).
  struct sigaction sa {};
  sa.sa_handler = WakeHandler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);  // inherited by the threads

  std::vector<ThreadSlot> slots(static_cast<size_t>(threads));
  for (auto& slot : slots) {
    int rc =
        pthread_create(&slot.thread, nullptr,
                       g_mode == Mode::kFcgi ? FcgiThread : HttpThread, &slot);
    if (rc != 0) Die(std::string("pthread_create: ") + std::strerror(rc));
  }
  int sig;
  while ((sig = sigwaitinfo(&stop_set, nullptr)) < 0 && errno == EINTR) {
  }
  g_stop = true;
  if (g_mode == Mode::kFcgi) FCGX_ShutdownPending();
  int64_t deadline = NowNs() + 5'000'000'000;
  bool all_done = false;
  while (NowNs() < deadline) {
    all_done = true;
    for (auto& slot : slots) {
      if (slot.done) continue;
      all_done = false;
      if (!slot.busy) pthread_kill(slot.thread, SIGUSR2);
    }
    if (all_done) break;
    usleep(20'000);
  }
  if (!all_done) {
    std::fprintf(stderr,
                 "reqcost-fcgi-backend: pid %d: threads did not stop in 5 s\n",
                 getpid());
    _exit(0);
  }
  for (auto& slot : slots) pthread_join(slot.thread, nullptr);
  if (g_mode == Mode::kHttp) CloseIdleHttpConns();
  return 0;
}

// Parent of --workers N children: forks them, reaps them, and on
// SIGTERM/SIGINT stops them all. Returns the exit code.
int RunPrefork(const Options& o) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  pid_t parent = getpid();
  std::set<pid_t> children;
  for (int i = 0; i < o.workers; ++i) {
    pid_t pid = fork();
    if (pid < 0) Die(ErrnoMessage("fork"));
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(0);
      g_unix_path.clear();  // the parent owns the socket file
      sigset_t chld;
      sigemptyset(&chld);
      sigaddset(&chld, SIGCHLD);
      sigprocmask(SIG_UNBLOCK, &chld, nullptr);
      _exit(ServeProcess(o.threads));
    }
    children.insert(pid);
  }
  int exit_code = 0;
  bool stopping = false;
  int64_t kill_at = 0;
  while (!children.empty()) {
    timespec tick{0, 100'000'000};
    int sig = sigtimedwait(&set, nullptr, &tick);
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      children.erase(pid);
      if (!stopping) {
        std::fprintf(
            stderr,
            "reqcost-fcgi-backend: worker %d exited unexpectedly (status %d)\n",
            pid, status);
        exit_code = 1;
      }
    }
    if (!stopping && (sig == SIGTERM || sig == SIGINT)) {
      stopping = true;
      kill_at = NowNs() + 5'000'000'000;
      for (pid_t c : children) kill(c, SIGTERM);
    }
    if (stopping && kill_at != 0 && NowNs() > kill_at) {
      for (pid_t c : children) kill(c, SIGKILL);
      kill_at = 0;  // SIGKILL once; keep reaping
    }
  }
  return exit_code;
}

int Main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  g_mode = o.mode;
  if (!o.log.empty()) {
    g_log_fd =
        open(o.log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (g_log_fd < 0) Die(ErrnoMessage("open --log " + o.log));
  }
  std::string shown;
  g_listen_fd = OpenListener(o, &shown);
  std::fprintf(stderr,
               "listening on %s (mode %s, workers %d, threads %d, pid %d)\n",
               shown.c_str(), o.mode == Mode::kFcgi ? "fcgi" : "http",
               o.workers, o.threads, getpid());
  std::fflush(stderr);
  int rc = o.workers == 0 ? ServeProcess(o.threads) : RunPrefork(o);
  if (!g_unix_path.empty()) unlink(g_unix_path.c_str());
  return rc;
}

}  // namespace
}  // namespace reqcost::samples

int main(int argc, char** argv) { return reqcost::samples::Main(argc, argv); }
