// `reqcost timeline CAPTURE -o trace.json`: every request of a capture as a
// Chrome trace-event file (Perfetto, chrome://tracing).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "analyzers/request.h"
#include "analyzers/trace_export.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/pipeline.h"
#include "collector/capture_file.h"

namespace reqcost::cli {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Writes `text` to a new file at `path`, mode 0600 whatever the umask (an
// existing file or symlink is replaced only with `force`).
absl::Status WriteNewFile(const std::string& path, const std::string& text,
                          bool force) {
  if (force && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno,
                               absl::StrFormat("remove old %s", path));
  }
  int fd = ::open(path.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  S_IRUSR | S_IWUSR);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("create %s", path));
  }
  absl::Status status;
  if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
    status = absl::ErrnoToStatus(errno,
                                 absl::StrFormat("set mode 0600 on %s", path));
  }
  size_t done = 0;
  while (status.ok() && done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      status = absl::ErrnoToStatus(errno, absl::StrFormat("write %s", path));
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (::close(fd) != 0 && status.ok()) {
    status = absl::ErrnoToStatus(errno, absl::StrFormat("write %s", path));
  }
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

}  // namespace

int RunTimeline(const TimelineOptions& options) {
  if (options.output.empty()) {
    std::fprintf(stderr,
                 "reqcost: timeline needs -o FILE: where to write the trace\n");
    return kExitUsage;
  }
  if (!options.force && Exists(options.output)) {
    std::fprintf(stderr,
                 "reqcost: %s already exists; remove it, choose another path "
                 "or pass --force to replace it\n",
                 options.output.c_str());
    return kExitUsage;
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
  if (!s.ok()) return BadCaptureExit(s);

  nlohmann::json trace = analyzers::ChromeTrace(
      requests, pipeline.report().processes, header.start_mono_ns);
  size_t slices = 0;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "X") ++slices;
  }
  s = WriteNewFile(options.output, trace.dump() + "\n", options.force);
  if (!s.ok()) {
    std::fprintf(stderr, "reqcost: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  std::printf("%s", absl::StrFormat(
                        "wrote %s: %d requests (%d complete), %d slices; open "
                        "it in https://ui.perfetto.dev or chrome://tracing\n",
                        options.output, pipeline.report().count,
                        pipeline.report().complete, slices)
                        .c_str());
  return kExitOk;
}

}  // namespace reqcost::cli
