// Overhead benchmark: what tracing costs a live nginx + php-fpm stack.
//
// Starts nginx (1 worker) in front of php-fpm (static pool) on a unix socket,
// serving samples/php/hello.php, and drives it with ab for a fixed time per
// run, at concurrency 1 and at saturation. Each round runs the same load
// four ways, in an order that rotates from round to round:
//   base     nothing attached
//   reqcost  `reqcost attach -p NGINX -p FPM --format json` (default ring
//            buffer, no payload, full request assembly), attached before
//            the load starts, stopped with SIGINT after it
//   floor    an empty BPF program on every tracepoint reqcost uses
//            (tests/bench/floor.bpf.c): what attaching anything there
//            costs this kernel before any program does work
//   strace   `strace -f -p` on the nginx worker and every php-fpm child,
//            attached the same way
// and prints each run, the per-round ratios (traced / base of the same
// round) and their medians: throughput, p50 and p99 latency (from ab -e,
// µs resolution), and the machine's CPU time per request. For reqcost it
// also prints events, events/s, dropped events and requests complete
// against ab's count. A last reqcost run at saturation with
// kernel.bpf_stats_enabled=1 reports the time per invocation of every BPF
// program (run_time_ns / run_cnt), kept apart from the measured rounds
// because the statistics themselves cost time.
//
// Not a pass/fail test: it exits 0 when every run worked (targets are
// printed as met or missed), 1 when something failed, 77 when it cannot run
// here (not root), unless REQCOST_REQUIRE_BPF=1.
//
// Flags: --rounds=N (5) --seconds=S (3) --concurrency=1,4 --no-strace
//        --no-floor --no-bpf-stats --fpm-children=N (4)
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <bpf/bpf.h>
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
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

namespace reqcost::bench {
namespace {

using testing::FindBinary;
using testing::ReadFileToString;
using testing::Server;
using testing::Subprocess;
using testing::TempDir;

constexpr int kExitSkip = 77;

struct Flags {
  int rounds = 5;
  double seconds = 3;
  std::vector<int> concurrency = {1, 4};
  bool strace = true;
  bool floor = true;
  bool bpf_stats = true;
  int fpm_children = 4;
};

enum class Mode { kBase, kFloor, kReqcost, kStrace };

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kBase: return "base";
    case Mode::kFloor: return "floor";
    case Mode::kReqcost: return "reqcost";
    case Mode::kStrace: return "strace";
  }
  return "?";
}

// floor.bpf.c's empty programs, attached while it lives.
class FloorProbe {
 public:
  static absl::StatusOr<std::unique_ptr<FloorProbe>> Attach() {
    if (absl::StatusOr<std::string> t = collector::EnsureTracefs(); !t.ok()) return t.status();
    std::unique_ptr<FloorProbe> probe(new FloorProbe(floor_bpf__open_and_load()));
    if (probe->skel_ == nullptr) {
      return absl::InternalError(
          absl::StrCat("loading the floor programs: ", std::strerror(errno)));
    }
    if (int err = floor_bpf__attach(probe->skel_); err != 0) {
      return absl::InternalError(
          absl::StrCat("attaching the floor programs: ", std::strerror(-err)));
    }
    return probe;
  }
  ~FloorProbe() { floor_bpf__destroy(skel_); }
  FloorProbe(const FloorProbe&) = delete;
  FloorProbe& operator=(const FloorProbe&) = delete;

 private:
  explicit FloorProbe(floor_bpf* skel) : skel_(skel) {}
  floor_bpf* skel_;
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
};

// Busy CPU time of the machine so far, in seconds (/proc/stat).
double MachineBusySeconds() {
  std::string text = ReadFileToString("/proc/stat").value_or("");
  std::string line = text.substr(0, text.find('\n'));
  std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
  // cpu user nice system idle iowait irq softirq steal ...
  double busy = 0;
  for (size_t i : {1, 2, 3, 6, 7}) {
    double v;
    if (i < f.size() && absl::SimpleAtod(f[i], &v)) busy += v;
  }
  return busy / sysconf(_SC_CLK_TCK);
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
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::optional<double> NumberAfter(const std::string& text, const std::string& label) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&l, label)) continue;
    l = absl::StripLeadingAsciiWhitespace(l);
    size_t end = 0;
    while (end < l.size() && (std::isdigit(static_cast<unsigned char>(l[end])) || l[end] == '.')) {
      ++end;
    }
    double v;
    if (end > 0 && absl::SimpleAtod(l.substr(0, end), &v)) return v;
  }
  return std::nullopt;
}

// ab for `seconds` at `concurrency` (-t with a large -n, so the run length
// is fixed in time whatever the throughput), percentiles from its -e CSV.
absl::StatusOr<Load> RunLoad(const TempDir& dir, const std::string& url, int concurrency,
                             double seconds) {
  static int n = 0;
  ++n;
  absl::StatusOr<std::string> ab = FindBinary("ab");
  if (!ab.ok()) return ab.status();
  std::string csv = dir.File(absl::StrCat("ab-", n, ".csv"));
  std::string out = dir.File(absl::StrCat("ab-", n, ".out"));
  std::string err = dir.File(absl::StrCat("ab-", n, ".err"));
  int secs = std::max(1, static_cast<int>(seconds + 0.5));
  // -n after -t: -t resets the request count to 50000.
  std::vector<std::string> argv = {*ab, "-q", "-t", absl::StrCat(secs), "-n", "2000000",
                                   "-c", absl::StrCat(concurrency), "-s", "30",
                                   "-e", csv, url};
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
    return absl::InternalError(absl::StrCat("ab ", testing::DescribeWaitStatus(*status), ": ",
                                            testing::FileTail(err)));
  }
  Load load;
  load.complete = static_cast<int64_t>(NumberAfter(text, "Complete requests:").value_or(-1));
  load.failed = static_cast<int64_t>(NumberAfter(text, "Failed requests:").value_or(0));
  load.non_2xx = static_cast<int64_t>(NumberAfter(text, "Non-2xx responses:").value_or(0));
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
  static absl::StatusOr<Tracer> Start(const TempDir& dir, std::vector<std::string> argv,
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
        return absl::InternalError(absl::StrCat(argv[0], " exited before it was ready: ",
                                                testing::FileTail(t.err_)));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    (void)t.process_->Stop(absl::Seconds(5));
    return absl::DeadlineExceededError(absl::StrCat(argv[0], " was not ready within 30 s"));
  }

  pid_t pid() const { return process_->pid(); }

  // User + system CPU seconds the tracer has used so far (/proc/PID/stat).
  double CpuSeconds() const {
    std::string stat = ReadFileToString(absl::StrCat("/proc/", pid(), "/stat")).value_or("");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return 0;
    std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
    // After "pid (comm) ": state is field 0, utime 11, stime 12 (in ticks).
    double utime = 0, stime = 0;
    if (f.size() < 13 || !absl::SimpleAtod(f[11], &utime) || !absl::SimpleAtod(f[12], &stime)) {
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
      return absl::DeadlineExceededError("tracer did not stop within 60 s of SIGINT (killed)");
    }
    std::string out = ReadFileToString(out_).value_or("");
    unlink(out_.c_str());
    // strace re-raises the SIGINT it was stopped with.
    bool interrupted = WIFSIGNALED(*status) && WTERMSIG(*status) == SIGINT;
    if (!interrupted && (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)) {
      return absl::InternalError(absl::StrCat("tracer ", testing::DescribeWaitStatus(*status),
                                              ": ", testing::FileTail(err_)));
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
    return absl::InternalError(absl::StrCat("reqcost printed no JSON report:\n", out.substr(0, 2000)));
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
      std::string text = ReadFileToString(absl::StrCat(fdinfo, "/", ent->d_name)).value_or("");
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

class Bench {
 public:
  Bench(const Flags& flags, const TempDir& dir, const Server& nginx, const Server& fpm,
        std::string url)
      : flags_(flags), dir_(dir), nginx_(nginx), fpm_(fpm), url_(std::move(url)) {}

  absl::StatusOr<Run> RunOne(Mode mode, int concurrency) {
    Run run;
    run.mode = mode;
    std::optional<Tracer> tracer;
    std::unique_ptr<FloorProbe> floor;
    if (mode == Mode::kFloor) {
      absl::StatusOr<std::unique_ptr<FloorProbe>> probe = FloorProbe::Attach();
      if (!probe.ok()) return probe.status();
      floor = *std::move(probe);
    } else if (mode == Mode::kReqcost) {
      absl::StatusOr<Tracer> t = Tracer::Start(
          dir_,
          {REQCOST_BINARY, "attach", "-p", absl::StrCat(nginx_.pid()), "-p",
           absl::StrCat(fpm_.pid()), "--format", "json"},
          [](const std::string& err) { return err.find("attached to") != std::string::npos; });
      if (!t.ok()) return t.status();
      tracer.emplace(*std::move(t));
    } else if (mode == Mode::kStrace) {
      absl::StatusOr<std::string> strace = FindStrace();
      if (!strace.ok()) return strace.status();
      std::vector<pid_t> pids = nginx_.WorkerPids();
      for (pid_t p : fpm_.WorkerPids()) pids.push_back(p);
      std::vector<std::string> argv = {*strace, "-f", "-o", dir_.File("strace.log")};
      for (pid_t p : pids) {
        argv.push_back("-p");
        argv.push_back(absl::StrCat(p));
      }
      size_t want = pids.size();
      absl::StatusOr<Tracer> t = Tracer::Start(dir_, argv, [want](const std::string& err) {
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
    absl::StatusOr<Load> load = RunLoad(dir_, url_, concurrency, flags_.seconds);
    if (tracer) run.tracer_cpu_s = tracer->CpuSeconds();
    absl::StatusOr<std::string> out = tracer ? tracer->Stop() : absl::StatusOr<std::string>("");
    if (mode == Mode::kStrace) unlink(dir_.File("strace.log").c_str());
    if (!load.ok()) return load.status();
    if (!out.ok()) return out.status();
    run.load = *load;
    if (mode == Mode::kReqcost) {
      absl::StatusOr<ReqcostFigures> f = ParseReport(*out);
      if (!f.ok()) return f.status();
      run.reqcost = *f;
    }
    return run;
  }

  // One reqcost run at `concurrency` with kernel.bpf_stats_enabled=1:
  // ns per invocation of each program.
  absl::Status BpfStats(int concurrency) {
    std::string sysctl = "/proc/sys/kernel/bpf_stats_enabled";
    std::string before = ReadFileToString(sysctl).value_or("0");
    if (absl::Status s = testing::WriteStringToFile(sysctl, "1"); !s.ok()) return s;
    absl::StatusOr<Tracer> t = Tracer::Start(
        dir_,
        {REQCOST_BINARY, "attach", "-p", absl::StrCat(nginx_.pid()), "-p",
         absl::StrCat(fpm_.pid()), "--format", "json"},
        [](const std::string& err) { return err.find("attached to") != std::string::npos; });
    if (!t.ok()) {
      (void)testing::WriteStringToFile(sysctl, before);
      return t.status();
    }
    absl::StatusOr<Load> load = RunLoad(dir_, url_, concurrency, flags_.seconds);
    std::vector<ProgStats> stats = ReadProgStats(t->pid());
    absl::StatusOr<std::string> out = t->Stop();
    (void)testing::WriteStringToFile(sysctl, before);
    if (!load.ok()) return load.status();
    if (!out.ok()) return out.status();
    absl::StatusOr<ReqcostFigures> f = ParseReport(*out);
    if (!f.ok()) return f.status();
    std::printf("\nBPF programs during one reqcost run at c=%d with bpf_stats_enabled=1 "
                "(%.0f req/s, %llu events; not part of the ratios):\n",
                concurrency, load->rps, static_cast<unsigned long long>(f->events));
    std::printf("  %-22s %12s %10s %12s\n", "program", "run_cnt", "ns/run", "cnt/request");
    uint64_t total_ns = 0, total_cnt = 0;
    std::sort(stats.begin(), stats.end(),
              [](const ProgStats& a, const ProgStats& b) { return a.run_time_ns > b.run_time_ns; });
    for (const ProgStats& s : stats) {
      if (s.run_cnt == 0) continue;
      total_ns += s.run_time_ns;
      total_cnt += s.run_cnt;
      std::printf("  %-22s %12llu %10.0f %12.2f\n", s.name.c_str(),
                  static_cast<unsigned long long>(s.run_cnt),
                  static_cast<double>(s.run_time_ns) / s.run_cnt,
                  static_cast<double>(s.run_cnt) / load->complete);
    }
    if (total_cnt > 0) {
      std::printf("  %-22s %12llu %10.0f %12.2f   => %.1f µs of BPF per request\n", "all",
                  static_cast<unsigned long long>(total_cnt),
                  static_cast<double>(total_ns) / total_cnt,
                  static_cast<double>(total_cnt) / load->complete,
                  total_ns / 1e3 / load->complete);
    }
    return absl::OkStatus();
  }

 private:
  static absl::StatusOr<std::string> FindStrace() {
    for (const char* p : {"/usr/bin/strace", "/bin/strace"}) {
      if (access(p, X_OK) == 0) return std::string(p);
    }
    return absl::NotFoundError("strace is not installed (apt-get install strace)");
  }

  const Flags& flags_;
  const TempDir& dir_;
  const Server& nginx_;
  const Server& fpm_;
  std::string url_;
};

void PrintRun(int concurrency, int round, const Run& r) {
  std::printf("  c=%d round %d %-8s %9.1f req/s  p50 %7.3f ms  p99 %7.3f ms  CPU %5.0f µs/request"
              "  (%lld requests",
              concurrency, round, ModeName(r.mode), r.load.rps, r.load.p50_ms, r.load.p99_ms,
              r.load.cpu_us_per_request, static_cast<long long>(r.load.complete));
  if (r.load.failed > 0 || r.load.non_2xx > 0) {
    std::printf(", %lld failed, %lld non-2xx", static_cast<long long>(r.load.failed),
                static_cast<long long>(r.load.non_2xx));
  }
  std::printf(")");
  if (r.mode == Mode::kReqcost || r.mode == Mode::kStrace) {
    std::printf("  %s CPU %.0f%%", ModeName(r.mode), 100 * r.tracer_cpu_s / r.load.seconds);
  }
  if (r.reqcost) {
    const ReqcostFigures& f = *r.reqcost;
    std::printf("  events %llu (%.0f/s, %.1f/request), dropped %llu, complete %llu/%lld",
                static_cast<unsigned long long>(f.events), f.events / r.load.seconds,
                static_cast<double>(f.events) / r.load.complete,
                static_cast<unsigned long long>(f.dropped),
                static_cast<unsigned long long>(f.complete),
                static_cast<long long>(r.load.complete));
  }
  std::printf("\n");
  std::fflush(stdout);
}

struct Ratios {
  std::vector<double> rps, p50, p99, cpu;
};

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--rounds=") && absl::SimpleAtoi(a, &f.rounds) && f.rounds > 0) {
      continue;
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--seconds=") && absl::SimpleAtod(a, &f.seconds) &&
        f.seconds >= 1) {
      continue;
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--fpm-children=") && absl::SimpleAtoi(a, &f.fpm_children) &&
        f.fpm_children > 0) {
      continue;
    }
    a = argv[i];
    if (absl::ConsumePrefix(&a, "--concurrency=")) {
      f.concurrency.clear();
      bool ok = true;
      for (absl::string_view c : absl::StrSplit(a, ',')) {
        int v;
        ok = ok && absl::SimpleAtoi(c, &v) && v > 0;
        f.concurrency.push_back(v);
      }
      if (ok) continue;
    }
    a = argv[i];
    if (a == "--no-strace") {
      f.strace = false;
      continue;
    }
    if (a == "--no-floor") {
      f.floor = false;
      continue;
    }
    if (a == "--no-bpf-stats") {
      f.bpf_stats = false;
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat("unknown or bad flag ", argv[i]));
  }
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

int Main(int argc, char** argv) {
  absl::StatusOr<Flags> flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "overhead: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  const char* require = std::getenv("REQCOST_REQUIRE_BPF");
  bool required = require != nullptr && std::strcmp(require, "1") == 0;
  if (geteuid() != 0) {
    std::fprintf(stderr, "overhead: needs root (loading BPF, strace, nginx as root)\n");
    return required ? 1 : kExitSkip;
  }
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "overhead: %s\n", std::string(s.message()).c_str());
    return 1;
  };

  absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-bench");
  if (!dir.ok()) return fail(dir.status());
  testing::PhpFpmOptions fpm_opts;
  fpm_opts.children = flags->fpm_children;
  absl::StatusOr<Server> fpm = testing::StartPhpFpm(*dir, fpm_opts);
  if (!fpm.ok()) return fail(fpm.status());
  testing::NginxOptions nginx_opts;
  nginx_opts.upstream = fpm->address();
  absl::StatusOr<Server> nginx = testing::StartNginx(*dir, nginx_opts);
  if (!nginx.ok()) return fail(nginx.status());
  std::string url = nginx->Url("/hello.php");
  absl::StatusOr<testing::HttpResponse> probe = testing::HttpGet(url);
  if (!probe.ok()) return fail(probe.status());
  if (probe->status != 200 || probe->body.find("123") == std::string::npos) {
    return fail(absl::InternalError(absl::StrCat("GET ", url, " gave ", probe->status)));
  }

  std::printf("reqcost overhead benchmark\n");
  std::printf("machine: %ld CPUs, %s, kernel %s\n", sysconf(_SC_NPROCESSORS_ONLN),
              CpuModel().c_str(),
              absl::StripAsciiWhitespace(
                  ReadFileToString("/proc/sys/kernel/osrelease").value_or("?"))
                  .data());
  std::printf("stack: nginx (1 worker) -> php-fpm (static, %d children) over a unix socket, "
              "GET /hello.php; ab -t %.0f per run, %d rounds per concurrency\n",
              flags->fpm_children, flags->seconds, flags->rounds);
  std::printf("reqcost: attach -p NGINX -p FPM --format json (default 8 MiB ring buffer, no "
              "payload)\n");
  std::printf("strace:  strace -f -o FILE -p WORKER... (nginx worker + php-fpm children)\n\n");
  std::fflush(stdout);

  Bench bench(*flags, *dir, *nginx, *fpm, url);
  // Warm-up: PHP's opcache, nginx's caches, the page cache.
  if (absl::StatusOr<Load> w = RunLoad(*dir, url, 4, 1); !w.ok()) return fail(w.status());

  std::vector<Mode> modes = {Mode::kBase, Mode::kReqcost};
  if (flags->floor) modes.push_back(Mode::kFloor);
  if (flags->strace) modes.push_back(Mode::kStrace);
  // Everything but base, in the order the summary prints them.
  std::vector<Mode> traced;
  for (Mode m : {Mode::kFloor, Mode::kReqcost, Mode::kStrace}) {
    if (std::find(modes.begin(), modes.end(), m) != modes.end()) traced.push_back(m);
  }
  struct Summary {
    int concurrency;
    std::vector<double> base_rps, base_cpu;
    std::map<Mode, Ratios> ratios;             // traced / base of the same round
    std::map<Mode, std::vector<double>> rps;   // traced runs' throughput
    uint64_t max_dropped = 0;
    std::vector<double> events_per_s, events_per_request;
    std::vector<std::string> complete;  // "complete/ab" per run
  };
  std::vector<Summary> summaries;
  for (int c : flags->concurrency) {
    Summary sum;
    sum.concurrency = c;
    std::printf("concurrency %d:\n", c);
    for (int round = 1; round <= flags->rounds; ++round) {
      // Rotate the order so that no mode always runs first or last.
      std::vector<Mode> order = modes;
      std::rotate(order.begin(), order.begin() + (round - 1) % order.size(), order.end());
      std::map<Mode, Run> runs;
      for (Mode m : order) {
        absl::StatusOr<Run> r = bench.RunOne(m, c);
        if (!r.ok()) return fail(r.status());
        PrintRun(c, round, *r);
        runs[m] = *r;
      }
      const Load& base = runs[Mode::kBase].load;
      sum.base_rps.push_back(base.rps);
      sum.base_cpu.push_back(base.cpu_us_per_request);
      std::printf("  c=%d round %d ratios to base:", c, round);
      for (Mode m : traced) {
        const Load& l = runs[m].load;
        Ratios& ratios = sum.ratios[m];
        ratios.rps.push_back(l.rps / base.rps);
        if (base.p50_ms > 0) ratios.p50.push_back(l.p50_ms / base.p50_ms);
        if (base.p99_ms > 0) ratios.p99.push_back(l.p99_ms / base.p99_ms);
        ratios.cpu.push_back(l.cpu_us_per_request / base.cpu_us_per_request);
        sum.rps[m].push_back(l.rps);
        std::printf("  %s throughput %.3f p99 %.3f CPU %.3f", ModeName(m), ratios.rps.back(),
                    ratios.p99.empty() ? 0 : ratios.p99.back(), ratios.cpu.back());
      }
      std::printf("\n");
      std::fflush(stdout);
      const Run& rr = runs[Mode::kReqcost];
      sum.max_dropped = std::max(sum.max_dropped, rr.reqcost->dropped);
      sum.events_per_s.push_back(rr.reqcost->events / rr.load.seconds);
      sum.events_per_request.push_back(static_cast<double>(rr.reqcost->events) /
                                       rr.load.complete);
      sum.complete.push_back(absl::StrCat(rr.reqcost->complete, "/", rr.load.complete));
    }
    summaries.push_back(sum);
  }

  if (flags->bpf_stats) {
    if (absl::Status s = bench.BpfStats(flags->concurrency.back()); !s.ok()) return fail(s);
  }

  std::printf("\nSUMMARY (medians over %d rounds; ratio = traced / untraced of the same round; "
              "spread = lowest..highest ratio)\n",
              flags->rounds);
  bool met = true;
  for (const Summary& s : summaries) {
    std::printf("c=%d: untraced %.0f req/s, %.0f µs of CPU per request\n", s.concurrency,
                Median(s.base_rps), Median(s.base_cpu));
    for (Mode m : traced) {
      const Ratios& r = s.ratios.at(m);
      double ratio = Median(r.rps);
      auto [lo, hi] = std::minmax_element(r.rps.begin(), r.rps.end());
      std::printf("  %-8s %6.0f req/s  throughput ratio %.3f (spread %.3f..%.3f)  p50 ratio "
                  "%.3f  p99 ratio %.3f  CPU/request ratio %.3f",
                  ModeName(m), Median(s.rps.at(m)), ratio, *lo, *hi, Median(r.p50),
                  Median(r.p99), Median(r.cpu));
      if (m == Mode::kReqcost) {
        met = met && ratio >= 0.97;
        std::printf("  (target >= 0.97: %s)", ratio >= 0.97 ? "met" : "MISSED");
      }
      std::printf("\n");
    }
    std::printf("  reqcost events %.0f/s (%.1f per request), dropped events (max of runs) "
                "%llu, requests complete/ab: %s\n",
                Median(s.events_per_s), Median(s.events_per_request),
                static_cast<unsigned long long>(s.max_dropped),
                absl::StrJoin(s.complete, " ").c_str());
  }
  std::printf("overhead target (throughput ratio >= 0.97 at every concurrency): %s\n",
              met ? "met" : "MISSED");

  absl::Status s1 = nginx->Stop();
  absl::Status s2 = fpm->Stop();
  if (!s1.ok()) return fail(s1);
  if (!s2.ok()) return fail(s2);
  return 0;
}

}  // namespace
}  // namespace reqcost::bench

int main(int argc, char** argv) { return reqcost::bench::Main(argc, argv); }
