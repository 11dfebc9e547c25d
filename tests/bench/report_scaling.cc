// Streaming check: `reqcost report` on a big capture must run in memory that
// grows with the connections open at once, not with the number of requests.
// Writes synthetic captures (tests/bench/synthetic_stack.h: nginx + php-fpm,
// a fixed number of connections in flight, many requests) with
// collector::CaptureWriter, runs `reqcost report FILE --format json` on
// each under /usr/bin/time -v (or, without it, wait4's rusage), and prints
// wall time, events/s and peak RSS, then deletes the files. Two series:
// 1M and 10M events at 16 connections (requests x10, memory flat), then
// 1M events with 16, 256 and 1024 kept-alive client connections open at
// once (one php-fpm child each), at ~200k events/s of capture time like a
// busy real stack (the clients think between requests): memory follows
// the connections.
//
// Flags: --events=1000000,10000000 --connections=16,256,1024 (files go to a
// temp dir under /tmp)
// Exit: 0 when every report ran and counted the requests; 1 otherwise. The
// memory figures are printed (with the ratio of the largest to the
// smallest), not judged.
#include <signal.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "collector/capture_file.h"
#include "nlohmann/json.hpp"
#include "tests/bench/synthetic_stack.h"
#include "tests/support/stack.h"

namespace reqcost::bench {
namespace {

using testing::ReadFileToString;
using testing::Subprocess;

double NowS() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct Written {
  uint64_t events = 0;
  uint64_t requests = 0;  // begun; all but the last few in flight complete
  uint64_t bytes = 0;
  double seconds = 0;
};

// Events per second of capture time in the connections series: a real
// stack's rate (nginx + php-fpm at saturation on 2 CPUs: ~125k/s). The
// profiler buffers its 20 ms reorder window, so the rate, not the number of
// connections, sets that part of the memory.
constexpr double kSeriesEventsPerS = 200'000;

absl::StatusOr<Written> WriteCapture(const std::string& path, uint64_t events,
                                     int connections, bool idle_clients) {
  SyntheticOptions opts;
  opts.connections = connections;
  if (idle_clients) {
    // 100 requests per connection; each lane makes ~19 events per ~0.3 ms
    // request, so this think time gives kSeriesEventsPerS in total.
    opts.requests_per_connection = 100;
    double per_lane_s = connections * 19 / kSeriesEventsPerS;
    opts.client_think_ns =
        static_cast<uint64_t>(std::max(30e-6, per_lane_s - 300e-6) * 1e9);
  }
  opts.nginx_workers = 2;
  SyntheticStack stack(opts);
  collector::CaptureHeader header;
  header.start_mono_ns = opts.start_ns;
  header.host = "synthetic";
  header.kernel_release = "synthetic";
  header.reqcost_version = "bench";
  header.command_line = {"report_scaling"};
  header.processes = stack.Processes();
  collector::CaptureWriter::Options wopts;
  wopts.overwrite = true;
  double t0 = NowS();
  absl::StatusOr<collector::CaptureWriter> w =
      collector::CaptureWriter::Create(path, header, wopts);
  if (!w.ok()) return w.status();
  for (uint64_t i = 0; i < events; ++i) {
    if (absl::Status s = w->Write(stack.Next()); !s.ok()) return s;
  }
  if (absl::Status s = w->Close(stack.now_ns() + 1'000'000, KernelCounters{});
      !s.ok())
    return s;
  Written out;
  out.events = events;
  out.requests = stack.requests_started();
  out.bytes = w->bytes_written();
  out.seconds = NowS() - t0;
  return out;
}

struct Measured {
  double wall_s = 0;
  long max_rss_kb = 0;
  std::string how;
  std::string stdout_text;
};

// Parses "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:03.21".
std::optional<double> ParseElapsed(absl::string_view v) {
  std::vector<std::string> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(v), ':');
  double total = 0;
  for (const std::string& p : parts) {
    double x;
    if (!absl::SimpleAtod(p, &x)) return std::nullopt;
    total = total * 60 + x;
  }
  return total;
}

absl::StatusOr<Measured> RunReport(const std::string& capture,
                                   const std::string& dir) {
  std::string out = absl::StrCat(dir, "/report.out");
  std::string err = absl::StrCat(dir, "/report.err");
  bool have_time = access("/usr/bin/time", X_OK) == 0;
  std::vector<std::string> argv = {REQCOST_BINARY, "report", capture,
                                   "--format", "json"};
  if (have_time) argv.insert(argv.begin(), {"/usr/bin/time", "-v"});
  double t0 = NowS();
  Measured m;
  if (have_time) {
    absl::StatusOr<Subprocess> p = Subprocess::Start(argv, out, err);
    if (!p.ok()) return p.status();
    absl::StatusOr<int> status = p->WaitForExit(absl::Seconds(600));
    if (!status.ok()) return status.status();
    m.wall_s = NowS() - t0;
    if (*status != 0) {
      return absl::InternalError(
          absl::StrCat("reqcost report ", testing::DescribeWaitStatus(*status),
                       ": ", testing::FileTail(err)));
    }
    std::string text = ReadFileToString(err).value_or("");
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
      if (absl::ConsumePrefix(&l, "Maximum resident set size (kbytes):")) {
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(l), &m.max_rss_kb);
      }
      if (absl::ConsumePrefix(&l,
                              "Elapsed (wall clock) time (h:mm:ss or m:ss):")) {
        if (std::optional<double> e = ParseElapsed(l)) m.wall_s = *e;
      }
    }
    m.how = "/usr/bin/time -v";
  } else {
    // Our own child, reaped with wait4 for its rusage (bounded by polling).
    pid_t pid = fork();
    if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
    if (pid == 0) {
      if (!freopen(out.c_str(), "w", stdout) ||
          !freopen(err.c_str(), "w", stderr))
        _exit(127);
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    int status = 0;
    rusage ru{};
    absl::Time deadline = absl::Now() + absl::Seconds(600);
    pid_t r = 0;
    while ((r = wait4(pid, &status, WNOHANG, &ru)) == 0 &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    if (r != pid) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::DeadlineExceededError(
          "reqcost report took over 600 s (killed)");
    }
    m.wall_s = NowS() - t0;
    m.max_rss_kb = ru.ru_maxrss;
    m.how = "wait4 rusage";
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return absl::InternalError(
          absl::StrCat("reqcost report ", testing::DescribeWaitStatus(status),
                       ": ", testing::FileTail(err)));
    }
  }
  m.stdout_text = ReadFileToString(out).value_or("");
  unlink(out.c_str());
  unlink(err.c_str());
  return m;
}

int Main(int argc, char** argv) {
  std::vector<uint64_t> sizes = {1'000'000, 10'000'000};
  std::vector<int> widths = {16, 256, 1024};
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--events=")) {
      sizes.clear();
      for (absl::string_view s : absl::StrSplit(a, ',')) {
        uint64_t v;
        if (!absl::SimpleAtoi(s, &v) || v == 0) {
          std::fprintf(stderr, "report_scaling: bad --events\n");
          return 2;
        }
        sizes.push_back(v);
      }
    } else if (absl::ConsumePrefix(&a, "--connections=")) {
      widths.clear();
      for (absl::string_view s : absl::StrSplit(a, ',')) {
        int v;
        if (!absl::SimpleAtoi(s, &v) || v <= 0 || v > 100'000) {
          std::fprintf(stderr, "report_scaling: bad --connections\n");
          return 2;
        }
        widths.push_back(v);
      }
    } else {
      std::fprintf(stderr, "report_scaling: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  absl::StatusOr<testing::TempDir> dir =
      testing::TempDir::Create("reqcost-scaling");
  if (!dir.ok()) {
    std::fprintf(stderr, "report_scaling: %s\n",
                 std::string(dir.status().message()).c_str());
    return 1;
  }
  uint64_t largest = 0;
  for (uint64_t n : sizes) largest = std::max(largest, n);
  struct statvfs fs {};
  if (statvfs(dir->path().c_str(), &fs) == 0) {
    double need = largest * 80.0;  // ~73 bytes a record
    double have = static_cast<double>(fs.f_bavail) * fs.f_frsize;
    if (have < need * 1.2) {
      std::fprintf(stderr,
                   "report_scaling: %s has %.0f MB free, needs %.0f MB\n",
                   dir->path().c_str(), have / 1e6, need / 1e6);
      return 1;
    }
  }

  std::printf(
      "reqcost report on synthetic captures (nginx + php-fpm, unix socket)\n");
  std::printf("%12s %8s %10s %10s %9s %9s %12s %16s %10s\n", "events", "conns",
              "requests", "file MB", "write s", "report s", "events/s",
              "complete", "peak RSS");
  int rc = 0;
  // One capture: written, reported on, deleted. Returns its peak RSS in KiB.
  auto measure = [&](uint64_t n, int connections,
                     bool idle_clients) -> std::optional<long> {
    std::string path =
        dir->File(absl::StrCat("synthetic-", n, "-", connections, ".cap"));
    absl::StatusOr<Written> w =
        WriteCapture(path, n, connections, idle_clients);
    if (!w.ok()) {
      std::fprintf(stderr, "report_scaling: writing %s: %s\n", path.c_str(),
                   std::string(w.status().message()).c_str());
      unlink(path.c_str());
      return std::nullopt;
    }
    absl::StatusOr<Measured> m = RunReport(path, dir->path());
    unlink(path.c_str());
    if (!m.ok()) {
      std::fprintf(stderr, "report_scaling: %s\n",
                   std::string(m.status().message()).c_str());
      return std::nullopt;
    }
    nlohmann::json j = nlohmann::json::parse(m->stdout_text, nullptr, false);
    uint64_t complete = 0, count = 0;
    if (!j.is_discarded() && j.contains("requests")) {
      complete = j["requests"].value("complete", uint64_t{0});
      count = j["requests"].value("count", uint64_t{0});
    }
    // All but the requests in flight at the end (at most one per connection).
    uint64_t in_flight = static_cast<uint64_t>(connections);
    if (count + in_flight < w->requests || complete + in_flight < w->requests)
      rc = 1;
    std::printf(
        "%12llu %8d %10llu %10.1f %9.2f %9.2f %12.0f %16s %7.1f MB   (%s)\n",
        static_cast<unsigned long long>(n), connections,
        static_cast<unsigned long long>(w->requests), w->bytes / 1e6,
        w->seconds, m->wall_s, n / m->wall_s,
        absl::StrCat(complete, "/", count).c_str(), m->max_rss_kb / 1024.0,
        m->how.c_str());
    std::fflush(stdout);
    return m->max_rss_kb;
  };
  std::vector<long> by_size;
  for (uint64_t n : sizes) {
    std::optional<long> r = measure(n, 16, false);
    if (!r) return 1;
    by_size.push_back(*r);
  }
  if (by_size.size() >= 2 && by_size.front() > 0) {
    std::printf(
        "peak RSS ratio, largest / smallest capture (16 connections): %.2f\n",
        static_cast<double>(by_size.back()) /
            static_cast<double>(by_size.front()));
  }
  std::printf(
      "kept-alive clients thinking between requests, ~%.0fk events/s:\n",
      kSeriesEventsPerS / 1e3);
  for (int c : widths) {
    if (!measure(1'000'000, c, true)) return 1;
  }
  if (rc != 0)
    std::printf("FAILED: a report did not count the synthetic requests\n");
  return rc;
}

}  // namespace
}  // namespace reqcost::bench

int main(int argc, char** argv) { return reqcost::bench::Main(argc, argv); }
