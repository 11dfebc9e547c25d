#include <signal.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/event_printer.h"
#include "cli/exit_codes.h"
#include "collector/tracer.h"

namespace reqcost::cli {
namespace {

volatile sig_atomic_t g_stop = 0;

void OnStopSignal(int) { g_stop = 1; }

// SIGINT and SIGTERM end the run cleanly. No SA_RESTART: the poll returns
// at once instead of waiting out its timeout.
void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

constexpr absl::Duration kMaxDuration = absl::Hours(24 * 7);

// "10s", "500ms", "2m", or plain seconds ("10", "0.5"); "0" is no limit.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text) {
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--duration %s is not a duration: use 10s, 500ms, 2m or seconds",
        text));
  }
  if (d < absl::ZeroDuration() || d > kMaxDuration) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--duration %s is out of range: 0 (until Ctrl-C) to 168h", text));
  }
  return d;
}

class AttachSink : public collector::EventSink {
 public:
  AttachSink(bool print_events) : print_events_(print_events) {}

  void SetOrigin(uint64_t ns) { origin_ns_ = ns; }
  void AddProcess(const ProcessInfo& p) { comm_[p.pid] = p.comm; }

  void OnSyscall(const SyscallEvent& e) override {
    ++syscalls_;
    if (print_events_) {
      std::string line = FormatEvent(e, Comm(e.tgid), origin_ns_);
      std::fprintf(stdout, "%s\n", line.c_str());
    }
  }
  void OnProcess(const ProcessEvent& e) override {
    ++processes_;
    if (e.op != ProcessEvent::Op::kExit) comm_[e.tgid] = e.comm;
    if (print_events_) {
      std::fprintf(stdout, "%s\n", FormatProcessEvent(e, origin_ns_).c_str());
    }
  }
  void OnDrops(uint64_t, uint64_t, uint64_t count) override {
    dropped_ += count;
  }

  uint64_t syscalls() const { return syscalls_; }
  uint64_t processes() const { return processes_; }

 private:
  const std::string& Comm(uint32_t tgid) {
    auto it = comm_.find(tgid);
    if (it != comm_.end()) return it->second;
    static const std::string unknown = "?";
    return unknown;
  }

  bool print_events_;
  uint64_t origin_ns_ = 0;
  std::map<uint32_t, std::string> comm_;
  uint64_t syscalls_ = 0;
  uint64_t processes_ = 0;
  uint64_t dropped_ = 0;
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "reqcost: %s\n", std::string(status.message()).c_str());
  return ExitCodeFor(status);
}

}  // namespace

int RunAttach(const AttachOptions& options) {
  absl::StatusOr<absl::Duration> duration = ParseDurationFlag(options.duration);
  if (!duration.ok()) return Fail(duration.status());

  collector::TracerOptions topts;
  topts.pids = options.pids;
  topts.payload_bytes = options.payload_bytes;
  topts.ring_bytes = options.ring_bytes;
  topts.verbose = options.verbose;

  AttachSink sink(options.events);
  InstallStopHandlers();
  absl::StatusOr<std::unique_ptr<collector::Tracer>> tracer =
      collector::Tracer::Start(topts, &sink);
  if (!tracer.ok()) return Fail(tracer.status());
  for (const ProcessInfo& p : (*tracer)->processes()) sink.AddProcess(p);
  uint64_t start_ns = collector::MonotonicNowNs();
  sink.SetOrigin(start_ns);
  std::fprintf(stderr, "attached to %zu processes\n",
               (*tracer)->processes().size());
  std::fflush(stderr);

  uint64_t end_ns = *duration == absl::ZeroDuration()
                        ? UINT64_MAX
                        : start_ns + absl::ToInt64Nanoseconds(*duration);
  while (!g_stop && collector::MonotonicNowNs() < end_ns) {
    absl::StatusOr<int> n = (*tracer)->Poll(100);
    if (!n.ok()) return Fail(n.status());
  }
  // Whatever the kernel wrote before we stopped is still delivered.
  if (absl::StatusOr<int> n = (*tracer)->Poll(0); !n.ok()) return Fail(n.status());

  KernelCounters c = (*tracer)->counters();
  std::fprintf(stdout,
               "%llu events (%llu syscalls, %llu process changes), %llu "
               "dropped, %llu unpaired, %llu enter-lost, %llu undecodable\n",
               static_cast<unsigned long long>(sink.syscalls() + sink.processes()),
               static_cast<unsigned long long>(sink.syscalls()),
               static_cast<unsigned long long>(sink.processes()),
               static_cast<unsigned long long>(c.dropped),
               static_cast<unsigned long long>(c.unpaired),
               static_cast<unsigned long long>(c.enter_lost),
               static_cast<unsigned long long>((*tracer)->decode_errors()));
  return kExitOk;
}

}  // namespace reqcost::cli
