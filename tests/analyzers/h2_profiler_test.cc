// HTTP/2 streams and HTTPS/1.1 split from decrypted bytes (TlsDataEvent),
// through the whole profiler, on synthetic streams: a request per stream,
// the pairing of backend exchanges with streams by the server's turn
// (docs/definitions.md, "HTTP/2 streams"), and the reasons a stream is
// incomplete. Times in µs (tests/analyzers/stream_builder.h).
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "analyzers/hpack.h"
#include "analyzers/http2_frames.h"
#include "analyzers/profiler.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using ::reqcost::analyzers::test_support::At;
using ::reqcost::analyzers::test_support::StreamBuilder;
using ::reqcost::analyzers::test_support::TcpSock;
using ::reqcost::analyzers::test_support::UnixSock;
using ::reqcost::analyzers::test_support::Us;

constexpr uint32_t kNginx = 100;
constexpr uint32_t kFpm = 200;
constexpr int32_t kClientFd = 8;
constexpr uint64_t kSsl = 0x5511;

H2FrameHeader Frame(uint8_t type, uint8_t flags, uint32_t stream,
                    uint32_t length = 10) {
  H2FrameHeader f;
  f.type = type;
  f.flags = flags;
  f.stream_id = stream;
  f.length = length;
  return f;
}

// A GET's HEADERS (END_STREAM | END_HEADERS).
H2FrameHeader Get(uint32_t stream) { return Frame(1, 0x5, stream); }
// A response's HEADERS and its last DATA.
H2FrameHeader RespHeaders(uint32_t stream) { return Frame(1, 0x4, stream); }
H2FrameHeader RespEnd(uint32_t stream) { return Frame(0, 0x1, stream); }

TlsDataEvent Tls(bool read, double enter_us, double exit_us,
                 std::vector<H2FrameHeader> frames, int32_t fd = kClientFd,
                 uint16_t flags = TlsDataEvent::kH2) {
  TlsDataEvent e;
  e.op = read ? TlsDataEvent::Op::kRead : TlsDataEvent::Op::kWrite;
  e.flags = flags;
  e.tgid = kNginx;
  e.tid = kNginx;
  e.enter_ns = At(enter_us);
  e.exit_ns = At(exit_us);
  e.ssl = kSsl;
  e.fd = fd;
  e.bytes = 100;
  e.frames = std::move(frames);
  e.frames_seen = static_cast<uint16_t>(e.frames.size());
  return e;
}

// Syscalls and TLS calls fed in exit order, as the collector delivers them.
// The requests of `s`'s syscalls and `tls`'s data records fed in exit order;
// the profiler's anomalies in `*anomalies` when given.
std::vector<Request> RunMixed(const StreamBuilder& s,
                         const std::vector<TlsDataEvent>& tls,
                         Anomalies* anomalies = nullptr) {
  std::vector<std::pair<uint64_t, int>> order;  // exit, index (-1 - tls)
  auto events = s.InExitOrder();
  // Data I/O seen at the socket layer (the default): exit only.
  for (SyscallEvent& e : events) {
    if ((e.flags & SyscallEvent::kNoEnter) != 0) {
      e.flags = (e.flags & ~SyscallEvent::kNoEnter) | SyscallEvent::kExitOnly;
    }
  }
  for (size_t i = 0; i < events.size(); ++i) {
    order.emplace_back(events[i].exit_ns, static_cast<int>(i));
  }
  for (size_t i = 0; i < tls.size(); ++i) {
    order.emplace_back(tls[i].exit_ns, -1 - static_cast<int>(i));
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Profiler profiler;
  std::vector<Request> requests;
  profiler.SetRequestCallback([&](const Request& r) { requests.push_back(r); });
  for (const auto& [exit, i] : order) {
    if (i >= 0) {
      profiler.OnEvent(events[i]);
    } else {
      profiler.OnTlsData(tls[-1 - i]);
    }
  }
  profiler.Finish(At(10'000'000));
  if (anomalies != nullptr) *anomalies = profiler.anomalies();
  return requests;
}

// Two GETs in one TLS read; nginx begins an exchange for each, in stream
// order, before it reads again; php-fpm answers stream 3 first. Each
// stream takes the exchange begun for it: stream 3's backend is
// [19, 1000], stream 1's [15, 2000].
StreamBuilder TwoStreams() {
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, 120)
      .Connect(kNginx, 9, 12, 13, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 13.5, 14, 500)
      .Add(Syscall::kAccept, kFpm, 0, 4, -1, 14.5, UnixSock(0xB1, 0xA1))
      .Read(kFpm, 4, -1, 15, 500)
      .Connect(kNginx, 10, 16, 17, UnixSock(0xA2, 0xB2))
      .Write(kNginx, 10, 17.5, 18, 500)
      .Add(Syscall::kAccept, kFpm, 0, 5, -1, 18.5, UnixSock(0xB2, 0xA2))
      .Read(kFpm, 5, -1, 19, 500)
      .Read(kNginx, kClientFd, -1, 20, -11)
      // Stream 3's reply first.
      .Write(kFpm, 5, -1, 1000, 300, "", Syscall::kWrite)
      .Read(kNginx, 10, -1, 1001, 300)
      .Write(kNginx, kClientFd, -1, 1010, 200)
      .Write(kFpm, 4, -1, 2000, 300, "", Syscall::kWrite)
      .Read(kNginx, 9, -1, 2001, 300)
      .Write(kNginx, kClientFd, -1, 2010, 200);
  return s;
}

TEST(Http2Streams, EachStreamTakesTheExchangeBegunForIt) {
  std::vector<Request> rs =
      RunMixed(TwoStreams(), {Tls(true, 9, 11, {Get(1), Get(3)}),
                         Tls(false, 1009, 1011, {RespHeaders(3), RespEnd(3)}),
                         Tls(false, 2009, 2011, {RespHeaders(1), RespEnd(1)})});
  ASSERT_EQ(rs.size(), 2u);
  // Finalized at their END_STREAM: stream 3 first.
  EXPECT_TRUE(rs[0].complete) << rs[0].incomplete_reason;
  EXPECT_TRUE(rs[1].complete) << rs[1].incomplete_reason;
  EXPECT_EQ(rs[0].backend_ns, Us(1000 - 19));
  EXPECT_EQ(rs[1].backend_ns, Us(2000 - 15));
  // The first stream owns the accept (1 µs) and each starts at the read
  // that carried its HEADERS.
  EXPECT_EQ(rs[0].client_conn, ConnReuse::kReused);
  EXPECT_EQ(rs[1].client_conn, ConnReuse::kNew);
  EXPECT_EQ(rs[0].total_ns, Us(1010 - 10));
  EXPECT_EQ(rs[1].total_ns, Us(2010 - 10 + 1));
}

// Cleartext HTTP/2: the kernel recognised the preface in the first read
// (TlsRecords::kH2c) and gave each read and write a data record of its own
// right after it (same exit time, the syscall's op): the streams are split
// and paired exactly as over TLS.
TlsDataEvent H2cData(bool read, double exit_us,
                     std::vector<H2FrameHeader> frames, uint16_t flags) {
  TlsDataEvent e = Tls(read, exit_us, exit_us, std::move(frames), kClientFd,
                       flags);
  e.op = read ? TlsDataEvent::Op::kSyscallRead
              : TlsDataEvent::Op::kSyscallWrite;
  e.ssl = 0xC1EA;  // the socket's id
  return e;
}

TEST(Http2Streams, H2cStreamsFromSyscallDataAreRequests) {
  StreamBuilder s = TwoStreams();
  s.events()[1].tls.flags = TlsRecords::kH2c;
  std::vector<Request> rs = RunMixed(
      s, {H2cData(true, 10, {Get(1), Get(3)},
                  TlsDataEvent::kH2 | TlsDataEvent::kPreface),
          H2cData(false, 1010, {RespHeaders(3), RespEnd(3)}, TlsDataEvent::kH2),
          H2cData(false, 2010, {RespHeaders(1), RespEnd(1)},
                  TlsDataEvent::kH2)});
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_TRUE(rs[0].complete) << rs[0].incomplete_reason;
  EXPECT_TRUE(rs[1].complete) << rs[1].incomplete_reason;
  EXPECT_EQ(rs[0].backend_ns, Us(1000 - 19));
  EXPECT_EQ(rs[1].backend_ns, Us(2000 - 15));
}

// Cleartext HTTP/2 by upgrade (`Upgrade: h2c`, what curl --http2 does on an
// http:// URL, as lighttpd takes it): an HTTP/1.1 request at 10, the
// server's 101 (and SETTINGS) at 20, then the client's preface in the read
// at 30 (the kernel flags it kH2c and follows the frames from there). The
// HTTP/1.1 request is stream 1: its 101 is no response, and it ends at
// stream 1's END_STREAM, with the exchange begun for it either before its
// 101 (lighttpd) or in the turn of the preface's read.
StreamBuilder Upgrade(bool exchange_before_101) {
  const double x = exchange_before_101 ? 12 : 32;  // the connect
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(80, 50000))
      .Read(kNginx, kClientFd, -1, 10, 200)
      .Connect(kNginx, 9, x, x + 1, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, x + 1.5, x + 2, 500)
      .Add(Syscall::kAccept, kFpm, 0, 4, -1, x + 2.5, UnixSock(0xB1, 0xA1))
      .Read(kFpm, 4, -1, x + 3, 500)
      .Write(kNginx, kClientFd, -1, 20, 123)
      .Read(kNginx, kClientFd, -1, 30, 73)
      .Write(kNginx, kClientFd, -1, 31, 9)
      .Write(kFpm, 4, -1, 1000, 300, "", Syscall::kWrite)
      .Read(kNginx, 9, -1, 1001, 300)
      .Write(kNginx, kClientFd, -1, 1010, 110);
  // The preface read: the accept, the request, then (by time) the 101.
  for (SyscallEvent& e : s.events()) {
    if (e.exit_ns == At(30)) e.tls.flags = TlsRecords::kH2c;
  }
  return s;
}

TEST(Http2Streams, H2cByUpgradeMakesTheRequestStreamOne) {
  for (const bool before : {true, false}) {
    SCOPED_TRACE(before ? "exchange before the 101"
                        : "exchange after the preface");
    Anomalies anomalies;
    std::vector<Request> rs = RunMixed(
        Upgrade(before),
        {H2cData(true, 30, {Frame(4, 0, 0, 0)},
                 TlsDataEvent::kH2 | TlsDataEvent::kPreface),
         H2cData(false, 31, {Frame(4, 1, 0, 0)}, TlsDataEvent::kH2),
         H2cData(false, 1010, {RespHeaders(1), RespEnd(1)},
                 TlsDataEvent::kH2)},
        &anomalies);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].complete) << rs[0].incomplete_reason;
    EXPECT_EQ(rs[0].backend_ns, Us(1000 - (before ? 15 : 35)));
    // From its accept to stream 1's END_STREAM, not to the 101.
    EXPECT_EQ(rs[0].total_ns, Us(1010 - 10 + 1));
    EXPECT_EQ(anomalies.unattributed_exchanges, 0u);
    EXPECT_EQ(anomalies.stray_events, 0u);
  }
}

// A preface read with no data record after it (a capture of a reqcost that
// did not follow h2c): its requests are not split, never HTTP/1.x requests.
TEST(Http2Streams, H2cWithoutDataRecordsIsNotSplit) {
  StreamBuilder s = TwoStreams();
  s.events()[1].tls.flags = TlsRecords::kH2c;
  std::vector<Request> rs = RunMixed(s, {});
  for (const Request& r : rs) {
    if (r.origin != RequestOrigin::kClient) continue;
    EXPECT_FALSE(r.complete);
  }
}

TEST(Http2Streams, FewerExchangesThanStreamsInATurnAreNotGuessed) {
  // Only stream 1's exchange: the write on link 10 never happens.
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, 120)
      .Connect(kNginx, 9, 12, 13, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 13.5, 14, 500)
      .Read(kNginx, kClientFd, -1, 20, -11)
      .Write(kNginx, kClientFd, -1, 30, 200)
      .Read(kNginx, 9, -1, 2001, 300)
      .Write(kNginx, kClientFd, -1, 2010, 200);
  std::vector<Request> rs =
      RunMixed(s, {Tls(true, 9, 11, {Get(1), Get(3)}),
              Tls(false, 29, 31, {RespHeaders(3), RespEnd(3)}),
              Tls(false, 2009, 2011, {RespHeaders(1), RespEnd(1)})});
  ASSERT_EQ(rs.size(), 2u);
  for (const Request& r : rs) {
    EXPECT_FALSE(r.complete);
    EXPECT_EQ(r.incomplete_reason,
              "HTTP/2 stream: backend exchange not paired");
  }
}

// Both servers read a connection until SSL_read has nothing more before
// they parse its frames: nginx's last SSL_read makes a socket read that
// returns EAGAIN, between the read that carried the HEADERS and the
// exchanges. php-fpm answers stream 3 first, and both replies are read
// before either response is written: only the turn tells which exchange
// is whose (the first exchange begun is stream 1's).
TEST(Http2Streams, TheReadLoopsLastEmptyReadIsInTheTurn) {
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, 120)
      .Read(kNginx, kClientFd, -1, 11.5, -11)
      .Connect(kNginx, 9, 12, 13, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 13.5, 14, 500)
      .Add(Syscall::kAccept, kFpm, 0, 4, -1, 14.5, UnixSock(0xB1, 0xA1))
      .Read(kFpm, 4, -1, 15, 500)
      .Connect(kNginx, 10, 16, 17, UnixSock(0xA2, 0xB2))
      .Write(kNginx, 10, 17.5, 18, 500)
      .Add(Syscall::kAccept, kFpm, 0, 5, -1, 18.5, UnixSock(0xB2, 0xA2))
      .Read(kFpm, 5, -1, 19, 500)
      .Write(kFpm, 5, -1, 1000, 300, "", Syscall::kWrite)
      .Read(kNginx, 10, -1, 1001, 300)
      .Write(kFpm, 4, -1, 1002, 300, "", Syscall::kWrite)
      .Read(kNginx, 9, -1, 1003, 300)
      .Write(kNginx, kClientFd, -1, 1010, 200)
      .Write(kNginx, kClientFd, -1, 1020, 200);
  std::vector<Request> rs = RunMixed(
      s, {Tls(true, 9, 11, {Get(1), Get(3)}),
          Tls(false, 1009, 1011, {RespHeaders(3), RespEnd(3)}),
          Tls(false, 1019, 1021, {RespHeaders(1), RespEnd(1)})});
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_TRUE(rs[0].complete) << rs[0].incomplete_reason;
  EXPECT_TRUE(rs[1].complete) << rs[1].incomplete_reason;
  EXPECT_EQ(rs[0].backend_ns, Us(1000 - 19));  // stream 3
  EXPECT_EQ(rs[1].backend_ns, Us(1002 - 15));  // stream 1
}

// lighttpd reads a TLS record larger than its buffer in two SSL_read calls
// (each record's 5-byte header, then its body, without read-ahead) before
// it parses the frames: streams 1 and 3 are one turn.
TEST(Http2Streams, StreamsOfOneReadLoopInSeveralCallsAreOneTurn) {
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 9.5, 5)
      .Read(kNginx, kClientFd, -1, 10, 3000)
      .Connect(kNginx, 9, 14, 15, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 15.5, 16, 500)
      .Add(Syscall::kAccept, kFpm, 0, 4, -1, 16.5, UnixSock(0xB1, 0xA1))
      .Read(kFpm, 4, -1, 17, 500)
      .Connect(kNginx, 10, 18, 19, UnixSock(0xA2, 0xB2))
      .Write(kNginx, 10, 19.5, 20, 500)
      .Add(Syscall::kAccept, kFpm, 0, 5, -1, 20.5, UnixSock(0xB2, 0xA2))
      .Read(kFpm, 5, -1, 21, 500)
      .Write(kNginx, kClientFd, -1, 30, 50)
      .Write(kFpm, 5, -1, 1000, 300, "", Syscall::kWrite)
      .Read(kNginx, 10, -1, 1001, 300)
      .Write(kFpm, 4, -1, 1002, 300, "", Syscall::kWrite)
      .Read(kNginx, 9, -1, 1003, 300)
      .Write(kNginx, kClientFd, -1, 1010, 200)
      .Write(kNginx, kClientFd, -1, 1020, 200);
  std::vector<Request> rs = RunMixed(
      s, {Tls(true, 9, 11, {Get(1)}), Tls(true, 12, 13, {Get(3)}, -1),
          Tls(false, 29, 31, {Frame(4, 1, 0, 0)}),
          Tls(false, 1009, 1011, {RespHeaders(3), RespEnd(3)}),
          Tls(false, 1019, 1021, {RespHeaders(1), RespEnd(1)})});
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_TRUE(rs[0].complete) << rs[0].incomplete_reason;
  EXPECT_TRUE(rs[1].complete) << rs[1].incomplete_reason;
  EXPECT_EQ(rs[0].backend_ns, Us(1000 - 21));  // stream 3
  EXPECT_EQ(rs[1].backend_ns, Us(1002 - 17));  // stream 1
}

// lighttpd's pass over one connection: it reads the client, then serves
// the connection's streams in order, the older ones first (stream 1 reads
// its reply), then the new ones (3 and 5 begin their exchanges), and
// writes last. Stream 1's reply read does not end the turn of 3 and 5.
TEST(Http2Streams, AnOlderStreamsReplyReadInTheSamePassKeepsTheTurn) {
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, 120)
      .Connect(kNginx, 9, 12, 13, UnixSock(0xA1, 0xB1))
      .Write(kNginx, 9, 13.5, 14, 500)
      .Add(Syscall::kAccept, kFpm, 0, 4, -1, 14.5, UnixSock(0xB1, 0xA1))
      .Read(kFpm, 4, -1, 15, 500)
      .Write(kNginx, kClientFd, -1, 20, 50)
      .Write(kFpm, 4, -1, 100, 300, "", Syscall::kWrite)
      // The pass: client records, stream 1's reply, streams 3 and 5.
      .Read(kNginx, kClientFd, -1, 110, 5)
      .Read(kNginx, kClientFd, -1, 111, 100)
      .Read(kNginx, 9, -1, 113, 300)
      .Connect(kNginx, 10, 114, 115, UnixSock(0xA2, 0xB2))
      .Write(kNginx, 10, 115.5, 116, 500)
      .Add(Syscall::kAccept, kFpm, 0, 5, -1, 116.5, UnixSock(0xB2, 0xA2))
      .Read(kFpm, 5, -1, 117, 500)
      .Connect(kNginx, 11, 118, 119, UnixSock(0xA3, 0xB3))
      .Write(kNginx, 11, 119.5, 120, 500)
      .Add(Syscall::kAccept, kFpm, 0, 6, -1, 120.5, UnixSock(0xB3, 0xA3))
      .Read(kFpm, 6, -1, 121, 500)
      .Write(kNginx, kClientFd, -1, 130, 200)
      .Write(kFpm, 6, -1, 1000, 300, "", Syscall::kWrite)
      .Read(kNginx, 11, -1, 1001, 300)
      .Write(kFpm, 5, -1, 1002, 300, "", Syscall::kWrite)
      .Read(kNginx, 10, -1, 1003, 300)
      .Write(kNginx, kClientFd, -1, 1010, 200)
      .Write(kNginx, kClientFd, -1, 1020, 200);
  std::vector<Request> rs = RunMixed(
      s, {Tls(true, 9, 11, {Get(1)}), Tls(false, 19, 21, {Frame(4, 1, 0, 0)}),
          Tls(true, 109, 112, {Get(3), Get(5)}),
          Tls(false, 129, 131, {RespHeaders(1), RespEnd(1)}),
          Tls(false, 1009, 1011, {RespHeaders(5), RespEnd(5)}),
          Tls(false, 1019, 1021, {RespHeaders(3), RespEnd(3)})});
  ASSERT_EQ(rs.size(), 3u);
  for (const Request& r : rs) EXPECT_TRUE(r.complete) << r.incomplete_reason;
  EXPECT_EQ(rs[0].backend_ns, Us(100 - 15));    // stream 1
  EXPECT_EQ(rs[1].backend_ns, Us(1000 - 121));  // stream 5
  EXPECT_EQ(rs[2].backend_ns, Us(1002 - 117));  // stream 3
}

TEST(Http2Streams, ResetAndUnansweredStreamsAreIncomplete) {
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, 120)
      .Read(kNginx, kClientFd, -1, 20, -11)
      .Read(kNginx, kClientFd, -1, 40, 20)
      .Write(kNginx, kClientFd, -1, 50, 200)
      .Close(kNginx, kClientFd, 60, 61);
  std::vector<Request> rs =
      RunMixed(s, {Tls(true, 9, 11, {Get(1), Get(3), Get(5)}),
              Tls(true, 39, 41, {Frame(3, 0, 3, 4)}),
              Tls(false, 49, 51, {RespHeaders(1), RespEnd(1)})});
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].incomplete_reason, "HTTP/2 stream reset");
  EXPECT_TRUE(rs[1].complete) << rs[1].incomplete_reason;
  EXPECT_FALSE(rs[1].backend_ns.has_value() && *rs[1].backend_ns > 0);
  EXPECT_EQ(rs[2].incomplete_reason, "no response");
}

TEST(Http2Streams, LostFramesEndTheConnectionsSplit) {
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, 120)
      .Read(kNginx, kClientFd, -1, 40, 20);
  Anomalies anomalies;
  std::vector<Request> rs = RunMixed(
      s,
      {Tls(true, 9, 11, {Get(1)}),
       Tls(true, 39, 41, {}, kClientFd,
           TlsDataEvent::kH2 | TlsDataEvent::kFramesLost)},
      &anomalies);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].incomplete_reason, "HTTP/2 frames lost");
  EXPECT_EQ(anomalies.http2_frames_lost, 1u);
}

TEST(Http2Streams, LostFramesWithNoStreamOpenAreCounted) {
  // The walk is lost between streams: no request is open to end
  // incomplete, so only the counter says that later streams go unsplit.
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, 120)
      .Write(kNginx, kClientFd, -1, 20, 200)
      .Read(kNginx, kClientFd, -1, 40, 20)
      .Read(kNginx, kClientFd, -1, 60, 20);
  Anomalies anomalies;
  std::vector<Request> rs = RunMixed(
      s,
      {Tls(true, 9, 11, {Get(1)}),
       Tls(false, 19, 21, {RespHeaders(1), RespEnd(1)}),
       Tls(true, 39, 41, {}, kClientFd,
           TlsDataEvent::kH2 | TlsDataEvent::kFramesLost),
       Tls(true, 59, 61, {Get(3)})},
      &anomalies);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].complete) << rs[0].incomplete_reason;
  EXPECT_EQ(anomalies.http2_frames_lost, 1u);
}

// One stream whose client sent the preface, SETTINGS and HEADERS with
// `block` (END_STREAM | END_HEADERS on stream 1), read with --payload, and
// its response: the requests made of it.
std::vector<Request> RunHeadersBlock(const std::string& block) {
  std::string bytes = std::string(kHttp2ClientPreface) +
                      EncodeHttp2Frame(4, 0, 0, "") +
                      EncodeHttp2Frame(1, 0x5, 1, block);
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, static_cast<int64_t>(bytes.size()))
      .Write(kNginx, kClientFd, -1, 50, 200);
  TlsDataEvent in = Tls(true, 9, 11, {Get(1)}, kClientFd,
                        TlsDataEvent::kH2 | TlsDataEvent::kPreface);
  in.payload = bytes;
  in.bytes = static_cast<int64_t>(bytes.size());
  return RunMixed(s, {in, Tls(false, 49, 51, {RespHeaders(1), RespEnd(1)})});
}

TEST(Http2Streams, PayloadGivesMethodAndPath) {
  // :method GET (static index 2), :path "/a.php" (literal without
  // indexing, name index 4).
  std::vector<Request> rs = RunHeadersBlock(
      std::string("\x82", 1) + std::string("\x04\x06", 2) + "/a.php");
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].request_line, "GET /a.php");
}

// HPACK values are any bytes: a :path is read as an HTTP/1.x request
// line's is (visible ASCII, shown without its query), so that a path of
// other bytes gives no request line rather than a JSON string that is not
// UTF-8.
TEST(Http2Streams, PayloadPathIsReadAsARequestLine) {
  auto request_line = [](const std::string& path) {
    std::vector<Request> rs = RunHeadersBlock(
        std::string("\x82\x04", 2) + static_cast<char>(path.size()) + path);
    EXPECT_EQ(rs.size(), 1u);
    return rs.empty() ? std::optional<std::string>("<none>")
                      : rs[0].request_line;
  };
  EXPECT_EQ(request_line("/a.php?id=7"), "GET /a.php");
  EXPECT_EQ(request_line("/\xff\xd0x"), std::nullopt);
}

TEST(Https11, RequestsAreSplitFromDecryptedReadsAndWrites) {
  // Two requests on a kept connection; the second one's TLS read returns
  // bytes already decrypted (no socket read, fd unknown): the SSL * names
  // the connection.
  StreamBuilder s;
  s.Accept(kNginx, kClientFd, 0, 1, TcpSock(443, 50000))
      .Read(kNginx, kClientFd, -1, 10, 120)
      .Write(kNginx, kClientFd, -1, 20, 200)
      .Write(kNginx, kClientFd, -1, 40, 200);
  TlsDataEvent get1 = Tls(true, 9, 11, {}, kClientFd, 0);
  get1.payload = "GET /one HTTP/1.1\r\n";
  TlsDataEvent get2 = Tls(true, 30, 31, {}, -1, 0);
  get2.payload = "GET /two HTTP/1.1\r\n";
  std::vector<Request> rs =
      RunMixed(s, {get1, Tls(false, 19, 21, {}, kClientFd, 0), get2,
              Tls(false, 39, 41, {}, kClientFd, 0)});
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_TRUE(rs[0].complete) << rs[0].incomplete_reason;
  EXPECT_EQ(rs[0].request_line, "GET /one");
  EXPECT_EQ(rs[0].total_ns, Us(20 - 10 + 1));  // and the accept
  EXPECT_TRUE(rs[1].complete) << rs[1].incomplete_reason;
  EXPECT_EQ(rs[1].request_line, "GET /two");
  // No socket read carried it: it starts when its TLS call began.
  EXPECT_EQ(rs[1].total_ns, Us(40 - 30));
}

}  // namespace
}  // namespace reqcost::analyzers
