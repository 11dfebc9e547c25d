// `reqcost import strace` on logs of real strace attached to real
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

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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
  return absl::NotFoundError(
      "strace not found: apt-get install strace (scripts/bootstrap.sh)");
}

// strace attached to processes, writing LOG (or LOG.PID files with -ff).
class StraceRun {
 public:
  // Starts strace with `flags` on every PID and waits (bounded) until it
  // says it attached to each one.
  static absl::StatusOr<StraceRun> Attach(const TempDir& dir,
                                          const std::string& log,
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
    ASSIGN_OR_RETURN(Subprocess p,
                     Subprocess::Start(argv, dir.File("strace.out"), run.err_));
    run.process_.emplace(std::move(p));
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> err = ReadFileToString(run.err_);
      size_t attached = 0;
      for (size_t at = 0;
           err.ok() && (at = err->find(" attached", at)) != std::string::npos;
           ++at) {
        ++attached;
      }
      if (attached >= pids.size()) return run;
      if (!run.process_->running()) {
        return absl::InternalError(
            absl::StrCat("strace exited: ", FileTail(run.err_)));
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
absl::StatusOr<Command> RunReqcost(const TempDir& dir,
                                   std::vector<std::string> args) {
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
absl::StatusOr<Stack> StartStack(const TempDir& dir,
                                 const std::string& fpm_listen = "") {
  PhpFpmOptions fopts;
  fopts.listen = fpm_listen;
  ASSIGN_OR_RETURN(Server fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSIGN_OR_RETURN(Server nginx, StartNginx(dir, nopts));
  return Stack{std::move(fpm), std::move(nginx)};
}

// Per request: how many calls of each name it holds on each side, as a
// sorted "side name xN" list (its shape, independent of timing). The backend's
// calls after its reply write (php-fpm's shutdown, its reads until nginx
// closes, its close) are left out: they are the connection's teardown, and
// whether they come before the profiler finalizes the request (and so are in
// its list) is a race of nginx's last client write against php-fpm's teardown,
// which live capture loses for most requests and strace's slowdown of nginx
// turns round.
std::string Shape(const json& request) {
  double reply_write = -1;
  for (const json& s : request["syscalls"]) {
    std::string name = s["name"];
    if (s["side"] == "backend" && (name == "write" || name == "writev" ||
                                   name == "sendto" || name == "sendmsg")) {
      reply_write = std::max(reply_write, s["offset_us"].get<double>());
    }
  }
  std::map<std::string, int> counts;
  for (const json& s : request["syscalls"]) {
    if (s["side"] == "backend" && reply_write >= 0 &&
        s["offset_us"].get<double>() > reply_write) {
      continue;
    }
    ++counts[absl::StrCat(s["side"].get<std::string>(), " ",
                          s["name"].get<std::string>())];
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
std::pair<std::string, int> CommonShape(
    const std::map<std::string, int>& shapes) {
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

// One php-fpm request as strace logged it, times in seconds. php-fpm reads
// its own clock (clock_gettime, no syscall) next to a times() call twice
// per request: after accept and poll, before its first read of the
// request, and in fpm_request_end, before its access-log write, request
// shutdown and reply write. reqcost's backend phase runs from the end of
// that first read to the end of the reply write, so
//   backend = php-fpm's clock - head + tail,
// with head = [clock start, first read's end] and tail = [clock end, reply
// write's end]: a few syscalls each, which strace slows by its stops (tail
// has about five, head one).
struct FpmRequestInLog {
  pid_t pid = 0;  // the worker
  double clock_start = -1;
  double first_read_end = -1;
  double clock_end = -1;
  double reply_end = -1;
  double fpm_us = -1;  // php-fpm's own clock for it (its access-log line)
  double head_us() const { return 1e6 * (first_read_end - clock_start); }
  double tail_us() const { return 1e6 * (reply_end - clock_end); }
  double backend_us() const { return 1e6 * (reply_end - first_read_end); }
};

// A line of an strace log: the thread, the time (-ttt or -tt) and the rest.
// `file_pid` is the PID of a -ff file (its suffix), "" for a -f log.
bool SplitStraceLine(absl::string_view line, const std::string& file_pid,
                     std::string* pid, double* ts, absl::string_view* rest) {
  absl::string_view ts_text;
  std::vector<absl::string_view> f =
      absl::StrSplit(line, absl::MaxSplits(' ', 2));
  if (file_pid.empty()) {
    if (f.size() != 3) return false;
    *pid = std::string(f[0].substr(0, f[0].find('<')));
    ts_text = f[1];
    *rest = f[2];
  } else {
    std::vector<absl::string_view> g =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (g.size() != 2) return false;
    *pid = file_pid;
    ts_text = g[0];
    *rest = g[1];
  }
  if (!absl::StrContains(ts_text, ':')) return absl::SimpleAtod(ts_text, ts);
  std::vector<absl::string_view> hms = absl::StrSplit(ts_text, ':');
  double h = 0, m = 0, sec = 0;
  if (hms.size() != 3 || !absl::SimpleAtod(hms[0], &h) ||
      !absl::SimpleAtod(hms[1], &m) || !absl::SimpleAtod(hms[2], &sec)) {
    return false;
  }
  *ts = h * 3600 + m * 60 + sec;
  return true;
}

// php-fpm's requests in strace logs (-f or -ff, -ttt or -tt, with -T -yy),
// each with its four marks; unfinished/resumed pairs are joined, so a call
// strace split (the slow ones, when another process's line came between)
// counts as any other.
std::vector<FpmRequestInLog> FpmRequestsInLog(
    const std::vector<std::string>& files) {
  struct Thread {
    bool accepted = false;
    FpmRequestInLog request;
    std::string pending;  // the unfinished call's name
    double pending_ts = 0;
    bool pending_on_socket = false;
  };
  auto on_socket = [](absl::string_view args) {  // -yy's annotation
    return absl::StrContains(args, "<UNIX-STREAM:[") ||
           absl::StrContains(args, "<UNIX:[") ||
           absl::StrContains(args, "<TCP:[") ||
           absl::StrContains(args, "<TCPv6:[");
  };
  std::map<std::string, Thread> threads;
  std::vector<FpmRequestInLog> done;
  for (const std::string& file : files) {
    absl::StatusOr<std::string> text = ReadFileToString(file);
    if (!text.ok()) continue;
    std::string suffix = file.substr(file.rfind('.') + 1);
    if (suffix.find_first_not_of("0123456789") != std::string::npos)
      suffix.clear();
    for (absl::string_view line :
         absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      std::string pid;
      double ts = 0;
      absl::string_view rest;
      if (!SplitStraceLine(line, suffix, &pid, &ts, &rest)) continue;
      Thread& t = threads[pid];
      // The call's name, start, end (-T from its start) and socket.
      std::string name;
      double start = ts;
      bool socket = false;
      bool resumed = absl::StartsWith(rest, "<... ");
      if (resumed) {
        name = std::string(rest.substr(5, rest.find(' ', 5) - 5));
        if (name != t.pending) continue;
        start = t.pending_ts;
        socket = t.pending_on_socket;
        t.pending.clear();
      } else {
        name = std::string(rest.substr(0, rest.find('(')));
        socket = on_socket(rest);
        if (absl::EndsWith(rest, "<unfinished ...>")) {
          t.pending = name;
          t.pending_ts = ts;
          t.pending_on_socket = socket;
          if (name != "times") continue;  // times() marks its start
        }
      }
      double dur = 0;
      size_t open = rest.rfind('<');
      if (absl::EndsWith(rest, ">") && open != absl::string_view::npos) {
        (void)absl::SimpleAtod(rest.substr(open + 1, rest.size() - open - 2),
                               &dur);
      }
      double end = start + dur;
      bool failed = absl::StrContains(rest, ") = -1 ");
      FpmRequestInLog& r = t.request;
      if ((name == "accept" || name == "accept4") && !failed) {
        t.accepted = true;
      } else if (name == "times" && !resumed) {
        if (t.accepted) {
          r = FpmRequestInLog{};
          (void)absl::SimpleAtoi(pid, &r.pid);
          r.clock_start = ts;
          t.accepted = false;
        } else if (r.first_read_end >= 0 && r.clock_end < 0) {
          r.clock_end = ts;
        }
      } else if (socket &&
                 (name == "read" || name == "recvfrom" || name == "readv") &&
                 r.clock_start >= 0 && r.first_read_end < 0) {
        r.first_read_end = end;
      } else if (socket &&
                 (name == "write" || name == "writev" || name == "sendto") &&
                 r.clock_end >= 0 && r.reply_end < 0) {
        r.reply_end = end;
        done.push_back(r);
        r = FpmRequestInLog{};
      }
    }
  }
  return done;
}

// Gives each logged request php-fpm's own duration for it: a worker serves
// one request at a time and logs it when done, so its access-log lines come
// in the order of its requests in the strace log. False when the counts
// per worker differ.
bool PairWithAccessLog(const std::vector<PhpFpmAccessEntry>& access,
                       std::vector<FpmRequestInLog>* in_log) {
  std::map<pid_t, std::vector<double>> by_worker;
  for (const PhpFpmAccessEntry& e : access)
    by_worker[e.pid].push_back(e.duration_us);
  std::map<pid_t, size_t> next;
  for (FpmRequestInLog& q : *in_log) {
    const std::vector<double>& lines = by_worker[q.pid];
    size_t& i = next[q.pid];
    if (i >= lines.size()) return false;
    q.fpm_us = lines[i++];
  }
  for (const auto& [pid, lines] : by_worker) {
    if (next[pid] != lines.size()) return false;
  }
  return true;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Imported {
  AbResult ab;
  json report;
  std::vector<json> requests;
  std::vector<PhpFpmAccessEntry> fpm_log;  // this run's lines
  std::string summary;                     // what import printed
  std::vector<FpmRequestInLog> in_log;     // php-fpm's requests in the log
  std::string capture;                     // the imported capture
};

// Runs ab on /sleep.php under strace `flags`, imports the log, reports.
absl::StatusOr<Imported> StraceAndImport(
    const TempDir& dir, const Stack& stack,
    const std::vector<std::string>& flags) {
  ASSIGN_OR_RETURN(auto before, ReadPhpFpmAccessLog(stack.fpm.request_log()));
  const std::string log = "strace.log";
  ASSIGN_OR_RETURN(StraceRun strace,
                   StraceRun::Attach(dir, dir.File(log), flags, stack.pids()));
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
  im.in_log = FpmRequestsInLog(files);
  for (const std::string& f : files) args.push_back(f);
  std::string capture = dir.File("strace.cap");
  im.capture = capture;
  for (const char* a : {"-o", capture.c_str(), "--force"}) args.push_back(a);
  ASSIGN_OR_RETURN(Command imp, RunReqcost(dir, args));
  if (imp.code != 0) {
    return absl::InternalError(
        absl::StrCat("import exited ", imp.code, ": ", imp.err));
  }
  im.summary = imp.out;
  ASSIGN_OR_RETURN(Command rep,
                   RunReqcost(dir, {"report", capture, "--format", "json"}));
  if (rep.code != 0)
    return absl::InternalError(absl::StrCat("report: ", rep.err));
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
// request, the backend is measured (both ends paired from -yy's inodes),
// equal to the log's own interval for each request and within 5% of
// php-fpm's own clock for the median request, and the request lines come
// from -s.
TEST_P(StraceImportTest, RequestsAndBackendMatchAbAndPhpFpm) {
  if (geteuid() != 0)
    GTEST_SKIP() << "strace -p needs root (ptrace of the servers)";
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
  // Per request, from the log: the backend phase as the import must time
  // it, and php-fpm's clock paired through its access log.
  std::vector<FpmRequestInLog> in_log = im.in_log;
  ASSERT_EQ(in_log.size(), static_cast<size_t>(kRequests))
      << "php-fpm's requests (times() after accept ... reply write) not all "
         "found in the log";
  ASSERT_TRUE(PairWithAccessLog(im.fpm_log, &in_log))
      << "access-log lines per worker differ";
  // The import's backend phases are the log's, request for request (as
  // sorted lists: the capture does not name the backend worker).
  std::vector<double> imported, logged;
  for (const json& q : im.requests) {
    if (q.value("complete", true))
      imported.push_back(q["backend_us"].get<double>());
  }
  for (const FpmRequestInLog& q : in_log) logged.push_back(q.backend_us());
  std::sort(imported.begin(), imported.end());
  std::sort(logged.begin(), logged.end());
  ASSERT_EQ(imported.size(), logged.size());
  for (size_t i = 0; i < imported.size(); ++i) {
    EXPECT_NEAR(imported[i], logged[i], 2.0)
        << "the " << i << "th shortest backend phase";
  }
  std::vector<double> gaps, relative, unexplained, tails;
  for (const FpmRequestInLog& q : in_log) {
    gaps.push_back(q.backend_us() - q.fpm_us);
    relative.push_back((q.backend_us() - q.fpm_us) / q.fpm_us);
    unexplained.push_back(
        std::abs(q.backend_us() - (q.fpm_us - q.head_us() + q.tail_us())));
    tails.push_back(q.tail_us());
  }
  Summary fpm = Summarize(DurationsUs(im.fpm_log));
  double backend_mean = r["phases"]["backend"]["mean_us"].get<double>();
  Summary tail = Summarize(tails);
  std::printf(
      "strace %s: backend minus php-fpm's clock per request: median %+.1f us "
      "(%+.2f%%), "
      "mean %+.1f us; means %.1f and %.1f us (%+.2f%%); php-fpm's tail after "
      "its "
      "clock: median %.1f us, max %.1f us; unexplained: median %.1f us; total "
      "%.1f us, "
      "ab %.2f ms per request\n",
      GetParam().name.c_str(), Median(gaps), 100 * Median(relative),
      Summarize(gaps).mean, backend_mean, fpm.mean,
      100 * (backend_mean - fpm.mean) / fpm.mean, tail.p50, tail.max,
      Median(unexplained), r["phases"]["total"]["mean_us"].get<double>(),
      im.ab.time_per_request_ms);
  // The pairing is right: each request's gap is what the two clocks do not
  // share (head and tail, as logged), up to where php-fpm's clock read
  // falls beside its times() call (a stop's delay: medians of 3-40 us
  // seen; a request paired with another's line is off by milliseconds).
  EXPECT_LT(Median(unexplained), 200.0);
  // The 5%, per request. php-fpm stops its clock before its
  // access-log write, request shutdown and reply write, about five
  // syscalls that the backend phase holds and strace stops twice each; a
  // few requests wait milliseconds there for strace (serving nginx's
  // stops), which moves the mean, not the typical request.
  EXPECT_LT(std::abs(Median(relative)), 0.05);
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
  ASSERT_OK_AND_ASSIGN(cmp, RunReqcost(dir, {"compare", im.capture, im.capture,
                                             "--format", "json"}));
  EXPECT_EQ(cmp.code, 0) << cmp.err;
  EXPECT_EQ(json::parse(cmp.out)["b"]["requests"]["complete"].get<int>(),
            kRequests);
  ASSERT_OK_AND_ASSIGN(tl, RunReqcost(dir, {"timeline", im.capture, "-o",
                                            dir.File("trace.json")}));
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
  if (geteuid() != 0)
    GTEST_SKIP() << "strace -p needs root (ptrace of the servers)";
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
  ASSERT_OK_AND_ASSIGN(
      p, Subprocess::Start({strace, "-f", "-ttt", "-T", "-yy", "-o",
                            dir.File("true.log"), "/bin/true"},
                           dir.File("o"), dir.File("e")));
  ASSERT_OK_AND_ASSIGN(status, p.WaitForExit(absl::Seconds(30)));
  ASSERT_EQ(status, 0) << FileTail(dir.File("e"));
  ASSERT_OK_AND_ASSIGN(
      c, RunReqcost(dir, {"import", "strace", dir.File("true.log"), "-o",
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

  ASSERT_OK_AND_ASSIGN(
      im,
      StraceAndImport(dir, stack, {"-f", "-ttt", "-T", "-yy", "-s", "256"}));
  ASSERT_EQ(im.ab.complete, kRequests);
  std::map<std::string, int> live_shapes = Shapes(live_requests);
  std::map<std::string, int> strace_shapes = Shapes(im.requests);
  for (const auto& [name, shapes] :
       {std::pair{"live", &live_shapes}, {"strace", &strace_shapes}}) {
    for (const auto& [shape, n] : *shapes)
      std::printf("%-6s %2d x  %s\n", name, n, shape.c_str());
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
  ASSERT_OK_AND_ASSIGN(
      strace, StraceRun::Attach(dir, dir.File("hello.log"),
                                {"-f", "-ttt", "-T", "-yy", "-s", "256"},
                                stack.pids()));
  absl::StatusOr<AbResult> traced = RunAb(hello);
  ASSERT_OK(strace.Stop());
  ASSERT_OK(traced.status());
  std::printf(
      "hello.php: %.3f ms per request plain, %.3f ms under strace (x%.1f)\n",
      plain.time_per_request_ms, traced->time_per_request_ms,
      traced->time_per_request_ms / plain.time_per_request_ms);
}

}  // namespace
}  // namespace reqcost::testing
