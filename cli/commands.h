// The `reqcost` subcommands. Each returns an absl::Status, which `main` turns
// into one sentence on stderr and an exit code (cli/exit_codes.h).
#ifndef REQCOST_CLI_COMMANDS_H_
#define REQCOST_CLI_COMMANDS_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "analyzers/compare.h"
#include "analyzers/group_by.h"
#include "cli/fleet.h"
#include "collector/tracer.h"

namespace reqcost::cli {

// `reqcost check`: prints each check and its fix; OK when all pass, else
// FailedPrecondition (exit 5), already reported by the table.
absl::Status RunCheck();

struct AttachOptions {
  std::vector<pid_t> pids;
  std::vector<std::string> cgroups;  // --cgroup: v2 directories
  std::vector<std::string> units;    // --unit: systemd units
  std::string duration = "0";  // "0": until Ctrl-C
  std::string interval;        // --interval: "" for none
  std::string output;          // capture file to write, "" for none
  std::string format = "text";
  bool events = false;    // print every event, strace-style
  bool requests = false;  // print every request as it completes
  bool summary = true;    // print the breakdown (off for `record`)
  uint32_t payload_bytes = 0;
  uint32_t ring_bytes = collector::TracerOptions::kDefaultRingBytes;
  bool syscall_times = false;  // data syscalls at enter and exit
  bool tls_probes = true;      // uprobes on libssl (--no-tls-probes: off)
  bool verbose = false;
  std::vector<std::string> command_line;  // kept in the capture header
  FleetOptions fleet;  // --metrics, --metrics-file, --otlp-json, ...
};

// `reqcost attach` (and `record`): traces until --duration or SIGINT/SIGTERM.
absl::Status RunAttach(const AttachOptions& options);

// How many of the slowest requests the --html page draws one by one.
inline constexpr size_t kDefaultSlowest = 10;

// `--html FILE` of `report` and `compare`: the self-contained page.
struct HtmlOptions {
  std::string path;                  // "" for none
  size_t slowest = kDefaultSlowest;  // per capture
  bool force = false;                // replace an existing file
};

struct ReportOptions {
  std::string input;  // the first of `inputs`
  // Several: one capture per host, joined (cli/joined.h).
  std::vector<std::string> inputs;
  std::string format = "text";
  bool events = false;
  bool requests = false;
  std::string group_by;  // "client-conn", "backend-conn", both, "url",
                         // "process", "backend-process"; "" = none
  // url/process groups shown before "other"
  int top = static_cast<int>(analyzers::kDefaultTopGroups);
  // a smaller difference is not clear
  double threshold_pct = analyzers::kDefaultThresholdPct;
  HtmlOptions html;
  FleetOptions fleet;  // --otlp-json, --service-name
};

// `reqcost report FILE`: replays a capture through the same pipeline. With
// --group-by, prints the groups side by side instead of the breakdown. With
// several files (one per host), reports their joined requests.
absl::Status RunReport(const ReportOptions& options);

// The command's options; analyzers::CompareOptions is what Compare() takes.
struct CompareCommandOptions {
  std::string a;
  std::string b;
  std::string format = "text";
  // a smaller difference is not clear
  double threshold_pct = analyzers::kDefaultThresholdPct;
  HtmlOptions html;
};

// `reqcost compare A B`: both captures' reports side by side with deltas and
// a verdict.
absl::Status RunCompare(const CompareCommandOptions& options);

struct TimelineOptions {
  std::string input;                // the first of `inputs`
  std::vector<std::string> inputs;  // several: one per host, joined
  std::string output;  // the trace file, created 0600
  bool force = false;  // replace an existing output file
};

// `reqcost timeline FILE -o trace.json`: Chrome trace-event JSON.
absl::Status RunTimeline(const TimelineOptions& options);

struct ImportOptions {
  std::string format;             // "strace"
  std::vector<std::string> logs;  // strace logs (-ff: every PREFIX.PID file)
  std::string output;             // the capture file, created 0600
  bool force = false;             // replace an existing output file
  std::vector<std::string> command_line;  // kept in the capture header
};

// `reqcost import strace LOG... -o CAPTURE`: strace logs into a capture file.
absl::Status RunImport(const ImportOptions& options);

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_COMMANDS_H_
