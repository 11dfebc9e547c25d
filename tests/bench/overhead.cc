// Overhead benchmark: what tracing costs a live nginx + php-fpm stack.
//
// Starts nginx (1 worker) in front of php-fpm (static pool) on a unix socket
// and drives it with ab for a fixed time per run, in up to three scenarios:
//   hello.php at concurrency 1 and at saturation (4): a page that does
//            nothing, so the stack's own syscalls are all there is
//   files.php at concurrency 2: a file-heavy page (300 path checks and 50
//            small file reads per request, a few ms of PHP;
//            samples/php/files.php), where hooks that also see file I/O
//            cost most
//   calls at concurrency 1 (--page=calls, not in the default run): a page
//            making 25 backend calls per request (samples/php/calls.php: a
//            connect and 24 GETs) to a redis-server the benchmark starts on
//            a loopback port in its temp dir and stops by PID. Beside the
//            machine's CPU it reports the traced processes' own CPU per
//            request (nginx and php-fpm, /proc/PID/schedstat), and when
//            hello.php ran at the same concurrency (--page=hello,calls) the
//            cost per call: (calls' traced - untraced) less hello's, over 25;
//            its BPF statistics are 3 runs of each page in turn, less the
//            programs' runs for other processes over 2 idle seconds.
// Each round of a scenario runs the same load once per mode, in an order
// that rotates from round to round, always with an untraced run (base):
//   base              nothing attached
//   reqcost           `reqcost attach -p NGINX -p FPM --format json` (default
//                     ring buffer, no payload, full request assembly),
//                     attached before the load starts, stopped with SIGINT
//                     after it
//   reqcost-syscalls  the same with --syscall-times (syscall tracepoints on
//                     every traced syscall instead of the socket-layer hooks)
//   floor-*           empty BPF programs (tests/bench/floor.bpf.c) on a set of
//                     hooks: what attaching anything there costs this kernel
//                     before any program does work
//     floor-one-tp    sys_enter_close only: the syscall slow path alone
//     floor-sock      tp_btf sock_send_length, sock_recv_length,
//                     inet_sock_set_state, each with a tgid hash check
//     floor-new       the new default design's hooks: the RC_SETUP_SYSCALLS
//                     enter/exit pairs, the tp_btf sock_send_length /
//                     sock_recv_length pair (tgid check), the 3 sched raw
//                     tracepoints
//     floor-old       the old design's hooks: every RC_TRACED_SYSCALLS pair
//                     and the 3 sched raw tracepoints
//     floor-rawsys    raw_tp sys_enter / sys_exit with a tgid hash check
//     floor-emit      floor-new's hooks emitting one record of reqcost's
//                     size per record reqcost emits there, stamped at enter
//                     and exit, and nothing else (floor.bpf.c); drained by a
//                     thread every 100 ms. Not run unless asked for.
//   strace            `strace -f -p` on the nginx worker and every php-fpm
//                     child, attached the same way
// and prints each run, the per-round ratios (traced / base of the same
// round) and, per scenario and mode, their medians and spread: throughput,
// p50 and p99 latency (from ab -e, µs resolution), and the machine's CPU
// time per request; for the reqcost modes also events/s, dropped events and
// requests complete against ab's count and the collector's CPU per request
// during the load. Then the overhead targets, met, missed or not measured,
// for the default reqcost mode: CPU per request within floor-new's + 0.035
// at hello.php (needs floor-new), BPF at most 7 µs and the collector at
// most 5 µs per request there, files.php's CPU per request at most 1.015,
// no dropped event. A last run per scenario and reqcost mode (and
// floor-emit) with kernel.bpf_stats_enabled=1 reports the time per
// invocation of every BPF program (run_time_ns / run_cnt), kept apart from
// the measured rounds because the statistics themselves cost time.
//
// A mode that fails (its tracer does not start, its load fails) prints the
// error and is left out for the rest of that scenario; the others go on.
// Not a pass/fail test: it exits 0 when every run worked (targets are
// printed as met or missed), 1 when something failed, 77 when it cannot run
// here (not root), unless REQCOST_REQUIRE_BPF=1.
//
// Flags: --rounds=N (5) --seconds=S (3, whole seconds: ab -t)
//        --page=hello|files|both|calls, or a list (hello,calls) (both)
//        --concurrency=1,4 (hello.php) --files-concurrency=2 (files.php)
//        --calls-concurrency=1 (calls)
//        --modes=base,reqcost,... (base,reqcost,reqcost-syscalls,floor-new,
//          floor-old,strace; base is always run)
//        --no-strace --no-floor (drop strace / every floor-* mode)
//        --no-bpf-stats --fpm-children=N (4)
//        --quick: a smoke run of about a minute to check the harness (2
//          rounds of 1 s, no strace, no bpf-stats; later flags override)
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "collector/tracefs.h"
#include "floor_bpf.skel.h"
#include "nlohmann/json.hpp"
#include "tests/support/stack.h"
#include "traced_syscalls.h"

namespace reqcost::bench {
namespace {

using testing::FindBinary;
using testing::ReadFileToString;
using testing::Server;
using testing::Subprocess;
using testing::TempDir;

constexpr int kExitSkip = 77;

enum class Mode {
  kBase,
  kReqcost,
  kReqcostSyscalls,
  kFloorOneTp,
  kFloorSock,
  kFloorNew,
  kFloorOld,
  kFloorRawSys,
  kFloorEmit,
  kStrace,
};

constexpr Mode kAllModes[] = {
    Mode::kBase,       Mode::kReqcost,     Mode::kReqcostSyscalls,
    Mode::kFloorOneTp, Mode::kFloorSock,   Mode::kFloorNew,
    Mode::kFloorOld,   Mode::kFloorRawSys, Mode::kFloorEmit,
    Mode::kStrace};

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kBase:
      return "base";
    case Mode::kReqcost:
      return "reqcost";
    case Mode::kReqcostSyscalls:
      return "reqcost-syscalls";
    case Mode::kFloorOneTp:
      return "floor-one-tp";
    case Mode::kFloorSock:
      return "floor-sock";
    case Mode::kFloorNew:
      return "floor-new";
    case Mode::kFloorOld:
      return "floor-old";
    case Mode::kFloorRawSys:
      return "floor-rawsys";
    case Mode::kFloorEmit:
      return "floor-emit";
    case Mode::kStrace:
      return "strace";
  }
  return "?";
}

std::optional<Mode> ModeByName(absl::string_view name) {
  for (Mode m : kAllModes) {
    if (name == ModeName(m)) return m;
  }
  return std::nullopt;
}

bool IsReqcost(Mode m) {
  return m == Mode::kReqcost || m == Mode::kReqcostSyscalls;
}

bool IsFloor(Mode m) {
  return m == Mode::kFloorOneTp || m == Mode::kFloorSock ||
         m == Mode::kFloorNew || m == Mode::kFloorOld ||
         m == Mode::kFloorRawSys || m == Mode::kFloorEmit;
}

// The names of floor.bpf.c's programs that a floor mode attaches.
std::vector<std::string> FloorPrograms(Mode m) {
#define RC_FLOOR_PAIR(name, sc, buf_arg, iovcnt_arg) \
  "enter_" #name, "exit_" #name,
  const std::vector<std::string> sched = {"on_fork", "on_exec",
                                          "on_exit_process"};
  std::vector<std::string> progs;
  switch (m) {
    case Mode::kFloorOneTp:
      progs = {"enter_close"};
      break;
    case Mode::kFloorSock:
      progs = {"sock_send", "sock_recv", "sock_state"};
      break;
    case Mode::kFloorNew:
      progs = {RC_SETUP_SYSCALLS(RC_FLOOR_PAIR) "sock_send", "sock_recv"};
      progs.insert(progs.end(), sched.begin(), sched.end());
      break;
    case Mode::kFloorOld:
      progs = {RC_TRACED_SYSCALLS(RC_FLOOR_PAIR)};
      progs.insert(progs.end(), sched.begin(), sched.end());
      break;
    case Mode::kFloorRawSys:
      progs = {"raw_sys_enter", "raw_sys_exit"};
      break;
    case Mode::kFloorEmit:
#define RC_FLOOR_EMIT_PAIR(name, sc, buf_arg, iovcnt_arg) \
  "emit_enter_" #name, "emit_exit_" #name,
      progs = {RC_SETUP_SYSCALLS(RC_FLOOR_EMIT_PAIR) "emit_sock_send",
               "emit_sock_recv"};
#undef RC_FLOOR_EMIT_PAIR
      progs.insert(progs.end(), sched.begin(), sched.end());
      break;
    default:
      break;
  }
#undef RC_FLOOR_PAIR
  return progs;
}

// One scenario: a page at one concurrency.
struct Scenario {
  std::string page;  // "hello.php", "files.php" or "calls.php?..."
  int concurrency = 1;

  // The page's name without its query string, and the concurrency.
  std::string Label() const {
    return absl::StrCat(page.substr(0, page.find('?')), " c=", concurrency);
  }
};

// The calls page: a connect and 24 GETs to Redis, 25 calls per request.
constexpr int kCallsPerRequest = 25;
std::string CallsPage(int redis_port) {
  return absl::StrCat("calls.php?redis=", redis_port,
                      "&rn=", kCallsPerRequest - 1);
}
bool IsCallsPage(const std::string& page) {
  return absl::StartsWith(page, "calls.php");
}

struct Flags {
  int rounds = 5;
  double seconds = 3;
  bool hello = true;
  bool files = true;
  bool calls = false;
  std::vector<int> calls_concurrency = {1};
  std::vector<int> concurrency = {1, 4};
  std::vector<int> files_concurrency = {2};
  std::vector<Mode> modes = {
      Mode::kBase,     Mode::kReqcost,  Mode::kReqcostSyscalls,
      Mode::kFloorNew, Mode::kFloorOld, Mode::kStrace};
  bool bpf_stats = true;
  int fpm_children = 4;
};

// Some of floor.bpf.c's empty programs, attached while it lives; its tgid
// map holds the given processes.
class FloorProbe {
 public:
  static absl::StatusOr<std::unique_ptr<FloorProbe>> Attach(
      const std::vector<std::string>& programs,
      const std::vector<pid_t>& tgids) {
    if (absl::StatusOr<std::string> t = collector::EnsureTracefs(); !t.ok())
      return t.status();
    std::unique_ptr<FloorProbe> probe(new FloorProbe(floor_bpf__open()));
    if (probe->skel_ == nullptr) {
      return absl::InternalError(
          absl::StrCat("opening the floor programs: ", std::strerror(errno)));
    }
    std::set<std::string> wanted(programs.begin(), programs.end());
    bpf_program* prog;
    bpf_object__for_each_program(prog, probe->skel_->obj) {
      bool use = wanted.erase(bpf_program__name(prog)) > 0;
      bpf_program__set_autoload(prog, use);
    }
    if (!wanted.empty()) {
      return absl::InternalError(absl::StrCat("floor.bpf.c has no program ",
                                              absl::StrJoin(wanted, ", ")));
    }
    const bool emits = std::find(programs.begin(), programs.end(),
                                 "emit_sock_recv") != programs.end();
    bpf_map__set_autocreate(probe->skel_->maps.floor_events, emits);
    bpf_map__set_autocreate(probe->skel_->maps.floor_enter, emits);
    if (int err = floor_bpf__load(probe->skel_); err != 0) {
      return absl::InternalError(
          absl::StrCat("loading the floor programs: ", std::strerror(-err)));
    }
    for (pid_t tgid : tgids) {
      uint32_t key = static_cast<uint32_t>(tgid);
      uint8_t one = 1;
      if (bpf_map__update_elem(probe->skel_->maps.traced, &key, sizeof(key),
                               &one, sizeof(one), BPF_ANY) != 0) {
        return absl::InternalError(absl::StrCat(
            "filling the floor's tgid map: ", std::strerror(errno)));
      }
    }
    bpf_object__for_each_program(prog, probe->skel_->obj) {
      if (!bpf_program__autoload(prog)) continue;
      bpf_link* link = bpf_program__attach(prog);
      if (link == nullptr) {
        return absl::InternalError(absl::StrCat("attaching the floor program ",
                                                bpf_program__name(prog), ": ",
                                                std::strerror(errno)));
      }
      probe->links_.push_back(link);
    }
    if (emits) {
      probe->ring_ = ring_buffer__new(
          bpf_map__fd(probe->skel_->maps.floor_events),
          [](void*, void*, size_t) { return 0; }, nullptr, nullptr);
      if (probe->ring_ == nullptr) {
        return absl::InternalError(absl::StrCat(
            "the floor's ring buffer: ", std::strerror(errno)));
      }
      // Drained on a timer, as reqcost's collector does.
      probe->drain_ = std::thread([p = probe.get()] {
        while (!p->stop_) ring_buffer__poll(p->ring_, 100);
        ring_buffer__consume(p->ring_);
      });
    }
    return probe;
  }
  ~FloorProbe() {
    for (bpf_link* link : links_) bpf_link__destroy(link);
    stop_ = true;
    if (drain_.joinable()) drain_.join();
    ring_buffer__free(ring_);
    floor_bpf__destroy(skel_);
  }
  FloorProbe(const FloorProbe&) = delete;
  FloorProbe& operator=(const FloorProbe&) = delete;

 private:
  explicit FloorProbe(floor_bpf* skel) : skel_(skel) {}
  floor_bpf* skel_;
  std::vector<bpf_link*> links_;
  ring_buffer* ring_ = nullptr;  // floor-emit's, drained by drain_
  std::atomic<bool> stop_{false};
  std::thread drain_;
};

// One ab run.
struct Load {
  int64_t complete = 0;
  int64_t failed = 0;
  int64_t non_2xx = 0;
  double seconds = 0;  // ab's "Time taken for tests"
  double rps = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  // CPU time the whole machine spent (user, system, interrupts: everything
  // but idle, iowait and steal) while ab ran, per request served. At
  // concurrency 1 the machine is not saturated, so this is the cost that
  // throughput shows only in part; it moves less with the host's noise.
  double cpu_us_per_request = 0;
  // CPU time (user + system) of the traced processes alone (nginx, php-fpm:
  // where the BPF programs run) per request; 0 when not measured. Other
  // work on a shared machine does not land here.
  double stack_cpu_us_per_request = 0;
};

// Busy CPU time of the machine so far, in seconds (/proc/stat).
double MachineBusySeconds() {
  std::string text = ReadFileToString("/proc/stat").value_or("");
  std::string line = text.substr(0, text.find('\n'));
  std::vector<absl::string_view> f =
      absl::StrSplit(line, ' ', absl::SkipEmpty());
  // cpu user nice system idle iowait irq softirq steal ...
  double busy = 0;
  for (size_t i : {1, 2, 3, 6, 7}) {
    double v;
    if (i < f.size() && absl::SimpleAtod(f[i], &v)) busy += v;
  }
  return busy / sysconf(_SC_CLK_TCK);
}

// CPU seconds `pids` have used so far: their time on a CPU in ns from
// /proc/PID/schedstat (single-threaded processes: nginx and php-fpm), else
// user + system ticks from /proc/PID/stat (10 ms steps: too coarse for a
// few µs per request over a few thousand requests).
double ProcessesCpuSeconds(const std::vector<pid_t>& pids) {
  double ticks = 0, ns = 0;
  for (pid_t pid : pids) {
    double on_cpu;
    std::string sched =
        ReadFileToString(absl::StrCat("/proc/", pid, "/schedstat"))
            .value_or("");
    if (absl::SimpleAtod(sched.substr(0, sched.find(' ')), &on_cpu)) {
      ns += on_cpu;
      continue;
    }
    std::string stat =
        ReadFileToString(absl::StrCat("/proc/", pid, "/stat")).value_or("");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
    double utime = 0, stime = 0;
    if (f.size() > 12 && absl::SimpleAtod(f[11], &utime) &&
        absl::SimpleAtod(f[12], &stime)) {
      ticks += utime + stime;
    }
  }
  return ns / 1e9 + ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// What one reqcost run reported (its --format json).
struct ReqcostFigures {
  uint64_t events = 0;
  uint64_t dropped = 0;
  uint64_t requests = 0;
  uint64_t complete = 0;
  double duration_s = 0;
};

struct Run {
  Mode mode = Mode::kBase;
  Load load;
  std::optional<ReqcostFigures> reqcost;
  double tracer_cpu_s = 0;  // CPU the tracer used up to the end of the load
  double tracer_load_cpu_s = 0;  // of which during the load (not its start)
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::optional<double> NumberAfter(const std::string& text,
                                  const std::string& label) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&l, label)) continue;
    l = absl::StripLeadingAsciiWhitespace(l);
    size_t end = 0;
    while (
        end < l.size() &&
        (std::isdigit(static_cast<unsigned char>(l[end])) || l[end] == '.')) {
      ++end;
    }
    double v;
    if (end > 0 && absl::SimpleAtod(l.substr(0, end), &v)) return v;
  }
  return std::nullopt;
}

// ab for `seconds` at `concurrency` (-t with a large -n, so the run length
// is fixed in time whatever the throughput), percentiles from its -e CSV.
absl::StatusOr<Load> RunLoad(const TempDir& dir, const std::string& url,
                             int concurrency, double seconds) {
  static int n = 0;
  ++n;
  absl::StatusOr<std::string> ab = FindBinary("ab");
  if (!ab.ok()) return ab.status();
  std::string csv = dir.File(absl::StrCat("ab-", n, ".csv"));
  std::string out = dir.File(absl::StrCat("ab-", n, ".out"));
  std::string err = dir.File(absl::StrCat("ab-", n, ".err"));
  int secs = std::max(1, static_cast<int>(seconds + 0.5));
  // -n after -t: -t resets the request count to 50000.
  std::vector<std::string> argv = {
      *ab,  "-q",      "-t", absl::StrCat(secs),
      "-n", "2000000", "-c", absl::StrCat(concurrency),
      "-s", "30",      "-e", csv,
      url};
  double busy_before = MachineBusySeconds();
  absl::StatusOr<Subprocess> p = Subprocess::Start(argv, out, err);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->WaitForExit(absl::Seconds(secs + 60));
  double busy_s = MachineBusySeconds() - busy_before;
  if (!status.ok()) {
    (void)p->Stop(absl::Seconds(2));
    return absl::DeadlineExceededError("ab did not finish in time (killed)");
  }
  std::string text = ReadFileToString(out).value_or("");
  if (*status != 0) {
    return absl::InternalError(
        absl::StrCat("ab ", testing::DescribeWaitStatus(*status), ": ",
                     testing::FileTail(err)));
  }
  Load load;
  load.complete = static_cast<int64_t>(
      NumberAfter(text, "Complete requests:").value_or(-1));
  load.failed =
      static_cast<int64_t>(NumberAfter(text, "Failed requests:").value_or(0));
  load.non_2xx =
      static_cast<int64_t>(NumberAfter(text, "Non-2xx responses:").value_or(0));
  load.seconds = NumberAfter(text, "Time taken for tests:").value_or(0);
  load.rps = NumberAfter(text, "Requests per second:").value_or(0);
  if (load.complete <= 0 || load.rps <= 0) {
    return absl::InternalError(absl::StrCat("ab printed no report:\n", text));
  }
  load.cpu_us_per_request = busy_s * 1e6 / load.complete;
  std::string csv_text = ReadFileToString(csv).value_or("");
  for (absl::string_view line : absl::StrSplit(csv_text, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    double v;
    if (f.size() != 2 || !absl::SimpleAtod(f[1], &v)) continue;
    if (f[0] == "50") load.p50_ms = v;
    if (f[0] == "99") load.p99_ms = v;
  }
  unlink(csv.c_str());
  return load;
}

// A tracer running as a child: reqcost or strace.
class Tracer {
 public:
  Tracer() = default;

  // Starts `argv` and waits (bounded) until `ready(stderr)` is true.
  template <typename Ready>
  static absl::StatusOr<Tracer> Start(const TempDir& dir,
                                      std::vector<std::string> argv,
                                      Ready ready) {
    static int n = 0;
    ++n;
    Tracer t;
    t.out_ = dir.File(absl::StrCat(ModeTag(argv[0]), "-", n, ".out"));
    t.err_ = dir.File(absl::StrCat(ModeTag(argv[0]), "-", n, ".err"));
    absl::StatusOr<Subprocess> p = Subprocess::Start(argv, t.out_, t.err_);
    if (!p.ok()) return p.status();
    t.process_.emplace(*std::move(p));
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      std::string err = ReadFileToString(t.err_).value_or("");
      if (ready(err)) return t;
      if (!t.process_->running()) {
        return absl::InternalError(absl::StrCat(
            argv[0],
            " exited before it was ready: ", testing::FileTail(t.err_)));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    (void)t.process_->Stop(absl::Seconds(5));
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " was not ready within 30 s"));
  }

  pid_t pid() const { return process_->pid(); }

  // User + system CPU seconds the tracer has used so far (/proc/PID/stat).
  double CpuSeconds() const {
    std::string stat =
        ReadFileToString(absl::StrCat("/proc/", pid(), "/stat")).value_or("");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return 0;
    std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
    // After "pid (comm) ": state is field 0, utime 11, stime 12 (in ticks).
    double utime = 0, stime = 0;
    if (f.size() < 13 || !absl::SimpleAtod(f[11], &utime) ||
        !absl::SimpleAtod(f[12], &stime)) {
      return 0;
    }
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  // SIGINT, then waits (bounded); returns stdout. SIGKILL after 60 s.
  absl::StatusOr<std::string> Stop() {
    kill(process_->pid(), SIGINT);
    absl::StatusOr<int> status = process_->WaitForExit(absl::Seconds(60));
    if (!status.ok()) {
      (void)process_->Stop(absl::Seconds(2));
      return absl::DeadlineExceededError(
          "tracer did not stop within 60 s of SIGINT (killed)");
    }
    std::string out = ReadFileToString(out_).value_or("");
    unlink(out_.c_str());
    // strace re-raises the SIGINT it was stopped with.
    bool interrupted = WIFSIGNALED(*status) && WTERMSIG(*status) == SIGINT;
    if (!interrupted && (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)) {
      return absl::InternalError(
          absl::StrCat("tracer ", testing::DescribeWaitStatus(*status), ": ",
                       testing::FileTail(err_)));
    }
    unlink(err_.c_str());
    return out;
  }

 private:
  static std::string ModeTag(const std::string& path) {
    return path.find("strace") != std::string::npos ? "strace" : "reqcost";
  }
  std::string out_, err_;
  std::optional<Subprocess> process_;
};

absl::StatusOr<ReqcostFigures> ParseReport(const std::string& out) {
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.contains("capture") || !j.contains("requests")) {
    return absl::InternalError(
        absl::StrCat("reqcost printed no JSON report:\n", out.substr(0, 2000)));
  }
  ReqcostFigures f;
  f.events = j["capture"].value("events", uint64_t{0});
  f.dropped = j["capture"].value("dropped_events", uint64_t{0});
  f.duration_s = j["capture"].value("duration_s", 0.0);
  f.requests = j["requests"].value("count", uint64_t{0});
  f.complete = j["requests"].value("complete", uint64_t{0});
  return f;
}

// Per-program statistics of the BPF programs a process holds (by fdinfo
// prog_id), read through the kernel's bpf_prog_info.
struct ProgStats {
  std::string name;
  uint64_t run_cnt = 0;
  uint64_t run_time_ns = 0;
};

std::vector<ProgStats> ReadProgStats(pid_t pid) {
  std::vector<uint32_t> ids;
  std::string fdinfo = absl::StrCat("/proc/", pid, "/fdinfo");
  if (DIR* d = opendir(fdinfo.c_str())) {
    while (dirent* ent = readdir(d)) {
      if (ent->d_name[0] == '.') continue;
      std::string text =
          ReadFileToString(absl::StrCat(fdinfo, "/", ent->d_name)).value_or("");
      if (std::optional<double> id = NumberAfter(text, "prog_id:")) {
        ids.push_back(static_cast<uint32_t>(*id));
      }
    }
    closedir(d);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<ProgStats> out;
  for (uint32_t id : ids) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      out.push_back({info.name, info.run_cnt, info.run_time_ns});
    }
    close(fd);
  }
  return out;
}

// What one scenario and mode gave over the rounds.
struct ModeResult {
  std::vector<double> rps, rps_ratio, p50_ratio, p99_ratio, cpu_ratio;
  // Per round: traced - untraced CPU per request of the traced processes
  // and of the machine (µs), and the tracer's own CPU per request.
  std::vector<double> stack_delta_us, machine_delta_us, tracer_us;
  std::vector<double> events_per_s, events_per_request;
  uint64_t max_dropped = 0;
  std::vector<std::string> complete;  // reqcost's complete / ab's, per run
  std::string error;                  // why the mode was left out, if it was
};

struct ScenarioResult {
  Scenario scenario;
  std::vector<double> base_rps, base_cpu, base_stack_cpu;
  std::map<Mode, ModeResult> modes;
};

class Bench {
 public:
  Bench(const Flags& flags, const TempDir& dir, const Server& nginx,
        const Server& fpm)
      : flags_(flags), dir_(dir), nginx_(nginx), fpm_(fpm) {}

  std::string Url(const Scenario& s) const {
    return nginx_.Url(absl::StrCat("/", s.page));
  }

  absl::StatusOr<Run> RunOne(Mode mode, const Scenario& scenario) {
    Run run;
    run.mode = mode;
    std::optional<Tracer> tracer;
    std::unique_ptr<FloorProbe> floor;
    if (IsFloor(mode)) {
      std::vector<pid_t> tgids = nginx_.AllPids();
      for (pid_t p : fpm_.AllPids()) tgids.push_back(p);
      absl::StatusOr<std::unique_ptr<FloorProbe>> probe =
          FloorProbe::Attach(FloorPrograms(mode), tgids);
      if (!probe.ok()) return probe.status();
      floor = *std::move(probe);
    } else if (IsReqcost(mode)) {
      absl::StatusOr<Tracer> t = StartReqcost(mode);
      if (!t.ok()) return t.status();
      tracer.emplace(*std::move(t));
    } else if (mode == Mode::kStrace) {
      absl::StatusOr<std::string> strace = FindStrace();
      if (!strace.ok()) return strace.status();
      std::vector<pid_t> pids = nginx_.WorkerPids();
      for (pid_t p : fpm_.WorkerPids()) pids.push_back(p);
      std::vector<std::string> argv = {*strace, "-f", "-o",
                                       dir_.File("strace.log")};
      for (pid_t p : pids) {
        argv.push_back("-p");
        argv.push_back(absl::StrCat(p));
      }
      size_t want = pids.size();
      absl::StatusOr<Tracer> t =
          Tracer::Start(dir_, argv, [want](const std::string& err) {
            size_t n = 0;
            for (size_t at = err.find("attached"); at != std::string::npos;
                 at = err.find("attached", at + 1)) {
              ++n;
            }
            return n >= want;
          });
      if (!t.ok()) return t.status();
      tracer.emplace(*std::move(t));
    }
    std::vector<pid_t> stack = nginx_.AllPids();
    for (pid_t p : fpm_.AllPids()) stack.push_back(p);
    const double stack_before = ProcessesCpuSeconds(stack);
    const double tracer_before = tracer ? tracer->CpuSeconds() : 0;
    absl::StatusOr<Load> load =
        RunLoad(dir_, Url(scenario), scenario.concurrency, flags_.seconds);
    const double stack_s = ProcessesCpuSeconds(stack) - stack_before;
    if (load.ok()) {
      load->stack_cpu_us_per_request = stack_s * 1e6 / load->complete;
    }
    if (tracer) {
      run.tracer_cpu_s = tracer->CpuSeconds();
      run.tracer_load_cpu_s = run.tracer_cpu_s - tracer_before;
    }
    absl::StatusOr<std::string> out =
        tracer ? tracer->Stop() : absl::StatusOr<std::string>("");
    floor.reset();
    if (mode == Mode::kStrace) unlink(dir_.File("strace.log").c_str());
    if (!load.ok()) return load.status();
    if (!out.ok()) return out.status();
    if (load->failed > 0 || load->non_2xx > 0) {
      return absl::InternalError(absl::StrCat("ab saw ", load->failed,
                                              " failed and ", load->non_2xx,
                                              " non-2xx responses"));
    }
    run.load = *load;
    if (IsReqcost(mode)) {
      absl::StatusOr<ReqcostFigures> f = ParseReport(*out);
      if (!f.ok()) return f.status();
      run.reqcost = *f;
    }
    return run;
  }

  // The programs' runs and time per second with the stack idle: other
  // processes' socket events, measured over 2 s after attach.
  struct ForeignBpf {
    double runs_per_s = 0;
    double ns_per_s = 0;
    std::vector<ProgStats> at_end;  // the counters when it ended
  };

  // One run of a reqcost mode (or floor-emit) with
  // kernel.bpf_stats_enabled=1: ns per invocation of each program.
  absl::Status BpfStats(Mode mode, const Scenario& scenario) {
    std::string sysctl = "/proc/sys/kernel/bpf_stats_enabled";
    std::string before = ReadFileToString(sysctl).value_or("0");
    if (absl::Status s = testing::WriteStringToFile(sysctl, "1"); !s.ok())
      return s;
    if (IsFloor(mode)) return FloorBpfStats(mode, scenario, sysctl, before);
    absl::StatusOr<Tracer> t = StartReqcost(mode);
    if (!t.ok()) {
      (void)testing::WriteStringToFile(sysctl, before);
      return t.status();
    }
    // With the calls mode, the programs' runs for other processes' socket
    // events (the socket-layer hooks fire for every process; the tgid check
    // rejects them) are measured over an idle while first and taken off:
    // on a shared machine they are many, and more per request the slower
    // the page.
    std::optional<ForeignBpf> foreign;
    if (flags_.calls) foreign = IdleBpf(t->pid());
    absl::StatusOr<Load> load =
        RunLoad(dir_, Url(scenario), scenario.concurrency, flags_.seconds);
    std::vector<ProgStats> stats = ReadProgStats(t->pid());
    if (foreign) stats = Minus(stats, foreign->at_end);
    absl::StatusOr<std::string> out = t->Stop();
    (void)testing::WriteStringToFile(sysctl, before);
    if (!load.ok()) return load.status();
    if (!out.ok()) return out.status();
    absl::StatusOr<ReqcostFigures> f = ParseReport(*out);
    if (!f.ok()) return f.status();
    std::printf(
        "\nBPF programs during one %s run, %s, with bpf_stats_enabled=1 "
        "(%.0f req/s, %llu events; not part of the ratios):\n",
        ModeName(mode), scenario.Label().c_str(), load->rps,
        static_cast<unsigned long long>(f->events));
    PrintProgStats(std::move(stats), *load, foreign, scenario, mode);
    return absl::OkStatus();
  }

  // The same for a floor mode, whose programs this process loads.
  absl::Status FloorBpfStats(Mode mode, const Scenario& scenario,
                             const std::string& sysctl,
                             const std::string& before) {
    std::vector<pid_t> tgids = nginx_.AllPids();
    for (pid_t p : fpm_.AllPids()) tgids.push_back(p);
    absl::StatusOr<std::unique_ptr<FloorProbe>> probe =
        FloorProbe::Attach(FloorPrograms(mode), tgids);
    if (!probe.ok()) {
      (void)testing::WriteStringToFile(sysctl, before);
      return probe.status();
    }
    absl::StatusOr<Load> load =
        RunLoad(dir_, Url(scenario), scenario.concurrency, flags_.seconds);
    std::vector<ProgStats> stats = ReadProgStats(getpid());
    probe->reset();
    (void)testing::WriteStringToFile(sysctl, before);
    if (!load.ok()) return load.status();
    std::printf(
        "\nBPF programs during one %s run, %s, with bpf_stats_enabled=1 "
        "(%.0f req/s; not part of the ratios):\n",
        ModeName(mode), scenario.Label().c_str(), load->rps);
    PrintProgStats(std::move(stats), *load, std::nullopt, scenario, mode);
    return absl::OkStatus();
  }

  // Prints each program's runs and ns per run, and their sum per request
  // of `load` (less other processes' runs, with `foreign`), which it keeps
  // for BpfUsPerRequest.
  void PrintProgStats(std::vector<ProgStats> stats, const Load& load,
                      const std::optional<ForeignBpf>& foreign,
                      const Scenario& scenario, Mode mode) {
    std::printf("  %-22s %12s %10s %12s\n", "program", "run_cnt", "ns/run",
                "cnt/request");
    uint64_t total_ns = 0, total_cnt = 0;
    std::sort(stats.begin(), stats.end(),
              [](const ProgStats& a, const ProgStats& b) {
                return a.run_time_ns > b.run_time_ns;
              });
    for (const ProgStats& s : stats) {
      if (s.run_cnt == 0) continue;
      total_ns += s.run_time_ns;
      total_cnt += s.run_cnt;
      std::printf("  %-22s %12llu %10.0f %12.2f\n", s.name.c_str(),
                  static_cast<unsigned long long>(s.run_cnt),
                  static_cast<double>(s.run_time_ns) / s.run_cnt,
                  static_cast<double>(s.run_cnt) / load.complete);
    }
    if (total_cnt > 0) {
      std::printf(
          "  %-22s %12llu %10.0f %12.2f   => %.1f µs of BPF per request\n",
          "all", static_cast<unsigned long long>(total_cnt),
          static_cast<double>(total_ns) / total_cnt,
          static_cast<double>(total_cnt) / load.complete,
          total_ns / 1e3 / load.complete);
      double us = total_ns / 1e3 / load.complete;
      if (foreign) {
        const double other_ns = foreign->ns_per_s * load.seconds;
        us = (static_cast<double>(total_ns) - other_ns) / 1e3 / load.complete;
        std::printf(
            "  %-22s %12.0f %10s %12.2f   => %.1f µs of BPF per request for "
            "the stack\n",
            "(other processes)", foreign->runs_per_s * load.seconds,
            "idle rate", foreign->runs_per_s * load.seconds / load.complete,
            us);
      }
      bpf_us_per_request_[{scenario.Label(), mode}].push_back(us);
    }
    std::fflush(stdout);
  }

  // µs of BPF program time per request that each BpfStats run measured
  // for `scenario` and `mode` (none when it did not run).
  std::vector<double> BpfUsPerRequest(const Scenario& scenario,
                                      Mode mode) const {
    auto it = bpf_us_per_request_.find({scenario.Label(), mode});
    if (it == bpf_us_per_request_.end()) return {};
    return it->second;
  }

 private:
  static ForeignBpf IdleBpf(pid_t tracer) {
    constexpr double kIdleSeconds = 2;
    std::vector<ProgStats> a = ReadProgStats(tracer);
    absl::SleepFor(absl::Seconds(kIdleSeconds));
    ForeignBpf f;
    f.at_end = ReadProgStats(tracer);
    for (const ProgStats& d : Minus(f.at_end, a)) {
      f.runs_per_s += static_cast<double>(d.run_cnt) / kIdleSeconds;
      f.ns_per_s += static_cast<double>(d.run_time_ns) / kIdleSeconds;
    }
    return f;
  }
  // `now` less `before`, program by program (by name).
  static std::vector<ProgStats> Minus(const std::vector<ProgStats>& now,
                                      const std::vector<ProgStats>& before) {
    std::vector<ProgStats> out;
    for (ProgStats p : now) {
      for (const ProgStats& b : before) {
        if (b.name != p.name) continue;
        p.run_cnt -= std::min(p.run_cnt, b.run_cnt);
        p.run_time_ns -= std::min(p.run_time_ns, b.run_time_ns);
      }
      out.push_back(p);
    }
    return out;
  }

  absl::StatusOr<Tracer> StartReqcost(Mode mode) {
    std::vector<std::string> argv = {REQCOST_BINARY, "attach",
                                     "-p",           absl::StrCat(nginx_.pid()),
                                     "-p",           absl::StrCat(fpm_.pid()),
                                     "--format",     "json"};
    if (mode == Mode::kReqcostSyscalls) argv.push_back("--syscall-times");
    return Tracer::Start(dir_, argv, [](const std::string& err) {
      return err.find("attached to") != std::string::npos;
    });
  }

  static absl::StatusOr<std::string> FindStrace() {
    for (const char* p : {"/usr/bin/strace", "/bin/strace"}) {
      if (access(p, X_OK) == 0) return std::string(p);
    }
    return absl::NotFoundError(
        "strace is not installed (apt-get install strace)");
  }

  const Flags& flags_;
  const TempDir& dir_;
  const Server& nginx_;
  const Server& fpm_;
  std::map<std::pair<std::string, Mode>, std::vector<double>>
      bpf_us_per_request_;
};

void PrintRun(const Scenario& s, int round, const Run& r) {
  std::printf(
      "  %s round %d %-16s %9.1f req/s  p50 %7.3f ms  p99 %7.3f ms  CPU %5.0f "
      "µs/request  (%lld requests)",
      s.Label().c_str(), round, ModeName(r.mode), r.load.rps, r.load.p50_ms,
      r.load.p99_ms, r.load.cpu_us_per_request,
      static_cast<long long>(r.load.complete));
  if (IsCallsPage(s.page)) {
    std::printf("  nginx+php-fpm CPU %5.0f µs/request",
                r.load.stack_cpu_us_per_request);
  }
  if (IsReqcost(r.mode) || r.mode == Mode::kStrace) {
    std::printf("  tracer CPU %.0f%%", 100 * r.tracer_cpu_s / r.load.seconds);
    if (r.load.complete > 0) {
      std::printf(" (%.1f µs/request)",
                  r.tracer_cpu_s * 1e6 / static_cast<double>(r.load.complete));
    }
  }
  if (r.reqcost) {
    const ReqcostFigures& f = *r.reqcost;
    std::printf(
        "  events %llu (%.0f/s, %.1f/request), dropped %llu, complete "
        "%llu/%lld",
        static_cast<unsigned long long>(f.events), f.events / r.load.seconds,
        static_cast<double>(f.events) / r.load.complete,
        static_cast<unsigned long long>(f.dropped),
        static_cast<unsigned long long>(f.complete),
        static_cast<long long>(r.load.complete));
  }
  std::printf("\n");
  std::fflush(stdout);
}

// "median (lowest..highest)".
std::string Spread(const std::vector<double>& v) {
  if (v.empty()) return "-";
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return absl::StrFormat("%.3f (%.3f..%.3f)", Median(v), *lo, *hi);
}

bool ParseIntList(absl::string_view text, std::vector<int>* out) {
  out->clear();
  for (absl::string_view c : absl::StrSplit(text, ',')) {
    int v;
    if (!absl::SimpleAtoi(c, &v) || v <= 0) return false;
    out->push_back(v);
  }
  return !out->empty();
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  // --quick first: it sets defaults that later flags may override.
  for (int i = 1; i < argc; ++i) {
    if (absl::string_view(argv[i]) == "--quick") {
      f.rounds = 2;
      f.seconds = 1;
      f.bpf_stats = false;
      f.modes.erase(std::remove(f.modes.begin(), f.modes.end(), Mode::kStrace),
                    f.modes.end());
    }
  }
  bool no_strace = false, no_floor = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--quick") continue;
    if (absl::ConsumePrefix(&a, "--rounds=") &&
        absl::SimpleAtoi(a, &f.rounds) && f.rounds > 0) {
      continue;
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--seconds=") &&
        absl::SimpleAtod(a, &f.seconds) && f.seconds >= 1) {
      continue;
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--fpm-children=") &&
        absl::SimpleAtoi(a, &f.fpm_children) && f.fpm_children > 0) {
      continue;
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--concurrency=") &&
        ParseIntList(a, &f.concurrency))
      continue;
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--files-concurrency=") &&
        ParseIntList(a, &f.files_concurrency)) {
      continue;
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--calls-concurrency=") &&
        ParseIntList(a, &f.calls_concurrency)) {
      continue;
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--page=")) {
      bool hello = false, files = false, calls = false, ok = !a.empty();
      for (absl::string_view p : absl::StrSplit(a, ',')) {
        hello = hello || p == "hello" || p == "both";
        files = files || p == "files" || p == "both";
        calls = calls || p == "calls";
        ok = ok && (p == "hello" || p == "files" || p == "both" ||
                    p == "calls");
      }
      if (ok) {
        f.hello = hello;
        f.files = files;
        f.calls = calls;
        continue;
      }
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--modes=")) {
      std::vector<Mode> modes = {Mode::kBase};
      bool ok = true;
      for (absl::string_view name : absl::StrSplit(a, ',', absl::SkipEmpty())) {
        std::optional<Mode> m = ModeByName(name);
        if (!m) {
          ok = false;
          break;
        }
        if (std::find(modes.begin(), modes.end(), *m) == modes.end())
          modes.push_back(*m);
      }
      if (ok) {
        f.modes = modes;
        continue;
      }
    }
    a = argv[i];
    if (a == "--no-strace") {
      no_strace = true;
      continue;
    }
    if (a == "--no-floor") {
      no_floor = true;
      continue;
    }
    if (a == "--no-bpf-stats") {
      f.bpf_stats = false;
      continue;
    }
    std::vector<std::string> names;
    for (Mode m : kAllModes) names.push_back(ModeName(m));
    return absl::InvalidArgumentError(
        absl::StrCat("unknown or bad flag ", argv[i],
                     " (modes: ", absl::StrJoin(names, ","), ")"));
  }
  f.modes.erase(std::remove_if(f.modes.begin(), f.modes.end(),
                               [&](Mode m) {
                                 return (no_strace && m == Mode::kStrace) ||
                                        (no_floor && IsFloor(m));
                               }),
                f.modes.end());
  return f;
}

std::string CpuModel() {
  std::string text = ReadFileToString("/proc/cpuinfo").value_or("");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "model name")) {
      size_t colon = line.find(':');
      if (colon != absl::string_view::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "?";
}

// php-fpm's own median time per request of `page` so far, in ms, from its
// access log ("%{micro}d %p %m %r%Q%q %s"); 0 when there is none.
double FpmMedianMs(const Server& fpm, const std::string& page) {
  std::string text = ReadFileToString(fpm.request_log()).value_or("");
  std::vector<double> us;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    double v;
    if (f.size() >= 4 && absl::StartsWith(f[3], absl::StrCat("/", page)) &&
        absl::SimpleAtod(f[0], &v)) {
      us.push_back(v);
    }
  }
  return Median(us) / 1e3;
}

// What each page's body must contain to count as served.
std::string ExpectedBody(const std::string& page) {
  if (IsCallsPage(page)) return "ok";
  return page == "files.php" ? "50 parts, 300 paths checked" : "123";
}

// Median (lowest..highest) of `v`, in µs.
std::string SpreadUs(const std::vector<double>& v) {
  if (v.empty()) return "-";
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return absl::StrFormat("%.1f (%.1f..%.1f)", Median(v), *lo, *hi);
}

// The calls page's cost: per reqcost mode, what tracing added per request
// (CPU of the traced processes, where the BPF programs run, of the machine,
// and of the tracer itself), and, against hello.php at the same concurrency
// (a request's own socket events, nothing else), the cost of one call.
// Each figure is over the rounds: a round's traced run minus its untraced
// run; the per-call figure pairs the rounds of the two pages by number.
void PrintCallsCost(const std::vector<ScenarioResult>& results,
                    const std::vector<Mode>& modes, const Bench& bench) {
  for (const ScenarioResult& calls : results) {
    if (!IsCallsPage(calls.scenario.page)) continue;
    const ScenarioResult* hello = nullptr;
    for (const ScenarioResult& r : results) {
      if (r.scenario.page == "hello.php" &&
          r.scenario.concurrency == calls.scenario.concurrency) {
        hello = &r;
      }
    }
    std::printf(
        "\nCALLS (%s, %d calls per request; traced - untraced of the same "
        "round, µs per request: median (lowest..highest))\n",
        calls.scenario.Label().c_str(), kCallsPerRequest);
    std::printf("  untraced: nginx+php-fpm %s, machine %s µs/request\n",
                SpreadUs(calls.base_stack_cpu).c_str(),
                SpreadUs(calls.base_cpu).c_str());
    for (Mode m : modes) {
      if (!IsReqcost(m)) continue;
      auto it = calls.modes.find(m);
      if (it == calls.modes.end() || it->second.rps.empty()) continue;
      const ModeResult& mr = it->second;
      std::printf(
          "  %-16s added: nginx+php-fpm %s, machine %s, tracer %s; "
          "events %.1f per request\n",
          ModeName(m), SpreadUs(mr.stack_delta_us).c_str(),
          SpreadUs(mr.machine_delta_us).c_str(), SpreadUs(mr.tracer_us).c_str(),
          Median(mr.events_per_request));
      if (hello == nullptr) continue;
      auto h = hello->modes.find(m);
      if (h == hello->modes.end() || h->second.rps.empty()) continue;
      const ModeResult& hr = h->second;
      // Per round: (calls' added cost - hello's) / calls, for the traced
      // processes and for traced processes + tracer.
      std::vector<double> per_call, per_call_all;
      size_t n = std::min({mr.stack_delta_us.size(), hr.stack_delta_us.size(),
                           mr.tracer_us.size(), hr.tracer_us.size()});
      for (size_t i = 0; i < n; ++i) {
        per_call.push_back((mr.stack_delta_us[i] - hr.stack_delta_us[i]) /
                           kCallsPerRequest);
        per_call_all.push_back((mr.stack_delta_us[i] + mr.tracer_us[i] -
                                hr.stack_delta_us[i] - hr.tracer_us[i]) /
                               kCallsPerRequest);
      }
      std::vector<double> hello_all;
      for (size_t i = 0; i < std::min(hr.stack_delta_us.size(),
                                      hr.tracer_us.size());
           ++i) {
        hello_all.push_back(hr.stack_delta_us[i] + hr.tracer_us[i]);
      }
      std::vector<double> per_call_tracer;
      for (size_t i = 0; i < std::min(mr.tracer_us.size(), hr.tracer_us.size());
           ++i) {
        per_call_tracer.push_back((mr.tracer_us[i] - hr.tracer_us[i]) /
                                  kCallsPerRequest);
      }
      std::printf(
          "  %-16s hello.php (a request's socket events, %.1f events): "
          "nginx+php-fpm %s, tracer %s, both %s\n",
          "", Median(hr.events_per_request), SpreadUs(hr.stack_delta_us).c_str(),
          SpreadUs(hr.tracer_us).c_str(), SpreadUs(hello_all).c_str());
      std::printf(
          "  %-16s => one call: nginx+php-fpm %s, tracer %s, both %s "
          "(%.2f events per call)\n",
          "", SpreadUs(per_call).c_str(), SpreadUs(per_call_tracer).c_str(),
          SpreadUs(per_call_all).c_str(),
          (Median(mr.events_per_request) - Median(hr.events_per_request)) /
              kCallsPerRequest);
      // The BPF programs' own time (bpf_stats), which the load of a shared
      // machine does not blur: per request, and per call against hello.php.
      // Runs paired by number, as the rounds are.
      std::vector<double> bpf_calls = bench.BpfUsPerRequest(calls.scenario, m);
      std::vector<double> bpf_hello = bench.BpfUsPerRequest(hello->scenario, m);
      std::vector<double> bpf_per_call;
      for (size_t i = 0; i < std::min(bpf_calls.size(), bpf_hello.size());
           ++i) {
        bpf_per_call.push_back((bpf_calls[i] - bpf_hello[i]) /
                               kCallsPerRequest);
      }
      if (!bpf_per_call.empty()) {
        std::printf(
            "  %-16s BPF programs for the stack (bpf_stats runs, other "
            "processes' share taken off): hello.php %s, calls.php %s µs per "
            "request => %s µs per call\n",
            "", SpreadUs(bpf_hello).c_str(), SpreadUs(bpf_calls).c_str(),
            absl::StrFormat("%.2f (%.2f..%.2f)", Median(bpf_per_call),
                            *std::min_element(bpf_per_call.begin(),
                                              bpf_per_call.end()),
                            *std::max_element(bpf_per_call.begin(),
                                              bpf_per_call.end()))
                .c_str());
        std::printf(
            "  %-16s => medians: one call %.2f µs (BPF + tracer) against a "
            "hello.php request's socket events %.2f µs (BPF + tracer)\n",
            "", Median(bpf_per_call) + Median(per_call_tracer),
            Median(bpf_hello) + Median(hr.tracer_us));
      }
    }
  }
  std::fflush(stdout);
}

// One of the overhead targets (issue "Overhead, round 3"), judged on a
// scenario's results: nullopt when what it needs was not measured.
struct Target {
  std::string scenario;  // Scenario::Label()
  std::string text;
  std::function<std::optional<bool>(const ScenarioResult&)> met;
};

// The median of `mode`'s figure `f` in `r`, if the mode ran.
std::optional<double> MedianOf(const ScenarioResult& r, Mode mode,
                               std::vector<double> ModeResult::*f) {
  auto it = r.modes.find(mode);
  if (it == r.modes.end() || (it->second.*f).empty()) return std::nullopt;
  return Median(it->second.*f);
}

int Main(int argc, char** argv) {
  absl::StatusOr<Flags> flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "overhead: %s\n",
                 std::string(flags.status().message()).c_str());
    return 2;
  }
  const char* require = std::getenv("REQCOST_REQUIRE_BPF");
  bool required = require != nullptr && std::strcmp(require, "1") == 0;
  if (geteuid() != 0) {
    std::fprintf(stderr,
                 "overhead: needs root (loading BPF, strace, nginx as root)\n");
    return required ? 1 : kExitSkip;
  }
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "overhead: %s\n", std::string(s.message()).c_str());
    return 1;
  };

  std::vector<Scenario> scenarios;
  if (flags->hello) {
    for (int c : flags->concurrency) scenarios.push_back({"hello.php", c});
  }
  if (flags->files) {
    for (int c : flags->files_concurrency)
      scenarios.push_back({"files.php", c});
  }
  // The calls page's Redis: started here, in the temp dir, stopped by PID.
  std::optional<Subprocess> redis;
  int redis_port = 0;

  absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-bench");
  if (!dir.ok()) return fail(dir.status());
  if (flags->calls) {
    absl::StatusOr<int> port = testing::FreeTcpPort();
    if (!port.ok()) return fail(port.status());
    redis_port = *port;
    absl::StatusOr<Subprocess> r = Subprocess::Start(
        {"/usr/bin/redis-server", "--port", absl::StrCat(redis_port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
         dir->path()},
        dir->File("redis.out"), dir->File("redis.err"));
    if (!r.ok()) return fail(r.status());
    redis.emplace(*std::move(r));
    absl::Status up = testing::WaitForListening(
        absl::StrCat("127.0.0.1:", redis_port), absl::Seconds(30), &*redis);
    if (!up.ok()) return fail(up);
    for (int c : flags->calls_concurrency) {
      scenarios.push_back({CallsPage(redis_port), c});
    }
  }
  std::vector<std::string> pages;
  for (const Scenario& s : scenarios) {
    if (std::find(pages.begin(), pages.end(), s.page) == pages.end())
      pages.push_back(s.page);
  }
  testing::PhpFpmOptions fpm_opts;
  fpm_opts.children = flags->fpm_children;
  absl::StatusOr<Server> fpm = testing::StartPhpFpm(*dir, fpm_opts);
  if (!fpm.ok()) return fail(fpm.status());
  testing::NginxOptions nginx_opts;
  nginx_opts.upstream = fpm->address();
  absl::StatusOr<Server> nginx = testing::StartNginx(*dir, nginx_opts);
  if (!nginx.ok()) return fail(nginx.status());
  for (const std::string& page : pages) {
    std::string url = nginx->Url(absl::StrCat("/", page));
    absl::StatusOr<testing::HttpResponse> probe = testing::HttpGet(url);
    if (!probe.ok()) return fail(probe.status());
    if (probe->status != 200 ||
        probe->body.find(ExpectedBody(page)) == std::string::npos) {
      return fail(
          absl::InternalError(absl::StrCat("GET ", url, " gave ", probe->status,
                                           ": ", probe->body.substr(0, 500))));
    }
  }

  std::vector<std::string> mode_names;
  for (Mode m : flags->modes) mode_names.push_back(ModeName(m));
  std::printf("reqcost overhead benchmark\n");
  std::printf(
      "machine: %ld CPUs, %s, kernel %s\n", sysconf(_SC_NPROCESSORS_ONLN),
      CpuModel().c_str(),
      std::string(
          absl::StripAsciiWhitespace(
              ReadFileToString("/proc/sys/kernel/osrelease").value_or("?")))
          .c_str());
  std::printf(
      "stack: nginx (1 worker) -> php-fpm (static, %d children) over a unix "
      "socket; "
      "ab -t %.0f per run, %d rounds per scenario\n",
      flags->fpm_children, flags->seconds, flags->rounds);
  std::printf("modes: %s\n", absl::StrJoin(mode_names, " ").c_str());
  std::printf(
      "reqcost: attach -p NGINX -p FPM --format json (default 8 MiB ring "
      "buffer, no "
      "payload); reqcost-syscalls adds --syscall-times\n");
  std::printf(
      "strace:  strace -f -o FILE -p WORKER... (nginx worker + php-fpm "
      "children)\n");
  std::fflush(stdout);

  Bench bench(*flags, *dir, *nginx, *fpm);
  // Warm-up: PHP's opcache, nginx's caches, the page cache.
  for (const std::string& page : pages) {
    absl::StatusOr<Load> w =
        RunLoad(*dir, nginx->Url(absl::StrCat("/", page)), 2, 1);
    if (!w.ok()) return fail(w.status());
    std::printf(
        "warm-up %s: %.0f req/s at c=2, php-fpm's median time per request %.3f "
        "ms\n",
        page.c_str(), w->rps, FpmMedianMs(*fpm, page));
  }
  std::printf("\n");
  std::fflush(stdout);

  bool all_ok = true;
  std::vector<ScenarioResult> results;
  for (const Scenario& sc : scenarios) {
    ScenarioResult res;
    res.scenario = sc;
    std::vector<Mode> active = flags->modes;
    std::printf("%s:\n", sc.Label().c_str());
    for (int round = 1; round <= flags->rounds; ++round) {
      // Rotate the order so that no mode always runs first or last.
      std::vector<Mode> order = active;
      std::rotate(order.begin(), order.begin() + (round - 1) % order.size(),
                  order.end());
      std::map<Mode, Run> runs;
      for (Mode m : order) {
        absl::StatusOr<Run> r = bench.RunOne(m, sc);
        if (!r.ok()) {
          if (m == Mode::kBase) return fail(r.status());
          all_ok = false;
          res.modes[m].error = std::string(r.status().message());
          active.erase(std::find(active.begin(), active.end(), m));
          std::printf(
              "  %s round %d %-16s FAILED, left out for the rest of %s: %s\n",
              sc.Label().c_str(), round, ModeName(m), sc.Label().c_str(),
              std::string(r.status().message()).c_str());
          std::fflush(stdout);
          continue;
        }
        PrintRun(sc, round, *r);
        runs[m] = *r;
      }
      const Load& base = runs[Mode::kBase].load;
      res.base_rps.push_back(base.rps);
      res.base_cpu.push_back(base.cpu_us_per_request);
      res.base_stack_cpu.push_back(base.stack_cpu_us_per_request);
      std::printf("  %s round %d ratios to base:", sc.Label().c_str(), round);
      for (Mode m : flags->modes) {
        auto it = runs.find(m);
        if (m == Mode::kBase || it == runs.end()) continue;
        const Run& run = it->second;
        const Load& l = run.load;
        ModeResult& mr = res.modes[m];
        mr.rps.push_back(l.rps);
        mr.rps_ratio.push_back(l.rps / base.rps);
        if (base.p50_ms > 0) mr.p50_ratio.push_back(l.p50_ms / base.p50_ms);
        if (base.p99_ms > 0) mr.p99_ratio.push_back(l.p99_ms / base.p99_ms);
        mr.cpu_ratio.push_back(l.cpu_us_per_request / base.cpu_us_per_request);
        mr.stack_delta_us.push_back(l.stack_cpu_us_per_request -
                                    base.stack_cpu_us_per_request);
        mr.machine_delta_us.push_back(l.cpu_us_per_request -
                                      base.cpu_us_per_request);
        if (l.complete > 0) {
          mr.tracer_us.push_back(run.tracer_load_cpu_s * 1e6 / l.complete);
        }
        std::printf("  %s %.3f/%.3f", ModeName(m), mr.rps_ratio.back(),
                    mr.cpu_ratio.back());
        if (run.reqcost) {
          mr.max_dropped = std::max(mr.max_dropped, run.reqcost->dropped);
          mr.events_per_s.push_back(run.reqcost->events / l.seconds);
          mr.events_per_request.push_back(
              static_cast<double>(run.reqcost->events) / l.complete);
          mr.complete.push_back(
              absl::StrCat(run.reqcost->complete, "/", l.complete));
        }
      }
      std::printf("  (throughput/CPU per request)\n");
      std::fflush(stdout);
    }
    results.push_back(std::move(res));
  }

  if (flags->bpf_stats) {
    // The calls mode's per-call figure pairs 3 runs of each page, taken in
    // turn.
    for (int i = 0; i < (flags->calls ? 3 : 1); ++i) {
      for (const Scenario& sc : scenarios) {
        for (Mode m : flags->modes) {
          if (!IsReqcost(m) && m != Mode::kFloorEmit) continue;
          if (absl::Status s = bench.BpfStats(m, sc); !s.ok()) {
            all_ok = false;
            std::printf("\nBPF programs during one %s run, %s: FAILED: %s\n",
                        ModeName(m), sc.Label().c_str(),
                        std::string(s.message()).c_str());
          }
        }
      }
    }
  }

  std::printf(
      "\nSUMMARY (ratio = traced / untraced of the same round: median "
      "(lowest..highest) "
      "over the rounds)\n");
  for (const ScenarioResult& r : results) {
    std::printf("%s: untraced %.0f req/s, %.0f µs of machine CPU per request\n",
                r.scenario.Label().c_str(), Median(r.base_rps),
                Median(r.base_cpu));
    std::printf("  %-16s %8s  %-25s  %-25s  %-25s  %-25s\n", "mode", "req/s",
                "throughput ratio", "p50 ratio", "p99 ratio",
                "CPU/request ratio");
    for (Mode m : flags->modes) {
      if (m == Mode::kBase) continue;
      auto it = r.modes.find(m);
      if (it == r.modes.end()) continue;
      const ModeResult& mr = it->second;
      if (!mr.rps.empty()) {
        std::printf("  %-16s %8.0f  %-25s  %-25s  %-25s  %-25s\n", ModeName(m),
                    Median(mr.rps), Spread(mr.rps_ratio).c_str(),
                    Spread(mr.p50_ratio).c_str(), Spread(mr.p99_ratio).c_str(),
                    Spread(mr.cpu_ratio).c_str());
        if (IsReqcost(m)) {
          std::printf(
              "  %-16s events %.0f/s (%.1f per request), dropped events (max "
              "of runs) "
              "%llu, requests complete/ab: %s\n",
              "", Median(mr.events_per_s), Median(mr.events_per_request),
              static_cast<unsigned long long>(mr.max_dropped),
              absl::StrJoin(mr.complete, " ").c_str());
          // Its start (loading the programs) left out: the steady cost.
          std::printf("  %-16s collector CPU per request during the load: %s\n",
                      "", SpreadUs(mr.tracer_us).c_str());
        }
      }
      if (!mr.error.empty()) {
        std::printf("  %-16s FAILED after %zu good runs: %s\n", ModeName(m),
                    mr.rps.size(), mr.error.c_str());
      }
    }
  }

  PrintCallsCost(results, flags->modes, bench);

  // The overhead targets, on the default reqcost mode.
  auto cpu_within_floor = [](const ScenarioResult& r) -> std::optional<bool> {
    std::optional<double> traced =
        MedianOf(r, Mode::kReqcost, &ModeResult::cpu_ratio);
    std::optional<double> floor =
        MedianOf(r, Mode::kFloorNew, &ModeResult::cpu_ratio);
    if (!traced || !floor) return std::nullopt;
    return *traced <= *floor + 0.035;
  };
  auto collector = [](const ScenarioResult& r) -> std::optional<bool> {
    std::optional<double> us =
        MedianOf(r, Mode::kReqcost, &ModeResult::tracer_us);
    if (!us) return std::nullopt;
    return *us <= 5;
  };
  auto bpf = [&bench](const ScenarioResult& r) -> std::optional<bool> {
    std::vector<double> us = bench.BpfUsPerRequest(r.scenario, Mode::kReqcost);
    if (us.empty()) return std::nullopt;
    return Median(us) <= 7;
  };
  const Target targets[] = {
      {"hello.php c=1", "CPU/request ratio <= floor-new's + 0.035",
       cpu_within_floor},
      {"hello.php c=4", "CPU/request ratio <= floor-new's + 0.035",
       cpu_within_floor},
      {"hello.php c=1", "BPF <= 7 µs per request (bpf_stats run)", bpf},
      {"hello.php c=4", "BPF <= 7 µs per request (bpf_stats run)", bpf},
      {"hello.php c=1", "collector <= 5 µs per request during the load",
       collector},
      {"hello.php c=4", "collector <= 5 µs per request during the load",
       collector},
      {"files.php c=2", "CPU/request ratio <= 1.015",
       [](const ScenarioResult& r) -> std::optional<bool> {
         std::optional<double> traced =
             MedianOf(r, Mode::kReqcost, &ModeResult::cpu_ratio);
         if (!traced) return std::nullopt;
         return *traced <= 1.015;
       }},
  };
  std::printf("\nTARGETS (reqcost, default mode; medians)\n");
  for (const Target& t : targets) {
    std::optional<bool> met;
    for (const ScenarioResult& r : results) {
      if (r.scenario.Label() == t.scenario) met = t.met(r);
    }
    std::printf("  %-14s %-56s %s\n", t.scenario.c_str(), t.text.c_str(),
                !met.has_value() ? "not measured"
                : *met           ? "met"
                                 : "MISSED");
  }
  bool measured = false;
  uint64_t dropped = 0;
  for (const ScenarioResult& r : results) {
    auto it = r.modes.find(Mode::kReqcost);
    if (it == r.modes.end() || it->second.rps.empty()) continue;
    measured = true;
    dropped = std::max(dropped, it->second.max_dropped);
  }
  std::printf("  %-14s %-56s %s\n", "every scenario", "0 dropped events",
              !measured      ? "not measured"
              : dropped == 0 ? "met"
                             : "MISSED");
  if (!all_ok) std::printf("\nsome runs FAILED (see above)\n");

  absl::Status s1 = nginx->Stop();
  absl::Status s2 = fpm->Stop();
  if (redis.has_value()) {
    absl::StatusOr<int> stopped = redis->Stop(absl::Seconds(10));
    if (!stopped.ok()) return fail(stopped.status());
  }
  if (!s1.ok()) return fail(s1);
  if (!s2.ok()) return fail(s2);
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace reqcost::bench

int main(int argc, char** argv) { return reqcost::bench::Main(argc, argv); }
