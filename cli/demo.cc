// `reqcost demo`: a real nginx + php-fpm stack (and the sample FastCGI
// backend) on loopback in a temp dir, profiled by PID under bounded load,
// four ways: client keep-alive off/on × a backend connection per request or
// fastcgi_keep_conn. The ways run interleaved, in rounds (each once per
// round, the order rotating), so that the machine's drift falls on all of
// them alike. Prints one breakdown per way and what each saves.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "analyzers/compare.h"
#include "analyzers/render/format.h"
#include "cli/demo.h"
#include "cli/exit_codes.h"
#include "cli/pipeline.h"
#include "collector/tracer.h"
#include "samples/stack/data_dirs.h"
#include "samples/stack/load.h"
#include "samples/stack/process.h"
#include "samples/stack/servers.h"

namespace reqcost::cli {
namespace {

volatile sig_atomic_t g_demo_stop = 0;

void OnDemoSignal(int) { g_demo_stop = 1; }

// Hands events to the pipeline of the scenario under way, if any.
class SwitchSink : public collector::EventSink {
 public:
  void Set(collector::EventSink* target) { target_ = target; }
  void OnSyscall(const SyscallEvent& e) override {
    if (target_) target_->OnSyscall(e);
  }
  void OnProcess(const ProcessEvent& e) override {
    if (target_) target_->OnProcess(e);
  }
  void OnDrops(uint64_t from, uint64_t to, uint64_t count) override {
    if (target_) target_->OnDrops(from, to, count);
  }

 private:
  collector::EventSink* target_ = nullptr;
};

struct Scenario {
  const char* name;
  bool client_keepalive;
  bool keep_conn;  // through the nginx with fastcgi_keep_conn on
  const char* path;
};

struct Outcome {
  const Scenario* scenario;
  stack::AbResult ab;
  analyzers::Report report;
};

std::string Ms(const std::optional<analyzers::PhaseSummary>& p) {
  return p ? analyzers::FormatDuration(p->mean_us) : "-";
}

double PerRequest(const analyzers::Report& r, const std::string& name,
                  const std::string& side, const std::string& target) {
  for (const analyzers::TimelineEntry& t : r.timeline) {
    if (t.name == name && t.side == side && t.target == target) {
      return t.count_per_request;
    }
  }
  return 0;
}

double Accepts(const analyzers::Report& r) {
  return PerRequest(r, "accept4", "server", "client") +
         PerRequest(r, "accept", "server", "client");
}

void PrintTable(const std::vector<Outcome>& outcomes, int requests,
                int rounds) {
  std::printf(
      "\n%d requests each over %d interleaved rounds, ab -c 1, mean per "
      "request (complete requests):\n\n",
      requests, rounds);
  std::printf("  %-44s %10s %10s %10s %10s %10s %8s %8s\n", "", "total",
              "server", "transport", "backend", "queue", "accepts", "connects");
  for (const Outcome& o : outcomes) {
    const analyzers::PhaseSet& p = o.report.phases;
    std::printf("  %-44s %10s %10s %10s %10s %10s %8.2f %8.2f\n",
                o.scenario->name, Ms(p.total).c_str(), Ms(p.server).c_str(),
                Ms(p.transport).c_str(), Ms(p.backend).c_str(),
                Ms(p.queue).c_str(), Accepts(o.report),
                PerRequest(o.report, "connect", "server", "backend"));
  }
  std::printf(
      "\n  (accepts and connects: per request; ab's own mean "
      "time per request:");
  for (const Outcome& o : outcomes)
    std::printf(" %.3f", o.ab.time_per_request_ms);
  std::printf(" ms)\n");
}

// One verdict per way against the first, from analyzers::Compare.
void PrintSavings(const std::vector<Outcome>& outcomes) {
  std::printf("\ncompared with %s:\n", outcomes[0].scenario->name);
  for (size_t i = 1; i < outcomes.size() && i < 4; ++i) {
    analyzers::Comparison c = analyzers::Compare(
        outcomes[0].report, outcomes[i].report, outcomes[0].scenario->name,
        outcomes[i].scenario->name);
    std::printf("  %s\n", c.verdict.c_str());
  }
}

void PrintTimeline(const Outcome& o) {
  std::printf("\nthe average request, %s (what strace -tt showed by hand):\n",
              o.scenario->name);
  for (const analyzers::TimelineEntry& t : o.report.timeline) {
    if (t.count_per_request < 0.01)
      continue;  // the odd reconnect, not the pattern
    // A call seen at its end only has no duration: "-".
    std::printf(
        "  %-8s %-10s %10s  x%.2f  %s\n", t.side.c_str(), t.name.c_str(),
        t.untimed ? "-"
                  : analyzers::FormatDuration(t.mean_us_per_request).c_str(),
        t.count_per_request, t.target.c_str());
  }
}

// Adds one round of a way: ab's counts (its mean time per request weighted
// by requests), the capture's duration, events and drops, and the time its
// requests ran (client.busy_s; client.in_flight summed times busy_s).
void AddRound(const stack::AbResult& ab, const analyzers::Report& report,
              Outcome* o, analyzers::Report* totals) {
  const int before = o->ab.complete;
  o->ab.complete += ab.complete;
  o->ab.failed += ab.failed;
  o->ab.non_2xx += ab.non_2xx;
  o->ab.keepalive_requests += ab.keepalive_requests;
  if (o->ab.complete > 0) {
    o->ab.time_per_request_ms = (o->ab.time_per_request_ms * before +
                                 ab.time_per_request_ms * ab.complete) /
                                o->ab.complete;
  }
  totals->capture.duration_s += report.capture.duration_s;
  totals->capture.events += report.capture.events;
  totals->capture.dropped_events += report.capture.dropped_events;
  totals->processes = report.processes;
  // The client's rate over the time its slots' requests ran, not over the
  // rounds between them (other ways ran then).
  totals->client.busy_s += report.client.busy_s;
  totals->client.in_flight += report.client.in_flight * report.client.busy_s;
  totals->anomalies.Add(report.anomalies);
}

absl::Status Fail(const std::string& what, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrFormat("%s: %s", what, s.message()));
}

absl::Status RunDemoOrError(const DemoOptions& options) {
  // The sample backend and the templates sit beside this binary:
  // <prefix>/lib/reqcost and <prefix>/share/reqcost, or the build tree's
  // copies of them when run from there.
  absl::StatusOr<stack::DataDirs> data = stack::DataDirsBesideExecutable();
  if (!data.ok()) {
    // A broken install, not a missing kernel feature: exit 1, not 5.
    return absl::InternalError(
        absl::StrFormat("%s (reinstall reqcost, or run it from its build tree)",
                        data.status().message()));
  }
  stack::UseDataDirs(*data);
  absl::StatusOr<stack::TempDir> dir = stack::TempDir::Create("reqcost-demo");
  if (!dir.ok()) return Fail("temp dir", dir.status());
  std::printf("reqcost demo: starting a real stack on loopback in %s\n",
              dir->path().c_str());

  stack::PhpFpmOptions fpm_opts;
  fpm_opts.children = 4;  // kept connections hold a child each
  absl::StatusOr<stack::Server> fpm = stack::StartPhpFpm(*dir, fpm_opts);
  if (!fpm.ok()) return Fail("php-fpm", fpm.status());
  stack::FcgiBackendOptions backend_opts;
  backend_opts.workers = 2;
  absl::StatusOr<stack::Server> backend =
      stack::StartFcgiBackend(*dir, backend_opts);
  if (!backend.ok()) return Fail("sample backend", backend.status());
  stack::NginxOptions per_request;
  per_request.upstream = fpm->address();
  per_request.fcgi_upstream = backend->address();
  absl::StatusOr<stack::Server> nginx = stack::StartNginx(*dir, per_request);
  if (!nginx.ok()) return Fail("nginx", nginx.status());
  stack::NginxOptions kept = per_request;
  kept.keep_conn = true;
  absl::StatusOr<stack::Server> nginx_kept = stack::StartNginx(*dir, kept);
  if (!nginx_kept.ok())
    return Fail("nginx (fastcgi_keep_conn)", nginx_kept.status());
  std::printf(
      "  php-fpm %d, sample FastCGI backend %d, nginx %d (a backend "
      "connection per request, port %d), nginx %d (fastcgi_keep_conn "
      "on, port %d)\n",
      fpm->pid(), backend->pid(), nginx->pid(), nginx->port(),
      nginx_kept->pid(), nginx_kept->port());

  SwitchSink sink;
  collector::TracerOptions topts;
  topts.pids = {nginx->pid(), nginx_kept->pid(), fpm->pid(), backend->pid()};
  topts.payload_bytes = 64;  // request lines and FastCGI record headers
  absl::StatusOr<std::unique_ptr<collector::Tracer>> tracer =
      collector::Tracer::Start(topts, &sink);
  if (!tracer.ok()) return tracer.status();
  std::printf("  attached to %zu processes\n", (*tracer)->processes().size());

  static const Scenario kScenarios[] = {
      {"client close, backend connection per request", false, false,
       "/hello.php"},
      {"client keep-alive, backend per request", true, false, "/hello.php"},
      {"client close, fastcgi_keep_conn", false, true, "/hello.php"},
      {"client keep-alive, fastcgi_keep_conn", true, true, "/hello.php"},
      {"sample backend (1 ms of work), keep-alive", true, false,
       "/fcgi/demo?work_us=1000"},
  };
  // Each way's requests over all rounds feed one RequestStats; every slot
  // (one way in one round) has its own pipeline, so a connection seen in
  // another way's slot never confuses this one's.
  constexpr size_t kWays = sizeof(kScenarios) / sizeof(kScenarios[0]);
  std::vector<Outcome> outcomes;
  std::vector<analyzers::RequestStats> stats(kWays);
  std::vector<analyzers::Report> totals(kWays);
  std::vector<size_t> slots(kWays, 0);
  for (size_t w = 0; w < kWays; ++w)
    outcomes.push_back({&kScenarios[w], {}, {}});
  std::FILE* devnull = std::fopen("/dev/null", "w");
  const int rounds = std::min(options.rounds, options.requests);
  std::printf(
      "  %d rounds; in each, every way runs in turn (the order "
      "rotates)\n",
      rounds);
  for (int round = 0; round < rounds && !g_demo_stop; ++round) {
    // This round's share of the requests: the remainder goes to the first.
    const int n = options.requests / rounds +
                  (round == 0 ? options.requests % rounds : 0);
    for (size_t k = 0; k < kWays && !g_demo_stop; ++k) {
      const size_t w = (k + round) % kWays;
      const Scenario& s = kScenarios[w];
      const stack::Server& front = s.keep_conn ? *nginx_kept : *nginx;
      OutputOptions quiet;
      quiet.summary = false;
      Pipeline pipeline(quiet, devnull);
      pipeline.AddRequestObserver(
          [&stats, w](const analyzers::Request& r) { stats[w].Add(r); });
      uint64_t start = collector::MonotonicNowNs();
      pipeline.Begin(start, (*tracer)->processes());
      sink.Set(&pipeline);

      stack::AbOptions ab;
      ab.url = front.Url(s.path);
      ab.requests = n;
      ab.keepalive = s.client_keepalive;
      ab.work_dir = dir->path();
      absl::StatusOr<stack::AbResult> result;
      std::atomic<bool> done{false};
      std::thread load([&] {
        result = stack::RunAb(ab);
        done = true;
      });
      // Drain while the load runs, then let the last events arrive.
      while (!done) {
        if (absl::StatusOr<int> polled = (*tracer)->Poll(50); !polled.ok()) {
          load.join();
          return polled.status();
        }
      }
      load.join();
      for (int i = 0; i < 3; ++i) (void)(*tracer)->Poll(50);
      sink.Set(nullptr);
      absl::Status end =
          pipeline.End(collector::MonotonicNowNs(), (*tracer)->counters());
      if (!result.ok()) return Fail("ab", result.status());
      if (!end.ok()) return end;
      AddRound(*result, pipeline.report(), &outcomes[w], &totals[w]);
      ++slots[w];
    }
  }
  std::fclose(devnull);
  // The ways that ran in every round (all of them unless interrupted).
  std::vector<Outcome> complete;
  for (size_t w = 0; w < kWays; ++w) {
    if (slots[w] == 0) continue;
    Outcome& o = outcomes[w];
    o.report.capture = totals[w].capture;
    o.report.processes = totals[w].processes;
    o.report.anomalies = totals[w].anomalies;
    stats[w].Fill(&o.report);
    analyzers::ClientView& client = o.report.client;
    client.busy_s = totals[w].client.busy_s;
    client.rate_per_s =
        client.busy_s > 0 ? o.report.complete / client.busy_s : 0;
    client.in_flight =
        client.busy_s > 0 ? totals[w].client.in_flight / client.busy_s : 0;
    const analyzers::Report& r = o.report;
    std::printf(
        "  %-44s ab: %d requests (%d kept alive); reqcost: %llu "
        "complete, %llu incomplete, backend %s\n",
        o.scenario->name, o.ab.complete, o.ab.keepalive_requests,
        static_cast<unsigned long long>(r.complete),
        static_cast<unsigned long long>(r.incomplete),
        r.backend_timing.c_str());
    complete.push_back(o);
  }
  outcomes = std::move(complete);
  KernelCounters counters = (*tracer)->counters();
  tracer->reset();

  if (!outcomes.empty()) {
    PrintTable(outcomes, options.requests, rounds);
    if (outcomes.size() >= 2) PrintSavings(outcomes);
    PrintTimeline(outcomes.front());
    if (outcomes.size() >= 4) PrintTimeline(outcomes[3]);
  }
  std::printf("\n%s\n", CountersLine(counters.emitted, 0, counters).c_str());
  if (g_demo_stop) {
    std::printf("interrupted: %zu of %zu ways ran, not all in every round\n",
                outcomes.size(), kWays);
  }
  // Servers stop (by PID) as they go out of scope: nginx first, then the
  // backends, then the temp dir.
  nginx_kept->Stop().IgnoreError();
  nginx->Stop().IgnoreError();
  backend->Stop().IgnoreError();
  fpm->Stop().IgnoreError();
  std::printf("stopped nginx, php-fpm and the sample backend\n");
  return absl::OkStatus();
}

}  // namespace

absl::Status RunDemo(const DemoOptions& options) {
  if (options.requests < 1 || options.requests > 100000) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--requests %d is out of range: 1 to 100000", options.requests));
  }
  struct sigaction sa {};
  sa.sa_handler = OnDemoSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  absl::Status s = RunDemoOrError(options);
  if (!s.ok()) return WithSpeaker(std::move(s), "reqcost demo");
  return absl::OkStatus();
}

}  // namespace reqcost::cli
