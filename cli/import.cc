// `reqcost import strace LOG... -o CAPTURE`: strace logs into a capture file
// that report, compare and timeline read like a live one (the parser is
// collector/strace_import.h).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "collector/capture_file.h"
#include "collector/status_macros.h"
#include "collector/strace_import.h"

namespace reqcost::cli {
namespace {

constexpr size_t kReadChunk = 1u << 20;

// Feeds the lines of `path` to `importer`.
absl::Status FeedFile(const std::string& path,
                      collector::StraceImporter* importer) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("cannot read %s", path));
  }
  importer->BeginFile(path);
  std::string buf(kReadChunk, '\0');
  std::string partial;
  bool read_error = false;
  while (true) {
    size_t n = std::fread(buf.data(), 1, buf.size(), f);
    if (n == 0) {
      read_error = std::ferror(f) != 0;
      break;
    }
    size_t pos = 0;
    while (pos < n) {
      const char* nl = static_cast<const char*>(
          std::memchr(buf.data() + pos, '\n', n - pos));
      if (nl == nullptr) {
        partial.append(buf.data() + pos, n - pos);
        break;
      }
      size_t end = static_cast<size_t>(nl - buf.data());
      if (partial.empty()) {
        importer->AddLine(std::string_view(buf.data() + pos, end - pos));
      } else {
        partial.append(buf.data() + pos, end - pos);
        importer->AddLine(partial);
        partial.clear();
      }
      pos = end + 1;
    }
  }
  std::fclose(f);
  if (!partial.empty()) importer->AddLine(partial);
  importer->EndFile(partial.empty());
  if (read_error) {
    return absl::DataLossError(absl::StrFormat("read error in %s", path));
  }
  return absl::OkStatus();
}

absl::Status WriteImport(const collector::StraceImport& im,
                         const ImportOptions& options) {
  collector::CaptureHeader header = im.header;
  header.reqcost_version = REQCOST_VERSION;
  header.command_line = options.command_line;
  collector::CaptureWriter::Options wo;
  wo.overwrite = options.force;
  ASSIGN_OR_RETURN(
      collector::CaptureWriter writer,
      collector::CaptureWriter::Create(options.output, header, wo));
  // Both streams are sorted: merge them by time, as live capture delivers.
  size_t p = 0;
  for (const SyscallEvent& e : im.events) {
    while (p < im.process_events.size() &&
           im.process_events[p].ts_ns <= e.exit_ns) {
      RETURN_IF_ERROR(writer.Write(im.process_events[p++]));
    }
    RETURN_IF_ERROR(writer.Write(e));
  }
  for (; p < im.process_events.size(); ++p) {
    RETURN_IF_ERROR(writer.Write(im.process_events[p]));
  }
  KernelCounters counters;
  counters.emitted = im.events.size() + im.process_events.size();
  return writer.Close(im.header.end_mono_ns, counters);
}

void PrintSummary(const collector::StraceImport& im,
                  const ImportOptions& options) {
  const collector::StraceImportStats& s = im.stats;
  absl::PrintF(
      "reqcost: imported %d socket calls from %d log%s (%d lines, %d "
      "processes) into %s\n",
      s.socket_calls - s.backend_left_out, s.files, s.files == 1 ? "" : "s",
      s.lines, s.processes, options.output.c_str());
  absl::PrintF(
      "  not imported: %d calls reqcost does not trace, %d on files or pipes, "
      "%d on fds not known to be sockets, %d signal and %d exit lines\n",
      s.other_calls, s.not_socket, s.unknown_fd, s.signals, s.exits);
  if (s.malformed > 0) {
    absl::PrintF("  malformed lines: %d (e.g. %s)\n", s.malformed,
                 absl::StrJoin(s.malformed_samples, ", ").c_str());
  }
  if (s.truncated > 0 || s.unfinished > 0 || s.orphan_resumed > 0) {
    absl::PrintF(
        "  cut short: %d last line%s, %d socket calls never resumed (dropped), "
        "%d resumed without their start (timed from -T)\n",
        s.truncated, s.truncated == 1 ? "" : "s", s.unfinished,
        s.orphan_resumed);
  }
  if (im.inferred_only()) {
    absl::PrintF(
        "  note: the log has no socket identities (strace ran without -yy): "
        "the server's backend links cannot be paired with the backend's "
        "connections, so backend time is inferred from the server's side; "
        "%d calls of processes that only accept were left out\n",
        s.backend_left_out);
  }
  if (s.no_duration > 0) {
    absl::PrintF(
        "  note: %d socket calls have no duration (strace ran without -T): "
        "only their start is known\n",
        s.no_duration);
  }
  if (s.no_pid_lines > 0) {
    absl::PrintF(
        "  note: %d lines have no PID (strace ran without -f and the file has "
        "no .PID suffix): they were given PID 0\n",
        s.no_pid_lines);
  }
  if (s.wall_clock) {
    absl::PrintF("  note: times of day (-tt): the date is unknown\n");
  }
}

}  // namespace

absl::Status RunImport(const ImportOptions& options) {
  if (options.format != "strace") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "import knows the format 'strace', not '%s'", options.format));
  }
  struct stat st;
  if (!options.force && ::lstat(options.output.c_str(), &st) == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s exists: choose another -o or pass --force to replace it",
        options.output));
  }
  collector::StraceImporter importer;
  for (const std::string& log : options.logs) {
    if (absl::Status s = FeedFile(log, &importer); !s.ok()) {
      return WithExitCode(std::move(s), kExitError);
    }
  }
  collector::StraceImport im = importer.Finish();
  const std::string logs = absl::StrJoin(options.logs, ", ");
  if (im.stats.calls == 0 && im.stats.malformed > 0) {
    return WithExitCode(
        absl::InvalidArgumentError(absl::StrFormat(
            "%s is not strace output: %d malformed lines (e.g. %s); take it "
            "with strace -f -ttt -T -yy -o LOG -p PID",
            logs, static_cast<int>(im.stats.malformed),
            absl::StrJoin(im.stats.malformed_samples, ", "))),
        kExitNoSocketCalls);
  }
  if (im.events.empty()) {
    return WithExitCode(
        absl::InvalidArgumentError(absl::StrFormat(
            "%s has no socket syscalls (%d calls in %d lines): trace the "
            "server and its backends, e.g. strace -f -ttt -T -yy -o LOG -p "
            "NGINX_PID -p PHP_FPM_PID",
            logs, static_cast<int>(im.stats.calls),
            static_cast<int>(im.stats.lines))),
        kExitNoSocketCalls);
  }
  if (absl::Status s = WriteImport(im, options); !s.ok()) {
    return WithExitCode(
        absl::Status(s.code(), absl::StrFormat("write %s: %s", options.output,
                                               s.message())),
        kExitError);
  }
  PrintSummary(im, options);
  return absl::OkStatus();
}

}  // namespace reqcost::cli
