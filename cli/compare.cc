// `reqcost compare A B`: two captures replayed through the same pipeline as
// `report`, side by side.
#include <cstdio>
#include <string>

#include "analyzers/compare.h"
#include "analyzers/report.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/pipeline.h"

namespace reqcost::cli {
namespace {

// The report of one capture, or the exit code of its failure (printed).
int ReportOf(const std::string& path, analyzers::Report* report) {
  OutputOptions quiet;
  quiet.summary = false;
  Pipeline pipeline(quiet, stdout);
  absl::Status s = ReplayCapture(path, &pipeline);
  if (!s.ok()) return BadCaptureExit(s);
  *report = pipeline.report();
  return kExitOk;
}

}  // namespace

int RunCompare(const CompareOptions& options) {
  absl::StatusOr<Format> format = ParseFormat(options.format);
  if (!format.ok()) {
    std::fprintf(stderr, "reqcost: %s\n",
                 std::string(format.status().message()).c_str());
    return kExitUsage;
  }
  if (*format == Format::kJsonl) {
    std::fprintf(stderr,
                 "reqcost: compare prints one comparison: use --format text "
                 "or json, not jsonl\n");
    return kExitUsage;
  }
  analyzers::Report a, b;
  if (int code = ReportOf(options.a, &a); code != kExitOk) return code;
  if (int code = ReportOf(options.b, &b); code != kExitOk) return code;
  analyzers::CompareOptions copts;
  copts.threshold_pct = options.threshold_pct;
  analyzers::Comparison c = analyzers::Compare(a, b, "A", "B", copts);
  if (*format == Format::kJson) {
    std::printf("%s\n", analyzers::ComparisonToJson(c).dump(2).c_str());
  } else {
    std::printf("A: %s\nB: %s\n\n%s\nnote: %s\n", options.a.c_str(),
                options.b.c_str(), analyzers::FormatComparisonText(c).c_str(),
                analyzers::kDriftNote);
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace reqcost::cli
