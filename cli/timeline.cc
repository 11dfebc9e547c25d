// `reqcost timeline CAPTURE -o trace.json`: every request of a capture as a
// Chrome trace-event file (Perfetto, chrome://tracing).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "analyzers/render/trace_export.h"
#include "analyzers/request.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/joined.h"
#include "cli/output_file.h"
#include "cli/pipeline.h"
#include "collector/capture_file.h"
#include "collector/status_macros.h"

namespace reqcost::cli {

absl::Status RunTimeline(const TimelineOptions& options) {
  if (options.output.empty()) {
    return absl::InvalidArgumentError(
        "timeline needs -o FILE: where to write the trace");
  }
  // Created first: an unwritable path fails before the replay.
  absl::StatusOr<OutputFile> file =
      OutputFile::Create(options.output, options.force);
  if (!file.ok()) return OutputFileError(file.status());
  if (options.inputs.size() > 1) {
    // Several hosts: their requests joined, on the first capture's clock.
    ASSIGN_OR_RETURN(JoinedCaptures joined, ProfileAndJoin(options.inputs));
    nlohmann::json trace = analyzers::ChromeTrace(
        joined.requests, joined.report.processes, joined.start_mono_ns);
    absl::Status s = file->Commit(trace.dump() + "\n");
    if (!s.ok()) return OutputFileError(s);
    std::printf("%s", absl::StrFormat(
                          "wrote %s: %d requests (%d complete) of %d "
                          "captures; open it in https://ui.perfetto.dev or "
                          "chrome://tracing\n%s",
                          options.output, joined.report.count,
                          joined.report.complete, options.inputs.size(),
                          FormatJoinText(joined.summary))
                          .c_str());
    return absl::OkStatus();
  }
  OutputOptions quiet;
  quiet.summary = false;
  Pipeline pipeline(quiet, stdout);
  // Every request is kept until the end: memory grows with the capture.
  std::vector<analyzers::Request> requests;
  pipeline.AddRequestObserver(
      [&requests](const analyzers::Request& r) { requests.push_back(r); });
  collector::CaptureHeader header;
  absl::Status s = ReplayCapture(options.input, &pipeline, &header);
  if (!s.ok()) return BadCapture(s);

  nlohmann::json trace = analyzers::ChromeTrace(
      requests, pipeline.report().processes, header.start_mono_ns);
  size_t slices = 0;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "X") ++slices;
  }
  s = file->Commit(trace.dump() + "\n");
  if (!s.ok()) return OutputFileError(s);
  std::printf("%s", absl::StrFormat(
                        "wrote %s: %d requests (%d complete), %d slices; open "
                        "it in https://ui.perfetto.dev or chrome://tracing\n",
                        options.output, pipeline.report().count,
                        pipeline.report().complete, slices)
                        .c_str());
  return absl::OkStatus();
}

}  // namespace reqcost::cli
