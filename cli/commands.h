// The `reqcost` subcommands. Each returns an exit code (cli/exit_codes.h)
// and prints its own errors as one sentence on stderr.
#ifndef REQCOST_CLI_COMMANDS_H_
#define REQCOST_CLI_COMMANDS_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cli/fleet.h"

namespace reqcost::cli {

// `reqcost check`: prints each check and its fix; 0 when all pass.
int RunCheck();

struct AttachOptions {
  std::vector<pid_t> pids;
  std::string duration = "0";  // "0": until Ctrl-C
  std::string output;          // capture file to write, "" for none
  std::string format = "text";
  bool events = false;    // print every event, strace-style
  bool requests = false;  // print every request as it completes
  bool summary = true;    // print the breakdown (off for `record`)
  uint32_t payload_bytes = 0;
  uint32_t ring_bytes = 8u << 20;
  bool syscall_times = false;  // data syscalls at enter and exit
  bool tls_probes = true;      // uprobes on libssl (off: --no-tls-probes)
  bool verbose = false;
  std::vector<std::string> command_line;  // kept in the capture header
  FleetOptions fleet;  // --metrics, --metrics-file, --otlp-json, ...
};

// `reqcost attach` (and `record`): traces until --duration or SIGINT/SIGTERM.
int RunAttach(const AttachOptions& options);

// `--html FILE` of `report` and `compare`: the self-contained page.
struct HtmlOptions {
  std::string path;      // "" for none
  size_t slowest = 10;   // requests drawn one by one (per capture)
  bool force = false;    // replace an existing file
};

struct ReportOptions {
  std::string input;
  std::string format = "text";
  bool events = false;
  bool requests = false;
  std::string group_by;  // "client-conn", "backend-conn", both, "url",
                         // "process", "backend-process"; "" = none
  int top = 5;           // url/process groups shown before "other"
  double threshold_pct = 2.0;  // a smaller difference is not clear
  HtmlOptions html;
  FleetOptions fleet;    // --otlp-json, --service-name
};

// `reqcost report FILE`: replays a capture through the same pipeline. With
// --group-by, prints the groups side by side instead of the breakdown.
int RunReport(const ReportOptions& options);

struct CompareOptions {
  std::string a;
  std::string b;
  std::string format = "text";
  double threshold_pct = 2.0;  // a smaller difference is not clear
  HtmlOptions html;
};

// `reqcost compare A B`: both captures' reports side by side with deltas and
// a verdict.
int RunCompare(const CompareOptions& options);

struct TimelineOptions {
  std::string input;
  std::string output;  // the trace file, created 0600
  bool force = false;  // replace an existing output file
};

// `reqcost timeline FILE -o trace.json`: Chrome trace-event JSON.
int RunTimeline(const TimelineOptions& options);

struct ImportOptions {
  std::string format;             // "strace"
  std::vector<std::string> logs;  // strace logs (-ff: every PREFIX.PID file)
  std::string output;             // the capture file, created 0600
  bool force = false;             // replace an existing output file
  std::vector<std::string> command_line;  // kept in the capture header
};

// `reqcost import strace LOG... -o CAPTURE`: strace logs into a capture file.
int RunImport(const ImportOptions& options);

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_COMMANDS_H_
