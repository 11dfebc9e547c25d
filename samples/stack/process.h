// Processes, temp dirs, ports and files for tests that drive real servers.
// Every wait is bounded by a timeout; processes are only ever signalled by
// the PIDs this library started (or found as their descendants).
#ifndef REQCOST_SAMPLES_STACK_PROCESS_H_
#define REQCOST_SAMPLES_STACK_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace reqcost::stack {

// A fresh directory under /tmp (short paths: unix sockets live here), removed
// with its contents at destruction unless REQCOST_KEEP_TMP=1.
class TempDir {
 public:
  // Creates /tmp/<prefix>-XXXXXX.
  static absl::StatusOr<TempDir> Create(absl::string_view prefix = "reqcost");

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  // The directory, without a trailing slash.
  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string File(absl::string_view name) const;

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  void Remove();
  std::string path_;
};

// A child process running argv (argv[0] is a path), stdout and stderr
// redirected to files. Stopped (SIGTERM, then SIGKILL) and reaped at
// destruction if still running.
class Subprocess {
 public:
  // Forks and execs argv; fails with the exec error if argv[0] cannot run.
  // The child gets PR_SET_PDEATHSIG(SIGKILL), so it dies with the test.
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::string& stdout_path,
                                          const std::string& stderr_path);

  // An empty handle: pid() == -1, nothing to stop.
  Subprocess() = default;
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  // The child's PID (-1 for a moved-from object).
  pid_t pid() const { return pid_; }
  // The program, for messages.
  const std::string& name() const { return name_; }
  const std::string& stdout_path() const { return stdout_path_; }
  const std::string& stderr_path() const { return stderr_path_; }
  // True until the child has been reaped.
  bool running();
  // The raw wait status once reaped (see WIFEXITED...), else -1.
  int wait_status() const { return wait_status_; }

  // Waits for the child to exit; returns its wait status, or
  // DeadlineExceeded (the child keeps running).
  absl::StatusOr<int> WaitForExit(absl::Duration timeout);
  // SIGTERM, then SIGKILL after `timeout`; always reaps. OK if the child
  // had already exited; returns the wait status.
  absl::StatusOr<int> Stop(absl::Duration timeout = absl::Seconds(5));

 private:
  bool TryReap();

  pid_t pid_ = -1;
  int wait_status_ = -1;
  std::string name_;
  std::string stdout_path_;
  std::string stderr_path_;
};

// "exited with status 1", "killed by signal 9 (Killed)", ...
std::string DescribeWaitStatus(int wait_status);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then
// released). Never returns the same port twice in one process.
absl::StatusOr<int> FreeTcpPort();

// Connects to `address` ("unix:/path", "/path", "127.0.0.1:PORT" or
// "[::1]:PORT") until it
// succeeds or `timeout` passes. When `process` is given and exits first,
// fails at once with its exit status and the tail of its stderr.
absl::Status WaitForListening(absl::string_view address, absl::Duration timeout,
                              Subprocess* process = nullptr);

// Direct children of `pid` (from /proc/*/stat), sorted.
std::vector<pid_t> ChildPids(pid_t pid);
// Children, grandchildren, ... of `pid`, sorted.
std::vector<pid_t> DescendantPids(pid_t pid);
// True when `pid` exists and is not a zombie.
bool ProcessAlive(pid_t pid);
// Waits until ChildPids(pid) has at least `count` entries; returns them.
absl::StatusOr<std::vector<pid_t>> WaitForChildren(pid_t pid, size_t count,
                                                   absl::Duration timeout);
// The same for DescendantPids(pid): children, grandchildren, ...
absl::StatusOr<std::vector<pid_t>> WaitForDescendants(pid_t pid, size_t count,
                                                      absl::Duration timeout);
// Waits until none of `pids` is alive; SIGKILLs the survivors at the
// deadline and reports them as an error.
absl::Status WaitForGoneOrKill(const std::vector<pid_t>& pids,
                               absl::Duration timeout);

// The whole file.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// The last `max_lines` lines of a file, or "(cannot read PATH)".
std::string FileTail(const std::string& path, int max_lines = 20);
// Writes (truncates) a file.
absl::Status WriteStringToFile(const std::string& path,
                               absl::string_view content);

// The path of a tool the tests drive: "nginx", "php-fpm", "php-cgi",
// "lighttpd", "ab", "wrk", "openssl" or "curl". REQCOST_BIN_<NAME> (upper case,
// '-' as '_') overrides; otherwise the usual Debian locations are searched
// (with a glob for versioned names such as php-fpm8.2). NotFound says what to
// install.
absl::StatusOr<std::string> FindBinary(absl::string_view name);

}  // namespace reqcost::stack

#endif  // REQCOST_SAMPLES_STACK_PROCESS_H_
