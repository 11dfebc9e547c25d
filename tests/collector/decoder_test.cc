#include "collector/decoder.h"

#include <linux/types.h>

#include <cstring>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "reqcost.h"

namespace reqcost::collector {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> SyscallRecord(const std::string& payload) {
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
  ASSERT_TRUE(Decode(SyscallRecord(""), &d).ok());
  EXPECT_EQ(d.syscall.payload, "");
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
  EXPECT_THAT(s.message(), HasSubstr("says 107 bytes but 108 arrived"));
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
  EXPECT_THAT(Decode(bytes, &d).message(), HasSubstr("unknown syscall 15"));
}

TEST(DecoderTest, RefusesProcessRecordOfWrongSize) {
  std::vector<uint8_t> bytes = ProcessRecord();
  bytes.resize(bytes.size() - 1);
  bytes[2] = static_cast<uint8_t>(bytes.size());
  Decoded d;
  EXPECT_THAT(Decode(bytes, &d).message(), HasSubstr("expected 48"));
}

TEST(SyscallNameTest, RoundTripsEveryTracedSyscall) {
  for (uint16_t i = 1; i < kSyscallMax; ++i) {
    auto sc = static_cast<Syscall>(i);
    EXPECT_EQ(SyscallFromName(SyscallName(sc)), sc);
  }
  EXPECT_EQ(SyscallName(static_cast<Syscall>(99)), "?");
  EXPECT_EQ(SyscallFromName("epoll_wait"), std::nullopt);
}

}  // namespace
}  // namespace reqcost::collector
