// Runs the reqcost binary against live processes the way a user does:
// start it, wait until its probes are live, drive load, stop it with a
// signal, read what it printed.
#ifndef REQCOST_TESTS_INTEGRATION_REQCOST_RUN_H_
#define REQCOST_TESTS_INTEGRATION_REQCOST_RUN_H_

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/support/stack.h"

namespace reqcost::testing {

class ReqcostRun {
 public:
  // Starts `reqcost <args>` with output in `dir` and waits (bounded) for
  // "attached to" on its stderr.
  // With `prepend_binary` false, args[0] is the program to run (a wrapper
  // such as setpriv that runs reqcost).
  static absl::StatusOr<ReqcostRun> Attach(const TempDir& dir,
                                           std::vector<std::string> args,
                                           bool prepend_binary = true) {
    static int n = 0;
    ReqcostRun run;
    run.out_ = dir.File(absl::StrCat("reqcost-", n, ".out"));
    run.err_ = dir.File(absl::StrCat("reqcost-", n++, ".err"));
    if (prepend_binary) args.insert(args.begin(), REQCOST_BINARY);
    absl::StatusOr<Subprocess> p = Subprocess::Start(args, run.out_, run.err_);
    if (!p.ok()) return p.status();
    run.process_.emplace(*std::move(p));
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> err = ReadFileToString(run.err_);
      if (err.ok() && err->find("attached to") != std::string::npos) return run;
      if (!run.process_->running()) {
        return absl::InternalError(absl::StrCat(
            "reqcost exited before attaching: ", FileTail(run.err_)));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::DeadlineExceededError("reqcost did not attach within 30 s");
  }

  // Sends `signal` and waits (bounded) for the exit code.
  absl::StatusOr<int> StopWith(int signal) {
    kill(process_->pid(), signal);
    absl::StatusOr<int> status = process_->WaitForExit(absl::Seconds(30));
    if (!status.ok()) return status.status();
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  }

  // Waits (bounded) for a run given --duration to end by itself.
  absl::StatusOr<int> Wait() {
    absl::StatusOr<int> status = process_->WaitForExit(absl::Seconds(60));
    if (!status.ok()) return status.status();
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  }

  pid_t pid() const { return process_->pid(); }
  std::string out() const { return ReadFileToString(out_).value_or(""); }
  std::string err() const { return ReadFileToString(err_).value_or(""); }

 private:
  std::string out_, err_;
  std::optional<Subprocess> process_;
};

// What a `reqcost` command that ran to its end printed.
struct ReqcostOutput {
  int code = -1;  // exit code, or 128 + signal
  std::string out, err;
  std::string out_path;
};

// Runs `reqcost args...` to completion with its output in the files `out`
// and `err`, in at most `timeout` (stopped if not).
inline absl::StatusOr<ReqcostOutput> RunReqcostTo(
    std::vector<std::string> args, const std::string& out,
    const std::string& err, absl::Duration timeout = absl::Seconds(60)) {
  args.insert(args.begin(), REQCOST_BINARY);
  absl::StatusOr<Subprocess> p = Subprocess::Start(args, out, err);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->WaitForExit(timeout);
  if (!status.ok()) {
    (void)p->Stop(absl::Seconds(2));
    return status.status();
  }
  ReqcostOutput o;
  o.code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  o.out = ReadFileToString(out).value_or("");
  o.err = ReadFileToString(err).value_or("");
  o.out_path = out;
  return o;
}

// Runs `reqcost args...` to completion, output in `dir`, in at most 60 s.
inline absl::StatusOr<ReqcostOutput> RunReqcost(const TempDir& dir,
                                                std::vector<std::string> args) {
  static int n = 0;
  std::string out = dir.File(absl::StrCat("cmd-", n, ".out"));
  std::string err = dir.File(absl::StrCat("cmd-", n++, ".err"));
  return RunReqcostTo(std::move(args), out, err);
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_INTEGRATION_REQCOST_RUN_H_
