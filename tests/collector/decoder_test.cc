#include "collector/decoder.h"

#include <linux/types.h>

#include <cstddef>
#include <cstring>
#include <functional>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "reqcost.h"

namespace reqcost::collector {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The size the kernel side documents (bpf/reqcost.h): the messages below
// count from it.
static_assert(RC_SYSCALL_EVENT_HEADER_SIZE == 128);
static_assert(offsetof(rc_syscall_event, tcp_seq) == 120);
static_assert(RC_SYS_MAX == 18);

// A syscall record with `payload`; `edit` may change the event before it is
// laid out (size and payload_len follow the payload).
std::vector<uint8_t> SyscallRecord(
    const std::string& payload,
    const std::function<void(rc_syscall_event&)>& edit = nullptr) {
  rc_syscall_event e{};
  e.kind = RC_REC_SYSCALL;
  e.size = RC_SYSCALL_EVENT_HEADER_SIZE + payload.size();
  e.syscall = RC_SYS_WRITEV;
  e.flags = RC_F_NO_ENTER;
  e.tgid = 100;
  e.tid = 101;
  e.enter_ns = 0;
  e.exit_ns = 2000;
  e.ret = -11;
  e.fd = 7;
  e.payload_len = payload.size();
  e.sock.family = 1;
  e.sock.type = 1;
  e.sock.sock = 0xabc;
  e.sock.peer = 0xdef;
  std::memcpy(e.payload, payload.data(), payload.size());
  if (edit) edit(e);
  std::vector<uint8_t> out(RC_SYSCALL_EVENT_HEADER_SIZE + payload.size());
  std::memcpy(out.data(), &e, out.size());
  return out;
}

std::vector<uint8_t> ProcessRecord() {
  rc_process_event e{};
  e.kind = RC_REC_PROCESS;
  e.size = sizeof(e);
  e.op = RC_PROC_FORK;
  e.tgid = 5;
  e.parent_tgid = 4;
  e.ts_ns = 77;
  e.start_ns = 66;
  std::memcpy(e.comm, "php-fpm8.2", 10);
  std::vector<uint8_t> out(sizeof(e));
  std::memcpy(out.data(), &e, sizeof(e));
  return out;
}

struct Decoded {
  RecordKind kind;
  SyscallEvent syscall;
  ProcessEvent process;
};

absl::Status Decode(const std::vector<uint8_t>& bytes, Decoded* d) {
  return DecodeRecord(bytes.data(), bytes.size(), &d->kind, &d->syscall,
                      &d->process);
}

TEST(DecoderTest, ExactSizeSyscallRecordDecodesEveryField) {
  Decoded d;
  ASSERT_TRUE(Decode(SyscallRecord("GET / HTTP/1.1"), &d).ok());
  EXPECT_EQ(d.kind, RecordKind::kSyscall);
  EXPECT_EQ(d.syscall.syscall, Syscall::kWritev);
  EXPECT_FALSE(d.syscall.enter_seen());
  EXPECT_EQ(d.syscall.tgid, 100u);
  EXPECT_EQ(d.syscall.tid, 101u);
  EXPECT_EQ(d.syscall.fd, 7);
  EXPECT_EQ(d.syscall.ret, -11);
  EXPECT_EQ(d.syscall.exit_ns, 2000u);
  EXPECT_EQ(d.syscall.sock.family, 1);
  EXPECT_EQ(d.syscall.sock.sock, 0xabcu);
  EXPECT_EQ(d.syscall.sock.peer, 0xdefu);
  EXPECT_EQ(d.syscall.payload, "GET / HTTP/1.1");
}

TEST(DecoderTest, RecordWithoutPayloadDecodes) {
  Decoded d;
  d.syscall.payload = "stale";
  d.syscall.tls.count = 2;
  d.syscall.tls.flags = TlsRecords::kOn;
  d.syscall.tls.type[0] = kTlsHandshake;
  ASSERT_TRUE(Decode(SyscallRecord(""), &d).ok());
  EXPECT_EQ(d.syscall.payload, "");
  EXPECT_EQ(d.syscall.tls, TlsRecords{});
}

TEST(DecoderTest, TlsRecordsDecode) {
  Decoded d;
  ASSERT_TRUE(Decode(SyscallRecord("\x17\x03\x03",
                                   [](rc_syscall_event& e) {
                                     e.syscall = RC_SYS_RECVFROM;
                                     e.flags = 0;
                                     e.tls.count = 3;
                                     e.tls.flags = RC_TLS_ON | RC_TLS_MORE;
                                     e.tls.type[0] = 22;
                                     e.tls.type[1] = 20;
                                     e.tls.type[2] = 23;
                                     e.tls.length[0] = 0x1234;
                                     e.tls.length[1] = 1;
                                     e.tls.length[2] = 0x4011;
                                   }),
                     &d)
                  .ok());
  EXPECT_EQ(d.syscall.syscall, Syscall::kRecvfrom);
  EXPECT_EQ(d.syscall.tls.count, 3);
  EXPECT_EQ(d.syscall.tls.flags, TlsRecords::kOn | TlsRecords::kMore);
  EXPECT_TRUE(d.syscall.tls.on());
  EXPECT_THAT(
      d.syscall.tls.type,
      ElementsAre(kTlsHandshake, kTlsChangeCipherSpec, kTlsApplicationData, 0));
  EXPECT_THAT(d.syscall.tls.length, ElementsAre(0x1234, 1, 0x4011, 0));
  // The block sits before the payload: the payload is untouched.
  EXPECT_EQ(d.syscall.payload, "\x17\x03\x03");
}

TEST(DecoderTest, TlsLostFlagAndFullBlockDecode) {
  Decoded d;
  ASSERT_TRUE(Decode(SyscallRecord("",
                                   [](rc_syscall_event& e) {
                                     e.syscall = RC_SYS_READ;
                                     e.tls.count = RC_TLS_MAX;
                                     e.tls.flags = RC_TLS_ON | RC_TLS_LOST;
                                     for (int i = 0; i < RC_TLS_MAX; ++i) {
                                       e.tls.type[i] = 23;
                                       e.tls.length[i] = 16384 + i;
                                     }
                                   }),
                     &d)
                  .ok());
  EXPECT_EQ(d.syscall.tls.count, 4);
  EXPECT_EQ(d.syscall.tls.flags, TlsRecords::kOn | TlsRecords::kLost);
  EXPECT_THAT(d.syscall.tls.type, ElementsAre(23, 23, 23, 23));
  EXPECT_THAT(d.syscall.tls.length, ElementsAre(16384, 16385, 16386, 16387));
}

TEST(DecoderTest, TlsCountAboveTheMaximumIsClampedToIt) {
  Decoded d;
  ASSERT_TRUE(Decode(SyscallRecord("",
                                   [](rc_syscall_event& e) {
                                     e.tls.count = RC_TLS_MAX + 1;
                                     e.tls.flags = RC_TLS_ON | RC_TLS_MORE;
                                   }),
                     &d)
                  .ok());
  EXPECT_EQ(d.syscall.tls.count, TlsRecords::kMax);
}

TEST(DecoderTest, ExitOnlyPeekRecvmmsgDecodes) {
  Decoded d;
  ASSERT_TRUE(Decode(SyscallRecord("",
                                   [](rc_syscall_event& e) {
                                     e.syscall = RC_SYS_RECVMMSG;
                                     e.flags = RC_F_EXIT_ONLY | RC_F_PEEK;
                                     e.enter_ns = 0;
                                     e.ret = 2;
                                   }),
                     &d)
                  .ok());
  EXPECT_EQ(d.syscall.syscall, Syscall::kRecvmmsg);
  EXPECT_EQ(d.syscall.flags, SyscallEvent::kExitOnly | SyscallEvent::kPeek);
  EXPECT_TRUE(IsRead(d.syscall.syscall));
  // Exit-only: no start, but not a missed enter either.
  EXPECT_FALSE(d.syscall.enter_seen());
  EXPECT_FALSE(d.syscall.enter_missed());
  EXPECT_EQ(d.syscall.ret, 2);
}

TEST(DecoderTest, SendmmsgDecodes) {
  Decoded d;
  ASSERT_TRUE(Decode(SyscallRecord("",
                                   [](rc_syscall_event& e) {
                                     e.syscall = RC_SYS_SENDMMSG;
                                     e.flags = RC_F_EXIT_ONLY;
                                   }),
                     &d)
                  .ok());
  EXPECT_EQ(d.syscall.syscall, Syscall::kSendmmsg);
  EXPECT_EQ(d.syscall.flags, SyscallEvent::kExitOnly);
  EXPECT_TRUE(IsWrite(d.syscall.syscall));
  EXPECT_FALSE(d.syscall.enter_seen());
  EXPECT_FALSE(d.syscall.enter_missed());
}

TEST(DecoderTest, TcpSequenceNumberDecodesWhenFlagged) {
  Decoded d;
  ASSERT_TRUE(Decode(SyscallRecord("GET",
                                   [](rc_syscall_event& e) {
                                     e.syscall = RC_SYS_READ;
                                     e.flags = RC_F_EXIT_ONLY | RC_F_TCP_SEQ;
                                     e.ret = 3;
                                     e.sock.family = 2;
                                     e.tcp_seq = 0xfffffffe;  // wraps next
                                   }),
                     &d)
                  .ok());
  ASSERT_TRUE(d.syscall.seq().has_value());
  EXPECT_EQ(*d.syscall.seq(), 0xfffffffeu);
  EXPECT_EQ(d.syscall.payload, "GET");
}

TEST(DecoderTest, TcpSequenceNumberWithoutFlagIsUnknown) {
  Decoded d;
  d.syscall.tcp_seq = 99;  // stale, from the previous record
  ASSERT_TRUE(Decode(SyscallRecord("",
                                   [](rc_syscall_event& e) {
                                     e.tcp_seq = 1234;  // not flagged
                                   }),
                     &d)
                  .ok());
  EXPECT_FALSE(d.syscall.seq().has_value());
  EXPECT_EQ(d.syscall.tcp_seq, 0u);
}

TEST(DecoderTest, RefusesTheOldHeaderSize) {
  // A record laid out before the sequence number (120-byte header) is one
  // the decoder must not misread: its size disagrees.
  std::vector<uint8_t> bytes = SyscallRecord("");
  bytes.resize(120);
  const __u16 size = 120;
  std::memcpy(bytes.data() + 2, &size, sizeof(size));
  Decoded d;
  absl::Status s = Decode(bytes, &d);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("shorter than its 128-byte header"));
}

TEST(DecoderTest, NoEnterIsAMissedEnter) {
  Decoded d;
  ASSERT_TRUE(Decode(SyscallRecord(""), &d).ok());  // RC_F_NO_ENTER
  EXPECT_FALSE(d.syscall.enter_seen());
  EXPECT_TRUE(d.syscall.enter_missed());
}

TEST(DecoderTest, ProcessRecordDecodes) {
  Decoded d;
  ASSERT_TRUE(Decode(ProcessRecord(), &d).ok());
  EXPECT_EQ(d.kind, RecordKind::kProcess);
  EXPECT_EQ(d.process.op, ProcessEvent::Op::kFork);
  EXPECT_EQ(d.process.tgid, 5u);
  EXPECT_EQ(d.process.parent_tgid, 4u);
  EXPECT_EQ(d.process.comm, "php-fpm8.2");
}

TEST(DecoderTest, CommWithoutTerminatorStopsAtSixteenBytes) {
  std::vector<uint8_t> bytes = ProcessRecord();
  std::memset(bytes.data() + offsetof(rc_process_event, comm), 'x',
              RC_COMM_LEN);
  Decoded d;
  ASSERT_TRUE(Decode(bytes, &d).ok());
  EXPECT_EQ(d.process.comm, std::string(RC_COMM_LEN, 'x'));
}

TEST(DecoderTest, RefusesRecordTooShortForKind) {
  std::vector<uint8_t> bytes = {1, 0, 2};
  Decoded d;
  absl::Status s = Decode(bytes, &d);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("too short"));
}

TEST(DecoderTest, RefusesEveryTruncationOfASyscallRecord) {
  std::vector<uint8_t> full = SyscallRecord("abc");
  for (size_t len = 0; len < full.size(); ++len) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + len);
    Decoded d;
    EXPECT_FALSE(Decode(cut, &d).ok()) << "length " << len;
  }
}

TEST(DecoderTest, RefusesSizeFieldThatDisagreesWithLength) {
  std::vector<uint8_t> bytes = SyscallRecord("abc");
  bytes.push_back(0);  // one byte more than the record says
  Decoded d;
  absl::Status s = Decode(bytes, &d);
  EXPECT_THAT(s.message(), HasSubstr("says 131 bytes but 132 arrived"));
}

TEST(DecoderTest, RefusesPayloadLengthBeyondRecord) {
  std::vector<uint8_t> bytes = SyscallRecord("abc");
  uint32_t lie = 4;
  std::memcpy(bytes.data() + offsetof(rc_syscall_event, payload_len), &lie,
              sizeof(lie));
  Decoded d;
  EXPECT_THAT(Decode(bytes, &d).message(), HasSubstr("payload of 4 bytes"));
}

TEST(DecoderTest, RefusesUnknownKind) {
  std::vector<uint8_t> bytes = ProcessRecord();
  bytes[0] = 9;
  Decoded d;
  EXPECT_THAT(Decode(bytes, &d).message(), HasSubstr("unknown kind 9"));
}

TEST(DecoderTest, RefusesUnknownSyscall) {
  std::vector<uint8_t> bytes = SyscallRecord("");
  uint16_t bad = RC_SYS_MAX;
  std::memcpy(bytes.data() + offsetof(rc_syscall_event, syscall), &bad, 2);
  Decoded d;
  EXPECT_THAT(Decode(bytes, &d).message(), HasSubstr("unknown syscall 18"));
}

TEST(DecoderTest, RefusesProcessRecordOfWrongSize) {
  std::vector<uint8_t> bytes = ProcessRecord();
  bytes.resize(bytes.size() - 1);
  bytes[2] = static_cast<uint8_t>(bytes.size());
  Decoded d;
  EXPECT_THAT(Decode(bytes, &d).message(), HasSubstr("expected 48"));
}

// A TLS data record carrying `frames` HTTP/2 frame headers and `payload`.
std::vector<uint8_t> TlsDataRecord(
    const std::string& payload, int frames,
    const std::function<void(rc_tls_data_event&)>& edit = nullptr) {
  rc_tls_data_event e{};
  e.kind = RC_REC_TLS_DATA;
  e.size = RC_TLS_DATA_EVENT_HEADER_SIZE + payload.size();
  e.op = RC_TLS_DATA_READ;
  e.flags = RC_TLS_DATA_H2 | RC_TLS_DATA_PREFACE;
  e.tgid = 200;
  e.tid = 201;
  e.enter_ns = 1000;
  e.exit_ns = 3000;
  e.ssl = 0x5151;
  e.bytes = 4096;
  e.fd = 12;
  e.payload_len = payload.size();
  e.frame_count = frames;
  e.frames_seen = frames + 2;
  for (int i = 0; i < frames && i < RC_H2_FRAMES_MAX; ++i) {
    e.frames[i].length = 10 + i;
    e.frames[i].stream_id = 2 * i + 1;
    e.frames[i].type = 1;
    e.frames[i].flags = 5;
  }
  std::memcpy(e.payload, payload.data(), payload.size());
  if (edit) edit(e);
  std::vector<uint8_t> out(RC_TLS_DATA_EVENT_HEADER_SIZE + payload.size());
  std::memcpy(out.data(), &e, out.size());
  return out;
}

TEST(DecoderTest, TlsDataRecordDecodesFramesAndPayload) {
  static_assert(RC_TLS_DATA_EVENT_HEADER_SIZE == 256);
  std::vector<uint8_t> bytes = TlsDataRecord("PRI * HTT", 3);
  RecordKind kind;
  SyscallEvent syscall;
  ProcessEvent process;
  TlsDataEvent tls;
  ASSERT_TRUE(
      DecodeRecord(bytes.data(), bytes.size(), &kind, &syscall, &process, &tls)
          .ok());
  EXPECT_EQ(kind, RecordKind::kTlsData);
  EXPECT_EQ(tls.op, TlsDataEvent::Op::kRead);
  EXPECT_TRUE(tls.is_read());
  EXPECT_TRUE(tls.h2());
  EXPECT_EQ(tls.flags & TlsDataEvent::kPreface, TlsDataEvent::kPreface);
  EXPECT_EQ(tls.tgid, 200u);
  EXPECT_EQ(tls.tid, 201u);
  EXPECT_EQ(tls.enter_ns, 1000u);
  EXPECT_EQ(tls.exit_ns, 3000u);
  EXPECT_EQ(tls.ssl, 0x5151u);
  EXPECT_EQ(tls.bytes, 4096);
  EXPECT_EQ(tls.fd, 12);
  EXPECT_EQ(tls.frames_seen, 5);
  EXPECT_EQ(tls.payload, "PRI * HTT");
  ASSERT_EQ(tls.frames.size(), 3u);
  EXPECT_EQ(tls.frames[2].length, 12u);
  EXPECT_EQ(tls.frames[2].stream_id, 5u);
  EXPECT_EQ(tls.frames[2].type, 1);
  EXPECT_EQ(tls.frames[2].flags, 5);
  // Fewer frames next time: the reused event holds only the new ones.
  bytes = TlsDataRecord("", 0);
  ASSERT_TRUE(
      DecodeRecord(bytes.data(), bytes.size(), &kind, &syscall, &process, &tls)
          .ok());
  EXPECT_TRUE(tls.frames.empty());
  EXPECT_TRUE(tls.payload.empty());
}

TEST(DecoderTest, H2cSyscallDataRecordDecodes) {
  for (uint16_t op : {RC_TLS_DATA_SYS_READ, RC_TLS_DATA_SYS_WRITE}) {
    std::vector<uint8_t> bytes =
        TlsDataRecord("", 2, [op](rc_tls_data_event& e) { e.op = op; });
    RecordKind kind;
    SyscallEvent syscall;
    ProcessEvent process;
    TlsDataEvent tls;
    ASSERT_TRUE(DecodeRecord(bytes.data(), bytes.size(), &kind, &syscall,
                             &process, &tls)
                    .ok());
    EXPECT_TRUE(tls.from_syscall());
    EXPECT_EQ(tls.is_read(), op == RC_TLS_DATA_SYS_READ);
    EXPECT_EQ(tls.frames.size(), 2u);
  }
}

TEST(DecoderTest, TlsDataRecordChecksItsLengths) {
  RecordKind kind;
  SyscallEvent syscall;
  ProcessEvent process;
  TlsDataEvent tls;
  auto decode = [&](const std::vector<uint8_t>& b) {
    return DecodeRecord(b.data(), b.size(), &kind, &syscall, &process, &tls);
  };
  // Short: the size field agrees, the header does not fit.
  std::vector<uint8_t> bytes = TlsDataRecord("", 0);
  bytes.resize(100);
  bytes[2] = 100;
  bytes[3] = 0;
  EXPECT_THAT(decode(bytes).message(), HasSubstr("shorter than its 256-byte"));
  // A payload length that disagrees with the record's.
  bytes =
      TlsDataRecord("abcd", 1, [](rc_tls_data_event& e) { e.payload_len = 9; });
  EXPECT_THAT(decode(bytes).message(), HasSubstr("payload of 9 bytes"));
  // More frames than fit.
  bytes = TlsDataRecord("", 0, [](rc_tls_data_event& e) {
    e.frame_count = RC_H2_FRAMES_MAX + 1;
  });
  EXPECT_THAT(decode(bytes).message(), HasSubstr("17 frames"));
  // An unknown op.
  bytes = TlsDataRecord("", 0, [](rc_tls_data_event& e) { e.op = 7; });
  EXPECT_THAT(decode(bytes).message(), HasSubstr("unknown op 7"));
  // Callers without a TLS data event still get the kind.
  bytes = TlsDataRecord("x", 1);
  EXPECT_TRUE(
      DecodeRecord(bytes.data(), bytes.size(), &kind, &syscall, &process).ok());
  EXPECT_EQ(kind, RecordKind::kTlsData);
}

TEST(SyscallNameTest, RoundTripsEveryTracedSyscall) {
  for (uint16_t i = 1; i < kSyscallMax; ++i) {
    auto sc = static_cast<Syscall>(i);
    EXPECT_EQ(SyscallFromName(SyscallName(sc)), sc);
  }
  EXPECT_EQ(SyscallName(Syscall::kRecvmmsg), "recvmmsg");
  EXPECT_EQ(SyscallName(Syscall::kSendmmsg), "sendmmsg");
  EXPECT_EQ(SyscallName(static_cast<Syscall>(kSyscallMax)), "?");
  EXPECT_EQ(SyscallName(static_cast<Syscall>(99)), "?");
  EXPECT_EQ(SyscallFromName("epoll_wait"), std::nullopt);
}

}  // namespace
}  // namespace reqcost::collector
