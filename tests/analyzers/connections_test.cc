#include "analyzers/connections.h"

#include <cstdint>
#include <set>

#include "collector/event.h"
#include "gtest/gtest.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using test_support::TcpSock;
using test_support::UnixSock;

constexpr uint16_t kAfUnix = 1;

TEST(SameSocketTest, UnixSocketIsItsOwnAddressWhateverItsPeer) {
  EXPECT_TRUE(SameSocket(UnixSock(7, 8), UnixSock(7, 0)));
  EXPECT_FALSE(SameSocket(UnixSock(7, 8), UnixSock(8, 7)));
}

TEST(SameSocketTest, UnixSocketWithoutAddressIsNeverTheSame) {
  EXPECT_FALSE(SameSocket(UnixSock(0, 8), UnixSock(0, 8)));
}

TEST(SameSocketTest, TcpSocketIsItsFourTuple) {
  EXPECT_TRUE(SameSocket(TcpSock(40000, 80), TcpSock(40000, 80)));
  EXPECT_FALSE(SameSocket(TcpSock(40000, 80), TcpSock(40001, 80)));
  EXPECT_FALSE(SameSocket(TcpSock(40000, 80), TcpSock(80, 40000)));
  SocketId other_host = TcpSock(40000, 80);
  other_host.remote_addr = {10, 0, 0, 1};
  EXPECT_FALSE(SameSocket(TcpSock(40000, 80), other_host));
}

TEST(SameSocketTest, NoIdentityOrOtherFamilyIsNeverTheSame) {
  EXPECT_FALSE(SameSocket(SocketId{}, SocketId{}));
  SocketId unix_shaped = TcpSock(40000, 80);
  unix_shaped.family = kAfUnix;
  EXPECT_FALSE(SameSocket(TcpSock(40000, 80), unix_shaped));
}

TEST(PairingKeyTest, OneEndsPeerKeyIsTheOtherEndsLocalKey) {
  SocketId client_end = TcpSock(40000, 80);
  SocketId server_end = TcpSock(80, 40000);
  EXPECT_EQ(PeerKey(client_end), LocalKey(server_end));
  EXPECT_EQ(PeerKey(server_end), LocalKey(client_end));
  EXPECT_NE(LocalKey(client_end), LocalKey(server_end));
}

TEST(GuessUnpairedRoleTest, ConnectionWithoutIdentityIsIgnored) {
  EXPECT_EQ(GuessUnpairedRole(SocketId{}, {}), Role::kIgnored);
}

TEST(GuessUnpairedRoleTest, UnixConnectionIsALink) {
  EXPECT_EQ(GuessUnpairedRole(UnixSock(7, 8), {}), Role::kLink);
}

TEST(GuessUnpairedRoleTest, TcpEndWithTheLowerPortIsAClient) {
  EXPECT_EQ(GuessUnpairedRole(TcpSock(80, 40000), {}), Role::kClient);
  EXPECT_EQ(GuessUnpairedRole(TcpSock(40000, 80), {}), Role::kLink);
}

TEST(GuessUnpairedRoleTest, TcpEndOnAnAcceptedPortIsAClient) {
  std::set<uint16_t> listen_ports = {50000};
  EXPECT_EQ(GuessUnpairedRole(TcpSock(50000, 9000), listen_ports),
            Role::kClient);
  EXPECT_EQ(GuessUnpairedRole(TcpSock(50001, 9000), listen_ports), Role::kLink);
}

}  // namespace
}  // namespace reqcost::analyzers
