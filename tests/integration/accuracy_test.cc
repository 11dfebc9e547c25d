// The split checked per request against clocks reqcost does not
// read. samples/front-server logs, from its own CLOCK_MONOTONIC, the server
// time of each request and its link time |W| (connect or first send to the
// last reply read); its --responder mode, the FastCGI backend, logs its own
// backend time; link time minus that is an independent transport. reqcost's
// per-request server, transport and backend are compared with them, with
// server work injected before the connect (pre_us) and after the reply
// (post_us) as busy CPU work and as sleep, client keep-alive on and off,
// backend links new and kept, each run spread over a unix and a TCP
// backend. Every request must be within the tolerance plus the time
// the ground truth's own stamped syscalls took; the tolerance alone must
// hold at the median, and a looser bound at p95 (docs/accuracy.md).
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/profiled_run.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"
#include "tests/support/tolerances.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kRequests = 60;         // per case, sequential, half per backend
constexpr int kBackendWorkUs = 2000;  // the responder's sleep
// The tolerances: server within max(2%, 50 µs) of the front server's
// log, transport within max(5%, 30 µs) of the independent transport.
constexpr double kServerRel = 0.02, kServerAbsUs = 50;
constexpr double kTransportRel = 0.05, kTransportAbsUs = 30;
// Every request must be within those tolerances plus the time the ground
// truths' own stamped syscalls took (the slack the front server and the
// responder log: reqcost's stamp lies inside the call, the clock read next
// to it). Without that slack the tolerances hold at the median, and this
// bound (or the relative tolerance, if larger) holds at p95: on this loaded
// 2-vCPU VM an interrupt or a preemption between a syscall and the clock
// read beside it moves a ground truth by its length (docs/accuracy.md has
// the measured percentiles).
constexpr double kP95Us = 120;

// The proof that the bounds bite: REQCOST_ACCURACY_SHIFT (read by this test
// only) moves kShiftUs of every request from one phase of reqcost's output
// to its neighbour before the comparison, as a bug in the phase split
// would: "transport_to_server" or "backend_to_transport". The ctest tests
// accuracy_shift_* run some cases so and require each to fail.
constexpr double kShiftUs = 10;
// "queue_end" moves the end of every request's queue kShiftUs later
// (QueueAccuracy only).
enum class Shift { kNone, kTransportToServer, kBackendToTransport, kQueueEnd };
Shift ShiftFromEnv() {
  const char* v = std::getenv("REQCOST_ACCURACY_SHIFT");
  if (v == nullptr) return Shift::kNone;
  if (absl::string_view(v) == "transport_to_server")
    return Shift::kTransportToServer;
  if (absl::string_view(v) == "backend_to_transport")
    return Shift::kBackendToTransport;
  if (absl::string_view(v) == "queue_end") return Shift::kQueueEnd;
  ADD_FAILURE() << "REQCOST_ACCURACY_SHIFT=" << v << ": unknown shift";
  return Shift::kNone;
}

struct AccuracyCase {
  int work_us;      // pre_us and post_us
  bool keepalive;   // client keep-alive
  bool kept_links;  // front server --keep-backend
  bool syscall_times = false;  // reqcost attach --syscall-times
};

std::string CaseName(const AccuracyCase& c) {
  return absl::StrCat("Work", c.work_us, "us",
                      c.keepalive ? "KeepAlive" : "NewConnections",
                      c.kept_links ? "KeptLinks" : "NewLinks",
                      c.syscall_times ? "SyscallTimes" : "");
}

void PrintTo(const AccuracyCase& c, std::ostream* os) { *os << CaseName(c); }

// One line of reqcost-front-server --log.
struct FrontLogEntry {
  int64_t read_ns = 0;
  int64_t link_start_ns = 0;
  int64_t reply_end_ns = 0;
  int64_t response_end_ns = 0;
  double server_us = 0;
  double link_us = 0;
  double server_slack_us = 0;
  double link_slack_us = 0;
  std::string uri;
  int64_t connect_end_ns = 0;  // connect()'s return on a new link, else 0
  double read_us = 0;          // time in the request's first read
  double send_us = 0;          // time in the kept link's first send, else 0
  double accept_us = 0;        // time in the owned accept4(), else 0
  double close_us = 0;         // time in the owned close(), else 0
};

absl::StatusOr<std::vector<FrontLogEntry>> ReadFrontLog(
    const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return std::vector<FrontLogEntry>{};
  std::vector<FrontLogEntry> out;
  for (absl::string_view line :
       absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    FrontLogEntry e;
    if (f.size() != 15 || !absl::SimpleAtoi(f[1], &e.read_ns) ||
        !absl::SimpleAtoi(f[2], &e.link_start_ns) ||
        !absl::SimpleAtoi(f[3], &e.reply_end_ns) ||
        !absl::SimpleAtoi(f[4], &e.response_end_ns) ||
        !absl::SimpleAtod(f[5], &e.accept_us) ||
        !absl::SimpleAtod(f[6], &e.close_us) ||
        !absl::SimpleAtod(f[7], &e.server_us) ||
        !absl::SimpleAtod(f[8], &e.link_us) ||
        !absl::SimpleAtod(f[9], &e.server_slack_us) ||
        !absl::SimpleAtod(f[10], &e.link_slack_us) ||
        !absl::SimpleAtoi(f[12], &e.connect_end_ns) ||
        !absl::SimpleAtod(f[13], &e.read_us) ||
        !absl::SimpleAtod(f[14], &e.send_us)) {
      return absl::InternalError(
          absl::StrCat("bad front server log line: ", line));
    }
    e.uri = std::string(f[11]);
    out.push_back(std::move(e));
  }
  return out;
}

// One line of reqcost-front-server --responder --log.
struct ResponderLogEntry {
  double us = 0;        // (end_ns - start_ns) / 1000
  double slack_us = 0;  // time in the two syscalls stamped
  std::string uri;
  int64_t accept_end_ns = 0;  // its link's accept returned (first request)
};

absl::StatusOr<std::vector<ResponderLogEntry>> ReadResponderLog(
    const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return std::vector<ResponderLogEntry>{};
  std::vector<ResponderLogEntry> out;
  for (absl::string_view line :
       absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    ResponderLogEntry e;
    int64_t start, end;
    if (f.size() != 6 || !absl::SimpleAtoi(f[0], &start) ||
        !absl::SimpleAtoi(f[1], &end) || !absl::SimpleAtod(f[3], &e.slack_us) ||
        !absl::SimpleAtoi(f[5], &e.accept_end_ns) ||
        end < start) {
      return absl::InternalError(
          absl::StrCat("bad responder log line: ", line));
    }
    e.us = (end - start) / 1e3;
    e.uri = std::string(f[4]);
    out.push_back(std::move(e));
  }
  return out;
}

// The request's id=N (every URL of this test starts its query with it).
std::optional<int> RequestId(absl::string_view text) {
  size_t at = text.find("?id=");
  if (at == absl::string_view::npos) return std::nullopt;
  text.remove_prefix(at + 4);
  size_t end = 0;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  int id;
  if (!absl::SimpleAtoi(text.substr(0, end), &id)) return std::nullopt;
  return id;
}

// Waits (bounded) until a log holds `lines` non-empty lines.
absl::Status WaitForLines(const std::string& path, size_t lines) {
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  size_t have = 0;
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> text = ReadFileToString(path);
    if (text.ok()) {
      have = std::vector<absl::string_view>(
                 absl::StrSplit(*text, '\n', absl::SkipEmpty()))
                 .size();
      if (have >= lines) return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(path, " has ", have, " lines after 10 s, expected ", lines));
}

// Runs every thread of `pid` under SCHED_FIFO (priority 1): the ground
// truth's clock reads then follow their syscalls without a wake-up
// preemption in between (see docs/accuracy.md). reqcost's own stamps are
// taken in the kernel and need no such help.
absl::Status RunRealtime(pid_t pid) {
  std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* d = opendir(tasks.c_str());
  if (d == nullptr)
    return absl::ErrnoToStatus(errno, absl::StrCat("opendir ", tasks));
  absl::Status status;
  while (dirent* e = readdir(d)) {
    pid_t tid;
    if (!absl::SimpleAtoi(e->d_name, &tid)) continue;
    sched_param param{};
    param.sched_priority = 1;
    if (sched_setscheduler(tid, SCHED_FIFO, &param) != 0) {
      status = absl::ErrnoToStatus(errno,
                                   absl::StrCat("SCHED_FIFO for thread ", tid));
    }
  }
  closedir(d);
  return status;
}

// A sequential HTTP/1.1 client: one connection for all `targets` with
// keep-alive, else one per request ("Connection: close"). Each response is
// read to its Content-Length; every wait is bounded.
class SequentialClient {
 public:
  static absl::Status Run(int port, const std::vector<std::string>& targets,
                          bool keepalive) {
    SequentialClient client(port);
    for (size_t i = 0; i < targets.size(); ++i) {
      if (client.fd_ < 0) {
        absl::Status s = client.Connect();
        if (!s.ok()) return s;
      }
      absl::Status s = client.Exchange(targets[i], keepalive);
      if (!s.ok())
        return absl::Status(s.code(),
                            absl::StrCat(targets[i], ": ", s.message()));
      if (!keepalive) client.Close();
    }
    return absl::OkStatus();
  }

  ~SequentialClient() { Close(); }

 private:
  explicit SequentialClient(int port) : port_(port) {}

  absl::Status Connect() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return absl::ErrnoToStatus(errno, "socket");
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port_));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      return absl::ErrnoToStatus(errno, "connect to the front server");
    }
    return absl::OkStatus();
  }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  absl::Status Exchange(const std::string& target, bool keepalive) {
    std::string req =
        absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                     keepalive ? "" : "Connection: close\r\n", "\r\n");
    if (send(fd_, req.data(), req.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(req.size())) {
      return absl::ErrnoToStatus(errno, "send");
    }
    std::string buf;
    size_t need = std::string::npos;
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (need == std::string::npos || buf.size() < need) {
      int left_ms =
          static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      pollfd p{fd_, POLLIN, 0};
      if (left_ms <= 0 || poll(&p, 1, left_ms) <= 0) {
        return absl::DeadlineExceededError("no complete response within 10 s");
      }
      char tmp[4096];
      ssize_t n = read(fd_, tmp, sizeof(tmp));
      if (n <= 0)
        return absl::UnavailableError(
            "connection closed before the response ended");
      buf.append(tmp, static_cast<size_t>(n));
      size_t head = buf.find("\r\n\r\n");
      if (need == std::string::npos && head != std::string::npos) {
        size_t cl = buf.find("Content-Length: ");
        size_t len = 0;
        if (cl == std::string::npos || cl > head ||
            !absl::SimpleAtoi(
                buf.substr(cl + 16, buf.find("\r\n", cl) - cl - 16), &len)) {
          return absl::InternalError(absl::StrCat("no Content-Length: ", buf));
        }
        need = head + 4 + len;
      }
    }
    if (buf.rfind("HTTP/1.1 200", 0) != 0) {
      return absl::InternalError(
          absl::StrCat("not a 200: ", buf.substr(0, 80)));
    }
    return absl::OkStatus();
  }

  int port_;
  int fd_ = -1;
};

// The value at the nearest-rank percentile `p` (0..1) of `v`.
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * v.size()));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

// The per-request errors of one phase over a run (reqcost - truth, µs) and
// how many were within the tolerance; printed as the
// "[ accuracy ]" lines docs/accuracy.md quotes.
struct PhaseErrors {
  std::string phase;
  std::vector<double> err_us;
  std::vector<double> abs_us;
  int within = 0;

  void Add(double err, double tolerance_us) {
    err_us.push_back(err);
    abs_us.push_back(std::fabs(err));
    if (std::fabs(err) <= tolerance_us) ++within;
  }
  double Share() const {
    return abs_us.empty() ? 0 : static_cast<double>(within) / abs_us.size();
  }
  void Print(const std::string& name) const {
    std::printf(
        "[ accuracy ] %s %s: |error| p50 %.1f p95 %.1f max %.1f us (median "
        "error "
        "%+.1f us), %d/%zu within tolerance\n",
        name.c_str(), phase.c_str(), Percentile(abs_us, 0.5),
        Percentile(abs_us, 0.95), Percentile(abs_us, 1.0), Median(err_us),
        within, abs_us.size());
    // Optional per-request dump, for the overall percentiles of
    // docs/accuracy.md.
    if (const char* path = std::getenv("REQCOST_ACCURACY_DUMP");
        path != nullptr) {
      if (FILE* f = std::fopen(path, "a")) {
        for (double e : err_us)
          std::fprintf(f, "%s %s %.3f\n", name.c_str(), phase.c_str(), e);
        std::fclose(f);
      }
    }
  }
};

// The median |error| within the tolerance max(`rel_us`, `abs_us`), and p95
// within max(`rel_us`, kP95Us).
void ExpectPercentiles(const PhaseErrors& e, double rel_us, double abs_us) {
  EXPECT_LE(Percentile(e.abs_us, 0.5), std::max(rel_us, abs_us))
      << e.phase << " p50";
  EXPECT_LE(Percentile(e.abs_us, 0.95), std::max(rel_us, kP95Us))
      << e.phase << " p95";
}

// The time the calls at a phase's edge spend outside reqcost's stamps: the
// front server's own time in a call (its clock reads around it) less
// reqcost's duration of it (enter to exit tracepoint), that is the kernel's
// syscall entry and exit and the clock reads. The truth holds that time
// where its edge is a call's start or end seen from user space and
// reqcost's the tracepoint inside: on a new client connection the owned
// accept and close, on a new backend link its connect, with
// --syscall-times the first read and, on a kept link, the first send and
// the last reply read. One list per call over a case's requests; the bias
// bound widens by their medians on that side (tolerances.h).
struct OutsideTimes {
  std::vector<double> accept, close, connect, first_read, first_send,
      reply_read;

  static double MedianOf(const std::vector<double>& v) {
    return v.empty() ? 0 : std::max(0.0, Median(v));
  }
  // reqcost's server comes out shorter than the truth by at most this...
  double ServerBelow(const AccuracyCase& c) const {
    return (c.keepalive ? 0 : MedianOf(accept) + MedianOf(close)) +
           (c.syscall_times ? MedianOf(first_read) : 0);
  }
  // ... and longer by at most this (the link's start moves into server).
  double ServerAbove(const AccuracyCase& c) const {
    return c.kept_links ? 0 : MedianOf(connect);
  }
  // reqcost's transport and |W| come out shorter by at most this.
  double LinkBelow(const AccuracyCase& c) const {
    if (!c.kept_links) return MedianOf(connect);
    return c.syscall_times ? MedianOf(first_send) + MedianOf(reply_read) : 0;
  }
};

bool IsReadName(absl::string_view n) {
  return n == "read" || n == "readv" || n == "recvfrom" || n == "recvmsg";
}
bool IsWriteName(absl::string_view n) {
  return n == "write" || n == "writev" || n == "sendto" || n == "sendmsg";
}

// reqcost's duration in µs of the first (or last) call of request `q` made
// by the server to `peer` that `is` names; none when there is no such call
// or its start was not hooked.
std::optional<double> CallUs(const json& q, absl::string_view peer, bool last,
                             bool (*is)(absl::string_view)) {
  std::optional<double> found;
  for (const json& sc : q["syscalls"]) {
    if (sc["side"].get<std::string>() != "server" ||
        sc["peer"].get<std::string>() != peer ||
        !is(sc["name"].get<std::string>())) {
      continue;
    }
    found = sc["dur_us"].is_null() ? std::nullopt
                                   : std::optional<double>(sc["dur_us"]);
    if (!last) break;
  }
  return found;
}

// Adds the front server's `own_us` in a call less reqcost's duration of it,
// when the request made the call (own_us > 0) and reqcost timed it.
void AddOutside(std::vector<double>* v, double own_us,
                std::optional<double> reqcost_us) {
  if (own_us > 0 && reqcost_us.has_value()) v->push_back(own_us - *reqcost_us);
}

// Per link type (0 unix, 1 TCP) of one run: reqcost's and the truth's.
struct ByLink {
  std::vector<double> server[2], truth_server[2], transport[2],
      truth_transport[2];
};

// Unix and TCP links in one capture, requests interleaved: the difference
// between the link types (median TCP - median unix) must show in reqcost's
// transport as in the independent transport, and in server as in the front
// server's own server time; a phase shifted by the link's cost fails here.
void ExpectLinkTypeDifferences(const ByLink& l) {
  auto delta = [](const std::vector<double>* v) {
    return Median(v[1]) - Median(v[0]);
  };
  std::printf(
      "[ accuracy ] unix/tcp medians: server %.1f/%.1f (truth %.1f/%.1f), "
      "transport "
      "%.1f/%.1f (truth %.1f/%.1f)\n",
      Median(l.server[0]), Median(l.server[1]), Median(l.truth_server[0]),
      Median(l.truth_server[1]), Median(l.transport[0]), Median(l.transport[1]),
      Median(l.truth_transport[0]), Median(l.truth_transport[1]));
  // A difference of two medians (30 requests each): twice the tolerance.
  EXPECT_NEAR(delta(l.transport), delta(l.truth_transport), 2 * kTransportAbsUs)
      << "tcp - unix transport";
  EXPECT_NEAR(delta(l.server), delta(l.truth_server), 2 * kServerAbsUs)
      << "tcp - unix server";
}

class FrontServerAccuracy : public ::testing::TestWithParam<AccuracyCase> {};

TEST_P(FrontServerAccuracy, PhasesMatchTheServersOwnClocksPerRequest) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  const AccuracyCase c = GetParam();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-accuracy"));
  ASSERT_OK_AND_ASSIGN(unix_backend,
                       StartFcgiResponder(dir, "backend-unix", ""));
  ASSERT_OK_AND_ASSIGN(tcp_backend,
                       StartFcgiResponder(dir, "backend-tcp", "tcp"));
  FrontServerOptions fopts;
  fopts.backends = {unix_backend.address(), tcp_backend.address()};
  fopts.keep_backend = c.kept_links;
  ASSERT_OK_AND_ASSIGN(front, StartFrontServer(dir, fopts));
  if (std::getenv("REQCOST_ACCURACY_NO_FIFO") == nullptr) {
    for (pid_t pid : {front.pid(), unix_backend.pid(), tcp_backend.pid()}) {
      absl::Status rt = RunRealtime(pid);
      ASSERT_TRUE(rt.ok()) << rt;
    }
  }
  // The readiness probe's connection is logged as nothing (no request); the
  // logs start empty for this run.
  std::vector<std::string> attach = {
      "attach", "-p", std::to_string(front.pid()), "-p",
      std::to_string(unix_backend.pid()), "-p", std::to_string(tcp_backend.pid()),
      "--format", "json", "-o", dir.File("run.cap")};
  if (c.syscall_times) attach.push_back("--syscall-times");
  ASSERT_OK_AND_ASSIGN(run, ReqcostRun::Attach(dir, attach));

  // Request i: backend i % 2 (unix, TCP); pre work spin on odd pairs, post
  // work the other way, so both kinds meet both link types.
  std::vector<std::string> targets;
  for (int i = 0; i < kRequests; ++i) {
    bool pre_spin = (i / 2) % 2 == 1;
    targets.push_back(absl::StrCat(
        "/x?id=", i, "&be=", i % 2, "&pre_us=", c.work_us,
        "&pre_mode=", pre_spin ? "spin" : "sleep", "&post_us=", c.work_us,
        "&post_mode=", pre_spin ? "sleep" : "spin",
        "&work_us=", kBackendWorkUs));
  }
  absl::Status client =
      SequentialClient::Run(front.port(), targets, c.keepalive);
  // The last request is logged once its connection closed (the close is
  // its); the backends log after their reply: wait for all before stopping.
  absl::Status front_logged = WaitForLines(front.request_log(), kRequests);
  absl::Status unix_logged =
      WaitForLines(unix_backend.request_log(), kRequests / 2);
  absl::Status tcp_logged =
      WaitForLines(tcp_backend.request_log(), kRequests / 2);
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_TRUE(client.ok()) << client;
  ASSERT_TRUE(front_logged.ok()) << front_logged;
  ASSERT_TRUE(unix_logged.ok()) << unix_logged;
  ASSERT_TRUE(tcp_logged.ok()) << tcp_logged;
  ASSERT_EQ(code, 0) << run.err();
  json report = json::parse(run.out());
  EXPECT_EQ(report["capture"]["dropped_events"], 0);
  // A backend's accept stamped before its connect is no longer counted as
  // a reclassification (definitions.md, "Anomalies"): every counter is 0.
  ExpectNoAnomaliesExcept(report);
  EXPECT_EQ(report["requests"]["complete"], kRequests) << report.dump(2);

  // The ground truth: the front server's log in time order, the backends'
  // by request id.
  ASSERT_OK_AND_ASSIGN(front_log, ReadFrontLog(front.request_log()));
  ASSERT_EQ(front_log.size(), static_cast<size_t>(kRequests));
  std::sort(front_log.begin(), front_log.end(),
            [](const FrontLogEntry& a, const FrontLogEntry& b) {
              return a.read_ns < b.read_ns;
            });
  std::map<int, ResponderLogEntry> backend_by_id;  // the backend's own
  for (const Server* b : {&unix_backend, &tcp_backend}) {
    ASSERT_OK_AND_ASSIGN(log, ReadResponderLog(b->request_log()));
    for (const ResponderLogEntry& e : log)
      backend_by_id[RequestId(e.uri).value_or(-1)] = e;
  }

  // reqcost shows no query string: requests are matched by time (one
  // clock, CLOCK_MONOTONIC; the requests were sequential).
  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(dir.File("run.cap")));
  ASSERT_EQ(requests.size(), static_cast<size_t>(kRequests));
  std::sort(requests.begin(), requests.end(), [](const json& a, const json& b) {
    return a["start_ns"].get<int64_t>() < b["start_ns"].get<int64_t>();
  });
  const Shift shift = ShiftFromEnv();
  PhaseErrors server{"server"}, transport{"transport"}, backend{"backend"},
      link{"transport+backend"};
  ByLink by_link;
  OutsideTimes outside;
  std::vector<double> backend_reqcost, backend_own, link_us, server_truth,
      transport_truth;
  for (size_t i = 0; i < requests.size(); ++i) {
    const json& q = requests[i];
    FrontLogEntry f = front_log[i];
    if (c.syscall_times) {
      // With --syscall-times the request's first read and a kept link's
      // first send are seen at their enter (docs/definitions.md), where the
      // front server's clock reads follow their return: the request starts
      // read_us earlier (server longer), W send_us earlier (taken from
      // server into the link). The truth moves by the calls' own logged
      // times, no tolerance.
      f.server_us += f.read_us - f.send_us;
      f.link_us += f.send_us;
    }
    SCOPED_TRACE(q.dump());
    ASSERT_TRUE(q["complete"].get<bool>());
    AddOutside(&outside.accept, f.accept_us,
               CallUs(q, "client", false, [](absl::string_view n) {
                 return absl::StartsWith(n, "accept");
               }));
    AddOutside(&outside.close, f.close_us,
               CallUs(q, "client", true,
                      [](absl::string_view n) { return n == "close"; }));
    AddOutside(&outside.first_read, f.read_us,
               CallUs(q, "client", false, IsReadName));
    AddOutside(&outside.first_send, f.send_us,
               CallUs(q, "backend", false, IsWriteName));
    if (c.kept_links) {
      AddOutside(&outside.reply_read, f.link_slack_us - f.send_us,
                 CallUs(q, "backend", true, IsReadName));
    } else {
      AddOutside(&outside.connect, (f.connect_end_ns - f.link_start_ns) / 1e3,
                 CallUs(q, "backend", false,
                        [](absl::string_view n) { return n == "connect"; }));
    }
    // The request reqcost saw began after the previous response and before
    // this one's backend link (its accept or its first read).
    const int64_t start = q["start_ns"].get<int64_t>();
    ASSERT_LT(start, f.link_start_ns);
    if (i > 0) {
      ASSERT_GT(start, front_log[i - 1].response_end_ns);
    }
    std::optional<int> id = RequestId(f.uri);
    ASSERT_TRUE(id.has_value() && backend_by_id.count(*id) == 1) << f.uri;
    const double own = backend_by_id[*id].us;
    const double own_slack = backend_by_id[*id].slack_us;
    double s = q["server_us"].get<double>();
    double t = q["transport_us"].get<double>();
    double b = q["backend_us"].get<double>();
    if (shift == Shift::kTransportToServer) {
      s += kShiftUs;
      t -= kShiftUs;
    } else if (shift == Shift::kBackendToTransport) {
      t += kShiftUs;
      b -= kShiftUs;
    }
    EXPECT_EQ(q["backend_timing"], "measured");
    const double server_tol = std::max(kServerRel * f.server_us, kServerAbsUs);
    const double truth_transport = f.link_us - own;
    const double transport_tol =
        std::max(kTransportRel * truth_transport, kTransportAbsUs);
    server.Add(s - f.server_us, server_tol);
    transport.Add(t - truth_transport, transport_tol);
    backend.Add(b - own, std::max(kTransportRel * own, kTransportAbsUs));
    link.Add(t + b - f.link_us, transport_tol);
    // Every request, no percentile: the ground truth's clock reads lie
    // within its stamped syscalls' time (the slack the front server and
    // the responder log) of reqcost's stamps.
    // Each bound: the tolerance capped at the published p99 plus a
    // margin, plus the slack capped (tests/support/tolerances.h).
    namespace tol = tolerances;
    EXPECT_LE(std::fabs(s - f.server_us),
              tol::PerRequestUs(server_tol, tol::kServerP99Us) +
                  tol::CappedSlackUs(f.server_slack_us))
        << "id " << *id << ": front server says " << f.server_us;
    EXPECT_LE(std::fabs(t + b - f.link_us),
              tol::PerRequestUs(transport_tol, tol::kLinkP99Us) +
                  tol::CappedSlackUs(f.link_slack_us))
        << "id " << *id << ": front server's link " << f.link_us;
    EXPECT_LE(std::fabs(t - truth_transport),
              tol::PerRequestUs(transport_tol, tol::kTransportP99Us) +
                  tol::CappedSlackUs(f.link_slack_us + own_slack))
        << "id " << *id << ": independent transport " << truth_transport;
    EXPECT_LE(std::fabs(b - own),
              tol::PerRequestUs(std::max(kTransportRel * own, kTransportAbsUs),
                                tol::kBackendP99Us) +
                  tol::CappedSlackUs(own_slack))
        << "id " << *id << ": backend's own " << own;
    const int be = *id % 2;
    by_link.server[be].push_back(s);
    by_link.truth_server[be].push_back(f.server_us);
    by_link.transport[be].push_back(t);
    by_link.truth_transport[be].push_back(truth_transport);
    backend_reqcost.push_back(b);
    backend_own.push_back(own);
    link_us.push_back(f.link_us);
    server_truth.push_back(f.server_us);
    transport_truth.push_back(truth_transport);
  }
  const std::string name = CaseName(c);
  for (const PhaseErrors* e : {&server, &transport, &backend, &link})
    e->Print(name);
  // Percentile bounds (docs/accuracy.md says why and what was measured).
  ExpectPercentiles(server, kServerRel * Median(server_truth), kServerAbsUs);
  ExpectPercentiles(transport, kTransportRel * Median(transport_truth),
                    kTransportAbsUs);
  ExpectPercentiles(link, kTransportRel * Median(link_us), kTransportAbsUs);
  ExpectPercentiles(backend, kTransportRel * Median(backend_own),
                    kTransportAbsUs);
  // The bias: each phase's signed median error within a few µs of zero,
  // widened on one side by the time the calls at its edges spent outside
  // reqcost's stamps (tests/support/tolerances.h).
  const double server_below = outside.ServerBelow(c);
  const double server_above = outside.ServerAbove(c);
  const double link_below = outside.LinkBelow(c);
  std::printf(
      "[ accuracy ] %s: calls' time outside the stamps, median: accept %.1f "
      "close %.1f connect %.1f first read %.1f first send %.1f reply read "
      "%.1f us; bias bounds widened: server -%.1f/+%.1f, transport and |W| "
      "-%.1f\n",
      name.c_str(), OutsideTimes::MedianOf(outside.accept),
      OutsideTimes::MedianOf(outside.close),
      OutsideTimes::MedianOf(outside.connect),
      OutsideTimes::MedianOf(outside.first_read),
      OutsideTimes::MedianOf(outside.first_send),
      OutsideTimes::MedianOf(outside.reply_read), server_below, server_above,
      link_below);
  auto expect_bias = [&](const PhaseErrors& e, double below, double above) {
    const tolerances::BiasRange r = tolerances::AllowedBias(below, above);
    const double bias = Median(e.err_us);
    EXPECT_GE(bias, r.low) << e.phase << " bias";
    EXPECT_LE(bias, r.high) << e.phase << " bias";
  };
  expect_bias(server, server_below, server_above);
  expect_bias(transport, link_below, 0);
  expect_bias(link, link_below, 0);
  EXPECT_LE(std::fabs(Median(backend.err_us)), tolerances::kBackendBiasUs)
      << "backend bias";
  // The backend against its own log, as in every breakdown test.
  EXPECT_NEAR(Mean(backend_reqcost), Mean(backend_own),
              Mean(backend_own) * kMeasuredTolerance);
  ExpectLinkTypeDifferences(by_link);
  if (shift != Shift::kNone) {
    // What the accuracy_shift_* ctest tests look for: every case must fail.
    std::printf(
        "[ shift ] %s: %s\n", name.c_str(),
        ::testing::Test::HasFailure() ? "bounds failed" : "BOUNDS PASSED");
  }
}

INSTANTIATE_TEST_SUITE_P(PreAndPostWork, FrontServerAccuracy,
                         ::testing::ValuesIn([] {
                           std::vector<AccuracyCase> cases;
                           for (int work : {0, 200, 5000}) {
                             for (bool keepalive : {true, false}) {
                               for (bool kept : {false, true})
                                 cases.push_back({work, keepalive, kept});
                             }
                           }
                           // --syscall-times: every data call traced at its
                           // enter and exit, against the same clocks.
                           for (int work : {0, 5000}) {
                             for (bool kept : {false, true})
                               cases.push_back({work, !kept, kept, true});
                           }
                           return cases;
                         }()),
                         [](const auto& info) { return CaseName(info.param); });

// The queue: two front servers, each with a new backend link per request,
// share one responder that serves one connection at a time, so one front's
// link often waits in the responder's accept backlog while the other's
// request runs (2 ms). reqcost's queue is [exit of the front's connect, exit
// of the backend's accept of that link]; the front server logs connect()'s
// return and the responder its accept()'s return, both CLOCK_MONOTONIC, per
// request id (read back from reqcost with --payload).
TEST(QueueAccuracy, QueueMatchesTheFrontAndResponderClocksPerRequest) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  constexpr int kPerFront = 30;
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-queue"));
  ASSERT_OK_AND_ASSIGN(dir2, TempDir::Create("reqcost-queue"));
  ASSERT_OK_AND_ASSIGN(responder, StartFcgiResponder(dir, "backend-unix", ""));
  FrontServerOptions fopts;
  fopts.backends = {responder.address()};
  fopts.keep_backend = false;
  ASSERT_OK_AND_ASSIGN(front_a, StartFrontServer(dir, fopts));
  ASSERT_OK_AND_ASSIGN(front_b, StartFrontServer(dir2, fopts));
  const std::vector<const Server*> fronts = {&front_a, &front_b};
  if (std::getenv("REQCOST_ACCURACY_NO_FIFO") == nullptr) {
    for (pid_t pid : {front_a.pid(), front_b.pid(), responder.pid()}) {
      absl::Status rt = RunRealtime(pid);
      ASSERT_TRUE(rt.ok()) << rt;
    }
  }
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(front_a.pid()), "-p",
                     std::to_string(front_b.pid()), "-p",
                     std::to_string(responder.pid()), "--payload", "128",
                     "--format", "json", "-o", dir.File("queue.cap")}));
  // Front k gets ids k * 100 + i, from a client of its own, both at once.
  absl::Status client_status[2];
  std::vector<std::thread> clients;
  for (int k = 0; k < 2; ++k) {
    clients.emplace_back([&, k] {
      std::vector<std::string> targets;
      for (int i = 0; i < kPerFront; ++i) {
        const int id = k * 100 + i;
        // The id in the path too: reqcost's request line has no query.
        targets.push_back(absl::StrCat("/q", id, "?id=", id, "&work_us=",
                                       kBackendWorkUs));
      }
      client_status[k] =
          SequentialClient::Run(fronts[k]->port(), targets, true);
    });
  }
  for (std::thread& t : clients) t.join();
  absl::Status a_logged = WaitForLines(front_a.request_log(), kPerFront);
  absl::Status b_logged = WaitForLines(front_b.request_log(), kPerFront);
  absl::Status r_logged =
      WaitForLines(responder.request_log(), 2 * kPerFront);
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  for (const absl::Status& st :
       {client_status[0], client_status[1], a_logged, b_logged, r_logged}) {
    ASSERT_TRUE(st.ok()) << st;
  }
  ASSERT_EQ(code, 0) << run.err();
  json report = json::parse(run.out());
  EXPECT_EQ(report["capture"]["dropped_events"], 0);
  ExpectNoAnomaliesExcept(report, {"reclassified_connections"});
  EXPECT_EQ(report["requests"]["complete"], 2 * kPerFront) << report.dump(2);

  std::map<int, FrontLogEntry> front_by_id;
  for (const Server* f : fronts) {
    ASSERT_OK_AND_ASSIGN(log, ReadFrontLog(f->request_log()));
    for (const FrontLogEntry& e : log) {
      std::optional<int> id = RequestId(e.uri);
      ASSERT_TRUE(id.has_value()) << e.uri;
      ASSERT_NE(e.connect_end_ns, 0) << "a new link per request: " << e.uri;
      front_by_id[*id] = e;
    }
  }
  ASSERT_OK_AND_ASSIGN(rlog, ReadResponderLog(responder.request_log()));
  std::map<int, ResponderLogEntry> responder_by_id;
  for (const ResponderLogEntry& e : rlog) {
    std::optional<int> id = RequestId(e.uri);
    ASSERT_TRUE(id.has_value()) << e.uri;
    ASSERT_NE(e.accept_end_ns, 0) << "one request per link: " << e.uri;
    responder_by_id[*id] = e;
  }
  ASSERT_EQ(front_by_id.size(), static_cast<size_t>(2 * kPerFront));
  ASSERT_EQ(responder_by_id.size(), static_cast<size_t>(2 * kPerFront));

  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(dir.File("queue.cap")));
  ASSERT_EQ(requests.size(), static_cast<size_t>(2 * kPerFront));
  const Shift shift = ShiftFromEnv();
  PhaseErrors queue{"queue"};
  std::vector<double> truths;
  std::set<int> seen;
  int queued = 0;
  namespace tol = tolerances;
  for (const json& q : requests) {
    SCOPED_TRACE(q.dump());
    ASSERT_TRUE(q["complete"].get<bool>());
    ASSERT_TRUE(q["request_line"].is_string());
    // "GET /q17": the id in the path.
    const std::string line = q["request_line"].get<std::string>();
    int parsed_id = -1;
    ASSERT_TRUE(absl::StartsWith(line, "GET /q") &&
                absl::SimpleAtoi(line.substr(6), &parsed_id))
        << line;
    std::optional<int> id = parsed_id;
    ASSERT_TRUE(seen.insert(*id).second) << "id " << *id << " twice";
    ASSERT_EQ(front_by_id.count(*id), 1u);
    ASSERT_EQ(responder_by_id.count(*id), 1u);
    const FrontLogEntry& f = front_by_id[*id];
    const double truth =
        (responder_by_id[*id].accept_end_ns - f.connect_end_ns) / 1e3;
    // Both clock reads follow their calls; the front's connect time is in
    // its link slack.
    ASSERT_TRUE(q["queue_us"].is_number()) << "id " << *id;
    double got = q["queue_us"].get<double>();
    // The queue's end kShiftUs later, as a bug moving the accept's stamp
    // would give.
    if (shift == Shift::kQueueEnd) got += kShiftUs;
    const double tolerance = std::max(kTransportRel * truth, kTransportAbsUs);
    queue.Add(got - truth, tolerance);
    truths.push_back(truth);
    if (truth > 500) ++queued;
    EXPECT_LE(std::fabs(got - truth),
              tol::PerRequestUs(tolerance, tol::kLinkP99Us) +
                  tol::CappedSlackUs(f.link_slack_us))
        << "id " << *id << ": front connect() returned at "
        << f.connect_end_ns << ", responder accept() at "
        << responder_by_id[*id].accept_end_ns;
  }
  queue.Print("TwoFrontsOneResponder");
  std::printf("[ accuracy ] queue truth: p50 %.1f us, max %.1f us, %d of %zu "
              "requests waited more than 500 us\n",
              Median(truths), Percentile(truths, 1.0), queued, truths.size());
  // The scenario must make requests wait, or the check above says nothing.
  EXPECT_GE(queued, 5);
  ExpectPercentiles(queue, kTransportRel * Median(truths), kTransportAbsUs);
  EXPECT_LE(std::fabs(Median(queue.err_us)), tol::kBiasUs) << "queue bias";
  if (shift == Shift::kQueueEnd) {
    std::printf("[ shift ] queue: %s\n", ::testing::Test::HasFailure()
                                               ? "bounds failed"
                                               : "BOUNDS PASSED");
  }
}

}  // namespace
}  // namespace reqcost::testing
