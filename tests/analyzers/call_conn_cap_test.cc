// The bound on a backend's call connections: a pool of thousands (pconnect,
// persistent connections opened before attach) keeps call state for at most
// kMaxCallConnsPerProcess of them per process; the rest are counted in
// call_connections_over_cap, and closed connections give their place back.
#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "analyzers/connection_table.h"
#include "analyzers/profiler.h"
#include "analyzers/render/format.h"
#include "analyzers/request.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using namespace ::reqcost::analyzers::test_support;  // NOLINT: test helpers

constexpr uint32_t kBackend = 200;
constexpr int kCap = static_cast<int>(kMaxCallConnsPerProcess);
constexpr int32_t kFirstFd = 100;

// A pooled connection of php-fpm to Redis, opened before attach: first seen
// on the send of a call at `t` us, its reply read 5 us later.
void PooledCall(StreamBuilder& s, int k, double t) {
  const SocketId sock =
      TcpSock(static_cast<uint16_t>(20000 + k), 6379, 0x10000 + k);
  s.Write(kBackend, kFirstFd + k, t, t + 1, 20, "", Syscall::kSendto, sock)
      .Read(kBackend, kFirstFd + k, t + 1, t + 5, 5, "", sock);
}

TEST(CallConnCapTest, PooledConnectionsPastTheCapAreCountedNotFollowed) {
  // One request (backend [160, 20170] us); during it, php-fpm makes one call
  // on each of 1100 pooled connections, none of them closed.
  constexpr int kPool = kCap + 76;
  StreamBuilder s = OneFastCgiRequest();
  for (int k = 0; k < kPool; ++k) PooledCall(s, k, 200 + 15 * k);
  ASSERT_LT(200 + 15 * kPool, 20000);
  Profiler profiler;
  std::vector<Request> requests = RunEvents(profiler, s.InExitOrder());
  EXPECT_EQ(profiler.anomalies().call_connections_over_cap, 76u);
  ASSERT_EQ(requests.size(), 1u);
  ASSERT_TRUE(requests[0].complete) << requests[0].incomplete_reason;
  // The followed connections' calls are the request's; the others are not
  // calls (not followed), and not unattributed either.
  EXPECT_EQ(requests[0].calls.size(), static_cast<size_t>(kCap));
  EXPECT_EQ(profiler.anomalies().unattributed_calls, 0u);
  // Shown to the user: the anomaly's note in the text report and its JSON.
  Report report = profiler.BuildReport({0.03, s.events().size(), 0});
  EXPECT_EQ(report.anomalies.call_connections_over_cap, 76u);
  EXPECT_THAT(FormatText(report),
              ::testing::HasSubstr("over the per-process cap"));
  EXPECT_EQ(ReportToJson(report)["anomalies"]["call_connections_over_cap"],
            76);
}

TEST(CallConnCapTest, ClosedCallConnectionsGiveTheirPlaceBack) {
  // A full pool opened and closed, then a full pool and one more: only the
  // one past the cap of open connections is counted.
  StreamBuilder s = OneFastCgiRequest();
  double t = 200;
  for (int k = 0; k < kCap; ++k, t += 6) {
    s.Connect(kBackend, kFirstFd + k, t, t + 2,
              TcpSock(static_cast<uint16_t>(20000 + k), 6379, 0x10000 + k))
        .Close(kBackend, kFirstFd + k, t + 3, t + 4);
  }
  for (int k = 0; k <= kCap; ++k, t += 3) {
    s.Connect(kBackend, kFirstFd + k, t, t + 2,
              TcpSock(static_cast<uint16_t>(30000 + k), 6379, 0x20000 + k));
  }
  ASSERT_LT(t, 20000);
  Profiler profiler;
  std::vector<Request> requests = RunEvents(profiler, s.InExitOrder());
  EXPECT_EQ(profiler.anomalies().call_connections_over_cap, 1u);
  ASSERT_EQ(requests.size(), 1u);
  // Each connect is a call of its own (it opens its connection).
  EXPECT_EQ(requests[0].calls.size(), static_cast<size_t>(2 * kCap));
}

TEST(CallConnCapTest, CallConnectionsThatTurnOutToBeLinksFreeTheirPlace) {
  // Connections opened before attach between php-fpm and another traced
  // process (300): php-fpm's end is seen first and taken for a call; the
  // other end, seen later, pairs them into a backend link. Once closed, they
  // hold no place in the cap: a full pool of calls still fits afterwards.
  StreamBuilder s = OneFastCgiRequest();
  double t = 200;
  for (int k = 0; k < kCap; ++k, t += 6) {
    const uint16_t port = static_cast<uint16_t>(20000 + k);
    s.Write(kBackend, kFirstFd + k, t, t + 1, 20, "", Syscall::kSendto,
            TcpSock(port, 9000, 0x10000 + k))
        .Read(300, 50 + k, t + 1, t + 2, 20, "",
              TcpSock(9000, port, 0x30000 + k))
        .Close(kBackend, kFirstFd + k, t + 3, t + 4)
        .Close(300, 50 + k, t + 4, t + 5);
  }
  for (int k = 0; k < kCap; ++k, t += 3) {
    s.Connect(kBackend, kFirstFd + k, t, t + 2,
              TcpSock(static_cast<uint16_t>(40000 + k), 6379, 0x20000 + k));
  }
  ASSERT_LT(t, 20000);
  Profiler profiler;
  RunEvents(profiler, s.InExitOrder());
  EXPECT_EQ(profiler.anomalies().call_connections_over_cap, 0u);
}

}  // namespace
}  // namespace reqcost::analyzers
