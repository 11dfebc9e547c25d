// Two hosts on one machine: two network namespaces joined by a veth pair,
// nginx in one ("front"), php-fpm in the other ("backend") over TCP, the
// backend's replies through a link rate-limited by tc's tbf. One `reqcost
// attach` per host, each given only its own host's processes, writing a
// capture and OTLP/JSON spans; `reqcost report front.cap backend.cap`
// joins them. Checked: every request joined, backend against php-fpm's own
// clock, transport against the link's rate, a capture whose clocks were
// shifted by hours giving the same report, and spans of both agents that
// form one trace per request.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/strings/str_join.h"
#include "collector/capture_file.h"
#include "collector/status_macros.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/otlp_json_check.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

#define ASSERT_OK_AND_ASSIGN(lhs, expr)            \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)
#define ASSERT_OK(expr)         \
  do {                          \
    absl::Status s_ = (expr);   \
    ASSERT_TRUE(s_.ok()) << s_; \
  } while (0)
#define EXPECT_OK(expr)         \
  do {                          \
    absl::Status s_ = (expr);   \
    EXPECT_TRUE(s_.ok()) << s_; \
  } while (0)

constexpr int kRequests = 30;
constexpr int kReplyBytes = 200'000;  // the page's body
constexpr int kWorkUs = 20'000;       // php's sleep per request
constexpr double kRateBitsPerS = 40e6;

// The path of tool `name` (ip, tc: not on every PATH), or `name`.
std::string Tool(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    const std::string path = dir + name;
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return name;
}

// Runs a command to its end (bounded); its output in `dir`.
absl::Status RunCommand(const TempDir& dir, std::vector<std::string> argv) {
  argv[0] = Tool(argv[0]);
  static int n = 0;
  const std::string out = dir.File(absl::StrCat("cmd-", n, ".out"));
  const std::string err = dir.File(absl::StrCat("cmd-", n++, ".err"));
  absl::StatusOr<Subprocess> p = Subprocess::Start(argv, out, err);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->WaitForExit(absl::Seconds(20));
  if (!status.ok()) return status.status();
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "),
                                            " failed: ", FileTail(err)));
  }
  return absl::OkStatus();
}

// Two network namespaces joined by a veth pair, removed (with the pair)
// at destruction. Addresses exist only inside them.
class TwoHosts {
 public:
  static absl::StatusOr<std::unique_ptr<TwoHosts>> Create(const TempDir& dir) {
    auto h = std::unique_ptr<TwoHosts>(new TwoHosts(dir));
    const int tag = getpid() % 200 + 20;
    h->front_ = absl::StrCat("rcfront", getpid());
    h->backend_ = absl::StrCat("rcback", getpid());
    h->front_addr_ = absl::StrCat("10.231.", tag, ".1");
    h->backend_addr_ = absl::StrCat("10.231.", tag, ".2");
    const std::string va = absl::StrCat("rcva", getpid());
    const std::string vb = absl::StrCat("rcvb", getpid());
    h->backend_dev_ = vb;
    for (const std::string& ns : {h->front_, h->backend_}) {
      RETURN_IF_ERROR(RunCommand(dir, {"ip", "netns", "add", ns}));
      h->made_.push_back(ns);
      RETURN_IF_ERROR(RunCommand(dir, {"ip", "-n", ns, "link", "set", "lo", "up"}));
    }
    RETURN_IF_ERROR(RunCommand(dir, {"ip", "link", "add", va, "netns", h->front_,
                              "type", "veth", "peer", "name", vb, "netns",
                              h->backend_}));
    for (auto [ns, dev, addr] :
         {std::tuple{h->front_, va, h->front_addr_},
          std::tuple{h->backend_, vb, h->backend_addr_}}) {
      RETURN_IF_ERROR(RunCommand(dir, {"ip", "-n", ns, "addr", "add",
                                absl::StrCat(addr, "/24"), "dev", dev}));
      RETURN_IF_ERROR(RunCommand(dir, {"ip", "-n", ns, "link", "set", dev, "up"}));
    }
    return h;
  }

  ~TwoHosts() {
    for (const std::string& ns : made_) {
      (void)RunCommand(dir_, {"ip", "netns", "delete", ns});
    }
  }

  // Runs `fn` with this thread in namespace `ns` (children it starts stay
  // there), then back in the test's own.
  absl::Status In(const std::string& ns, const std::function<absl::Status()>& fn) {
    const int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int there =
        open(absl::StrCat("/var/run/netns/", ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (self < 0 || there < 0 || setns(there, CLONE_NEWNET) != 0) {
      if (self >= 0) close(self);
      if (there >= 0) close(there);
      return absl::InternalError(absl::StrCat("cannot enter netns ", ns));
    }
    absl::Status s = fn();
    const bool back = setns(self, CLONE_NEWNET) == 0;
    close(self);
    close(there);
    if (!back) std::abort();  // the rest of the test would run in `ns`
    return s;
  }

  const std::string& front() const { return front_; }
  const std::string& backend() const { return backend_; }
  const std::string& backend_addr() const { return backend_addr_; }
  const std::string& backend_dev() const { return backend_dev_; }

 private:
  explicit TwoHosts(const TempDir& dir) : dir_(dir) {}
  const TempDir& dir_;
  std::string front_, backend_, front_addr_, backend_addr_, backend_dev_;
  std::vector<std::string> made_;
};

// php-fpm's own durations (µs, the access log's first field).
std::vector<double> PhpFpmDurations(const std::string& log) {
  std::vector<double> out;
  for (absl::string_view line :
       absl::StrSplit(ReadFileToString(log).value_or(""), '\n',
                      absl::SkipEmpty())) {
    double us = 0;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (!f.empty() && absl::SimpleAtod(f[0], &us)) out.push_back(us);
  }
  return out;
}

double PhpFpmMean(const std::vector<double>& us) {
  double mean = 0;
  for (double v : us) mean += v / us.size();
  return mean;
}

// A copy of the capture at `in` whose clocks are `shift_ns` ahead (every
// monotonic time) and whose wall clock disagrees by `wall_ns` more: what
// another host's unsynchronised clocks look like.
absl::Status ShiftClocks(const std::string& in, const std::string& out,
                         int64_t shift_ns, int64_t wall_ns) {
  absl::StatusOr<collector::Capture> c = collector::ReadCapture(in);
  if (!c.ok()) return c.status();
  auto move = [shift_ns](uint64_t t) {
    return t == 0 ? 0 : static_cast<uint64_t>(static_cast<int64_t>(t) + shift_ns);
  };
  collector::CaptureHeader h = c->header;
  h.start_mono_ns = move(h.start_mono_ns);
  h.mono_to_wall_ns = h.mono_to_wall_ns - shift_ns + wall_ns;
  absl::StatusOr<collector::CaptureWriter> w =
      collector::CaptureWriter::Create(out, h);
  if (!w.ok()) return w.status();
  // Records in their kinds' order is enough: the profiler reorders by time.
  for (ProcessEvent e : c->process_events) {
    e.ts_ns = move(e.ts_ns);
    RETURN_IF_ERROR(w->Write(e));
  }
  for (SyscallEvent e : c->events) {
    e.enter_ns = move(e.enter_ns);
    e.exit_ns = move(e.exit_ns);
    RETURN_IF_ERROR(w->Write(e));
  }
  for (const collector::DropNotice& d : c->drops) {
    RETURN_IF_ERROR(w->WriteDrops(move(d.from_ns), move(d.to_ns), d.count));
  }
  KernelCounters last;
  if (!c->counters.empty()) last = c->counters.back().counters;
  return w->Close(move(c->header.end_mono_ns), last);
}

// Every span of the OTLP/JSON files, as one export: parents may be in the
// other agent's file.
OtlpCheck CheckAcross(const std::vector<std::string>& files) {
  json all = {{"resourceSpans", json::array()}};
  for (const std::string& f : files) {
    for (absl::string_view line : absl::StrSplit(
             ReadFileToString(f).value_or(""), '\n', absl::SkipEmpty())) {
      json doc = json::parse(line, nullptr, false);
      if (doc.is_discarded()) continue;
      for (const json& rs : doc["resourceSpans"]) {
        all["resourceSpans"].push_back(rs);
      }
    }
  }
  OtlpCheck check;
  CheckOtlpJson(all.dump(), &check);
  return check;
}

class HostsTest : public ::testing::TestWithParam<bool> {};

TEST_P(HostsTest, FrontAndBackendHostsJoin) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  const bool keep_conn = GetParam();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-hosts"));
  absl::StatusOr<std::unique_ptr<TwoHosts>> made = TwoHosts::Create(dir);
  if (!made.ok() && !BpfRequired()) GTEST_SKIP() << made.status();
  ASSERT_TRUE(made.ok()) << made.status();
  TwoHosts& hosts = **made;

  // The backend host: a send buffer that takes a whole reply (php-fpm's
  // write returns at once: the wire's time is transport, not backend), and
  // its replies through a 40 Mbit/s link.
  ASSERT_OK(RunCommand(dir, {"ip", "netns", "exec", hosts.backend(), "sysctl", "-q",
                      "-w", "net.ipv4.tcp_wmem=4096 4194304 8388608"}));
  ASSERT_OK(RunCommand(dir, {"tc", "-n", hosts.backend(), "qdisc", "add", "dev",
                      hosts.backend_dev(), "root", "tbf", "rate", "40mbit",
                      "burst", "5kb", "latency", "400ms"}));

  std::optional<Server> fpm, nginx;
  ASSERT_OK(hosts.In(hosts.backend(), [&]() -> absl::Status {
    PhpFpmOptions o;
    o.listen = absl::StrCat(hosts.backend_addr(), ":9000");
    o.children = 2;
    ASSIGN_OR_RETURN(Server s, StartPhpFpm(dir, o));
    fpm.emplace(std::move(s));
    return absl::OkStatus();
  }));
  ASSERT_OK(hosts.In(hosts.front(), [&]() -> absl::Status {
    NginxOptions o;
    o.upstream = absl::StrCat(hosts.backend_addr(), ":9000");
    o.keep_conn = keep_conn;
    ASSIGN_OR_RETURN(Server s, StartNginx(dir, o));
    nginx.emplace(std::move(s));
    return absl::OkStatus();
  }));

  // One agent per host, each given only its own host's processes.
  const std::string front_cap = dir.File("front.cap");
  const std::string backend_cap = dir.File("backend.cap");
  const std::string front_spans = dir.File("front.otlp.jsonl");
  const std::string backend_spans = dir.File("backend.otlp.jsonl");
  ASSERT_OK_AND_ASSIGN(
      front,
      ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx->pid()),
                               "-o", front_cap, "--otlp-json", front_spans}));
  ASSERT_OK_AND_ASSIGN(
      backend,
      ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(fpm->pid()),
                               "--payload", "16", "-o", backend_cap,
                               "--otlp-json", backend_spans}));

  AbResult ab;
  ASSERT_OK(hosts.In(hosts.front(), [&]() -> absl::Status {
    AbOptions o;
    o.url = nginx->Url(absl::StrCat("/bytes.php?n=", kReplyBytes,
                                    "&us=", kWorkUs));
    o.requests = kRequests;
    ASSIGN_OR_RETURN(ab, RunAb(o));
    return absl::OkStatus();
  }));
  ASSERT_EQ(ab.failed, 0);
  ASSERT_EQ(ab.complete, kRequests);
  // php-fpm logs a request after its reply: wait (bounded) for all.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (PhpFpmDurations(fpm->request_log()).size() < kRequests &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::SleepFor(absl::Milliseconds(300));  // the last events drained
  ASSERT_OK_AND_ASSIGN(front_code, front.StopWith(SIGINT));
  ASSERT_OK_AND_ASSIGN(backend_code, backend.StopWith(SIGINT));
  EXPECT_EQ(front_code, 0) << front.err();
  EXPECT_EQ(backend_code, 0) << backend.err();
  const std::vector<double> fpm_us = PhpFpmDurations(fpm->request_log());
  ASSERT_EQ(fpm_us.size(), static_cast<size_t>(kRequests));
  EXPECT_OK(nginx->Stop());
  EXPECT_OK(fpm->Stop());

  // Joined.
  ASSERT_OK_AND_ASSIGN(joined,
                       RunReqcost(dir, {"report", front_cap, backend_cap,
                                        "-f", "json"}));
  ASSERT_EQ(joined.code, 0) << joined.err;
  json report = json::parse(joined.out);
  EXPECT_EQ(report["requests"]["complete"], ab.complete) << joined.out;
  EXPECT_EQ(report["hosts"]["matched"], kRequests) << report["hosts"].dump();
  EXPECT_EQ(report["hosts"]["unmatched_exchanges"], 0);
  EXPECT_EQ(report["hosts"]["unmatched_backend"], 0);

  // The backend host alone: php-fpm's requests seen from its side, backend
  // exact, server and transport unknown, no anomaly.
  ASSERT_OK_AND_ASSIGN(alone,
                       RunReqcost(dir, {"report", backend_cap, "-f", "json"}));
  ASSERT_EQ(alone.code, 0) << alone.err;
  json alone_report = json::parse(alone.out);
  EXPECT_EQ(alone_report["requests"]["complete"], kRequests) << alone.out;
  EXPECT_EQ(alone_report["requests"]["incomplete"], 0) << alone.out;
  EXPECT_EQ(alone_report["phases"]["server"]["count"], 0);
  EXPECT_EQ(alone_report["phases"]["transport"]["count"], 0);
  EXPECT_EQ(alone_report["phases"]["backend"]["count"], kRequests);

  const double backend_mean = report["phases"]["backend"]["mean_us"];
  if (!keep_conn) {
    const double fpm_mean = PhpFpmMean(fpm_us);
    EXPECT_NEAR(backend_mean, fpm_mean, 0.02 * fpm_mean)
        << "php-fpm's own clock: " << fpm_mean << " us";
  } else {
    // On a kept connection php-fpm's clock starts when it begins to wait
    // for the next request (its access log then holds the idle time):
    // the joined backend is the backend host's own measure.
    const double alone_mean = alone_report["phases"]["backend"]["mean_us"];
    EXPECT_NEAR(backend_mean, alone_mean, 0.02 * alone_mean);
    EXPECT_GT(backend_mean, kWorkUs);
  }

  // The reply on the wire: its body, the HTTP and FastCGI headers (8 bytes
  // per record of at most 64 KiB, about 100 bytes of HTTP head), and 66
  // bytes of Ethernet, IP and TCP header per 1448-byte segment.
  const double payload = kReplyBytes + 8.0 * (kReplyBytes / 65535 + 3) + 100;
  const double wire = payload * (1448.0 + 66.0) / 1448.0;
  const double expect_us = wire * 8 / kRateBitsPerS * 1e6;
  // The median: on a machine shared with builds, a few replies wait for a
  // CPU and pull a 30-request mean up by more than the link's own spread.
  const double transport_p50 = report["phases"]["transport"]["p50_us"];
  EXPECT_NEAR(transport_p50, expect_us, 0.10 * expect_us)
      << "size / rate = " << expect_us << " us";

  std::printf("joined: backend mean %.1f us (php-fpm's log %.1f us), "
              "transport p50 %.1f us (size / rate %.1f us)\n",
              backend_mean, PhpFpmMean(fpm_us), transport_p50, expect_us);

  // One capture's clocks hours off: the same report.
  const std::string shifted = dir.File("backend-shifted.cap");
  ASSERT_OK(ShiftClocks(backend_cap, shifted, 3 * 3600 * int64_t{1'000'000'000},
                        3600 * int64_t{1'000'000'000}));
  ASSERT_OK_AND_ASSIGN(again,
                       RunReqcost(dir, {"report", front_cap, shifted,
                                        "-f", "json"}));
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(json::parse(again.out), report);

  // The joined set in the other commands.
  const std::string page = dir.File("joined.html");
  ASSERT_OK_AND_ASSIGN(html, RunReqcost(dir, {"report", front_cap, backend_cap,
                                              "--html", page}));
  EXPECT_EQ(html.code, 0) << html.err;
  EXPECT_THAT(ReadFileToString(page).value_or(""),
              ::testing::HasSubstr("backend exchanges matched"));
  const std::string trace_file = dir.File("joined-trace.json");
  ASSERT_OK_AND_ASSIGN(trace, RunReqcost(dir, {"timeline", front_cap,
                                               backend_cap, "-o", trace_file}));
  EXPECT_EQ(trace.code, 0) << trace.err;
  EXPECT_THAT(trace.out, ::testing::HasSubstr(
                             absl::StrCat(kRequests, " backend exchanges matched")));
  ASSERT_OK_AND_ASSIGN(
      compared, RunReqcost(dir, {"compare", front_cap + "," + backend_cap,
                                 front_cap + "," + shifted}));
  EXPECT_EQ(compared.code, 0) << compared.err;
  EXPECT_THAT(compared.out, ::testing::HasSubstr("No clear difference"));

  // The spans of both agents: one trace per request, every parent found.
  OtlpCheck spans = CheckAcross({front_spans, backend_spans});
  EXPECT_TRUE(spans.ok()) << spans.ErrorText();
  std::map<std::string, std::string> client_trace;  // CLIENT span -> trace
  for (const OtlpSpan& s : spans.spans) {
    if (s.kind == 3) client_trace[s.span_id] = s.trace_id;
  }
  int linked = 0;
  for (const OtlpSpan& s : spans.spans) {
    if (s.kind != 2 || s.parent_span_id.empty()) continue;
    auto it = client_trace.find(s.parent_span_id);
    if (it != client_trace.end() && it->second == s.trace_id) ++linked;
  }
  EXPECT_EQ(linked, kRequests);
}

// A TCP proxy on the backend host (socat, standing in for a load balancer
// or DNAT): the front's connection ends at the proxy, php-fpm's begins
// there. The 4-tuples differ, so nothing joins: every exchange and every
// backend request is counted and named, and each keeps what its own host
// measured.
TEST(HostsProxyTest, DifferentFourTuplesStayUnmatchedCountedAndNamed) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  constexpr int kProxied = 10;
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-hosts-proxy"));
  absl::StatusOr<std::unique_ptr<TwoHosts>> made = TwoHosts::Create(dir);
  if (!made.ok() && !BpfRequired()) GTEST_SKIP() << made.status();
  ASSERT_TRUE(made.ok()) << made.status();
  TwoHosts& hosts = **made;
  if (access(Tool("socat").c_str(), X_OK) != 0) GTEST_SKIP() << "no socat";

  const std::string fpm_at = absl::StrCat(hosts.backend_addr(), ":9000");
  const std::string proxy_at = absl::StrCat(hosts.backend_addr(), ":9001");
  std::optional<Server> fpm, nginx;
  std::optional<Subprocess> proxy;
  ASSERT_OK(hosts.In(hosts.backend(), [&]() -> absl::Status {
    PhpFpmOptions o;
    o.listen = fpm_at;
    ASSIGN_OR_RETURN(Server s, StartPhpFpm(dir, o));
    fpm.emplace(std::move(s));
    ASSIGN_OR_RETURN(
        Subprocess p,
        Subprocess::Start({Tool("socat"),
                           absl::StrCat("TCP-LISTEN:9001,bind=",
                                        hosts.backend_addr(),
                                        ",fork,reuseaddr"),
                           absl::StrCat("TCP:", fpm_at)},
                          dir.File("socat.out"), dir.File("socat.err")));
    proxy.emplace(std::move(p));
    return absl::OkStatus();
  }));
  absl::SleepFor(absl::Milliseconds(300));  // socat listening
  ASSERT_OK(hosts.In(hosts.front(), [&]() -> absl::Status {
    NginxOptions o;
    o.upstream = proxy_at;
    ASSIGN_OR_RETURN(Server s, StartNginx(dir, o));
    nginx.emplace(std::move(s));
    return absl::OkStatus();
  }));
  const std::string front_cap = dir.File("front.cap");
  const std::string backend_cap = dir.File("backend.cap");
  ASSERT_OK_AND_ASSIGN(
      front, ReqcostRun::Attach(dir, {"attach", "-p",
                                      std::to_string(nginx->pid()), "-o",
                                      front_cap}));
  ASSERT_OK_AND_ASSIGN(
      backend, ReqcostRun::Attach(dir, {"attach", "-p",
                                        std::to_string(fpm->pid()),
                                        "--payload", "16", "-o",
                                        backend_cap}));
  AbResult ab;
  ASSERT_OK(hosts.In(hosts.front(), [&]() -> absl::Status {
    AbOptions o;
    o.url = nginx->Url("/bytes.php?n=1000&us=2000");
    o.requests = kProxied;
    ASSIGN_OR_RETURN(ab, RunAb(o));
    return absl::OkStatus();
  }));
  ASSERT_EQ(ab.complete, kProxied);
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_OK_AND_ASSIGN(front_code, front.StopWith(SIGINT));
  ASSERT_OK_AND_ASSIGN(backend_code, backend.StopWith(SIGINT));
  EXPECT_EQ(front_code, 0);
  EXPECT_EQ(backend_code, 0);
  kill(proxy->pid(), SIGTERM);
  (void)proxy->WaitForExit(absl::Seconds(10));
  EXPECT_OK(nginx->Stop());
  EXPECT_OK(fpm->Stop());

  ASSERT_OK_AND_ASSIGN(joined, RunReqcost(dir, {"report", front_cap,
                                                backend_cap, "-f", "json"}));
  ASSERT_EQ(joined.code, 0) << joined.err;
  json hosts_json = json::parse(joined.out)["hosts"];
  EXPECT_EQ(hosts_json["matched"], 0) << hosts_json.dump();
  EXPECT_EQ(hosts_json["unmatched_exchanges"], kProxied);
  EXPECT_EQ(hosts_json["unmatched_backend"], kProxied);
  std::set<std::string> named;
  for (const json& u : hosts_json["unmatched"]) {
    named.insert(absl::StrCat(u["side"].get<std::string>(), " ",
                              u["server"].get<std::string>(), " ",
                              u["count"].get<int>()));
  }
  EXPECT_EQ(named, (std::set<std::string>{
                       absl::StrCat("front ", proxy_at, " ", kProxied),
                       absl::StrCat("backend ", fpm_at, " ", kProxied)}));
  ASSERT_OK_AND_ASSIGN(text, RunReqcost(dir, {"report", front_cap,
                                              backend_cap}));
  EXPECT_THAT(text.out, ::testing::HasSubstr("NAT or TCP load balancer"));
}

INSTANTIATE_TEST_SUITE_P(Connections, HostsTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "KeptBackendConnections"
                                          : "NewBackendConnections";
                         });

}  // namespace
}  // namespace reqcost::testing
