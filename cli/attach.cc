#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "analyzers/payload.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/fleet.h"
#include "cli/live_view.h"
#include "cli/pipeline.h"
#include "cli/targets.h"
#include "collector/capture_file.h"
#include "collector/status_macros.h"
#include "collector/tracer.h"

namespace reqcost::cli {
namespace {

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_reread = 0;

void OnStopSignal(int) { g_stop = 1; }
void OnReread(int) { g_reread = 1; }

// SIGINT and SIGTERM end the run cleanly. No SA_RESTART: the poll returns
// at once instead of waiting out its timeout. SIGHUP re-reads the targets
// when `reread_on_hup` (a service's reload); otherwise it is a terminal's
// hang-up and ends the run cleanly too.
void InstallStopHandlers(bool reread_on_hup) {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = reread_on_hup ? OnReread : OnStopSignal;
  sigaction(SIGHUP, &sa, nullptr);
}

constexpr absl::Duration kMinInterval = absl::Milliseconds(100);

constexpr absl::Duration kMaxDuration = absl::Hours(24 * 7);
constexpr uint64_t kFlushEveryNs = 1000000000;

// The traced server comes first: as SCHED_BATCH the collector never preempts
// it on wake-up, yet keeps its fair share of the CPU, so the ring buffer is
// still drained at saturation. Best effort: without it nothing is lost.
void YieldToTracedProcesses() {
  sched_param param{};
  (void)sched_setscheduler(0, SCHED_BATCH, &param);
}

// The duration `text` of flag `flag` ("--duration"), in seconds or with a
// unit; `examples` and `range` say what the flag takes in the error.
absl::StatusOr<absl::Duration> ParseDurationText(const char* flag,
                                                 const std::string& text,
                                                 absl::Duration min,
                                                 const char* examples,
                                                 const char* range) {
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s %s is not a duration: use %s or seconds", flag, text, examples));
  }
  if (d < min || d > kMaxDuration) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s %s is out of range: %s", flag, text, range));
  }
  return d;
}

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text) {
  return ParseDurationText("--duration", text, absl::ZeroDuration(),
                           "10s, 500ms, 2m", "0 (until Ctrl-C) to 168h");
}

// --interval: like --duration, but 100ms or more.
absl::StatusOr<absl::Duration> ParseIntervalFlag(const std::string& text) {
  return ParseDurationText("--interval", text, kMinInterval, "5s, 500ms, 1m",
                           "100ms to 168h");
}

// What a re-read of the targets found, on stderr: PID targets gone, the
// processes traced anew (up to kNamed of them by name) and, for a SIGHUP,
// one line of totals.
void PrintRescan(const collector::Tracer::RescanResult& r, bool sighup,
                 size_t cgroups, bool cgroups_changed) {
  constexpr size_t kNamed = 8;
  const char* why = sighup ? "SIGHUP: " : "";
  for (const ProcessInfo& p : r.exited_targets) {
    std::fprintf(stderr, "reqcost: %s-p %u (%s) has exited: no longer a target\n",
                 why, p.pid, analyzers::TerminalText(p.comm).c_str());
  }
  for (size_t i = 0; i < r.added.size() && i < kNamed; ++i) {
    std::fprintf(stderr, "reqcost: %straced %u (%s), which was not yet\n", why,
                 r.added[i].pid,
                 analyzers::TerminalText(r.added[i].comm).c_str());
  }
  if (r.added.size() > kNamed) {
    std::fprintf(stderr, "reqcost: %sand %zu more processes traced anew\n",
                 why, r.added.size() - kNamed);
  }
  if (!sighup) return;
  std::fprintf(stderr,
               "reqcost: SIGHUP: re-read %zu cgroup targets (%s) and %zu PID "
               "targets; %zu processes traced anew\n",
               cgroups, cgroups_changed ? "changed" : "unchanged",
               r.pid_targets, r.added.size());
  if (cgroups == 0 && r.pid_targets == 0) {
    std::fprintf(stderr,
                 "reqcost: no target is left: the processes still traced are "
                 "followed until they exit\n");
  }
}

// Re-reads the targets on SIGHUP (every kind: docs/reqcost.8.md, SIGNALS),
// and the cgroup targets alone when a traced directory went away or was
// recreated (a restarted unit).
void RereadTargets(CgroupTargets* targets, collector::Tracer* tracer) {
  const bool asked = g_reread != 0;
  g_reread = 0;
  if (!asked && (targets->empty() || !targets->Stale())) return;
  const bool changed = !targets->empty() && targets->Reread();
  if (changed) {
    if (absl::Status s = tracer->SetCgroups(targets->targets()); !s.ok()) {
      std::fprintf(stderr, "reqcost: re-reading targets: %s\n",
                   std::string(s.message()).c_str());
      std::fflush(stderr);
      return;
    }
  }
  // A recreated directory's processes now, not at their next traced call;
  // on SIGHUP every target's.
  if (changed || asked) {
    PrintRescan(tracer->Rescan(), asked, targets->targets().size(),
                changed);
  }
  std::fflush(stderr);
}

int64_t MonotonicToWallNs() {
  timespec wall, mono;
  clock_gettime(CLOCK_REALTIME, &wall);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return (int64_t{wall.tv_sec} - mono.tv_sec) * 1000000000 +
         (wall.tv_nsec - mono.tv_nsec);
}

collector::CaptureHeader MakeHeader(const AttachOptions& options,
                                    int64_t mono_to_wall_ns, uint64_t start_ns,
                                    const std::vector<ProcessInfo>& procs) {
  collector::CaptureHeader h;
  utsname uts{};
  uname(&uts);
  h.mono_to_wall_ns = mono_to_wall_ns;
  h.start_mono_ns = start_ns;
  h.host = uts.nodename;
  h.kernel_release = uts.release;
  h.reqcost_version = REQCOST_VERSION;
  h.payload_capture_bytes = options.payload_bytes;
  h.command_line = options.command_line;
  h.processes = procs;
  return h;
}

}  // namespace

absl::Status RunAttach(const AttachOptions& options) {
  ASSIGN_OR_RETURN(const absl::Duration duration,
                   ParseDurationFlag(options.duration));
  ASSIGN_OR_RETURN(const Format format, ParseFormat(options.format));
  std::optional<absl::Duration> interval;
  if (!options.interval.empty()) {
    ASSIGN_OR_RETURN(interval, ParseIntervalFlag(options.interval));
    if (!options.summary) {
      return absl::InvalidArgumentError(
          "--interval is for attach: record writes a capture only");
    }
    if (format == Format::kJson) {
      return absl::InvalidArgumentError(
          "--interval prints text or jsonl: use -f text or -f jsonl");
    }
  }
  ASSIGN_OR_RETURN(CgroupTargets targets,
                   CgroupTargets::Resolve(options.cgroups, options.units));
  collector::TracerOptions topts;
  topts.pids = options.pids;
  topts.cgroups = targets.targets();
  topts.payload_bytes = options.payload_bytes;
  topts.ring_bytes = options.ring_bytes;
  topts.syscall_times = options.syscall_times;
  topts.tls_probes = options.tls_probes;
  topts.verbose = options.verbose;
  RETURN_IF_ERROR(collector::ValidateTracerOptions(topts));

  OutputOptions out;
  out.format = format;
  out.events = options.events;
  out.requests = options.requests;
  out.summary = options.summary;
  out.intervals = interval.has_value();
  out.explain_empty = options.summary;
  Pipeline pipeline(out, stdout);
  // One clock offset per run: the capture's and the spans' (so that `report
  // --otlp-json` of the capture gives the very same span times).
  const int64_t mono_to_wall_ns = MonotonicToWallNs();
  // Before attaching: a bad --metrics address or output file fails at once.
  std::unique_ptr<FleetOutputs> fleet;
  // `record` (no summary) captures only: an OTEL_* endpoint in its
  // environment does not turn span export on.
  if (FleetOutputs::Wanted(options.fleet, /*environment=*/options.summary)) {
    utsname uts{};
    uname(&uts);
    ASSIGN_OR_RETURN(
        fleet,
        FleetOutputs::Start(
            options.fleet, &pipeline, /*live=*/true, mono_to_wall_ns,
            (uint64_t{std::random_device{}()} << 32) | std::random_device{}(),
            uts.nodename));
  }
  // A service (no terminal on stdin) reloads on SIGHUP; a run in a terminal
  // ends when the terminal goes.
  InstallStopHandlers(!isatty(STDIN_FILENO));
  ASSIGN_OR_RETURN(std::unique_ptr<collector::Tracer> tracer,
                   collector::Tracer::Start(topts, &pipeline));
  uint64_t start_ns = collector::MonotonicNowNs();
  const std::vector<ProcessInfo>& procs = tracer->processes();

  std::optional<collector::CaptureWriter> writer;
  if (!options.output.empty()) {
    ASSIGN_OR_RETURN(
        writer, collector::CaptureWriter::Create(
                    options.output,
                    MakeHeader(options, mono_to_wall_ns, start_ns, procs)));
    pipeline.RecordTo(&*writer);
  }
  pipeline.Begin(start_ns, procs);
  std::optional<IntervalView> view;
  if (interval) {
    view.emplace(format == Format::kJsonl, stdout, mono_to_wall_ns);
    pipeline.AddRequestObserver(
        [&view](const analyzers::Request& r) { view->Add(r); });
  }
  YieldToTracedProcesses();
  if (targets.empty()) {
    std::fprintf(stderr, "attached to %zu processes\n", procs.size());
  } else {
    std::fprintf(stderr,
                 "attached to %zu processes and %zu cgroups (with the "
                 "processes that join them)\n",
                 procs.size(), targets.targets().size());
  }
  std::fflush(stderr);

  uint64_t end_ns = duration == absl::ZeroDuration()
                        ? UINT64_MAX
                        : start_ns + absl::ToInt64Nanoseconds(duration);
  absl::Status poll_error;
  uint64_t next_flush_ns = start_ns + kFlushEveryNs;
  uint64_t next_tick_ns = start_ns;
  uint64_t next_reread_ns = start_ns + kFlushEveryNs;
  const uint64_t interval_ns =
      interval ? static_cast<uint64_t>(absl::ToInt64Nanoseconds(*interval))
               : 0;
  uint64_t interval_start_ns = start_ns;
  while (!g_stop && collector::MonotonicNowNs() < end_ns) {
    uint64_t poll_start_ns = collector::MonotonicNowNs();
    absl::StatusOr<int> n = tracer->Poll(100);
    if (!n.ok()) {
      poll_error = n.status();
      break;
    }
    // Live outputs: an idle stack's last requests are due now, not at the
    // next event (everything that exited before the empty poll was read).
    if (fleet && *n == 0) pipeline.AdvanceTo(poll_start_ns);
    // A capture stays readable up to the last second if reqcost is killed.
    if (writer && collector::MonotonicNowNs() >= next_flush_ns) {
      if (absl::Status s = writer->Flush(); !s.ok()) {
        poll_error = s;
        break;
      }
      next_flush_ns += kFlushEveryNs;
    }
    if (fleet && collector::MonotonicNowNs() >= next_tick_ns) {
      fleet->Tick(pipeline.syscall_events() + pipeline.process_events(),
                  tracer->counters().dropped, pipeline.traced_processes());
      next_tick_ns = collector::MonotonicNowNs() + kFlushEveryNs;
    }
    if (g_reread || (!targets.empty() &&
                     collector::MonotonicNowNs() >= next_reread_ns)) {
      RereadTargets(&targets, tracer.get());
      next_reread_ns = collector::MonotonicNowNs() + kFlushEveryNs;
    }
    if (view && collector::MonotonicNowNs() >= interval_start_ns + interval_ns) {
      // Everything that ended before the interval's end is drained and
      // finalized first (up to the reorder window).
      const uint64_t interval_end_ns = interval_start_ns + interval_ns;
      uint64_t drained_at = collector::MonotonicNowNs();
      if (absl::StatusOr<int> d = tracer->Poll(0); !d.ok()) {
        poll_error = d.status();
        break;
      }
      pipeline.AdvanceTo(drained_at);
      view->Print(interval_start_ns, interval_end_ns,
                  tracer->counters().dropped);
      interval_start_ns = interval_end_ns;
    }
  }
  // Whatever the kernel wrote before we stopped is still delivered.
  if (poll_error.ok()) {
    if (absl::StatusOr<int> n = tracer->Poll(0); !n.ok())
      poll_error = n.status();
  }
  KernelCounters counters = tracer->counters();
  uint64_t undecodable = tracer->decode_errors();
  tracer.reset();  // detach before printing: the traced stack runs free

  const uint64_t stop_ns = collector::MonotonicNowNs();
  if (view && stop_ns > interval_start_ns) {
    // The last, partial interval: so that the intervals add up to the run.
    pipeline.BeforeSummary([&view, &counters, interval_start_ns, stop_ns] {
      view->Print(interval_start_ns, stop_ns, counters.dropped);
    });
  }
  absl::Status end = pipeline.End(stop_ns, counters);
  absl::Status fleet_end;
  if (fleet) {
    fleet->Tick(pipeline.syscall_events() + pipeline.process_events(),
                counters.dropped, pipeline.traced_processes());
    fleet_end = fleet->Finish();
  }
  if (undecodable > 0) {
    std::fprintf(stderr, "reqcost: %llu records could not be decoded\n",
                 static_cast<unsigned long long>(undecodable));
  }
  if (!options.summary) {
    std::fprintf(stderr, "%s\n",
                 CountersLine(pipeline.syscall_events(),
                              pipeline.process_events(), counters)
                     .c_str());
  }
  RETURN_IF_ERROR(end);
  RETURN_IF_ERROR(poll_error);
  // Finish printed it, after the exporters' counts.
  if (!fleet_end.ok()) {
    return WithExitCode(AlreadyReported(fleet_end), kExitError);
  }
  if (writer) {
    std::fprintf(stderr, "wrote %s (%llu records, %llu bytes)\n",
                 writer->path().c_str(),
                 static_cast<unsigned long long>(writer->records_written()),
                 static_cast<unsigned long long>(writer->bytes_written()));
  }
  return absl::OkStatus();
}

}  // namespace reqcost::cli
