#include <cstdio>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_format.h"
#include "analyzers/compare.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/fleet.h"
#include "cli/pipeline.h"
#include "collector/capture_file.h"

namespace reqcost::cli {

int BadCaptureExit(const absl::Status& status) {
  std::fprintf(stderr, "reqcost: %s\n", std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kNotFound ||
                 status.code() == absl::StatusCode::kPermissionDenied
             ? kExitError
             : kExitBadCapture;
}

absl::Status ReplayCapture(const std::string& path, Pipeline* pipeline,
                           collector::CaptureHeader* header_out) {
  absl::StatusOr<collector::CaptureReader> reader =
      collector::CaptureReader::Open(path);
  if (!reader.ok()) return reader.status();
  const collector::CaptureHeader& header = reader->header();
  if (header_out != nullptr) *header_out = header;
  pipeline->Begin(header.start_mono_ns, header.processes);

  KernelCounters counters;
  uint64_t end_ns = 0;
  while (true) {
    absl::StatusOr<collector::CaptureRecord> record = reader->Next();
    if (!record.ok()) return record.status();
    if (const auto* e = std::get_if<SyscallEvent>(&*record)) {
      pipeline->OnSyscall(*e);
    } else if (const auto* p = std::get_if<ProcessEvent>(&*record)) {
      pipeline->OnProcess(*p);
    } else if (const auto* d = std::get_if<collector::DropNotice>(&*record)) {
      pipeline->OnDrops(d->from_ns, d->to_ns, d->count);
    } else if (const auto* c = std::get_if<collector::CountersSnapshot>(&*record)) {
      counters = c->counters;
    } else if (const auto* end = std::get_if<collector::CaptureEnd>(&*record)) {
      end_ns = end->end_ns;
      break;
    }
  }
  return pipeline->End(end_ns, counters);
}

int RunReport(const ReportOptions& options) {
  absl::StatusOr<Format> format = ParseFormat(options.format);
  if (!format.ok()) {
    std::fprintf(stderr, "reqcost: %s\n", std::string(format.status().message()).c_str());
    return kExitUsage;
  }
  std::optional<analyzers::GroupKeys> keys;
  if (!options.group_by.empty()) {
    std::string error;
    keys = analyzers::ParseGroupBy(options.group_by, &error);
    if (!keys.has_value()) {
      std::fprintf(stderr, "reqcost: %s\n", error.c_str());
      return kExitUsage;
    }
    if (*format == Format::kJsonl) {
      std::fprintf(stderr,
                   "reqcost: --group-by prints a comparison of groups: use "
                   "--format text or json, not jsonl\n");
      return kExitUsage;
    }
  }

  OutputOptions out;
  out.format = *format;
  out.events = options.events;
  out.requests = options.requests;
  out.summary = !keys.has_value();
  Pipeline pipeline(out, stdout);
  std::optional<analyzers::GroupedStats> grouped;
  if (keys.has_value()) {
    grouped.emplace(*keys);
    pipeline.AddRequestObserver(
        [&grouped](const analyzers::Request& r) { grouped->Add(r); });
  }
  std::unique_ptr<FleetOutputs> fleet;
  if (options.fleet.any()) {
    // Spans need the capture's clock offset and host before the replay.
    absl::StatusOr<collector::CaptureReader> reader =
        collector::CaptureReader::Open(options.input);
    if (!reader.ok()) return BadCaptureExit(reader.status());
    const collector::CaptureHeader& h = reader->header();
    // Ids from the capture: the same file gives the same trace ids.
    uint64_t seed = h.start_mono_ns ^ static_cast<uint64_t>(h.mono_to_wall_ns);
    absl::StatusOr<std::unique_ptr<FleetOutputs>> f = FleetOutputs::Start(
        options.fleet, &pipeline, /*live=*/false, h.mono_to_wall_ns, seed,
        h.host);
    if (!f.ok()) {
      std::fprintf(stderr, "reqcost: %s\n",
                   std::string(f.status().message()).c_str());
      return ExitCodeFor(f.status());
    }
    fleet = *std::move(f);
  }
  absl::Status s = ReplayCapture(options.input, &pipeline);
  if (fleet) (void)fleet->Finish();
  if (!s.ok()) return BadCaptureExit(s);

  if (grouped.has_value()) {
    std::vector<analyzers::GroupReport> groups =
        grouped->Reports(pipeline.report());
    std::vector<analyzers::Comparison> comparisons =
        analyzers::CompareGroups(groups);
    if (*format == Format::kJson) {
      std::printf("%s\n", analyzers::GroupComparisonToJson(*keys, groups,
                                                           comparisons)
                              .dump(2)
                              .c_str());
    } else {
      std::printf("%s", analyzers::FormatGroupComparisonText(groups,
                                                             comparisons)
                            .c_str());
    }
    std::fflush(stdout);
  }
  return kExitOk;
}

}  // namespace reqcost::cli
