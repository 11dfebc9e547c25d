#include "cli/event_printer.h"

#include <cstdint>
#include <string>

#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::cli {
namespace {

using ::testing::EndsWith;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kOrigin = 1'000'000'000;

SocketId Inet(uint16_t type, uint16_t local_port, uint16_t remote_port) {
  SocketId s;
  s.family = 2;  // AF_INET
  s.type = type;
  s.local_addr = {127, 0, 0, 1};
  s.remote_addr = {127, 0, 0, 1};
  s.local_port = local_port;
  s.remote_port = remote_port;
  return s;
}

// A read by nginx 1234/1235 on fd 12, 12345 us after the origin, 4 us long.
SyscallEvent Read(SocketId sock, int64_t ret = 188) {
  SyscallEvent e;
  e.syscall = Syscall::kRead;
  e.tgid = 1234;
  e.tid = 1235;
  e.fd = 12;
  e.ret = ret;
  e.enter_ns = kOrigin + 12'345'000;
  e.exit_ns = e.enter_ns + 4'000;
  e.sock = sock;
  return e;
}

TEST(EventPrinterTest, TcpReadOfATlsStreamShowsItsRecords) {
  SyscallEvent e = Read(Inet(1, 443, 51234));
  e.tls.flags = TlsRecords::kOn;
  e.tls.count = 2;
  e.tls.type = {22, 20, 0, 0};
  e.tls.length = {183, 1, 0, 0};
  EXPECT_THAT(FormatEvent(e, "nginx", kOrigin),
              Eq("    0.012345 nginx 1234/1235 "
                 "read(12<127.0.0.1:443->127.0.0.1:51234>) = 188 "
                 "tls[22:183 20:1] <0.000004>"));
}

TEST(EventPrinterTest, ReadOfANonTlsStreamShowsNoRecords) {
  SyscallEvent e = Read(Inet(1, 80, 51234));
  EXPECT_THAT(FormatEvent(e, "nginx", kOrigin), Not(HasSubstr("tls[")));
}

TEST(EventPrinterTest, NetlinkSocketIsNamed) {
  SocketId s;
  s.family = 16;  // AF_NETLINK
  s.type = 3;     // SOCK_RAW
  s.sock = 0x1234abcd;
  SyscallEvent e = Read(s, 900);
  e.syscall = Syscall::kRecvmsg;
  EXPECT_THAT(FormatEvent(e, "front", kOrigin),
              HasSubstr("recvmsg(12<netlink:1234abcd>) = 900 <0.000004>"));
}

TEST(EventPrinterTest, UdpSocketIsNamedWithItsAddresses) {
  SyscallEvent e = Read(Inet(2, 5353, 53), 60);
  e.syscall = Syscall::kRecvfrom;
  EXPECT_THAT(FormatEvent(e, "front", kOrigin),
              HasSubstr("recvfrom(12<udp:127.0.0.1:5353->127.0.0.1:53>) = 60"));
}

TEST(EventPrinterTest, UnixDatagramSocketIsNamed) {
  SocketId s;
  s.family = 1;  // AF_UNIX
  s.type = 2;    // SOCK_DGRAM
  s.sock = 0xaa;
  s.peer = 0xbb;
  SyscallEvent e = Read(s, 5);
  e.syscall = Syscall::kSendto;
  EXPECT_THAT(FormatEvent(e, "front", kOrigin),
              HasSubstr("sendto(12<unix-dgram:000000aa->000000bb>) = 5"));
  s.type = 1;  // SOCK_STREAM
  EXPECT_THAT(FormatEvent(Read(s), "front", kOrigin),
              HasSubstr("read(12<unix:000000aa->000000bb>)"));
}

TEST(EventPrinterTest, PeekIsMarked) {
  SyscallEvent e = Read(Inet(1, 443, 51234), 1);
  e.syscall = Syscall::kRecvfrom;
  e.flags |= SyscallEvent::kPeek;
  EXPECT_THAT(FormatEvent(e, "nginx", kOrigin),
              HasSubstr("recvfrom(12<127.0.0.1:443->127.0.0.1:51234>) = 1 "
                        "(peek) <0.000004>"));
}

TEST(EventPrinterTest, ExitOnlyEventHasNoDurationAndIsPlacedAtItsExit) {
  SyscallEvent e = Read(Inet(1, 443, 51234));
  e.flags |= SyscallEvent::kExitOnly;
  e.enter_ns = 0;
  std::string line = FormatEvent(e, "nginx", kOrigin);
  EXPECT_THAT(line, EndsWith(" <duration unknown: seen at its end>"));
  EXPECT_THAT(line, HasSubstr("    0.012349 nginx"));  // the exit
}

TEST(EventPrinterTest, EventInFlightAtAttachSaysSo) {
  SyscallEvent e = Read(Inet(1, 443, 51234));
  e.flags |= SyscallEvent::kNoEnter;
  e.enter_ns = 0;
  EXPECT_THAT(FormatEvent(e, "nginx", kOrigin),
              EndsWith(" <started before attach>"));
}

TEST(EventPrinterTest, AProcessThatLeftTheTracedCgroupsSaysItIsNoLongerTraced) {
  ProcessEvent e;
  e.op = ProcessEvent::Op::kLeave;
  e.tgid = 4242;
  e.ts_ns = kOrigin + 1000000;
  e.comm = "nginx";
  EXPECT_THAT(FormatProcessEvent(e, kOrigin),
              EndsWith(" 4242 left the traced cgroups (nginx): no longer "
                       "traced"));
}

}  // namespace
}  // namespace reqcost::cli
