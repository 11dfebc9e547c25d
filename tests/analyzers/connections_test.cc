#include "analyzers/connections.h"

#include <cstdint>
#include <set>

#include "collector/event.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

constexpr uint16_t kAfUnix = 1;
constexpr uint16_t kAfInet = 2;

SocketId Unix(uint64_t sock, uint64_t peer) {
  SocketId id;
  id.family = kAfUnix;
  id.sock = sock;
  id.peer = peer;
  return id;
}

// 127.0.0.1:local_port -> 127.0.0.1:remote_port.
SocketId Tcp(uint16_t local_port, uint16_t remote_port) {
  SocketId id;
  id.family = kAfInet;
  id.local_addr = {127, 0, 0, 1};
  id.remote_addr = {127, 0, 0, 1};
  id.local_port = local_port;
  id.remote_port = remote_port;
  return id;
}

TEST(SameSocketTest, UnixSocketIsItsOwnAddressWhateverItsPeer) {
  EXPECT_TRUE(SameSocket(Unix(7, 8), Unix(7, 0)));
  EXPECT_FALSE(SameSocket(Unix(7, 8), Unix(8, 7)));
}

TEST(SameSocketTest, UnixSocketWithoutAddressIsNeverTheSame) {
  EXPECT_FALSE(SameSocket(Unix(0, 8), Unix(0, 8)));
}

TEST(SameSocketTest, TcpSocketIsItsFourTuple) {
  EXPECT_TRUE(SameSocket(Tcp(40000, 80), Tcp(40000, 80)));
  EXPECT_FALSE(SameSocket(Tcp(40000, 80), Tcp(40001, 80)));
  EXPECT_FALSE(SameSocket(Tcp(40000, 80), Tcp(80, 40000)));
  SocketId other_host = Tcp(40000, 80);
  other_host.remote_addr = {10, 0, 0, 1};
  EXPECT_FALSE(SameSocket(Tcp(40000, 80), other_host));
}

TEST(SameSocketTest, NoIdentityOrOtherFamilyIsNeverTheSame) {
  EXPECT_FALSE(SameSocket(SocketId{}, SocketId{}));
  SocketId unix_shaped = Tcp(40000, 80);
  unix_shaped.family = kAfUnix;
  EXPECT_FALSE(SameSocket(Tcp(40000, 80), unix_shaped));
}

TEST(PairingKeyTest, OneEndsPeerKeyIsTheOtherEndsLocalKey) {
  SocketId client_end = Tcp(40000, 80);
  SocketId server_end = Tcp(80, 40000);
  EXPECT_EQ(PeerKey(client_end), LocalKey(server_end));
  EXPECT_EQ(PeerKey(server_end), LocalKey(client_end));
  EXPECT_NE(LocalKey(client_end), LocalKey(server_end));
}

TEST(GuessUnpairedRoleTest, ConnectionWithoutIdentityIsIgnored) {
  EXPECT_EQ(GuessUnpairedRole(SocketId{}, {}), Role::kIgnored);
}

TEST(GuessUnpairedRoleTest, UnixConnectionIsALink) {
  EXPECT_EQ(GuessUnpairedRole(Unix(7, 8), {}), Role::kLink);
}

TEST(GuessUnpairedRoleTest, TcpEndWithTheLowerPortIsAClient) {
  EXPECT_EQ(GuessUnpairedRole(Tcp(80, 40000), {}), Role::kClient);
  EXPECT_EQ(GuessUnpairedRole(Tcp(40000, 80), {}), Role::kLink);
}

TEST(GuessUnpairedRoleTest, TcpEndOnAnAcceptedPortIsAClient) {
  std::set<uint16_t> listen_ports = {50000};
  EXPECT_EQ(GuessUnpairedRole(Tcp(50000, 9000), listen_ports), Role::kClient);
  EXPECT_EQ(GuessUnpairedRole(Tcp(50001, 9000), listen_ports), Role::kLink);
}

}  // namespace
}  // namespace reqcost::analyzers
