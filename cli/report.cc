#include <cstdio>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analyzers/compare.h"
#include "analyzers/group_by.h"
#include "analyzers/call_stats.h"
#include "analyzers/peer_calls.h"
#include "analyzers/render/peer_format.h"
#include "analyzers/render/format.h"
#include "analyzers/render/group_format.h"
#include "analyzers/render/html_report.h"
#include "analyzers/slowest.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/fleet.h"
#include "cli/joined.h"
#include "cli/output_file.h"
#include "cli/pipeline.h"
#include "collector/capture_file.h"
#include "collector/status_macros.h"

namespace reqcost::cli {

absl::Status BadCapture(absl::Status status) {
  const int code = status.code() == absl::StatusCode::kNotFound ||
                           status.code() == absl::StatusCode::kPermissionDenied
                       ? kExitError
                       : kExitBadCapture;
  return WithExitCode(std::move(status), code);
}

absl::Status ReplayCapture(const std::string& path, Pipeline* pipeline,
                           collector::CaptureHeader* header_out) {
  ASSIGN_OR_RETURN(collector::CaptureReader reader,
                   collector::CaptureReader::Open(path));
  const collector::CaptureHeader& header = reader.header();
  if (header_out != nullptr) *header_out = header;
  pipeline->Begin(header.start_mono_ns, header.processes);

  KernelCounters counters;
  uint64_t end_ns = 0;
  while (true) {
    ASSIGN_OR_RETURN(collector::CaptureRecord record, reader.Next());
    if (const auto* e = std::get_if<SyscallEvent>(&record)) {
      pipeline->OnSyscall(*e);
    } else if (const auto* p = std::get_if<ProcessEvent>(&record)) {
      pipeline->OnProcess(*p);
    } else if (const auto* d = std::get_if<collector::DropNotice>(&record)) {
      pipeline->OnDrops(d->from_ns, d->to_ns, d->count);
    } else if (const auto* t = std::get_if<TlsDataEvent>(&record)) {
      pipeline->OnTlsData(*t);  // as the live tracer hands it over
    } else if (const auto* c =
                   std::get_if<collector::CountersSnapshot>(&record)) {
      counters = c->counters;
    } else if (const auto* end = std::get_if<collector::CaptureEnd>(&record)) {
      end_ns = end->end_ns;
      break;
    }
  }
  return pipeline->End(end_ns, counters);
}

namespace {

// A payload prefix that holds "GET " and a path of a usual length.
constexpr uint32_t kUrlPayloadBytes = 64;

// --group-by url reads the request line from the payload prefix: a capture
// recorded without one cannot be grouped by URL (exit 2, said in a
// sentence); a short prefix can cut long paths (a warning).
absl::Status CheckPayloadForUrls(const std::string& path) {
  absl::StatusOr<collector::CaptureReader> reader =
      collector::CaptureReader::Open(path);
  if (!reader.ok()) return BadCapture(reader.status());
  const uint32_t payload = reader->header().payload_capture_bytes;
  if (payload == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--group-by url needs each request's first line, and %s was recorded "
        "without a payload prefix: record again with --payload 64 (or more)",
        path));
  }
  if (payload < kUrlPayloadBytes) {
    std::fprintf(stderr,
                 "reqcost: warning: %s was recorded with --payload %u: paths "
                 "longer than about %u bytes are cut (64 or more is "
                 "enough for most)\n",
                 path.c_str(), payload, payload > 8 ? payload - 8 : 0);
  }
  return absl::OkStatus();
}

// `report` of several captures, one per host: their requests joined
// (cli/joined.h), then printed as one capture's would be.
absl::Status RunJoinedReport(const ReportOptions& options, Format format) {
  if (!options.group_by.empty() || options.fleet.any() || options.events) {
    return absl::InvalidArgumentError(
        "--group-by, --events and the fleet outputs take one capture: give "
        "several captures (one per host) without them");
  }
  std::optional<OutputFile> html;
  RETURN_IF_ERROR(
      OpenOptionalOutput(options.html.path, options.html.force, &html));
  ASSIGN_OR_RETURN(JoinedCaptures joined, ProfileAndJoin(options.inputs));
  const std::string names = absl::StrJoin(options.inputs, " ");
  if (options.requests || format == Format::kJsonl) {
    for (const analyzers::Request& r : joined.requests) {
      if (format == Format::kJsonl) {
        std::printf("%s\n", analyzers::RequestToJson(r).dump().c_str());
      } else if (format == Format::kText) {
        std::printf("%s\n", analyzers::FormatRequestLine(r).c_str());
      }
    }
  }
  if (format == Format::kText) {
    std::printf("%s%s", analyzers::FormatText(joined.report).c_str(),
                FormatJoinText(joined.summary).c_str());
  } else if (format == Format::kJson) {
    nlohmann::json j = analyzers::ReportToJson(joined.report);
    j["hosts"] = JoinToJson(joined.summary);
    std::printf("%s\n", j.dump(2).c_str());
  }
  std::fflush(stdout);
  if (html.has_value()) {
    analyzers::SlowestRequests slowest(options.html.slowest);
    for (const analyzers::Request& r : joined.requests) slowest.Add(r);
    absl::Status s = html->Commit(analyzers::HtmlPage(
        absl::StrCat("reqcost report ", names),
        analyzers::ReportPageData(names, joined.report, slowest.Sorted(),
                                  slowest.offered()),
        absl::StrCat(analyzers::FormatText(joined.report),
                     FormatJoinText(joined.summary))));
    if (!s.ok()) return OutputFileError(s);
    std::fprintf(stderr, "reqcost: wrote %s\n", options.html.path.c_str());
  }
  return absl::OkStatus();
}

// `--group-by peer`: the backend's calls by peer.
absl::Status PrintPeerGroups(const analyzers::PeerCallStats& peers,
                             Format format) {
  if (format == Format::kJson) {
    std::printf("%s\n", analyzers::PeerGroupsToJson(peers).dump(2).c_str());
  } else {
    std::printf("%s", analyzers::FormatPeerGroupsText(peers).c_str());
  }
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace

absl::Status RunReport(const ReportOptions& options) {
  ASSIGN_OR_RETURN(const Format format, ParseFormat(options.format));
  if (options.inputs.size() > 1) return RunJoinedReport(options, format);
  std::optional<analyzers::GroupKeys> keys;
  if (!options.group_by.empty()) {
    std::string error;
    keys = analyzers::ParseGroupBy(options.group_by, &error);
    if (!keys.has_value()) return absl::InvalidArgumentError(error);
    if (format == Format::kJsonl) {
      return absl::InvalidArgumentError(
          "--group-by prints a comparison of groups: use --format text or "
          "json, not jsonl");
    }
    if (keys->by == analyzers::GroupBy::kUrl) {
      RETURN_IF_ERROR(CheckPayloadForUrls(options.input));
    }
  }

  std::optional<OutputFile> html;
  if (!options.html.path.empty()) {
    if (keys.has_value()) {
      return absl::InvalidArgumentError(
          "--html draws the whole capture: use it without --group-by");
    }
    RETURN_IF_ERROR(
        OpenOptionalOutput(options.html.path, options.html.force, &html));
  }

  OutputOptions out;
  out.format = format;
  out.events = options.events;
  out.requests = options.requests;
  out.summary = !keys.has_value();
  Pipeline pipeline(out, stdout);
  std::optional<analyzers::GroupedStats> grouped;
  std::optional<analyzers::KeyedGroupStats> keyed;
  std::optional<analyzers::PeerCallStats> peers;
  if (keys.has_value() && keys->by == analyzers::GroupBy::kPeer) {
    peers.emplace(analyzers::kMaxPeerRows);
    pipeline.AddRequestObserver(
        [&peers](const analyzers::Request& r) { peers->Add(r); });
  } else if (keys.has_value() && keys->by == analyzers::GroupBy::kReuse) {
    grouped.emplace(*keys);
    pipeline.AddRequestObserver(
        [&grouped](const analyzers::Request& r) { grouped->Add(r); });
  } else if (keys.has_value()) {
    keyed.emplace(keys->by);
    pipeline.AddRequestObserver(
        [&keyed](const analyzers::Request& r) { keyed->Add(r); });
  }
  // The slowest requests, kept with their syscalls as they are finalized.
  analyzers::SlowestRequests slowest(html.has_value() ? options.html.slowest
                                                      : 0);
  if (html.has_value()) {
    pipeline.AddRequestObserver(
        [&slowest](const analyzers::Request& r) { slowest.Add(r); });
  }
  std::unique_ptr<FleetOutputs> fleet;
  if (options.fleet.any()) {
    // Spans need the capture's clock offset and host before the replay.
    absl::StatusOr<collector::CaptureReader> reader =
        collector::CaptureReader::Open(options.input);
    if (!reader.ok()) return BadCapture(reader.status());
    const collector::CaptureHeader& h = reader->header();
    // Ids from the capture: the same file gives the same trace ids.
    uint64_t seed = h.start_mono_ns ^ static_cast<uint64_t>(h.mono_to_wall_ns);
    ASSIGN_OR_RETURN(
        fleet,
        FleetOutputs::Start(options.fleet, &pipeline,
                            /*live=*/false, h.mono_to_wall_ns, seed, h.host));
  }
  absl::Status s = ReplayCapture(options.input, &pipeline);
  if (fleet) (void)fleet->Finish();
  if (!s.ok()) return BadCapture(s);
  if (html.has_value()) {
    const analyzers::Report& report = pipeline.report();
    s = html->Commit(analyzers::HtmlPage(
        absl::StrCat("reqcost report ", options.input),
        analyzers::ReportPageData(options.input, report, slowest.Sorted(),
                                  slowest.offered()),
        analyzers::FormatText(report)));
    if (!s.ok()) return OutputFileError(s);
    std::fprintf(stderr, "reqcost: wrote %s\n", options.html.path.c_str());
  }
  if (!keys.has_value()) return absl::OkStatus();
  if (peers.has_value()) return PrintPeerGroups(*peers, format);

  analyzers::CompareOptions copts;
  copts.threshold_pct = options.threshold_pct;
  std::vector<analyzers::GroupReport> groups;
  std::vector<analyzers::Comparison> comparisons;
  if (grouped.has_value()) {
    groups = grouped->Reports(pipeline.report());
    comparisons = analyzers::CompareGroups(groups, copts);
  } else {
    groups = keyed->Reports(pipeline.report(), options.top);
  }
  if (format == Format::kJson) {
    std::printf("%s\n",
                analyzers::GroupComparisonToJson(*keys, groups, comparisons)
                    .dump(2)
                    .c_str());
  } else if (grouped.has_value()) {
    std::printf(
        "%s",
        analyzers::FormatGroupComparisonText(groups, comparisons).c_str());
  } else {
    std::printf("%s", analyzers::FormatGroupTableText(*keys, groups).c_str());
  }
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace reqcost::cli
