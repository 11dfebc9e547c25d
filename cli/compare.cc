// `reqcost compare A B`: two captures replayed through the same pipeline as
// `report`, side by side.
#include <cstdio>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

#include "analyzers/compare.h"
#include "analyzers/render/compare_format.h"
#include "analyzers/render/html_report.h"
#include "analyzers/report.h"
#include "analyzers/slowest.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output_file.h"
#include "cli/pipeline.h"

namespace reqcost::cli {
namespace {

// The report of one capture, or the exit code of its failure (printed).
// Offers every request to `slowest`.
int ReportOf(const std::string& path, analyzers::Report* report,
             analyzers::SlowestRequests* slowest) {
  OutputOptions quiet;
  quiet.summary = false;
  Pipeline pipeline(quiet, stdout);
  pipeline.AddRequestObserver(
      [slowest](const analyzers::Request& r) { slowest->Add(r); });
  absl::Status s = ReplayCapture(path, &pipeline);
  if (!s.ok()) return BadCaptureExit(s);
  *report = pipeline.report();
  return kExitOk;
}

}  // namespace

int RunCompare(const CompareCommandOptions& options) {
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
  std::optional<OutputFile> html;
  if (!options.html.path.empty()) {
    // Created before the replays: an unwritable path fails at once.
    absl::StatusOr<OutputFile> file =
        OutputFile::Create(options.html.path, options.html.force);
    if (!file.ok()) return OutputFileExit(file.status());
    html.emplace(*std::move(file));
  }
  const size_t keep = html.has_value() ? options.html.slowest : 0;
  analyzers::SlowestRequests a_slowest(keep), b_slowest(keep);
  analyzers::Report a, b;
  if (int code = ReportOf(options.a, &a, &a_slowest); code != kExitOk) {
    return code;
  }
  if (int code = ReportOf(options.b, &b, &b_slowest); code != kExitOk) {
    return code;
  }
  analyzers::CompareOptions copts;
  copts.threshold_pct = options.threshold_pct;
  analyzers::Comparison c = analyzers::Compare(a, b, "A", "B", copts);
  if (html.has_value()) {
    absl::Status s = html->Commit(analyzers::HtmlPage(
        absl::StrCat("reqcost compare ", options.a, " ", options.b),
        analyzers::ComparePageData(options.a, options.b, c,
                                   a_slowest.Sorted(), a_slowest.offered(),
                                   b_slowest.Sorted(), b_slowest.offered()),
        absl::StrCat("A: ", options.a, "\nB: ", options.b, "\n\n",
                     analyzers::FormatComparisonText(c))));
    if (!s.ok()) return OutputFileExit(s);
    std::fprintf(stderr, "reqcost: wrote %s\n", options.html.path.c_str());
  }
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
