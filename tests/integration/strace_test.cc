// Issue 14: `reqcost import strace` on logs of real strace attached to real
// nginx + php-fpm (a PHP page that sleeps 20 ms) loaded by ab with a bounded
// count. The import needs no BPF: StraceImportTest runs anywhere strace can
// attach (root); StraceVersusLiveTest also profiles the stack live and needs
// BPF (tests/support/require_bpf.h).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "samples/stack/status_macros.h"
#include "tests/integration/breakdown_expect.h"  // ASSERT_OK_AND_ASSIGN
#include "tests/integration/profiled_run.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kWorkUs = 20000;
constexpr int kRequests = 50;

#define ASSERT_OK(expr)         \
  do {                          \
    absl::Status s_ = (expr);   \
    ASSERT_TRUE(s_.ok()) << s_; \
  } while (0)
#define ASSIGN_OR_RETURN(lhs, expr) REQCOST_TS_ASSIGN_OR_RETURN(lhs, expr)
#define RETURN_IF_ERROR(expr) REQCOST_TS_RETURN_IF_ERROR(expr)

// Debian's strace (scripts/bootstrap.sh installs it).
absl::StatusOr<std::string> StraceBinary() {
  for (const char* path : {"/usr/bin/strace", "/bin/strace"}) {
    if (access(path, X_OK) == 0) return std::string(path);
  }
  return absl::NotFoundError("strace not found: apt-get install strace (scripts/bootstrap.sh)");
}

// strace attached to processes, writing LOG (or LOG.PID files with -ff).
class StraceRun {
 public:
  // Starts strace with `flags` on every PID and waits (bounded) until it
  // says it attached to each one.
  static absl::StatusOr<StraceRun> Attach(const TempDir& dir, const std::string& log,
                                          const std::vector<std::string>& flags,
                                          const std::vector<pid_t>& pids) {
    ASSIGN_OR_RETURN(std::string strace, StraceBinary());
    std::vector<std::string> argv = {strace};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("-o");
    argv.push_back(log);
    for (pid_t pid : pids) {
      argv.push_back("-p");
      argv.push_back(std::to_string(pid));
    }
    StraceRun run;
    run.err_ = dir.File("strace.err");
    ASSIGN_OR_RETURN(Subprocess p, Subprocess::Start(argv, dir.File("strace.out"), run.err_));
    run.process_.emplace(std::move(p));
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> err = ReadFileToString(run.err_);
      size_t attached = 0;
      for (size_t at = 0; err.ok() && (at = err->find(" attached", at)) != std::string::npos;
           ++at) {
        ++attached;
      }
      if (attached >= pids.size()) return run;
      if (!run.process_->running()) {
        return absl::InternalError(absl::StrCat("strace exited: ", FileTail(run.err_)));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::DeadlineExceededError("strace did not attach within 30 s");
  }

  // SIGINT: strace detaches and exits (bounded).
  absl::Status Stop() {
    kill(process_->pid(), SIGINT);
    absl::StatusOr<int> status = process_->WaitForExit(absl::Seconds(30));
    if (!status.ok()) {
      (void)process_->Stop(absl::Seconds(2));
      return status.status();
    }
    return absl::OkStatus();
  }

 private:
  std::optional<Subprocess> process_;
  std::string err_;
};

struct Command {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs the reqcost binary with `args` to its end (bounded).
absl::StatusOr<Command> RunReqcost(const TempDir& dir, std::vector<std::string> args) {
  static int n = 0;
  std::string out = dir.File(absl::StrCat("cmd-", n, ".out"));
  std::string err = dir.File(absl::StrCat("cmd-", n++, ".err"));
  args.insert(args.begin(), REQCOST_BINARY);
  ASSIGN_OR_RETURN(Subprocess p, Subprocess::Start(args, out, err));
  absl::StatusOr<int> status = p.WaitForExit(absl::Seconds(60));
  if (!status.ok()) {
    (void)p.Stop(absl::Seconds(2));
    return status.status();
  }
  Command c;
  c.code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  ASSIGN_OR_RETURN(c.out, ReadFileToString(out));
  ASSIGN_OR_RETURN(c.err, ReadFileToString(err));
  return c;
}

// nginx in front of php-fpm over a unix socket, both in `dir`.
struct Stack {
  Server fpm;
  Server nginx;
  std::vector<pid_t> pids() const {
    std::vector<pid_t> all = nginx.AllPids();
    for (pid_t p : fpm.AllPids()) all.push_back(p);
    return all;
  }
};

// `fpm_listen`: php-fpm's address ("" a unix socket, "tcp" a loopback port).
absl::StatusOr<Stack> StartStack(const TempDir& dir, const std::string& fpm_listen = "") {
  PhpFpmOptions fopts;
  fopts.listen = fpm_listen;
  ASSIGN_OR_RETURN(Server fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSIGN_OR_RETURN(Server nginx, StartNginx(dir, nopts));
  return Stack{std::move(fpm), std::move(nginx)};
}

// Per request: how many calls of each name it holds on each side, as a
// sorted "side name xN" list (its shape, independent of timing). The backend's calls after its
// reply write (php-fpm's shutdown, its reads until nginx closes, its close)
// are left out: they are the connection's teardown, and whether they come
// before the profiler finalizes the request (and so are in its list) is a
// race of nginx's last client write against php-fpm's teardown, which live
// capture loses for most requests and strace's slowdown of nginx turns round.
std::string Shape(const json& request) {
  double reply_write = -1;
  for (const json& s : request["syscalls"]) {
    std::string name = s["name"];
    if (s["side"] == "backend" && (name == "write" || name == "writev" || name == "sendto" ||
                                   name == "sendmsg")) {
      reply_write = std::max(reply_write, s["offset_us"].get<double>());
    }
  }
  std::map<std::string, int> counts;
  for (const json& s : request["syscalls"]) {
    if (s["side"] == "backend" && reply_write >= 0 &&
        s["offset_us"].get<double>() > reply_write) {
      continue;
    }
    ++counts[absl::StrCat(s["side"].get<std::string>(), " ", s["name"].get<std::string>())];
  }
  std::vector<std::string> parts;
  for (const auto& [k, v] : counts) parts.push_back(absl::StrCat(k, " x", v));
  return absl::StrJoin(parts, ", ");
}

// The shapes of a run's complete requests and how many have each.
std::map<std::string, int> Shapes(const std::vector<json>& requests) {
  std::map<std::string, int> shapes;
  for (const json& r : requests) {
    if (r.value("complete", true)) ++shapes[Shape(r)];
  }
  return shapes;
}

// The shape most requests of a run have, and how many have it.
std::pair<std::string, int> CommonShape(const std::map<std::string, int>& shapes) {
  std::pair<std::string, int> best;
  for (const auto& [shape, n] : shapes) {
    if (n > best.second) best = {shape, n};
  }
  return best;
}

// The log files strace wrote: LOG itself, or LOG.PID with -ff.
std::vector<std::string> LogFiles(const TempDir& dir, const std::string& name) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    std::string f = entry.path().filename();
    if (f == name || f.rfind(name + ".", 0) == 0) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// How long, by the strace log itself, php-fpm spent per request on the two
// edges where its own clock and reqcost's backend phase differ: php-fpm
// stamps its start before its first read of the request (at its times()
// call after accept) where the backend phase starts at that read's end, and
// stamps its end (at its times() call) before it writes its access-log
// line, closes the script and sends the reply, where the backend phase ends at that send's end.
// Those few syscalls are what strace slows (tens of µs each, more on a
// loaded machine): the mean of both edges is the allowance the comparison
// adds to its 5%.
double EdgeMeanUs(const std::vector<std::string>& files) {
  struct PidState {
    bool accepted = false;
    double start_mark = -1;  // s
    double end_mark = -1;
    double last_times = -1;  // its latest times() call
  };
  std::map<std::string, PidState> pids;
  double sum_s = 0;
  int edges = 0;
  for (const std::string& file : files) {
    absl::StatusOr<std::string> text = ReadFileToString(file);
    if (!text.ok()) continue;
    std::string suffix = file.substr(file.rfind('.') + 1);
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(' ', 2));
      std::string pid;
      absl::string_view ts_text, rest;
      if (f.size() == 3 && f[0].find_first_not_of("0123456789") != 0 &&
          absl::StrContains(f[1], '.') && !absl::StrContains(f[0], ':')) {
        pid = std::string(f[0].substr(0, f[0].find('<')));
        ts_text = f[1];
        rest = f[2];
      } else {
        std::vector<absl::string_view> g = absl::StrSplit(line, absl::MaxSplits(' ', 1));
        if (g.size() != 2) continue;
        pid = suffix;
        ts_text = g[0];
        rest = g[1];
      }
      double ts = 0;
      if (absl::StrContains(ts_text, ':')) {
        std::vector<absl::string_view> hms = absl::StrSplit(ts_text, ':');
        double h = 0, m = 0, sec = 0;
        if (hms.size() != 3 || !absl::SimpleAtod(hms[0], &h) || !absl::SimpleAtod(hms[1], &m) ||
            !absl::SimpleAtod(hms[2], &sec)) {
          continue;
        }
        ts = h * 3600 + m * 60 + sec;
      } else if (!absl::SimpleAtod(ts_text, &ts)) {
        continue;
      }
      // The end of a call: resumed lines are stamped at its end, complete
      // ones at its start (+ its -T duration).
      auto end_of = [&]() {
        double dur = 0;
        size_t open = rest.rfind('<');
        if (open != absl::string_view::npos) {
          (void)absl::SimpleAtod(rest.substr(open + 1, rest.size() - open - 2), &dur);
        }
        return absl::StartsWith(rest, "<...") ? ts : ts + dur;
      };
      PidState& st = pids[pid];
      bool on_socket =
          (absl::StrContains(rest, "UNIX-STREAM:[") || absl::StrContains(rest, "TCP:[")) &&
          !absl::StrContains(rest, "unfinished");
      if ((absl::StartsWith(rest, "accept(") || absl::StartsWith(rest, "<... accept resumed>")) &&
          !absl::StrContains(rest, "unfinished") && !absl::StrContains(rest, "= -1")) {
        st.accepted = true;
      } else if (absl::StartsWith(rest, "times(")) {
        st.last_times = ts;
        if (st.accepted) st.start_mark = ts;
        st.accepted = false;
      } else if (st.start_mark >= 0 && on_socket &&
                 (absl::StartsWith(rest, "read(") || absl::StartsWith(rest, "<... read resumed>"))) {
        sum_s += end_of() - st.start_mark;
        ++edges;
        st.start_mark = -1;
      } else if (absl::StartsWith(rest, "write(") && absl::StrContains(rest, "php-fpm-access.log>")) {
        st.end_mark = st.last_times >= 0 ? st.last_times : ts;
      } else if (st.end_mark >= 0 && on_socket &&
                 (absl::StartsWith(rest, "write(") || absl::StartsWith(rest, "<... write resumed>"))) {
        sum_s += end_of() - st.end_mark;
        ++edges;
        st.end_mark = -1;
      }
    }
  }
  // Two edges per request.
  return edges == 0 ? 0 : 2e6 * sum_s / edges;
}

struct Imported {
  AbResult ab;
  json report;
  std::vector<json> requests;
  std::vector<PhpFpmAccessEntry> fpm_log;  // this run's lines
  std::string summary;                     // what import printed
  double edge_us = 0;                      // EdgeMeanUs of the log
  std::string capture;                     // the imported capture
};

// Runs ab on /sleep.php under strace `flags`, imports the log, reports.
absl::StatusOr<Imported> StraceAndImport(const TempDir& dir, const Stack& stack,
                                         const std::vector<std::string>& flags) {
  ASSIGN_OR_RETURN(auto before, ReadPhpFpmAccessLog(stack.fpm.request_log()));
  const std::string log = "strace.log";
  ASSIGN_OR_RETURN(StraceRun strace, StraceRun::Attach(dir, dir.File(log), flags, stack.pids()));
  AbOptions ab;
  ab.url = stack.nginx.Url("/sleep.php?us=" + std::to_string(kWorkUs));
  ab.requests = kRequests;
  ab.concurrency = 2;
  absl::StatusOr<AbResult> result = RunAb(ab);
  RETURN_IF_ERROR(strace.Stop());
  if (!result.ok()) return result.status();
  Imported im;
  im.ab = *result;
  ASSIGN_OR_RETURN(auto after, ReadPhpFpmAccessLog(stack.fpm.request_log()));
  im.fpm_log.assign(after.begin() + before.size(), after.end());

  std::vector<std::string> args = {"import", "strace"};
  std::vector<std::string> files = LogFiles(dir, log);
  im.edge_us = EdgeMeanUs(files);
  for (const std::string& f : files) args.push_back(f);
  std::string capture = dir.File("strace.cap");
  im.capture = capture;
  for (const char* a : {"-o", capture.c_str(), "--force"}) args.push_back(a);
  ASSIGN_OR_RETURN(Command imp, RunReqcost(dir, args));
  if (imp.code != 0) {
    return absl::InternalError(absl::StrCat("import exited ", imp.code, ": ", imp.err));
  }
  im.summary = imp.out;
  ASSIGN_OR_RETURN(Command rep, RunReqcost(dir, {"report", capture, "--format", "json"}));
  if (rep.code != 0) return absl::InternalError(absl::StrCat("report: ", rep.err));
  im.report = json::parse(rep.out);
  ASSIGN_OR_RETURN(im.requests, ReplayRequests(capture));
  return im;
}

struct StraceCase {
  std::string name;
  std::vector<std::string> flags;  // besides -T -yy -s 256
  std::string fpm_listen;          // "" unix, "tcp"
};

void PrintTo(const StraceCase& c, std::ostream* os) { *os << c.name; }

class StraceImportTest : public ::testing::TestWithParam<StraceCase> {};

// The recommended command (-f -ttt -T -yy, one file) and the file-per-PID,
// time-of-day form (-ff -tt -T -yy): every ab request is one complete
// request, the backend is measured (both ends paired from -yy's inodes)
// within 5% of php-fpm's own clock, and the request lines come from -s.
TEST_P(StraceImportTest, RequestsAndBackendMatchAbAndPhpFpm) {
  if (geteuid() != 0) GTEST_SKIP() << "strace -p needs root (ptrace of the servers)";
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-strace"));
  ASSERT_OK_AND_ASSIGN(stack, StartStack(dir, GetParam().fpm_listen));
  std::vector<std::string> flags = GetParam().flags;
  for (const char* f : {"-T", "-yy", "-s", "256"}) flags.push_back(f);
  ASSERT_OK_AND_ASSIGN(im, StraceAndImport(dir, stack, flags));
  std::printf("%s", im.summary.c_str());
  ASSERT_EQ(im.ab.complete, kRequests);
  EXPECT_THAT(im.summary, ::testing::Not(::testing::HasSubstr("malformed")));

  const json& r = im.report;
  EXPECT_EQ(r["requests"]["complete"].get<int>(), im.ab.complete) << r.dump(2);
  EXPECT_EQ(r["backend_timing"], "measured");
  ASSERT_EQ(im.fpm_log.size(), static_cast<size_t>(kRequests));
  double fpm_mean = Summarize(DurationsUs(im.fpm_log)).mean;
  double backend = r["phases"]["backend"]["mean_us"].get<double>();
  std::printf("strace %s: backend %.1f us, php-fpm's clock %.1f us (%+.2f%%), strace's time "
              "on the edges %.1f us, total %.1f us, ab %.2f ms per request\n",
              GetParam().name.c_str(), backend, fpm_mean,
              100 * (backend - fpm_mean) / fpm_mean, im.edge_us,
              r["phases"]["total"]["mean_us"].get<double>(), im.ab.time_per_request_ms);
  EXPECT_GT(im.edge_us, 0) << "no php-fpm request edges found in the log";
  EXPECT_NEAR(backend, fpm_mean, 0.05 * fpm_mean + im.edge_us);
  std::vector<std::string> roles;
  for (const json& p : r["capture"]["processes"]) roles.push_back(p["role"]);
  EXPECT_THAT(roles, ::testing::Contains("server"));
  EXPECT_THAT(roles, ::testing::Contains("backend"));
  int with_line = 0;
  for (const json& q : im.requests) {
    if (q.value("request_line", json()) == "GET /sleep.php") ++with_line;
  }
  EXPECT_EQ(with_line, kRequests);

  // compare and timeline read the imported capture as they read a live one.
  ASSERT_OK_AND_ASSIGN(cmp, RunReqcost(dir, {"compare", im.capture, im.capture, "--format", "json"}));
  EXPECT_EQ(cmp.code, 0) << cmp.err;
  EXPECT_EQ(json::parse(cmp.out)["b"]["requests"]["complete"].get<int>(), kRequests);
  ASSERT_OK_AND_ASSIGN(tl, RunReqcost(dir, {"timeline", im.capture, "-o", dir.File("trace.json")}));
  EXPECT_EQ(tl.code, 0) << tl.err;
  ASSERT_OK_AND_ASSIGN(trace, ReadFileToString(dir.File("trace.json")));
  EXPECT_THAT(trace, ::testing::HasSubstr("GET /sleep.php"));
}

INSTANTIATE_TEST_SUITE_P(
    Formats, StraceImportTest,
    ::testing::Values(StraceCase{"OneFileTttUnix", {"-f", "-ttt", "-Y"}, ""},
                      StraceCase{"OneFileTttTcp", {"-f", "-ttt", "-Y"}, "tcp"},
                      StraceCase{"FilePerPidTtUnix", {"-ff", "-tt"}, ""}),
    [](const auto& info) { return info.param.name; });

// Without -yy the sockets have no identity: the import says so, leaves the
// backend's calls out, and the backend phase is inferred (from nginx's side)
// for every ab request.
TEST(StraceImportTest, WithoutYyBackendIsInferred) {
  if (geteuid() != 0) GTEST_SKIP() << "strace -p needs root (ptrace of the servers)";
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-strace"));
  ASSERT_OK_AND_ASSIGN(stack, StartStack(dir));
  ASSERT_OK_AND_ASSIGN(im, StraceAndImport(dir, stack, {"-f", "-ttt", "-T"}));
  ASSERT_EQ(im.ab.complete, kRequests);
  EXPECT_THAT(im.summary, ::testing::HasSubstr("no socket identities"));
  EXPECT_EQ(im.report["requests"]["complete"].get<int>(), kRequests);
  EXPECT_EQ(im.report["backend_timing"], "inferred");
}

// A log of a process that made no socket calls: exit code 7 and a sentence.
TEST(StraceImportTest, LogWithoutSocketCallsSaysSo) {
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-strace"));
  ASSERT_OK_AND_ASSIGN(strace, StraceBinary());
  ASSERT_OK_AND_ASSIGN(p, Subprocess::Start({strace, "-f", "-ttt", "-T", "-yy", "-o",
                                             dir.File("true.log"), "/bin/true"},
                                            dir.File("o"), dir.File("e")));
  ASSERT_OK_AND_ASSIGN(status, p.WaitForExit(absl::Seconds(30)));
  ASSERT_EQ(status, 0) << FileTail(dir.File("e"));
  ASSERT_OK_AND_ASSIGN(c, RunReqcost(dir, {"import", "strace", dir.File("true.log"), "-o",
                                           dir.File("true.cap")}));
  EXPECT_EQ(c.code, 7) << c.err;
  EXPECT_THAT(c.err, ::testing::HasSubstr("has no socket syscalls"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("true.cap")));
}

// The same stack profiled live by reqcost (default mode) and through strace:
// the most common per-request list of syscalls (side, name and count) is
// the same. Live capture in the default mode sees socket reads and writes at
// the socket layer, where each socket operation is one event with the
// syscall that made it, as strace shows the calls: so names and counts map
// one to one, with no renaming. Also prints what strace costs on a short
// page (hello.php): ab's time per request with and without strace.
TEST(StraceVersusLiveTest, PerRequestSyscallsMatchLiveCapture) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-strace"));
  ASSERT_OK_AND_ASSIGN(stack, StartStack(dir));
  AbOptions ab;
  ab.url = stack.nginx.Url("/sleep.php?us=" + std::to_string(kWorkUs));
  ab.requests = kRequests;
  ab.concurrency = 2;
  ASSERT_OK_AND_ASSIGN(live, ProfileAb(dir, stack.pids(), ab));
  ASSERT_EQ(live.ab.complete, kRequests);
  ASSERT_OK_AND_ASSIGN(live_requests, ReplayRequests(live.capture));

  ASSERT_OK_AND_ASSIGN(im, StraceAndImport(dir, stack, {"-f", "-ttt", "-T", "-yy", "-s", "256"}));
  ASSERT_EQ(im.ab.complete, kRequests);
  std::map<std::string, int> live_shapes = Shapes(live_requests);
  std::map<std::string, int> strace_shapes = Shapes(im.requests);
  for (const auto& [name, shapes] : {std::pair{"live", &live_shapes}, {"strace", &strace_shapes}}) {
    for (const auto& [shape, n] : *shapes) std::printf("%-6s %2d x  %s\n", name, n, shape.c_str());
  }
  auto [live_shape, live_n] = CommonShape(live_shapes);
  auto [strace_shape, strace_n] = CommonShape(strace_shapes);
  EXPECT_EQ(strace_shape, live_shape);
  // The common shape is most requests' in both runs.
  EXPECT_GE(live_n, kRequests / 2);
  EXPECT_GE(strace_n, kRequests / 2);

  // What strace costs a short request (printed: two separate runs, no
  // direction asserted).
  AbOptions hello;
  hello.url = stack.nginx.Url("/hello.php");
  hello.requests = 200;
  ASSERT_OK_AND_ASSIGN(plain, RunAb(hello));
  ASSERT_OK_AND_ASSIGN(strace, StraceRun::Attach(dir, dir.File("hello.log"),
                                                 {"-f", "-ttt", "-T", "-yy", "-s", "256"},
                                                 stack.pids()));
  absl::StatusOr<AbResult> traced = RunAb(hello);
  ASSERT_OK(strace.Stop());
  ASSERT_OK(traced.status());
  std::printf("hello.php: %.3f ms per request plain, %.3f ms under strace (x%.1f)\n",
              plain.time_per_request_ms, traced->time_per_request_ms,
              traced->time_per_request_ms / plain.time_per_request_ms);
}

}  // namespace
}  // namespace reqcost::testing
