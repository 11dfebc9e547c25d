// What reqcost's TLS uprobes cost per HTTPS request, on a live nginx
// (`listen ... ssl http2`, a static file) loaded by h2load in two modes:
// HTTP/1.1 keep-alive over TLS (h2load --h1) and HTTP/2 with 4 streams per
// connection (h2load -m 4), 2 connections each.
//
// Each round runs the load once per probe mode, in rotating order, with the
// reqcost tracer attached to nginx in-process:
//   off     the tracer without its TLS probes (--no-tls-probes)
//   probes  the tracer with its TLS probes as reqcost attaches them: at
//           OpenSSL's internal read and write functions (collector/
//           ssl_sites.h, else SSL_read, SSL_write and their _ex forms), as
//           one uprobe session link per process on this kernel, so that a
//           call on an HTTP/1.x connection (no --payload here) takes no
//           return trap
//   probes-2links  the same probes as two uprobe_multi links (entries,
//           returns), as before the session link: every call's return traps
//   floor   the tracer without its probes, plus floor.bpf.c's empty uprobe
//           and uretprobe at the same places in the same processes: the
//           traps alone, with no program work
//   floor-entry  the empty uprobes alone, no uretprobe: an entry trap per
//           call, what a call left at its entry costs the kernel
//   floor-public  the same empty probes on the four public functions
//           (where reqcost probed before ssl_sites.h): their first
//           instruction is single-stepped, the internal ones' emulated
// and measures, per request served:
//   - the nginx workers' CPU (their schedstat run time: the traps and the
//     programs run in the worker, so this is where the probes' cost lands);
//   - the machine's busy CPU (/proc/stat): the honest total, but on a
//     shared machine it carries everyone else's work too;
//   - with kernel.bpf_stats_enabled (BPF_ENABLE_STATS), each TLS program's
//     runs and run time: uprobe hits per request and ns per run.
// It prints the median and the spread (min..max) over the rounds of each
// figure, and the median of the per-round differences of each mode to off.
// Root; exits 77 (skipped) without BPF unless REQCOST_REQUIRE_BPF=1.
//
//   tls_cost [--rounds=N] [--requests=N] [--quick]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "collector/ssl_sites.h"
#include "collector/tracer.h"
#include "tests/bench/floor_uprobes.h"
#include "tests/bench/round_figures.h"
#include "tests/support/stack.h"

namespace reqcost::bench {
namespace {

using ::reqcost::stack::NginxOptions;
using ::reqcost::stack::ReadFileToString;
using ::reqcost::stack::Server;
using ::reqcost::stack::StartNginx;
using ::reqcost::stack::Subprocess;
using ::reqcost::stack::TempDir;
using ::reqcost::stack::WriteStringToFile;

enum class Mode {
  kOff,
  kProbes,
  kProbesTwoLinks,
  kFloor,
  kFloorEntry,
  kFloorPublic
};
constexpr Mode kModes[] = {Mode::kOff,        Mode::kProbes,
                           Mode::kProbesTwoLinks, Mode::kFloor,
                           Mode::kFloorEntry, Mode::kFloorPublic};
constexpr int kModeCount = 6;
const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kOff: return "off";
    case Mode::kProbes: return "probes";
    case Mode::kProbesTwoLinks: return "probes-2links";
    case Mode::kFloor: return "floor";
    case Mode::kFloorEntry: return "floor-entry";
    case Mode::kFloorPublic: return "floor-public";
  }
  return "?";
}
bool WithProbes(Mode m) {
  return m == Mode::kProbes || m == Mode::kProbesTwoLinks;
}

struct Scenario {
  std::string name;
  std::vector<std::string> h2load_args;  // before the URL
};

// Busy CPU of the whole machine so far, ns (/proc/stat: user, nice, system,
// irq, softirq).
double MachineBusyNs() {
  std::string text = ReadFileToString("/proc/stat").value_or("");
  std::vector<absl::string_view> f = absl::StrSplit(
      absl::string_view(text).substr(0, text.find('\n')), ' ',
      absl::SkipEmpty());
  double busy = 0;
  for (size_t i : {1, 2, 3, 6, 7}) {
    double v;
    if (i < f.size() && absl::SimpleAtod(f[i], &v)) busy += v;
  }
  return busy * 1e9 / sysconf(_SC_CLK_TCK);
}

// The run time of `pids` so far, ns (schedstat's first field).
double RunNs(const std::vector<pid_t>& pids) {
  double sum = 0;
  for (pid_t p : pids) {
    absl::StatusOr<std::string> s =
        ReadFileToString(absl::StrCat("/proc/", p, "/schedstat"));
    if (s.ok()) sum += std::strtod(s->c_str(), nullptr);
  }
  return sum;
}

// Runs and run time of the programs `ids` (bpf_stats), summed.
struct ProgStats {
  uint64_t runs = 0;
  uint64_t ns = 0;
};
ProgStats StatsOf(const std::vector<uint32_t>& ids) {
  ProgStats s;
  for (uint32_t id : ids) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      s.runs += info.run_cnt;
      s.ns += info.run_time_ns;
    }
    close(fd);
  }
  return s;
}

// reqcost's TLS programs among a tracer's (their names begin "ssl_").
std::vector<uint32_t> TlsProgramIds(const collector::Tracer& tracer) {
  std::vector<uint32_t> ids;
  for (uint32_t id : tracer.object_ids().programs) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
        absl::StartsWith(info.name, "ssl_")) {
      ids.push_back(id);
    }
    close(fd);
  }
  return ids;
}

struct Figures {
  double nginx_ns = 0;    // nginx workers' CPU per request
  double machine_ns = 0;  // machine busy CPU per request
  double runs = 0;        // TLS program runs per request (probes, floor)
  double ns_per_run = 0;  // their own run time per run
  double tls_calls = 0;   // reqcost's count of nginx's TLS calls per request
  double tls_returns = 0;  // and of the return traps among them
};

int Main(int argc, char** argv) {
  RoundsFlags flags{7, 4000};
  if (int rc = StartBench(argc, argv, "tls_cost", {2, 400}, &flags); rc != 0) {
    return rc;
  }
  const int rounds = flags.rounds;
  const int requests = flags.requests;
  std::string h2load;
  for (const char* p : {"/usr/bin/h2load", "/usr/local/bin/h2load"}) {
    if (access(p, X_OK) == 0) h2load = p;
  }
  if (h2load.empty()) {
    std::fprintf(stderr, "tls_cost: h2load not found (nghttp2-client)\n");
    return 1;
  }
  absl::StatusOr<TempDir> dir = TempDir::Create("reqcost-tls-cost");
  if (!dir.ok()) return 1;
  if (!WriteStringToFile(dir->File("hello.txt"), "hello\n").ok()) return 1;
  NginxOptions nopts;
  nopts.ssl_protocols = "TLSv1.2 TLSv1.3";
  nopts.http2 = true;
  nopts.docroot = dir->path();
  absl::StatusOr<Server> nginx = StartNginx(*dir, nopts);
  if (!nginx.ok()) {
    std::fprintf(stderr, "tls_cost: nginx: %s\n",
                 nginx.status().ToString().c_str());
    return 1;
  }
  const std::vector<pid_t> workers = nginx->WorkerPids();
  int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats_fd < 0) {
    std::fprintf(stderr, "tls_cost: BPF_ENABLE_STATS: %s\n",
                 std::strerror(errno));
    return 1;
  }
  const std::string url = nginx->Url("/hello.txt");
  const std::vector<Scenario> scenarios = {
      {"HTTPS/1.1 keep-alive (h2load --h1 -c 2)", {"--h1", "-c", "2"}},
      {"HTTP/2, 4 streams (h2load -c 2 -m 4)", {"-c", "2", "-m", "4"}},
  };
  std::printf("tls_cost: %d rounds x %d requests per scenario and mode, "
              "nginx 1 worker; %ld CPUs, shared with other work: the "
              "nginx-CPU and bpf_stats figures are the ones to trust\n",
              rounds, requests, sysconf(_SC_NPROCESSORS_ONLN));
  for (const Scenario& sc : scenarios) {
    std::map<Mode, std::vector<Figures>> by_mode;
    for (int round = 0; round < rounds; ++round) {
      for (int k = 0; k < kModeCount; ++k) {
        const Mode mode = kModes[(round + k) % kModeCount];
        CountingSink sink;
        std::unique_ptr<collector::Tracer> tracer =
            StartTlsTracer("tls_cost", nginx->pid(), WithProbes(mode),
                           mode != Mode::kProbesTwoLinks, 0, &sink);
        if (tracer == nullptr) return 1;
        std::unique_ptr<FloorUprobes> floor;
        std::vector<uint32_t> ids;
        if (mode == Mode::kFloor || mode == Mode::kFloorEntry ||
            mode == Mode::kFloorPublic) {
          absl::StatusOr<std::unique_ptr<FloorUprobes>> f =
              FloorUprobes::Attach(workers, mode == Mode::kFloorPublic,
                                   mode != Mode::kFloorEntry);
          if (!f.ok()) {
            std::fprintf(stderr, "tls_cost: %s\n",
                         f.status().ToString().c_str());
            return 1;
          }
          floor = std::move(*f);
          ids = floor->ProgramIds();
        } else if (WithProbes(mode)) {
          ids = TlsProgramIds(*tracer);
        }
        const ProgStats stats0 = StatsOf(ids);
        const double nginx0 = RunNs(workers), machine0 = MachineBusyNs();
        std::vector<std::string> args = {h2load, "-n",
                                         std::to_string(requests)};
        args.insert(args.end(), sc.h2load_args.begin(), sc.h2load_args.end());
        args.push_back(url);
        absl::StatusOr<Subprocess> client = Subprocess::Start(
            args, dir->File("h2load.out"), dir->File("h2load.err"));
        if (!client.ok()) return 1;
        const absl::Time deadline = absl::Now() + absl::Seconds(120);
        while (client->running() && absl::Now() < deadline) {
          (void)tracer->Poll(50);
        }
        absl::StatusOr<int> status = client->WaitForExit(absl::Seconds(1));
        const double nginx1 = RunNs(workers), machine1 = MachineBusyNs();
        const ProgStats stats1 = StatsOf(ids);
        for (int i = 0; i < 4; ++i) (void)tracer->Poll(20);
        const KernelCounters counters = tracer->counters();
        std::string out = ReadFileToString(dir->File("h2load.out")).value_or("");
        if (!status.ok() || *status != 0 ||
            !absl::StrContains(out, absl::StrCat(requests, " succeeded"))) {
          std::fprintf(stderr, "tls_cost: h2load failed:\n%s\n", out.c_str());
          return 1;
        }
        Figures f;
        f.nginx_ns = (nginx1 - nginx0) / requests;
        f.machine_ns = (machine1 - machine0) / requests;
        f.runs = static_cast<double>(stats1.runs - stats0.runs) / requests;
        f.ns_per_run = stats1.runs > stats0.runs
                           ? static_cast<double>(stats1.ns - stats0.ns) /
                                 (stats1.runs - stats0.runs)
                           : 0;
        f.tls_calls = static_cast<double>(counters.tls_calls) / requests;
        f.tls_returns = static_cast<double>(counters.tls_returns) / requests;
        by_mode[mode].push_back(f);
        if (sink.drops > 0) {
          std::printf("  (round %d %s: %llu events dropped)\n", round,
                      ModeName(mode),
                      static_cast<unsigned long long>(sink.drops));
        }
      }
    }
    std::printf("\n== %s\n", sc.name.c_str());
    std::printf("  %-12s %-28s %-28s %-22s %s\n", "mode",
                "nginx CPU ns/req", "machine CPU ns/req", "uprobe runs/req",
                "ns/run (bpf_stats)");
    for (Mode m : kModes) {
      std::vector<double> n, mc, r, pr;
      for (const Figures& f : by_mode[m]) {
        n.push_back(f.nginx_ns);
        mc.push_back(f.machine_ns);
        r.push_back(f.runs);
        pr.push_back(f.ns_per_run);
      }
      std::printf("  %-12s %-28s %-28s %-22s %s\n", ModeName(m),
                  Spread(n, "%.0f").c_str(), Spread(mc, "%.0f").c_str(),
                  m == Mode::kOff ? "-" : Spread(r, "%.2f").c_str(),
                  m == Mode::kOff ? "-" : Spread(pr, "%.0f").c_str());
    }
    // Per-round differences against the same round's off run.
    for (Mode m : {Mode::kProbes, Mode::kProbesTwoLinks, Mode::kFloor,
                   Mode::kFloorEntry, Mode::kFloorPublic}) {
      std::vector<double> dn, dm;
      for (int i = 0; i < rounds; ++i) {
        dn.push_back(by_mode[m][i].nginx_ns - by_mode[Mode::kOff][i].nginx_ns);
        dm.push_back(by_mode[m][i].machine_ns -
                     by_mode[Mode::kOff][i].machine_ns);
      }
      std::printf("  %s - off: nginx CPU %s ns/request, machine CPU %s "
                  "ns/request (median of per-round differences, min..max)\n",
                  ModeName(m), Spread(dn, "%+.0f").c_str(),
                  Spread(dm, "%+.0f").c_str());
    }
    for (Mode m : {Mode::kProbes, Mode::kProbesTwoLinks}) {
      std::vector<double> calls, returns;
      for (const Figures& f : by_mode[m]) {
        calls.push_back(f.tls_calls);
        returns.push_back(f.tls_returns);
      }
      std::printf("  %s: nginx TLS calls per request %s, return traps per "
                  "request %s (reqcost's counters)\n",
                  ModeName(m), Spread(calls, "%.2f").c_str(),
                  Spread(returns, "%.2f").c_str());
    }
  }
  close(stats_fd);
  return 0;
}

}  // namespace
}  // namespace reqcost::bench

int main(int argc, char** argv) { return reqcost::bench::Main(argc, argv); }
