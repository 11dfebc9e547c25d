#include "samples/stack/process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "samples/stack/status_macros.h"

namespace reqcost::stack {
namespace {

absl::Status ErrnoStatus(int err, absl::string_view what) {
  return absl::ErrnoToStatus(err, what);
}

// A socket address parsed from "unix:/path", "/path" or "HOST:PORT".
struct Address {
  bool is_unix = false;
  bool is_v6 = false;  // "[::1]:PORT"
  sockaddr_un un{};
  sockaddr_in in{};
  sockaddr_in6 in6{};
};

absl::StatusOr<Address> ParseAddress(absl::string_view address) {
  Address a;
  absl::string_view rest = address;
  if (absl::ConsumePrefix(&rest, "unix:") || absl::StartsWith(address, "/")) {
    a.is_unix = true;
    a.un.sun_family = AF_UNIX;
    if (rest.empty() || rest.size() >= sizeof(a.un.sun_path)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "unix socket path '%s' is empty or too long (max %d bytes)", rest,
          sizeof(a.un.sun_path) - 1));
    }
    std::memcpy(a.un.sun_path, rest.data(), rest.size());
    return a;
  }
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad address '%s' (expected unix:/path, 127.0.0.1:PORT or [::1]:PORT)",
        address));
  }
  std::string host(address.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    a.is_v6 = true;
    a.in6.sin6_family = AF_INET6;
    a.in6.sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(),
                  &a.in6.sin6_addr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("bad IPv6 address in '%s'", address));
    }
    return a;
  }
  a.in.sin_family = AF_INET;
  a.in.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.in.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad IPv4 address in '%s'", address));
  }
  return a;
}

// The contents of /proc/PID/stat, or "" when the process is gone. A process
// that exits between the open and the read makes read() fail with ESRCH:
// libstdc++ reports that by throwing from the streambuf, which
// operator<<(streambuf*) catches and an istreambuf_iterator does not.
std::string ProcStat(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// pid -> ppid for every process, from /proc/*/stat.
std::map<pid_t, pid_t> ParentMap() {
  std::map<pid_t, pid_t> parents;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return parents;
  while (dirent* e = readdir(dir)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::string stat = ProcStat(pid);
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields =
        absl::StrSplit(stat.substr(close + 2), ' ');
    pid_t ppid = 0;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid))
      parents[pid] = ppid;
  }
  closedir(dir);
  return parents;
}

}  // namespace

// ---------------------------------------------------------------- TempDir

absl::StatusOr<TempDir> TempDir::Create(absl::string_view prefix) {
  std::string templ = absl::StrCat("/tmp/", prefix, "-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return ErrnoStatus(errno, absl::StrCat("mkdtemp ", templ));
  }
  return TempDir(templ);
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

TempDir::~TempDir() { Remove(); }

void TempDir::Remove() {
  if (path_.empty()) return;
  const char* keep = std::getenv("REQCOST_KEEP_TMP");
  if (keep != nullptr && std::strcmp(keep, "1") == 0) {
    std::fprintf(stderr, "REQCOST_KEEP_TMP=1: keeping %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  path_.clear();
}

std::string TempDir::File(absl::string_view name) const {
  return absl::StrCat(path_, "/", name);
}

// ------------------------------------------------------------- Subprocess

absl::StatusOr<Subprocess> Subprocess::Start(
    const std::vector<std::string>& argv, const std::string& stdout_path,
    const std::string& stderr_path) {
  if (argv.empty())
    return absl::InvalidArgumentError("Subprocess::Start: empty argv");
  int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                 0644);
  if (out < 0) return ErrnoStatus(errno, absl::StrCat("open ", stdout_path));
  int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                 0644);
  if (err < 0) {
    int e = errno;
    close(out);
    return ErrnoStatus(e, absl::StrCat("open ", stderr_path));
  }
  // The exec error travels back on a close-on-exec pipe.
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    int e = errno;
    close(out);
    close(err);
    return ErrnoStatus(e, "pipe2");
  }
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(out);
    close(err);
    close(pipefd[0]);
    close(pipefd[1]);
    return ErrnoStatus(e, "fork");
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    // Its own process group: a terminal's Ctrl-C reaches only the caller,
    // which then stops its servers by PID, in order.
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out, 1);
    dup2(err, 2);
    // Default dispositions and an empty mask, whatever the test runner set.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s :
         {SIGPIPE, SIGTERM, SIGINT, SIGCHLD, SIGHUP, SIGUSR1, SIGUSR2}) {
      signal(s, SIG_DFL);
    }
    execv(cargv[0], cargv.data());
    int e = errno;
    ssize_t w = write(pipefd[1], &e, sizeof(e));
    (void)w;
    _exit(127);
  }
  close(out);
  close(err);
  close(pipefd[1]);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(pipefd[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  close(pipefd[0]);
  Subprocess p;
  p.pid_ = pid;
  p.name_ = argv[0];
  p.stdout_path_ = stdout_path;
  p.stderr_path_ = stderr_path;
  if (n == sizeof(exec_errno)) {
    int status;
    waitpid(pid, &status, 0);
    p.pid_ = -1;
    return ErrnoStatus(exec_errno, absl::StrCat("exec ", argv[0]));
  }
  return p;
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(other.pid_),
      wait_status_(other.wait_status_),
      name_(std::move(other.name_)),
      stdout_path_(std::move(other.stdout_path_)),
      stderr_path_(std::move(other.stderr_path_)) {
  other.pid_ = -1;
}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    if (running()) (void)Stop();
    pid_ = other.pid_;
    wait_status_ = other.wait_status_;
    name_ = std::move(other.name_);
    stdout_path_ = std::move(other.stdout_path_);
    stderr_path_ = std::move(other.stderr_path_);
    other.pid_ = -1;
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (running()) (void)Stop();
}

bool Subprocess::TryReap() {
  if (pid_ < 0 || wait_status_ != -1) return true;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    wait_status_ = status;
    return true;
  }
  if (r < 0 && errno == ECHILD) {  // reaped elsewhere; nothing to wait for
    wait_status_ = 0;
    return true;
  }
  return false;
}

bool Subprocess::running() { return pid_ > 0 && !TryReap(); }

absl::StatusOr<int> Subprocess::WaitForExit(absl::Duration timeout) {
  if (pid_ < 0)
    return absl::FailedPreconditionError(
        "WaitForExit on a moved-from Subprocess");
  absl::Time deadline = absl::Now() + timeout;
  while (!TryReap()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrFormat("%s (PID %d) still running after %s", name_, pid_,
                          absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return wait_status_;
}

absl::StatusOr<int> Subprocess::Stop(absl::Duration timeout) {
  if (pid_ < 0)
    return absl::FailedPreconditionError("Stop on a moved-from Subprocess");
  if (!running()) return wait_status_;
  kill(pid_, SIGTERM);
  auto status = WaitForExit(timeout);
  if (status.ok()) return status;
  kill(pid_, SIGKILL);
  // SIGKILL cannot be ignored; the bound only guards against a D-state hang.
  auto killed = WaitForExit(absl::Seconds(10));
  if (!killed.ok()) return killed.status();
  return absl::DeadlineExceededError(
      absl::StrFormat("%s (PID %d) ignored SIGTERM for %s; killed with SIGKILL",
                      name_, pid_, absl::FormatDuration(timeout)));
}

std::string DescribeWaitStatus(int wait_status) {
  if (wait_status < 0) return "still running";
  if (WIFEXITED(wait_status))
    return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status), " (",
                        strsignal(WTERMSIG(wait_status)), ")");
  }
  return absl::StrCat("wait status ", wait_status);
}

// ------------------------------------------------------------------ ports

absl::StatusOr<int> FreeTcpPort() {
  static std::mutex mu;
  static std::set<int> handed_out;
  std::lock_guard<std::mutex> lock(mu);
  for (int attempt = 0; attempt < 50; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus(errno, "socket");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      int e = errno;
      close(fd);
      return ErrnoStatus(e, "bind 127.0.0.1:0");
    }
    close(fd);
    int port = ntohs(sa.sin_port);
    if (handed_out.insert(port).second) return port;
  }
  return absl::ResourceExhaustedError(
      "no free TCP port on 127.0.0.1 after 50 attempts");
}

absl::Status WaitForListening(absl::string_view address, absl::Duration timeout,
                              Subprocess* process) {
  REQCOST_TS_ASSIGN_OR_RETURN(Address a, ParseAddress(address));
  absl::Time deadline = absl::Now() + timeout;
  int last_errno = 0;
  while (true) {
    int fd = socket(a.is_unix ? AF_UNIX
                    : a.is_v6 ? AF_INET6
                              : AF_INET,
                    SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus(errno, "socket");
    int rc =
        a.is_unix
            ? connect(fd, reinterpret_cast<sockaddr*>(&a.un), sizeof(a.un))
        : a.is_v6
            ? connect(fd, reinterpret_cast<sockaddr*>(&a.in6), sizeof(a.in6))
            : connect(fd, reinterpret_cast<sockaddr*>(&a.in), sizeof(a.in));
    last_errno = errno;
    close(fd);
    if (rc == 0) return absl::OkStatus();
    if (process != nullptr && !process->running()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s (PID %d) %s before listening on %s; its stderr ends with:\n%s",
          process->name(), process->pid(),
          DescribeWaitStatus(process->wait_status()), address,
          FileTail(process->stderr_path())));
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::string who =
      process != nullptr
          ? absl::StrFormat(" (%s, PID %d; stderr ends with:\n%s)",
                            process->name(), process->pid(),
                            FileTail(process->stderr_path()))
          : "";
  return absl::DeadlineExceededError(absl::StrFormat(
      "nothing listening on %s after %s: %s%s", address,
      absl::FormatDuration(timeout), std::strerror(last_errno), who));
}

// -------------------------------------------------------------- /proc

std::vector<pid_t> ChildPids(pid_t pid) {
  std::vector<pid_t> out;
  for (const auto& [p, ppid] : ParentMap()) {
    if (ppid == pid) out.push_back(p);
  }
  return out;
}

std::vector<pid_t> DescendantPids(pid_t pid) {
  std::map<pid_t, pid_t> parents = ParentMap();
  std::set<pid_t> found;
  std::vector<pid_t> frontier{pid};
  while (!frontier.empty()) {
    pid_t cur = frontier.back();
    frontier.pop_back();
    for (const auto& [p, ppid] : parents) {
      if (ppid == cur && found.insert(p).second) frontier.push_back(p);
    }
  }
  return {found.begin(), found.end()};
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  std::string stat = ProcStat(pid);
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  char state = stat[close + 2];
  return state != 'Z' && state != 'X';
}

namespace {

// Waits until `list(pid)` has at least `count` live entries; `what` names
// them in the errors ("children", "descendants").
absl::StatusOr<std::vector<pid_t>> WaitForLive(
    pid_t pid, size_t count, absl::Duration timeout,
    std::vector<pid_t> (*list)(pid_t), const char* what) {
  absl::Time deadline = absl::Now() + timeout;
  std::vector<pid_t> found;
  while (true) {
    found = list(pid);
    found.erase(std::remove_if(found.begin(), found.end(),
                               [](pid_t p) { return !ProcessAlive(p); }),
                found.end());
    if (found.size() >= count) return found;
    if (!ProcessAlive(pid)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "PID %d exited while waiting for its %d %s", pid, count, what));
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrFormat("PID %d has %d %s after %s, expected %d", pid,
                      found.size(), what, absl::FormatDuration(timeout),
                      count));
}

}  // namespace

absl::StatusOr<std::vector<pid_t>> WaitForChildren(pid_t pid, size_t count,
                                                   absl::Duration timeout) {
  return WaitForLive(pid, count, timeout, ChildPids, "children");
}

absl::StatusOr<std::vector<pid_t>> WaitForDescendants(pid_t pid, size_t count,
                                                      absl::Duration timeout) {
  return WaitForLive(pid, count, timeout, DescendantPids, "descendants");
}

absl::Status WaitForGoneOrKill(const std::vector<pid_t>& pids,
                               absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  std::vector<pid_t> alive;
  while (true) {
    alive.clear();
    for (pid_t p : pids) {
      if (ProcessAlive(p)) alive.push_back(p);
    }
    if (alive.empty()) return absl::OkStatus();
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  for (pid_t p : alive) kill(p, SIGKILL);
  return absl::DeadlineExceededError(absl::StrFormat(
      "PIDs %s still alive %s after their parent stopped; killed with SIGKILL",
      absl::StrJoin(alive, ", "), absl::FormatDuration(timeout)));
}

// -------------------------------------------------------------- files

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string FileTail(const std::string& path, int max_lines) {
  auto content = ReadFileToString(path);
  if (!content.ok()) return absl::StrCat("(cannot read ", path, ")");
  std::string s = std::move(content).value();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  if (s.empty()) return absl::StrCat("(", path, " is empty)");
  size_t pos = s.size();
  for (int i = 0; i < max_lines && pos != std::string::npos && pos > 0; ++i) {
    pos = s.rfind('\n', pos - 1);
  }
  return pos == std::string::npos || pos == 0 ? s : s.substr(pos + 1);
}

absl::Status WriteStringToFile(const std::string& path,
                               absl::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return ErrnoStatus(errno, absl::StrCat("create ", path));
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) return ErrnoStatus(errno, absl::StrCat("write ", path));
  return absl::OkStatus();
}

// ----------------------------------------------------------- binaries

absl::StatusOr<std::string> FindBinary(absl::string_view name) {
  std::string env = absl::StrCat("REQCOST_BIN_", absl::AsciiStrToUpper(name));
  std::replace(env.begin(), env.end(), '-', '_');
  if (const char* v = std::getenv(env.c_str()); v != nullptr && *v != '\0') {
    if (access(v, X_OK) == 0) return std::string(v);
    return absl::NotFoundError(
        absl::StrFormat("%s=%s is not an executable", env, v));
  }
  struct Known {
    absl::string_view name;
    std::vector<std::string> patterns;
    absl::string_view package;
  };
  static const std::vector<Known>* known = new std::vector<Known>{
      {"nginx",
       {"/usr/sbin/nginx", "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx"},
       "nginx-light (or nginx)"},
      {"php-fpm",
       {"/usr/sbin/php-fpm", "/usr/sbin/php-fpm[0-9]*",
        "/usr/local/sbin/php-fpm"},
       "php-fpm (php8.2-fpm)"},
      {"php-cgi",
       {"/usr/bin/php-cgi", "/usr/bin/php-cgi[0-9]*"},
       "php-cgi (php8.2-cgi)"},
      {"lighttpd",
       {"/usr/sbin/lighttpd", "/usr/local/sbin/lighttpd"},
       "lighttpd"},
      {"ab", {"/usr/bin/ab"}, "apache2-utils"},
      {"wrk", {"/usr/bin/wrk", "/usr/local/bin/wrk"}, "wrk"},
      {"openssl", {"/usr/bin/openssl", "/usr/local/bin/openssl"}, "openssl"},
      {"curl", {"/usr/bin/curl", "/usr/local/bin/curl"}, "curl"},
  };
  for (const Known& k : *known) {
    if (k.name != name) continue;
    std::vector<std::string> tried;
    for (const std::string& pattern : k.patterns) {
      glob_t g{};
      if (glob(pattern.c_str(), 0, nullptr, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) {
          std::string path = g.gl_pathv[i];
          if (access(path.c_str(), X_OK) == 0) {
            globfree(&g);
            return path;
          }
        }
      }
      globfree(&g);
      tried.push_back(pattern);
    }
    return absl::NotFoundError(absl::StrFormat(
        "%s not found (looked for %s); install %s or set %s to its path", name,
        absl::StrJoin(tried, ", "), k.package, env));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("FindBinary: unknown tool '%s' (known: nginx, php-fpm, "
                      "php-cgi, lighttpd, ab, wrk, openssl, curl)",
                      name));
}

}  // namespace reqcost::stack
