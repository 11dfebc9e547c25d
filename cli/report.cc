#include <cstdio>
#include <variant>

#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/pipeline.h"
#include "collector/capture_file.h"

namespace reqcost::cli {
namespace {

int BadCapture(const absl::Status& status) {
  std::fprintf(stderr, "reqcost: %s\n", std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kNotFound ||
                 status.code() == absl::StatusCode::kPermissionDenied
             ? kExitError
             : kExitBadCapture;
}

}  // namespace

int RunReport(const ReportOptions& options) {
  absl::StatusOr<Format> format = ParseFormat(options.format);
  if (!format.ok()) {
    std::fprintf(stderr, "reqcost: %s\n", std::string(format.status().message()).c_str());
    return kExitUsage;
  }
  absl::StatusOr<collector::CaptureReader> reader =
      collector::CaptureReader::Open(options.input);
  if (!reader.ok()) return BadCapture(reader.status());

  OutputOptions out;
  out.format = *format;
  out.events = options.events;
  out.requests = options.requests;
  Pipeline pipeline(out, stdout);
  const collector::CaptureHeader& header = reader->header();
  pipeline.Begin(header.start_mono_ns, header.processes);

  KernelCounters counters;
  uint64_t end_ns = 0;
  while (true) {
    absl::StatusOr<collector::CaptureRecord> record = reader->Next();
    if (!record.ok()) return BadCapture(record.status());
    if (const auto* e = std::get_if<SyscallEvent>(&*record)) {
      pipeline.OnSyscall(*e);
    } else if (const auto* p = std::get_if<ProcessEvent>(&*record)) {
      pipeline.OnProcess(*p);
    } else if (const auto* d = std::get_if<collector::DropNotice>(&*record)) {
      pipeline.OnDrops(d->from_ns, d->to_ns, d->count);
    } else if (const auto* c = std::get_if<collector::CountersSnapshot>(&*record)) {
      counters = c->counters;
    } else if (const auto* end = std::get_if<collector::CaptureEnd>(&*record)) {
      end_ns = end->end_ns;
      break;
    }
  }
  absl::Status s = pipeline.End(end_ns, counters);
  if (!s.ok()) {
    std::fprintf(stderr, "reqcost: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  return kExitOk;
}

}  // namespace reqcost::cli
