// Front ends that resolve names per request: samples/resolving-front
// calls getaddrinfo("localhost", AI_ADDRCONFIG) for every request (glibc:
// socket(AF_NETLINK), bind, getsockname, sendto RTM_GETADDR dump, recvmsg x2,
// two failed connects to nscd's unix stream socket, close) and then talks
// FastCGI over TCP to the sample backend (20 ms of work). With datagrams on,
// each request also does one UDP and one unix datagram round trip to an echo
// that is not traced. None of these is the backend exchange; reqcost must
// name them inside server time.
//
// These tests fail against reqcost before the resolution work lands (see the
// report of the tlsprobe branch); they state the target.
#include <signal.h>
#include <sys/types.h>

#include <cstdio>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/profiled_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kWorkUs = 20000;
constexpr int kRequests = 100;

struct ResolveCase {
  bool datagrams;  // UDP + unix datagram round trip per request
  bool keepalive;  // ab -k
};

std::string ResolveName(const ResolveCase& c) {
  return absl::StrCat(c.datagrams ? "WithDatagrams" : "NetlinkOnly",
                      c.keepalive ? "KeepAlive" : "NewConnections");
}

void PrintTo(const ResolveCase& c, std::ostream* os) { *os << ResolveName(c); }

// ASSUMED SHAPE: per-request jsonl syscall
// entries and the report's `syscalls` statistics gain "peer": "netlink",
// "dns", "udp", "unix-dgram", ... (absent or null for client and backend
// stream sockets). Everything that reads "peer" goes through these two
// helpers; adapt them if the shape differs.
// The peer of a call on a socket that carries no requests ("netlink",
// "dns", "udp", "unix-dgram", "socket"); "" for a connection's syscall
// (peer "client", "backend", "server") or none.
std::string PeerOf(const json& syscall) {
  if (!syscall.contains("peer") || !syscall["peer"].is_string()) return "";
  std::string peer = syscall["peer"].get<std::string>();
  if (peer == "client" || peer == "backend" || peer == "server") return "";
  return peer;
}

// How many syscalls of the request have each peer ("" = none).
std::map<std::string, int> PeerCounts(const json& request) {
  std::map<std::string, int> out;
  for (const json& s : request["syscalls"]) ++out[PeerOf(s)];
  return out;
}

// Sum of the report's per-syscall statistics counts, by peer.
std::map<std::string, int> ReportPeerCounts(const json& report) {
  std::map<std::string, int> out;
  for (const json& s : report["syscalls"])
    out[PeerOf(s)] += s["count"].get<int>();
  return out;
}

std::map<std::string, int> BackendConnCounts(const json& report) {
  std::map<std::string, int> out;
  for (const json& g : report["groups"]) {
    out[g["backend_conn"].get<std::string>()] += g["requests"].get<int>();
  }
  return out;
}

class ResolvingFront : public ::testing::TestWithParam<ResolveCase> {};

TEST_P(ResolvingFront, ResolutionIsNotTheBackendExchange) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  const ResolveCase& c = GetParam();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-resolve"));
  FcgiBackendOptions bopts;
  bopts.listen = "tcp";
  bopts.workers = 2;
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, bopts));
  ResolvingFrontOptions fopts;
  // "127.0.0.1:PORT" -> "localhost:PORT": the front resolves the name.
  fopts.backend =
      absl::StrReplaceAll(backend.address(), {{"127.0.0.1", "localhost"}});
  fopts.threads = 4;
  std::optional<Server> echo;
  if (c.datagrams) {
    std::string unix_path = dir.File("echo.dgram");
    ASSERT_OK_AND_ASSIGN(e, StartDatagramEcho(dir, unix_path));
    fopts.udp_echo = e.address();
    fopts.unix_echo = unix_path;
    echo.emplace(std::move(e));
  }
  ASSERT_OK_AND_ASSIGN(front, StartResolvingFront(dir, fopts));
  // One request by hand first: the stack answers (not profiled).
  ASSERT_OK_AND_ASSIGN(probe, HttpGet(front.Url("/x?work_us=0")));
  ASSERT_EQ(probe.status, 200) << probe.body << front.LogTail();
  // The backend logs a request after its lingering close: wait (bounded)
  // for the probe's line before counting.
  std::vector<BackendLogEntry> before;
  for (absl::Time deadline = absl::Now() + absl::Seconds(5);;) {
    ASSERT_OK_AND_ASSIGN(seen, ReadBackendLog(backend.request_log()));
    before = seen;
    if (!before.empty() || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(before.size(), 1u)
      << "the probe request was not logged by the backend";

  AbOptions ab;
  ab.url = front.Url("/x?work_us=" + std::to_string(kWorkUs));
  ab.requests = kRequests;
  ab.concurrency = 2;
  ab.keepalive = c.keepalive;
  ab.work_dir = dir.path();
  // The echo is not traced: its datagrams are the front's peers only.
  ASSERT_OK_AND_ASSIGN(p, ProfileAb(dir, {front.pid(), backend.pid()}, ab));
  ASSERT_EQ(p.ab.complete, kRequests) << p.ab.output << front.LogTail();
  ASSERT_EQ(p.ab.failed, 0) << p.ab.output;
  ASSERT_EQ(p.ab.non_2xx, 0) << p.ab.output << front.LogTail();
  ASSERT_OK_AND_ASSIGN(all, ReadBackendLog(backend.request_log()));
  ASSERT_EQ(all.size(), before.size() + kRequests);
  std::vector<BackendLogEntry> log(all.begin() + before.size(), all.end());

  // Today's shapes: counts, completeness, and the backend against its own
  // clock (the netlink exchange must not be taken for the backend's).
  ExpectBreakdown("resolving front + sample backend, " + ResolveName(c),
                  p.report, p.ab, Mean(ElapsedUs(log)));
  EXPECT_EQ(p.report["requests"]["count"], p.ab.complete);
  EXPECT_EQ(p.report["requests"]["incomplete"], 0);
  // The front opens one backend connection per request; the nscd connects
  // (unix stream, ENOENT) and netlink sockets are not backend links.
  auto conns = BackendConnCounts(p.report);
  EXPECT_EQ(conns["new"], kRequests) << p.report["groups"].dump(2);
  EXPECT_EQ(conns["reused"], 0) << p.report["groups"].dump(2);

  // ASSUMED SHAPE from here on (see PeerOf).
  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(p.capture));
  EXPECT_EQ(requests.size(), static_cast<size_t>(kRequests));
  int without_netlink = 0, without_udp = 0, without_unix = 0;
  for (const json& q : requests) {
    auto peers = PeerCounts(q);
    // getaddrinfo: at least the RTM_GETADDR sendto and its recvmsg.
    if (peers["netlink"] < 2) ++without_netlink;
    if (c.datagrams && peers["udp"] < 2) ++without_udp;
    if (c.datagrams && peers["unix-dgram"] < 2) ++without_unix;
    // Resolution happens in the front: never a backend-side syscall.
    for (const json& s : q["syscalls"]) {
      if (!PeerOf(s).empty()) {
        EXPECT_EQ(s["side"], "server") << s.dump();
      }
    }
  }
  EXPECT_EQ(without_netlink, 0) << "requests without netlink lines; first: "
                                << (requests.empty() ? "" : requests[0].dump());
  EXPECT_EQ(without_udp, 0) << "requests without udp lines";
  EXPECT_EQ(without_unix, 0) << "requests without unix-dgram lines";
  auto totals = ReportPeerCounts(p.report);
  EXPECT_GE(totals["netlink"], 2 * kRequests) << p.report["syscalls"].dump(2);
  if (c.datagrams) {
    EXPECT_GE(totals["udp"], 2 * kRequests) << p.report["syscalls"].dump(2);
    EXPECT_GE(totals["unix-dgram"], 2 * kRequests)
        << p.report["syscalls"].dump(2);
  } else {
    EXPECT_EQ(totals["udp"], 0);
    EXPECT_EQ(totals["unix-dgram"], 0);
  }
  // "localhost" is in /etc/hosts: no DNS query.
  EXPECT_EQ(totals["dns"], 0);
}

INSTANTIATE_TEST_SUITE_P(
    Resolve, ResolvingFront,
    ::testing::Values(ResolveCase{false, false}, ResolveCase{false, true},
                      ResolveCase{true, false}, ResolveCase{true, true}),
    [](const auto& info) { return ResolveName(info.param); });

}  // namespace
}  // namespace reqcost::testing
