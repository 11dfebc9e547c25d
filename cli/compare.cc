// `reqcost compare A B`: two captures replayed through the same pipeline as
// `report`, side by side.
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

#include "analyzers/compare.h"
#include "analyzers/render/compare_format.h"
#include "analyzers/render/html_report.h"
#include "analyzers/report.h"
#include "analyzers/slowest.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/joined.h"
#include "cli/output_file.h"
#include "cli/pipeline.h"
#include "collector/status_macros.h"

namespace reqcost::cli {
namespace {

// The report of one capture, or its failure marked as a bad capture. Offers
// every request to `slowest`.
absl::Status ReportOf(const std::string& path, analyzers::Report* report,
                      analyzers::SlowestRequests* slowest) {
  if (std::vector<std::string> set = CaptureSet(path); set.size() > 1) {
    // One capture per host, joined.
    ASSIGN_OR_RETURN(JoinedCaptures joined, ProfileAndJoin(set));
    for (const analyzers::Request& r : joined.requests) slowest->Add(r);
    *report = std::move(joined.report);
    return absl::OkStatus();
  }
  OutputOptions quiet;
  quiet.summary = false;
  Pipeline pipeline(quiet, stdout);
  pipeline.AddRequestObserver(
      [slowest](const analyzers::Request& r) { slowest->Add(r); });
  absl::Status s = ReplayCapture(path, &pipeline);
  if (!s.ok()) return BadCapture(s);
  *report = pipeline.report();
  return absl::OkStatus();
}

}  // namespace

absl::Status RunCompare(const CompareCommandOptions& options) {
  ASSIGN_OR_RETURN(const Format format, ParseFormat(options.format));
  if (format == Format::kJsonl) {
    return absl::InvalidArgumentError(
        "compare prints one comparison: use --format text or json, not jsonl");
  }
  std::optional<OutputFile> html;
  RETURN_IF_ERROR(
      OpenOptionalOutput(options.html.path, options.html.force, &html));
  const size_t keep = html.has_value() ? options.html.slowest : 0;
  analyzers::SlowestRequests a_slowest(keep), b_slowest(keep);
  analyzers::Report a, b;
  RETURN_IF_ERROR(ReportOf(options.a, &a, &a_slowest));
  RETURN_IF_ERROR(ReportOf(options.b, &b, &b_slowest));
  analyzers::CompareOptions copts;
  copts.threshold_pct = options.threshold_pct;
  analyzers::Comparison c = analyzers::Compare(a, b, "A", "B", copts);
  if (html.has_value()) {
    absl::Status s = html->Commit(analyzers::HtmlPage(
        absl::StrCat("reqcost compare ", options.a, " ", options.b),
        analyzers::ComparePageData(options.a, options.b, c, a_slowest.Sorted(),
                                   a_slowest.offered(), b_slowest.Sorted(),
                                   b_slowest.offered()),
        absl::StrCat("A: ", options.a, "\nB: ", options.b, "\n\n",
                     analyzers::FormatComparisonText(c))));
    if (!s.ok()) return OutputFileError(s);
    std::fprintf(stderr, "reqcost: wrote %s\n", options.html.path.c_str());
  }
  if (format == Format::kJson) {
    std::printf("%s\n", analyzers::ComparisonToJson(c).dump(2).c_str());
  } else {
    std::printf("A: %s\nB: %s\n\n%s\nnote: %s\n", options.a.c_str(),
                options.b.c_str(), analyzers::FormatComparisonText(c).c_str(),
                analyzers::kDriftNote);
  }
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace reqcost::cli
