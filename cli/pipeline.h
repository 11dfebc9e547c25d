// The one path every run takes, live or replayed from a capture file:
// events -> (capture writer) -> profiler -> printed output. Because `attach`
// and `report` both drive a Pipeline with the same events, `report FILE`
// prints exactly what `attach` printed for that run.
#ifndef REQCOST_CLI_PIPELINE_H_
#define REQCOST_CLI_PIPELINE_H_

#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "analyzers/profiler.h"
#include "analyzers/report.h"
#include "collector/capture_file.h"
#include "collector/event.h"
#include "collector/tracer.h"
#include "cli/live_view.h"

namespace reqcost::cli {

enum class Format { kText, kJson, kJsonl };

// Parses "text", "json", "jsonl"; InvalidArgument naming the flag otherwise.
absl::StatusOr<Format> ParseFormat(const std::string& text);

struct OutputOptions {
  Format format = Format::kText;
  bool events = false;    // every syscall, strace-style (text only)
  bool requests = false;  // every request as it completes
  bool summary = true;    // the breakdown at the end
  // A live run with --interval: jsonl prints interval records instead of
  // requests (unless `requests`) and ends with a {"type":"summary"} record.
  bool intervals = false;
  // A live run: with no request, the text summary says what the run saw and
  // what to check instead of an empty table.
  bool explain_empty = false;
};

class Pipeline : public collector::EventSink {
 public:
  Pipeline(const OutputOptions& options, std::FILE* out);

  // Also writes every record to `writer` (not owned; may be null).
  void RecordTo(collector::CaptureWriter* writer) { writer_ = writer; }

  // Also hands every finalized request (complete or not) to `observer`,
  // after printing it.
  void AddRequestObserver(
      std::function<void(const analyzers::Request&)> observer) {
    observers_.push_back(std::move(observer));
  }

  // Starts the run: its monotonic start time (the origin of printed times)
  // and the processes traced at attach.
  void Begin(uint64_t start_ns, const std::vector<ProcessInfo>& processes);

  void OnSyscall(const SyscallEvent& event) override;
  void OnProcess(const ProcessEvent& event) override;
  // A TLS library call's data (the uprobes'): recorded in the capture, if
  // any, and handed to the profiler, which splits a TLS client connection's
  // requests from the decrypted bytes. `report` replays a capture's TLS data
  // through this same method.
  void OnTlsData(const TlsDataEvent& event) override;
  void OnDrops(uint64_t from_ns, uint64_t to_ns, uint64_t count) override;

  // Called at End(), once every request is finalized and before the
  // summary is printed (the live view's last, partial interval).
  void BeforeSummary(std::function<void()> hook) {
    before_summary_ = std::move(hook);
  }

  // The ring buffer was drained empty after monotonic `now_ns`: lets the
  // profiler finalize what that proves complete (Profiler::AdvanceTo).
  void AdvanceTo(uint64_t now_ns) { profiler_.AdvanceTo(now_ns); }

  // Ends the run at `end_ns` with the kernel's final counters: finalizes
  // every request and prints the breakdown. Returns the first error of the
  // capture writer, if any.
  absl::Status End(uint64_t end_ns, const KernelCounters& counters);

  // The report End() printed.
  const analyzers::Report& report() const { return report_; }
  uint64_t syscall_events() const { return syscalls_; }
  uint64_t process_events() const { return process_events_; }
  uint64_t tls_data_events() const { return tls_data_events_; }
  // The comm of process `tgid` ("?" if never seen).
  const std::string& Comm(uint32_t tgid) const;
  // The profiler's anomaly counters so far.
  const analyzers::Anomalies& anomalies() const {
    return profiler_.anomalies();
  }
  // Traced processes now: at Begin, plus forks, minus exits.
  size_t traced_processes() const { return live_.size(); }
  // The socket calls seen so far, by kind.
  const SeenCalls& seen_calls() const { return seen_; }

 private:
  void OnRequest(const analyzers::Request& request);
  void NoteWriteError(absl::Status status);
  // Whether an event of `tgid` at `ns` came just after its process left the
  // traced cgroups: a thread on another CPU can pass the kernel's check in
  // the instant of the move. Those events are not the process's to count
  // any more. Forgets leaves older than kLeftWindowNs.
  bool JustLeft(uint32_t tgid, uint64_t ns);

  OutputOptions options_;
  std::FILE* out_;
  collector::CaptureWriter* writer_ = nullptr;
  absl::Status write_error_;
  analyzers::Profiler profiler_;
  analyzers::Report report_;
  uint64_t start_ns_ = 0;
  uint64_t syscalls_ = 0;
  uint64_t process_events_ = 0;
  uint64_t tls_data_events_ = 0;
  uint64_t drop_notices_ = 0;
  // Names of the live processes and of the latest kKeptExitedComms to exit
  // (a request of an exited process is finalized within the reorder window
  // of its exit, long before that many more exits).
  static constexpr size_t kKeptExitedComms = 1024;
  std::map<uint32_t, std::string> comm_;
  std::set<uint32_t> live_;
  std::deque<uint32_t> exited_;  // oldest first
  static constexpr uint64_t kLeftWindowNs = 1000000000;
  std::deque<std::pair<uint32_t, uint64_t>> left_;  // (tgid, when), oldest first
  SeenCalls seen_;
  std::function<void()> before_summary_;
  std::vector<std::function<void(const analyzers::Request&)>> observers_;
};

// Replays the capture file at `path` through `pipeline`: Begin with its
// header, every record, End at its end record. Fills `header` when not null.
// Errors are the reader's: NotFound / PermissionDenied for a file that cannot
// be opened, others (DataLoss, ...) for one that is cut short or corrupt.
absl::Status ReplayCapture(const std::string& path, Pipeline* pipeline,
                           collector::CaptureHeader* header = nullptr);

// `status` of a capture that could not be replayed, marked with the exit
// code `report` uses: 1 when it cannot be opened, 6 when it is bad.
absl::Status BadCapture(absl::Status status);

// The closing line of a text run: events, drops, unpaired and the rest.
std::string CountersLine(uint64_t syscalls, uint64_t process_events,
                         const KernelCounters& counters);

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_PIPELINE_H_
