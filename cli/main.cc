// reqcost: where a web request's time goes, across the server and its
// backends, measured in the kernel.
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "analyzers/compare.h"
#include "analyzers/group_by.h"
#include "cli/commands.h"
#include "cli/demo.h"
#include "cli/exit_codes.h"
#include "cli/fleet.h"
#include "cli/version.h"
#include "collector/tracer.h"

namespace {

using reqcost::cli::AttachOptions;

// The tracing flags shared by `attach` and `record`.
void AddTraceFlags(CLI::App* cmd, AttachOptions* o) {
  cmd->add_option("-p,--pid", o->pids,
                  "PID to trace with all its descendants (repeatable)");
  cmd->add_option("--cgroup", o->cgroups,
                  "cgroup v2 directory (absolute, or relative to the v2 "
                  "mount) whose processes, and those that join it or a "
                  "cgroup below it later, are traced (repeatable)");
  cmd->add_option("--unit", o->units,
                  "systemd unit whose cgroup is traced, as with --cgroup "
                  "(nginx, php8.2-fpm.service; repeatable)");
  cmd->add_option("-d,--duration", o->duration,
                  "stop after this long: 10s, 500ms, 2m (0: until Ctrl-C)");
  cmd->add_option(
      "--payload", o->payload_bytes,
      absl::StrFormat("bytes of each socket read/write to capture, 0-%d "
                      "(default 0: none; 64 shows request lines)",
                      reqcost::collector::TracerOptions::kMaxPayloadBytes));
  cmd->add_option(
      "--ring-buffer", o->ring_bytes,
      absl::StrFormat(
          "ring buffer bytes, a power of two (default %d MiB)",
          reqcost::collector::TracerOptions::kDefaultRingBytes >> 20));
  cmd->add_flag("--syscall-times", o->syscall_times,
                "trace read/write/... at enter and exit, so that every "
                "socket read and write has its duration (costs every file "
                "read and write of the traced processes too)");
  cmd->add_flag("--tls-probes,!--no-tls-probes", o->tls_probes,
                "uprobes on OpenSSL's reads and writes in the traced "
                "processes' libssl, to see HTTP/2 streams and HTTPS request "
                "lines inside TLS (on by default; a TLS call on an HTTP/2 "
                "connection costs two traps, one on an HTTP/1.x connection "
                "without --payload where the kernel has uprobe sessions: "
                "about 1 us a trap where OpenSSL's internal functions are "
                "found, docs/performance.md)");
  cmd->add_flag("-v,--verbose", o->verbose, "show libbpf's log");
}

// --html and its companions, shared by `report` and `compare`.
void AddHtmlFlags(CLI::App* cmd, reqcost::cli::HtmlOptions* o) {
  cmd->add_option("--html", o->path,
                  "also write a self-contained HTML page (charts, the "
                  "average request as a waterfall, the slowest requests; "
                  "mode 0600)");
  cmd->add_option("--slowest", o->slowest,
                  absl::StrFormat("with --html: how many of the slowest "
                                  "requests get their own waterfall, 0-1000 "
                                  "(default %d)",
                                  reqcost::cli::kDefaultSlowest))
      ->check(CLI::Range(0, 1000));
  cmd->add_flag("--force", o->force,
                "with --html: replace the page if it exists");
}

// The fleet outputs (docs/fleets.md): live ones on `attach` only.
void AddFleetFlags(CLI::App* cmd, reqcost::cli::FleetOptions* o, bool live) {
  if (live) {
    cmd->add_option("--metrics", o->metrics_address,
                    "serve Prometheus metrics at http://HOST:PORT/metrics "
                    "while attached (e.g. 127.0.0.1:9464)");
    cmd->add_option("--metrics-file", o->metrics_file,
                    absl::StrFormat("write the same metrics to this file "
                                    "every %d s and at exit (node_exporter "
                                    "textfile collector)",
                                    reqcost::cli::kMetricsFilePeriodMs / 1000));
    cmd->add_option("--otlp-endpoint", o->otlp_endpoint,
                    "POST the spans of complete requests as OTLP/HTTP JSON "
                    "to URL/v1/traces (e.g. http://127.0.0.1:4318); "
                    "overrides OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT");
    cmd->add_option("--otlp-header", o->otlp_headers,
                    "NAME=VALUE: an HTTP header for --otlp-endpoint, "
                    "repeatable; joins OTEL_EXPORTER_OTLP_(TRACES_)HEADERS "
                    "and wins on the same name")
        ->allow_extra_args(false);
  }
  cmd->add_option("--otlp-json", o->otlp_json,
                  "write the spans of complete requests as OTLP/JSON, one "
                  "ExportTraceServiceRequest per line (a new file, 0600)");
  cmd->add_option("--service-name", o->service_name,
                  "the spans' service.name (default: OTEL_SERVICE_NAME, "
                  "else the server's comm)");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace reqcost::cli;
  CLI::App app{
      "reqcost: request-cost profiler for web servers and their "
      "FastCGI/HTTP backends"};
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionText(),
                       "print the version, the git commit it was built from "
                       "and the libbpf version, then exit");
  const std::string kThresholdHelp = absl::StrFormat(
      "percent: a smaller difference is no clear difference (default %g)",
      reqcost::analyzers::kDefaultThresholdPct);
  std::vector<std::string> command_line(argv, argv + argc);

  app.add_subcommand("check", "what this machine allows, and why not");

  AttachOptions attach;
  CLI::App* attach_cmd = app.add_subcommand(
      "attach", "trace live processes, then print where request time went");
  AddTraceFlags(attach_cmd, &attach);
  attach_cmd->add_option("-o,--output", attach.output,
                         "also record a capture file (mode 0600)");
  attach_cmd->add_option("-f,--format", attach.format, "text, json or jsonl");
  attach_cmd->add_option("-i,--interval", attach.interval,
                         "also print each interval's breakdown as it ends: "
                         "5s, 500ms, 1m (text or jsonl)");
  attach_cmd->add_flag("--requests", attach.requests,
                       "print every request as it completes");
  attach_cmd->add_flag("--events", attach.events,
                       "print every traced syscall, strace-style");
  AddFleetFlags(attach_cmd, &attach.fleet, /*live=*/true);

  AttachOptions record;
  record.summary = false;
  CLI::App* record_cmd = app.add_subcommand(
      "record", "trace live processes into a capture file only");
  AddTraceFlags(record_cmd, &record);
  record_cmd->add_option("-o,--output", record.output, "capture file to write")
      ->required();

  ReportOptions report;
  CLI::App* report_cmd =
      app.add_subcommand("report", "the breakdown of a capture file");
  report_cmd
      ->add_option("file", report.inputs,
                   "capture file; several (one per host: a front and its "
                   "TCP backends) are joined by 4-tuple and TCP sequence")
      ->required();
  report_cmd->add_option("-f,--format", report.format, "text, json or jsonl");
  report_cmd->add_flag("--requests", report.requests, "print every request");
  report_cmd->add_flag("--events", report.events,
                       "print every syscall, strace-style");
  report_cmd->add_option(
      "--group-by", report.group_by,
      "compare groups of requests side by side instead: client-conn (new vs "
      "kept-alive client connection), backend-conn, or both, comma-separated; "
      "or url (needs a capture recorded with --payload 64 or more), process "
      "(= server-process: the front server's PID) or backend-process: the "
      "top groups by total time side by side; or peer: the backend's calls "
      "per peer (calls, time per call, calls per request)");
  report_cmd
      ->add_option("--top", report.top,
                   absl::StrFormat("url/process groups shown; the rest "
                                   "are \"other\" (default %d)",
                                   reqcost::analyzers::kDefaultTopGroups))
      ->check(CLI::Range(1, 50));
  report_cmd->add_option("--threshold", report.threshold_pct, kThresholdHelp)
      ->check(CLI::Range(0.0, 100.0));
  AddHtmlFlags(report_cmd, &report.html);
  AddFleetFlags(report_cmd, &report.fleet, /*live=*/false);

  CompareCommandOptions compare;
  CLI::App* compare_cmd = app.add_subcommand(
      "compare",
      "two captures side by side: phases and syscalls per request, deltas, "
      "and a verdict (B against A)");
  compare_cmd
      ->add_option("a", compare.a,
                   "capture file A (the baseline); FRONT,BACKEND,... joins "
                   "the captures of several hosts")
      ->required();
  compare_cmd->add_option("b", compare.b, "capture file B (the same)")
      ->required();
  compare_cmd->add_option("-f,--format", compare.format, "text or json");
  AddHtmlFlags(compare_cmd, &compare.html);
  compare_cmd->add_option("--threshold", compare.threshold_pct, kThresholdHelp)
      ->check(CLI::Range(0.0, 100.0));

  TimelineOptions timeline;
  CLI::App* timeline_cmd = app.add_subcommand(
      "timeline",
      "write a capture's requests as a Chrome trace (Perfetto, "
      "chrome://tracing); keeps every request in memory until the end, so "
      "memory grows with the capture");
  timeline_cmd
      ->add_option("file", timeline.inputs,
                   "capture file; several (one per host) are joined")
      ->required();
  timeline_cmd
      ->add_option("-o,--output", timeline.output,
                   "trace file to write (mode 0600)")
      ->required();
  timeline_cmd->add_flag("--force", timeline.force,
                         "replace the output file if it exists");

  ImportOptions import;
  CLI::App* import_cmd = app.add_subcommand(
      "import", "turn strace -f -ttt -T -yy logs into a capture file");
  import_cmd->add_option("format", import.format, "the logs' format: strace")
      ->required();
  import_cmd
      ->add_option("logs", import.logs,
                   "strace logs (strace -ff: every PREFIX.PID file)")
      ->required();
  import_cmd
      ->add_option("-o,--output", import.output,
                   "capture file to write (mode 0600)")
      ->required();
  import_cmd->add_flag("--force", import.force,
                       "replace the output file if it exists");

  DemoOptions demo;
  CLI::App* demo_cmd = app.add_subcommand(
      "demo",
      "start nginx + php-fpm on loopback, profile them four ways, "
      "compare (root)");
  demo_cmd
      ->add_option("--rounds", demo.rounds,
                   absl::StrFormat("rounds: each way runs once per round, in "
                                   "turn, so that the machine's drift falls "
                                   "on all ways alike (default %d)",
                                   demo.rounds))
      ->check(CLI::Range(1, 100));
  demo_cmd->add_option(
      "-n,--requests", demo.requests,
      absl::StrFormat("requests per way, 1-100000 (default %d)",
                      demo.requests));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return ReportAndExit(absl::InvalidArgumentError(e.what()));
  }

  // Every command's error ends here: one line on stderr, one exit code.
  absl::Status status;
  if (app.got_subcommand("check")) {
    status = RunCheck();
  } else if (app.got_subcommand(demo_cmd)) {
    status = RunDemo(demo);
  } else if (app.got_subcommand(attach_cmd)) {
    attach.command_line = command_line;
    status = RunAttach(attach);
  } else if (app.got_subcommand(record_cmd)) {
    record.command_line = command_line;
    status = RunAttach(record);
  } else if (app.got_subcommand(report_cmd)) {
    report.input = report.inputs.front();
    status = RunReport(report);
  } else if (app.got_subcommand(compare_cmd)) {
    status = RunCompare(compare);
  } else if (app.got_subcommand(timeline_cmd)) {
    timeline.input = timeline.inputs.front();
    status = RunTimeline(timeline);
  } else if (app.got_subcommand(import_cmd)) {
    import.command_line = command_line;
    status = RunImport(import);
  } else {
    // require_subcommand(1) makes this unreachable; said quietly as before.
    return kExitUsage;
  }
  return ReportAndExit(status);
}
