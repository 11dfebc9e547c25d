#include "collector/capture_file.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "collector/event.h"

// Counts heap allocations, to show that reading streams in bounded memory.
namespace {
std::atomic<uint64_t> g_alloc_count{0};
std::atomic<uint64_t> g_alloc_bytes{0};
}  // namespace

// Not inlined, so that the compiler never pairs a `new` with a bare free().
__attribute__((noinline)) void* operator new(std::size_t n) {
  g_alloc_count.fetch_add(1, std::memory_order_relaxed);
  g_alloc_bytes.fetch_add(n, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void* operator new[](std::size_t n) {
  return operator new(n);
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete[](void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete[](void* p,
                                                 std::size_t) noexcept {
  std::free(p);
}

namespace reqcost::collector {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Le;
using ::testing::Lt;
using ::testing::Optional;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::testing::VariantWith;

MATCHER_P2(StatusIs, code, message_matcher,
           "status code " + ::testing::PrintToString(code)) {
  if (arg.code() != code) {
    *result_listener << "code is " << absl::StatusCodeToString(arg.code())
                     << " (" << arg.message() << ")";
    return false;
  }
  return ::testing::ExplainMatchResult(
      message_matcher, std::string(arg.message()), result_listener);
}

// Little-endian bytes, appended by hand: the format as the spec states it.
class Bytes {
 public:
  Bytes& U8(uint8_t v) {
    b_.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& U16(uint16_t v) { return Le(v, 2); }
  Bytes& U32(uint32_t v) { return Le(v, 4); }
  Bytes& U64(uint64_t v) { return Le(v, 8); }
  Bytes& Raw(std::string_view s) {
    b_.append(s);
    return *this;
  }
  Bytes& Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    return Raw(s);
  }
  Bytes& Append(const Bytes& other) { return Raw(other.str()); }
  // Patches a u32 at `pos`.
  Bytes& PutU32At(size_t pos, uint32_t v) {
    for (int i = 0; i < 4; ++i) b_[pos + i] = static_cast<char>(v >> (8 * i));
    return *this;
  }
  const std::string& str() const { return b_; }
  size_t size() const { return b_.size(); }

 private:
  Bytes& Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b_.push_back(static_cast<char>(v >> (8 * i)));
    return *this;
  }
  std::string b_;
};

// A minimal valid header: no strings, no arguments, no processes.
Bytes MinimalHeader(uint32_t version = kCaptureFormatVersion) {
  Bytes h;
  h.Raw(std::string_view("REQCOST\0", 8)).U32(version).U32(0);
  h.U64(0).U64(0).U64(0).U32(0).U32(0);
  h.Str("").Str("").Str("").U32(0).U32(0);
  h.PutU32At(12, static_cast<uint32_t>(h.size()));
  return h;
}

// A record prefix and body.
Bytes Record(uint16_t type, const Bytes& body) {
  Bytes r;
  r.U16(type).U16(0).U32(static_cast<uint32_t>(body.size())).Append(body);
  return r;
}

// An end record that counts `records` before it.
Bytes EndRecord(uint64_t end_ns, uint64_t records) {
  return Record(5, Bytes().U64(end_ns).U64(records));
}

CaptureHeader SampleHeader() {
  CaptureHeader h;
  h.mono_to_wall_ns = -1234567890123;  // negative offsets happen too
  h.start_mono_ns = 1'000'000'000;
  h.host = "web-01";
  h.kernel_release = "6.1.0-18-amd64";
  h.reqcost_version = "0.1.0";
  h.payload_capture_bytes = 64;
  h.command_line = {"reqcost", "record", "-p", "9376", "-o", "a b.cap"};
  h.processes = {
      {9376, 1, "nginx", "/usr/sbin/nginx", 555},
      {9334, 9333, "php-fpm8.2", "/usr/sbin/php-fpm8.2", 777},
  };
  return h;
}

SyscallEvent Ipv4Read() {
  SyscallEvent e;
  e.syscall = Syscall::kRead;
  e.tgid = 9376;
  e.tid = 9377;
  e.fd = 12;
  e.ret = 91;
  e.enter_ns = 1'000'000'100;
  e.exit_ns = 1'000'000'900;
  e.sock.family = AF_INET;
  e.sock.type = SOCK_STREAM;
  e.sock.sock = 0x1122334455667788ull;
  e.sock.peer = 0;
  e.sock.local_addr = {127, 0, 0, 1};
  e.sock.remote_addr = {127, 0, 0, 2};
  e.sock.local_port = 8080;
  e.sock.remote_port = 51234;
  e.payload = std::string("GET / HTTP/1.1\r\nHost: x\0\xff", 25);
  return e;
}

SyscallEvent Ipv6AcceptWithoutEnter() {
  SyscallEvent e;
  e.syscall = Syscall::kAccept4;
  e.flags = SyscallEvent::kNoEnter | SyscallEvent::kListener;
  e.tgid = 9334;
  e.tid = 9334;
  e.fd = -1;
  e.ret = 7;
  e.enter_ns = 0;
  e.exit_ns = UINT64_MAX;
  e.sock.family = AF_INET6;
  e.sock.type = SOCK_STREAM;
  e.sock.sock = UINT64_MAX;
  e.sock.peer = 1;
  for (int i = 0; i < 16; ++i) {
    e.sock.local_addr[i] = static_cast<uint8_t>(0x20 + i);
    e.sock.remote_addr[i] = static_cast<uint8_t>(0xf0 + i);
  }
  e.sock.local_port = 443;
  e.sock.remote_port = 65535;
  return e;
}

SyscallEvent UnixConnectFailed() {
  SyscallEvent e;
  e.syscall = Syscall::kConnect;
  e.tgid = 9376;
  e.tid = 9378;
  e.fd = 20;
  e.ret = -111;  // -ECONNREFUSED
  e.enter_ns = 5;
  e.exit_ns = 6;
  e.sock.family = AF_UNIX;
  e.sock.type = SOCK_STREAM;
  e.sock.sock = 0xdeadbeef;
  e.sock.peer = 0xfeedface;
  return e;
}

// A read of a TLS stream at the socket layer: three records begin in it,
// and more than the block holds (kMore).
SyscallEvent TlsReadExitOnly() {
  SyscallEvent e = Ipv4Read();
  e.syscall = Syscall::kRecvmmsg;
  e.flags = SyscallEvent::kExitOnly | SyscallEvent::kPeek;
  e.enter_ns = 0;
  e.tls.flags = TlsRecords::kOn | TlsRecords::kMore;
  e.tls.count = 3;
  e.tls.type = {kTlsHandshake, kTlsChangeCipherSpec, kTlsApplicationData, 0};
  e.tls.length = {0x1234, 1, 0xffff, 0};
  e.payload = std::string("\x16\x03\x03\x12\x34", 5);
  return e;
}

SyscallEvent EventWithLastAddressByteOnly() {
  SyscallEvent e = UnixConnectFailed();
  e.syscall = Syscall::kShutdown;
  e.ret = INT64_MIN;
  e.fd = INT32_MIN;
  e.sock.remote_addr[15] = 1;  // ::1 as the remote, local all zero
  return e;
}

std::vector<ProcessEvent> SampleProcessEvents() {
  return {
      {ProcessEvent::Op::kFork, 9400, 9334, 2'000'000'000, 12345, "php-fpm8.2"},
      {ProcessEvent::Op::kExec, 9400, 9334, 2'000'000'001, 12345, ""},
      {ProcessEvent::Op::kExit, UINT32_MAX, 0, UINT64_MAX, UINT64_MAX,
       std::string("a\0b", 3)},
      {ProcessEvent::Op::kLeave, 9401, 9334, 2'000'000'002, 12346, "nginx"},
  };
}

// The whole content of a file.
std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class CaptureFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmp = ::testing::TempDir();
    while (tmp.size() > 1 && tmp.back() == '/') tmp.pop_back();
    std::string tmpl = tmp + "/capture_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Path(std::string_view name) const {
    return dir_ + "/" + std::string(name);
  }

  // Writes `bytes` to a fresh file and returns its path.
  std::string WriteBytes(std::string_view name, std::string_view bytes) {
    const std::string path = Path(name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    return path;
  }

  std::string dir_;
};

// Reads records until the end record or an error; returns both.
std::pair<std::vector<CaptureRecord>, absl::Status> ReadAll(
    CaptureReader& reader) {
  std::vector<CaptureRecord> records;
  for (int guard = 0; guard < 1'000'000; ++guard) {
    absl::StatusOr<CaptureRecord> r = reader.Next();
    if (!r.ok()) return {std::move(records), r.status()};
    const bool end = std::holds_alternative<CaptureEnd>(*r);
    records.push_back(*std::move(r));
    if (end) return {std::move(records), absl::OkStatus()};
  }
  return {std::move(records), absl::InternalError("reader did not stop")};
}

TEST_F(CaptureFileTest, RoundTripsHeaderAndEveryRecordKind) {
  const std::string path = Path("all.cap");
  const CaptureHeader header = SampleHeader();
  const std::vector<SyscallEvent> events = {
      Ipv4Read(), Ipv6AcceptWithoutEnter(), UnixConnectFailed(),
      EventWithLastAddressByteOnly(), TlsReadExitOnly()};
  const std::vector<ProcessEvent> procs = SampleProcessEvents();
  const KernelCounters periodic{100, 2, 3, 4, 9};
  const KernelCounters final_counters{UINT64_MAX, 5, 6, 7, UINT64_MAX - 1};
  {
    absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, header);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Write(events[0]).ok());
    ASSERT_TRUE(w->Write(procs[0]).ok());
    ASSERT_TRUE(w->Write(events[1]).ok());
    ASSERT_TRUE(w->WriteDrops(10, 20, 30).ok());
    ASSERT_TRUE(w->Write(procs[1]).ok());
    ASSERT_TRUE(w->Write(events[2]).ok());
    ASSERT_TRUE(w->WriteCounters(3'000'000'000, periodic).ok());
    ASSERT_TRUE(w->Write(procs[2]).ok());
    ASSERT_TRUE(w->Write(events[3]).ok());
    ASSERT_TRUE(w->Write(events[4]).ok());
    ASSERT_TRUE(w->Write(procs[3]).ok());
    ASSERT_TRUE(w->Close(4'000'000'000, final_counters).ok());
  }

  absl::StatusOr<CaptureReader> r = CaptureReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  CaptureHeader expected_header = header;
  expected_header.end_mono_ns = 4'000'000'000;
  EXPECT_THAT(r->header(), Eq(expected_header));
  EXPECT_THAT(r->format_version(), Eq(kCaptureFormatVersion));

  auto [records, status] = ReadAll(*r);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(
      records,
      ElementsAre(VariantWith<SyscallEvent>(Eq(events[0])),
                  VariantWith<ProcessEvent>(Eq(procs[0])),
                  VariantWith<SyscallEvent>(Eq(events[1])),
                  VariantWith<DropNotice>(Eq(DropNotice{10, 20, 30})),
                  VariantWith<ProcessEvent>(Eq(procs[1])),
                  VariantWith<SyscallEvent>(Eq(events[2])),
                  VariantWith<CountersSnapshot>(
                      Eq(CountersSnapshot{3'000'000'000, periodic})),
                  VariantWith<ProcessEvent>(Eq(procs[2])),
                  VariantWith<SyscallEvent>(Eq(events[3])),
                  VariantWith<SyscallEvent>(Eq(events[4])),
                  VariantWith<ProcessEvent>(Eq(procs[3])),
                  VariantWith<CountersSnapshot>(
                      Eq(CountersSnapshot{4'000'000'000, final_counters})),
                  VariantWith<CaptureEnd>(Eq(CaptureEnd{4'000'000'000, 12}))));
  // The end is sticky: asking again gives the end again.
  absl::StatusOr<CaptureRecord> again = r->Next();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(*again,
              VariantWith<CaptureEnd>(Eq(CaptureEnd{4'000'000'000, 12})));
}

TEST_F(CaptureFileTest, ReadCaptureCollectsRecordsByKind) {
  const std::string path = Path("collect.cap");
  {
    absl::StatusOr<CaptureWriter> w =
        CaptureWriter::Create(path, SampleHeader());
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Write(Ipv4Read()).ok());
    ASSERT_TRUE(w->Write(SampleProcessEvents()[0]).ok());
    ASSERT_TRUE(w->WriteDrops(1, 2, 3).ok());
    ASSERT_TRUE(w->Close(9, KernelCounters{1, 3, 0, 0}).ok());
  }
  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->complete);
  EXPECT_TRUE(c->problem.ok());
  EXPECT_THAT(c->events, ElementsAre(Ipv4Read()));
  EXPECT_THAT(c->process_events, ElementsAre(SampleProcessEvents()[0]));
  EXPECT_THAT(c->drops, ElementsAre(DropNotice{1, 2, 3}));
  EXPECT_THAT(c->counters,
              ElementsAre(CountersSnapshot{9, KernelCounters{1, 3, 0, 0}}));
  EXPECT_THAT(c->header.end_mono_ns, Eq(9u));
}

TEST_F(CaptureFileTest, WriterOutputMatchesTheDocumentedBytes) {
  CaptureHeader h;
  h.mono_to_wall_ns = -2;
  h.start_mono_ns = 0x0102030405060708ull;
  h.host = "h";
  h.kernel_release = "k";
  h.reqcost_version = "v";
  h.payload_capture_bytes = 256;
  h.command_line = {"reqcost"};
  h.processes = {{7, 1, "c", "/e", 9}};
  const std::string path = Path("golden.cap");
  SyscallEvent e = Ipv4Read();
  e.payload = "GET";
  SyscallEvent tls = Ipv4Read();
  tls.payload = "";
  tls.tls.flags = TlsRecords::kOn;
  tls.tls.count = 2;
  tls.tls.type = {kTlsHandshake, kTlsApplicationData, 0x99, 0x99};
  tls.tls.length = {0x0102, 0xfffe, 0x9999, 0x9999};  // beyond count: unwritten
  {
    absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, h);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Write(e).ok());
    ASSERT_TRUE(w->Write(tls).ok());
    ASSERT_TRUE(w->Close(0x1111, KernelCounters{1, 2, 3, 4, 5}).ok());
  }

  Bytes expected;
  expected.Raw(std::string_view("REQCOST\0", 8))
      .U32(kCaptureFormatVersion)
      .U32(0);
  expected.U64(static_cast<uint64_t>(-2)).U64(0x0102030405060708ull);
  expected.U64(0x1111).U32(256).U32(0);
  expected.Str("h").Str("k").Str("v").U32(1).Str("reqcost");
  expected.U32(1).U32(7).U32(1).U64(9).Str("c").Str("/e");
  const uint32_t header_len = static_cast<uint32_t>(expected.size());
  expected.PutU32At(12, header_len);
  Bytes body;
  body.U16(4).U16(0).U32(9376).U32(9377).U32(12).U64(91);
  body.U64(1'000'000'100).U64(1'000'000'900);
  body.U16(AF_INET).U16(SOCK_STREAM).U64(0x1122334455667788ull).U64(0);
  body.U16(8080).U16(51234).U8(4);
  body.U8(127).U8(0).U8(0).U8(1).U8(127).U8(0).U8(0).U8(2);
  body.U8(0).U8(0);  // TLS block: flags 0, no records
  body.Raw("GET");
  expected.Append(Record(1, body));
  Bytes tls_body;
  tls_body.U16(4).U16(0).U32(9376).U32(9377).U32(12).U64(91);
  tls_body.U64(1'000'000'100).U64(1'000'000'900);
  tls_body.U16(AF_INET).U16(SOCK_STREAM).U64(0x1122334455667788ull).U64(0);
  tls_body.U16(8080).U16(51234).U8(4);
  tls_body.U8(127).U8(0).U8(0).U8(1).U8(127).U8(0).U8(0).U8(2);
  tls_body.U8(1).U8(2).U8(22).U16(0x0102).U8(23).U16(0xfffe);
  expected.Append(Record(1, tls_body));
  expected.Append(
      Record(4, Bytes().U64(0x1111).U64(1).U64(2).U64(3).U64(4).U64(5).U64(0)));
  expected.Append(EndRecord(0x1111, 3));

  EXPECT_THAT(ReadBytes(path), Eq(expected.str()));
}

// The fixed part of a syscall event body as the spec states it: a read by
// 9376/9377 on fd 12, then `addr_len` and nothing after it.
Bytes SyscallFixedBody(uint16_t family, uint8_t addr_len) {
  Bytes body;
  body.U16(4).U16(0).U32(9376).U32(9377).U32(12).U64(91);
  body.U64(1'000'000'100).U64(1'000'000'900);
  body.U16(family).U16(SOCK_STREAM).U64(0x1122334455667788ull).U64(0);
  body.U16(8080).U16(51234).U8(addr_len);
  return body;
}

TEST_F(CaptureFileTest, VersionOneFileStillReads) {
  // Version 1: no TLS block in syscall events, no `foreign` in counters.
  Bytes file = MinimalHeader(1);
  Bytes ipv4 = SyscallFixedBody(AF_INET, 4);
  ipv4.U8(127).U8(0).U8(0).U8(1).U8(127).U8(0).U8(0).U8(2);
  // A payload that would also parse as a TLS block (flags 1, one record of
  // type 23, length 5, payload "GET"): version 1 must take it all as payload.
  const std::string payload("\x01\x01\x17\x05\x00GET", 8);
  ipv4.Raw(payload);
  file.Append(Record(1, ipv4));
  // Exactly the fixed bytes: too short for a version 2 event.
  file.Append(Record(1, SyscallFixedBody(AF_UNIX, 0)));
  file.Append(Record(4, Bytes().U64(0x1111).U64(1).U64(2).U64(3).U64(4)));
  file.Append(EndRecord(0x2222, 3));
  const std::string path = WriteBytes("v1.cap", file.str());

  absl::StatusOr<CaptureReader> r = CaptureReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->format_version(), Eq(1u));
  auto [records, status] = ReadAll(*r);
  ASSERT_TRUE(status.ok()) << status;

  SyscallEvent want_ipv4 = Ipv4Read();
  want_ipv4.payload = payload;
  SyscallEvent want_unix = Ipv4Read();
  want_unix.sock.family = AF_UNIX;
  want_unix.sock.local_addr = {};
  want_unix.sock.remote_addr = {};
  want_unix.payload.clear();
  EXPECT_THAT(records,
              ElementsAre(VariantWith<SyscallEvent>(Eq(want_ipv4)),
                          VariantWith<SyscallEvent>(Eq(want_unix)),
                          VariantWith<CountersSnapshot>(Eq(CountersSnapshot{
                              0x1111, KernelCounters{1, 2, 3, 4}})),
                          VariantWith<CaptureEnd>(Eq(CaptureEnd{0x2222, 3}))));
  ASSERT_THAT(records, SizeIs(4));
  const auto& read_ipv4 = std::get<SyscallEvent>(records[0]);
  EXPECT_THAT(read_ipv4.tls, Eq(TlsRecords{}));
  EXPECT_FALSE(read_ipv4.tls.on());
  EXPECT_THAT(std::get<CountersSnapshot>(records[2]).counters.foreign, Eq(0u));

  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->complete);
  EXPECT_THAT(c->events, ElementsAre(want_ipv4, want_unix));
  EXPECT_THAT(c->counters, ElementsAre(CountersSnapshot{
                               0x1111, KernelCounters{1, 2, 3, 4}}));
}

TEST_F(CaptureFileTest, TcpSequenceNumberRoundTrips) {
  const std::string path = Path("seq.cap");
  SyscallEvent with_seq = Ipv4Read();
  with_seq.flags = SyscallEvent::kExitOnly | SyscallEvent::kTcpSeq;
  with_seq.tcp_seq = 0xfffffff0u;
  with_seq.tls.flags = TlsRecords::kOn;
  with_seq.tls.count = 1;
  with_seq.tls.type[0] = kTlsApplicationData;
  with_seq.tls.length[0] = 40;
  SyscallEvent without = Ipv4Read();
  {
    absl::StatusOr<CaptureWriter> w =
        CaptureWriter::Create(path, SampleHeader());
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Write(with_seq).ok());
    ASSERT_TRUE(w->Write(without).ok());
    ASSERT_TRUE(w->Close(7, {}).ok());
  }
  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->events, ElementsAre(with_seq, without));
  ASSERT_THAT(c->events, SizeIs(2));
  EXPECT_THAT(c->events[0].seq(), Optional(Eq(0xfffffff0u)));
  EXPECT_THAT(c->events[0].payload, Eq(with_seq.payload));
  EXPECT_FALSE(c->events[1].seq().has_value());
}

TEST_F(CaptureFileTest, VersionTwoEventsHaveNoSequenceNumber) {
  // A version 2 event whose flags happen to have the bit that version 3
  // gives the sequence number: the bytes after the TLS block are payload.
  Bytes file = MinimalHeader(2);
  Bytes body;
  body.U16(4).U16(SyscallEvent::kTcpSeq).U32(9376).U32(9377).U32(12).U64(4);
  body.U64(1'000'000'100).U64(1'000'000'900);
  body.U16(AF_INET).U16(SOCK_STREAM).U64(1).U64(0).U16(80).U16(5000).U8(0);
  body.U8(0).U8(0).Raw("ABCD");
  file.Append(Record(1, body));
  file.Append(EndRecord(9, 1));
  const std::string path = WriteBytes("v2seq.cap", file.str());
  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_THAT(c->events, SizeIs(1));
  EXPECT_FALSE(c->events[0].seq().has_value());
  EXPECT_THAT(c->events[0].payload, Eq("ABCD"));
}

TEST_F(CaptureFileTest, TlsBlockRoundTrips) {
  const std::string path = Path("tls.cap");
  SyscallEvent three = TlsReadExitOnly();
  SyscallEvent full = Ipv6AcceptWithoutEnter();
  full.syscall = Syscall::kRead;
  full.flags = 0;
  full.tls.flags = TlsRecords::kOn | TlsRecords::kMore | TlsRecords::kLost;
  full.tls.count = TlsRecords::kMax;
  full.tls.type = {kTlsApplicationData, kTlsAlert, kTlsHandshake,
                   kTlsChangeCipherSpec};
  full.tls.length = {0, 0xffff, 0x0100, 0x00ff};
  full.payload.assign(kMaxPayloadBytes, '\x17');
  SyscallEvent on_but_none = UnixConnectFailed();
  on_but_none.syscall = Syscall::kSendmmsg;
  on_but_none.flags = SyscallEvent::kExitOnly;
  on_but_none.tls.flags = TlsRecords::kOn;  // a TLS stream, no header here
  on_but_none.payload = "\x16";
  {
    absl::StatusOr<CaptureWriter> w =
        CaptureWriter::Create(path, SampleHeader());
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Write(three).ok());
    ASSERT_TRUE(w->Write(full).ok());
    ASSERT_TRUE(w->Write(on_but_none).ok());
    ASSERT_TRUE(w->Close(7, {}).ok());
  }
  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->events, ElementsAre(three, full, on_but_none));
  ASSERT_THAT(c->events, SizeIs(3));
  EXPECT_THAT(c->events[0].tls.count, Eq(3));
  EXPECT_THAT(c->events[0].tls.flags, Eq(TlsRecords::kOn | TlsRecords::kMore));
  EXPECT_THAT(
      c->events[0].tls.type,
      ElementsAre(kTlsHandshake, kTlsChangeCipherSpec, kTlsApplicationData, 0));
  EXPECT_THAT(c->events[0].tls.length, ElementsAre(0x1234, 1, 0xffff, 0));
  EXPECT_THAT(c->events[0].payload, Eq(three.payload));
}

TEST_F(CaptureFileTest, SyscallEventWithoutPayloadIsCompact) {
  const std::string path = Path("size.cap");
  absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, {});
  ASSERT_TRUE(w.ok()) << w.status();
  auto size_of = [&](SyscallEvent e) {
    e.payload.clear();
    const uint64_t before = w->bytes_written();
    EXPECT_TRUE(w->Write(e).ok());
    return w->bytes_written() - before;
  };
  // Prefix 8, fixed 65, addresses, TLS block 2 + 3 per record.
  EXPECT_THAT(size_of(UnixConnectFailed()), Eq(75u));
  EXPECT_THAT(size_of(Ipv4Read()), Eq(83u));
  EXPECT_THAT(size_of(Ipv6AcceptWithoutEnter()), Eq(107u));
  EXPECT_THAT(size_of(TlsReadExitOnly()), Eq(92u));
  ASSERT_TRUE(w->Close(1, {}).ok());
}

TEST_F(CaptureFileTest, CreatedFileHasMode0600WhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{0022}, mode_t{0277}}) {
    const mode_t old = umask(mask);
    const std::string path = Path("mode-" + std::to_string(mask) + ".cap");
    absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, {});
    umask(old);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Close(1, {}).ok());
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_THAT(st.st_mode & 07777, Eq(0600u)) << "umask " << mask;
  }
}

TEST_F(CaptureFileTest, CreateRefusesAnExistingFileUnlessAskedToOverwrite) {
  const std::string path = WriteBytes("exists.cap", "precious");
  absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, {});
  EXPECT_THAT(w.status(),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr(path), HasSubstr("already exists"))));
  EXPECT_THAT(ReadBytes(path), Eq("precious"));

  CaptureWriter::Options options;
  options.overwrite = true;
  w = CaptureWriter::Create(path, {}, options);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(w->Close(1, {}).ok());
  EXPECT_TRUE(CaptureReader::Open(path).ok());
}

TEST_F(CaptureFileTest, CreateNeverWritesThroughASymlink) {
  const std::string target = WriteBytes("target", "precious");
  const std::string link = Path("link.cap");
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  EXPECT_THAT(CaptureWriter::Create(link, {}).status(),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(link)));

  CaptureWriter::Options options;
  options.overwrite = true;
  absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(link, {}, options);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(w->Close(1, {}).ok());
  EXPECT_THAT(ReadBytes(target), Eq("precious"));
  struct stat st;
  ASSERT_EQ(lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(CaptureFileTest, CreateInAMissingDirectoryNamesThePath) {
  const std::string path = Path("no/such/dir.cap");
  EXPECT_THAT(CaptureWriter::Create(path, {}).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("create capture file " + path)));
}

TEST_F(CaptureFileTest, WriterRejectsWhatTheFormatCannotHold) {
  const std::string path = Path("reject.cap");
  absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, {});
  ASSERT_TRUE(w.ok()) << w.status();
  SyscallEvent bad = Ipv4Read();
  bad.syscall = static_cast<Syscall>(99);
  EXPECT_THAT(w->Write(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("unknown syscall 99")));
  SyscallEvent huge = Ipv4Read();
  huge.payload.assign(kMaxPayloadBytes + 1, 'x');
  EXPECT_THAT(w->Write(huge), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("over the limit")));
  ProcessEvent op;
  op.op = static_cast<ProcessEvent::Op>(0);
  EXPECT_THAT(w->Write(op), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("unknown op 0")));
  EXPECT_THAT(w->records_written(), Eq(0u));
  ASSERT_TRUE(w->Close(1, {}).ok());
  EXPECT_THAT(w->Write(Ipv4Read()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already closed")));

  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->events, IsEmpty());
}

TEST_F(CaptureFileTest, MaxPayloadRoundTrips) {
  const std::string path = Path("maxpayload.cap");
  SyscallEvent e = Ipv6AcceptWithoutEnter();
  e.payload.resize(kMaxPayloadBytes);
  for (size_t i = 0; i < e.payload.size(); ++i) e.payload[i] = char(i * 7);
  {
    absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, {});
    ASSERT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(w->Write(e).ok());
    ASSERT_TRUE(w->Close(1, {}).ok());
  }
  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_THAT(c->events, SizeIs(100));
  EXPECT_THAT(c->events[99], Eq(e));
}

TEST_F(CaptureFileTest, WriterDroppedWithoutCloseLeavesACutShortFile) {
  const std::string path = Path("dropped.cap");
  {
    absl::StatusOr<CaptureWriter> w =
        CaptureWriter::Create(path, SampleHeader());
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Write(Ipv4Read()).ok());
    ASSERT_TRUE(w->Write(UnixConnectFailed()).ok());
  }
  EXPECT_THAT(ReadCapture(path).status(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("no end record: capture was cut short")));

  absl::StatusOr<Capture> c = ReadCapture(path, ReadMode::kBestEffort);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->complete);
  EXPECT_THAT(c->events, ElementsAre(Ipv4Read(), UnixConnectFailed()));
  EXPECT_THAT(c->header.end_mono_ns, Eq(0u));
  EXPECT_THAT(c->problem, StatusIs(absl::StatusCode::kOutOfRange,
                                   AllOf(StartsWith(path + ": no end record"),
                                         HasSubstr("after 2 records"))));
}

// --------------------------------------------------- header errors

TEST_F(CaptureFileTest, WrongMagicIsNotACaptureFile) {
  const std::string path = WriteBytes("magic.cap", "GIF89a\0\0 and more bytes");
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq(path + ": not a reqcost capture file (bad magic at "
                                 "byte 0)")));
}

TEST_F(CaptureFileTest, EmptyFileIsNotACaptureFile) {
  const std::string path = WriteBytes("empty.cap", "");
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("empty file, not a reqcost capture file")));
}

TEST_F(CaptureFileTest, MissingFileNamesThePath) {
  const std::string path = Path("missing.cap");
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("open capture file " + path)));
}

TEST_F(CaptureFileTest, DirectoryIsNotACaptureFile) {
  EXPECT_THAT(
      CaptureReader::Open(dir_).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               Eq(dir_ + " is a directory, not a reqcost capture file")));
}

TEST_F(CaptureFileTest, FutureVersionAsksToUpgrade) {
  const std::string path = WriteBytes("v7.cap", MinimalHeader(7).str());
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kUnimplemented,
                       Eq(absl::StrCat(path,
                                       ": capture format version 7 is newer "
                                       "than this reqcost (",
                                       kCaptureFormatVersion,
                                       "); upgrade reqcost"))));
}

TEST_F(CaptureFileTest, VersionZeroIsCorrupt) {
  const std::string path = WriteBytes("v0.cap", MinimalHeader(0).str());
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("format version 0 at byte 8 is invalid")));
}

TEST_F(CaptureFileTest, TruncatedHeaderGivesOffsetAndSizes) {
  const std::string h = MinimalHeader().str();
  std::string path = WriteBytes("h10.cap", h.substr(0, 10));
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       Eq(path + ": truncated header at byte 0: need 16 "
                                 "bytes, have 10")));
  path = WriteBytes("h50.cap", h.substr(0, 50));
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       Eq(path + ": truncated header at byte 0: need " +
                          std::to_string(h.size()) + " bytes, have 50")));
}

TEST_F(CaptureFileTest, AbsurdHeaderLengthsAreRefusedWithoutAllocating) {
  Bytes big = MinimalHeader();
  big.PutU32At(12, 0xffffffffu);
  std::string path = WriteBytes("hbig.cap", big.str());
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("header length 4294967295 at byte 12 exceeds "
                                 "the limit")));
  Bytes small = MinimalHeader();
  small.PutU32At(12, 20);
  path = WriteBytes("hsmall.cap", small.str());
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("header length 20 at byte 12 is shorter")));
  // Within the limit but beyond the file: reported as cut short, and the
  // reader allocates only what the file holds.
  Bytes lying = MinimalHeader();
  lying.PutU32At(12, kMaxCaptureHeaderBytes);
  path = WriteBytes("hlying.cap", lying.str());
  const uint64_t before = g_alloc_bytes.load();
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("truncated header at byte 0")));
  EXPECT_THAT(g_alloc_bytes.load() - before, Lt(1u << 20));
}

TEST_F(CaptureFileTest, AbsurdCountsAndStringLengthsInTheHeaderAreCorrupt) {
  Bytes h;
  h.Raw(std::string_view("REQCOST\0", 8)).U32(1).U32(0);
  h.U64(0).U64(0).U64(0).U32(0).U32(0);
  h.U32(0x7fffffff).Raw("web");  // host name length beyond the header
  h.PutU32At(12, static_cast<uint32_t>(h.size()));
  std::string path = WriteBytes("hstr.cap", h.str());
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("host name length 2147483647 at byte 48 runs "
                                 "past the end of the header at byte 55")));

  Bytes p;
  p.Raw(std::string_view("REQCOST\0", 8)).U32(1).U32(0);
  p.U64(0).U64(0).U64(0).U32(0).U32(0);
  p.Str("").Str("").Str("").U32(0).U32(0xffffffffu);  // processes
  p.PutU32At(12, static_cast<uint32_t>(p.size()));
  path = WriteBytes("hproc.cap", p.str());
  const uint64_t before = g_alloc_bytes.load();
  EXPECT_THAT(CaptureReader::Open(path).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("process count 4294967295 at byte 64 does "
                                 "not fit")));
  EXPECT_THAT(g_alloc_bytes.load() - before, Lt(1u << 20));
}

TEST_F(CaptureFileTest, ExtraHeaderBytesFromLaterVersionsAreSkipped) {
  Bytes h = MinimalHeader();
  h.Raw("future header fields");
  h.PutU32At(12, static_cast<uint32_t>(h.size()));
  Bytes file = h;
  file.Append(EndRecord(3, 0));
  const std::string path = WriteBytes("hextra.cap", file.str());
  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->complete);
}

// --------------------------------------------------- record errors

class CaptureRecordErrorTest : public CaptureFileTest {
 protected:
  // Writes a minimal header followed by `records`; returns the first error.
  absl::Status ErrorOf(const Bytes& records,
                       uint32_t version = kCaptureFormatVersion) {
    Bytes file = MinimalHeader(version);
    file.Append(records);
    path_ = WriteBytes("rec" + std::to_string(++n_) + ".cap", file.str());
    absl::StatusOr<CaptureReader> r = CaptureReader::Open(path_);
    if (!r.ok()) return r.status();
    return ReadAll(*r).second;
  }
  // Offset of the first record.
  static size_t First() { return MinimalHeader().size(); }

  std::string path_;
  int n_ = 0;
};

TEST_F(CaptureRecordErrorTest, UnknownRecordTypeIsCorrupt) {
  {
    const absl::Status status = ErrorOf(Record(99, Bytes().U64(0)));
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kDataLoss,
                         Eq(path_ + ": unknown record type 99 at byte " +
                            std::to_string(First()))));
  }
}

TEST_F(CaptureRecordErrorTest, OptionalRecordTypesAreSkipped) {
  Bytes records = Record(0x8001, Bytes().Raw("later addition"));
  records.Append(Record(3, Bytes().U64(1).U64(2).U64(3)));
  records.Append(EndRecord(9, 2));
  EXPECT_TRUE(ErrorOf(records).ok());
}

TEST_F(CaptureRecordErrorTest, RecordTooShortForItsTypeIsCorrupt) {
  {
    const absl::Status status = ErrorOf(Record(1, Bytes().U16(4).U8(0)));
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kDataLoss,
                         Eq(path_ +
                            ": record length 3 too short for a syscall "
                            "event at byte " +
                            std::to_string(First()) + " (minimum 65)")));
  }
  {
    const absl::Status status = ErrorOf(Record(5, Bytes().U64(1)));
    EXPECT_THAT(
        status,
        StatusIs(absl::StatusCode::kDataLoss,
                 HasSubstr("record length 8 too short for an end record")));
  }
}

TEST_F(CaptureRecordErrorTest, AbsurdRecordLengthIsRefusedWithoutAllocating) {
  Bytes r;
  r.U16(1).U16(0).U32(0xffffffffu).Raw("x");
  const uint64_t before = g_alloc_bytes.load();
  {
    const absl::Status status = ErrorOf(r);
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kDataLoss,
                         HasSubstr("record length 4294967295 exceeds the limit "
                                   "of 65536 bytes at byte " +
                                   std::to_string(First()))));
  }
  EXPECT_THAT(g_alloc_bytes.load() - before, Lt(1u << 20));
}

TEST_F(CaptureRecordErrorTest, TruncatedRecordGivesNeedAndHave) {
  Bytes r;
  r.U16(1).U16(0).U32(96).Raw(std::string(9, 'x'));
  {
    const absl::Status status = ErrorOf(r);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kOutOfRange,
                                 Eq(path_ + ": truncated record at byte " +
                                    std::to_string(First()) +
                                    ": need 104 bytes, have 17")));
  }
}

TEST_F(CaptureRecordErrorTest, AddressLengthOver16IsCorrupt) {
  Bytes body;
  body.U16(4).U16(0).U32(1).U32(1).U32(3).U64(0).U64(0).U64(0);
  body.U16(AF_INET6).U16(1).U64(0).U64(0).U16(0).U16(0).U8(17);
  body.Raw(std::string(34, '\0'));
  {
    const absl::Status status = ErrorOf(Record(1, body));
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss,
                                 HasSubstr("address length 17 exceeds 16")));
  }
}

TEST_F(CaptureRecordErrorTest, AddressesLongerThanTheRecordAreCorrupt) {
  Bytes body;
  body.U16(4).U16(0).U32(1).U32(1).U32(3).U64(0).U64(0).U64(0);
  body.U16(AF_INET6).U16(1).U64(0).U64(0).U16(0).U16(0).U8(16);
  body.Raw(std::string(20, '\0'));  // needs 32
  {
    const absl::Status status = ErrorOf(Record(1, body));
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kDataLoss,
                         HasSubstr("record length 85 too short for a syscall "
                                   "event with 16-byte addresses")));
  }
}

TEST_F(CaptureRecordErrorTest, TlsBlockOverFourRecordsIsCorrupt) {
  Bytes records = Record(3, Bytes().U64(1).U64(2).U64(3));  // 32 bytes
  Bytes body = SyscallFixedBody(AF_UNIX, 0);
  body.U8(TlsRecords::kOn).U8(5);
  for (int i = 0; i < 5; ++i) body.U8(23).U16(100);
  records.Append(Record(1, body));
  records.Append(EndRecord(9, 2));
  const absl::Status status = ErrorOf(records);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kDataLoss,
                       Eq(path_ + ": syscall event at byte " +
                          std::to_string(First() + 32) +
                          ": TLS block of 5 records does not fit its 82-byte "
                          "record")));
}

TEST_F(CaptureRecordErrorTest, TlsBlockLongerThanTheRecordIsCorrupt) {
  Bytes records = Record(3, Bytes().U64(1).U64(2).U64(3));  // 32 bytes
  Bytes body = SyscallFixedBody(AF_INET, 4);
  body.Raw(std::string(8, '\0'));
  body.U8(TlsRecords::kOn).U8(3).U8(22).U16(512).U8(23).U16(40);  // 2 of 3
  records.Append(Record(1, body));
  records.Append(EndRecord(9, 2));
  const absl::Status status = ErrorOf(records);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kDataLoss,
                       Eq(path_ + ": syscall event at byte " +
                          std::to_string(First() + 32) +
                          ": TLS block of 3 records does not fit its 81-byte "
                          "record")));
}

TEST_F(CaptureRecordErrorTest, VersionTwoEventWithoutTlsBlockIsCorrupt) {
  {
    const absl::Status status =
        ErrorOf(Record(1, SyscallFixedBody(AF_UNIX, 0)));
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss,
                                 Eq(path_ + ": syscall event at byte " +
                                    std::to_string(First()) +
                                    ": TLS block of 0 records does not fit its "
                                    "65-byte record")));
  }
  {
    Bytes flags_only = SyscallFixedBody(AF_UNIX, 0);
    flags_only.U8(TlsRecords::kOn);
    const absl::Status status = ErrorOf(Record(1, flags_only));
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss,
                                 HasSubstr("does not fit its 66-byte record")));
  }
}

TEST_F(CaptureRecordErrorTest, SequenceNumberCutShortIsCorrupt) {
  Bytes body;
  body.U16(4).U16(SyscallEvent::kTcpSeq).U32(1).U32(1).U32(3).U64(3);
  body.U64(0).U64(0).U16(AF_INET).U16(1).U64(0).U64(0).U16(0).U16(0).U8(0);
  body.U8(0).U8(0).U8(1).U8(2);  // two of its four bytes
  const absl::Status status = ErrorOf(Record(1, body));
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kDataLoss,
                       Eq(path_ + ": syscall event at byte " +
                          std::to_string(First()) +
                          ": its TCP sequence number does not fit its 69-byte "
                          "record")));
}

// Version 4 added socketpair (17): both its fds, fd and ret. A version 3
// file cannot hold one.
TEST_F(CaptureRecordErrorTest, SocketpairReadsFromVersionFourOnly) {
  Bytes body;
  body.U16(17).U16(0).U32(1).U32(1).U32(7).U64(8).U64(10).U64(20);
  body.U16(AF_UNIX).U16(1).U64(0xA).U64(0xB).U16(0).U16(0).U8(0);
  body.U8(0).U8(0);  // no TLS records
  (void)ErrorOf(Record(1, body));  // cut short after it: no end record
  absl::StatusOr<CaptureReader> r = CaptureReader::Open(path_);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<CaptureRecord> first = r->Next();
  ASSERT_TRUE(first.ok()) << first.status();
  const auto* e = std::get_if<SyscallEvent>(&*first);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->syscall, Syscall::kSocketpair);
  EXPECT_EQ(e->fd, 7);
  EXPECT_EQ(e->ret, 8);
  EXPECT_EQ(e->sock.peer, 0xBu);
  EXPECT_THAT(ErrorOf(Record(1, body), 3),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("unknown syscall 17")));
}

TEST_F(CaptureRecordErrorTest, UnknownSyscallAndOpAreCorrupt) {
  Bytes body;
  body.U16(99).U16(0).U32(1).U32(1).U32(3).U64(0).U64(0).U64(0);
  body.U16(AF_UNIX).U16(1).U64(0).U64(0).U16(0).U16(0).U8(0);
  {
    const absl::Status status = ErrorOf(Record(1, body));
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss,
                                 HasSubstr("unknown syscall 99")));
  }
  Bytes proc;
  proc.U16(9).U32(1).U32(1).U64(0).U64(0);
  {
    const absl::Status status = ErrorOf(Record(2, proc));
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss,
                                 HasSubstr("unknown op 9")));
  }
}

TEST_F(CaptureRecordErrorTest, EndRecordWithWrongCountIsCorrupt) {
  Bytes records = Record(3, Bytes().U64(1).U64(2).U64(3));
  records.Append(EndRecord(9, 5));
  {
    const absl::Status status = ErrorOf(records);
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kDataLoss,
                         HasSubstr("counts 5 records, but 1 precede it")));
  }
}

TEST_F(CaptureRecordErrorTest, BytesAfterTheEndRecordAreCorrupt) {
  Bytes records = EndRecord(9, 0);
  records.Raw("junk");
  const size_t at = First() + 24;
  {
    const absl::Status status = ErrorOf(records);
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kDataLoss,
                         Eq(path_ + ": trailing data at byte " +
                            std::to_string(at) + " after the end record")));
  }
}

TEST_F(CaptureRecordErrorTest, ErrorsAreSticky) {
  Bytes file = MinimalHeader();
  file.Append(Record(99, Bytes()));
  file.Append(EndRecord(1, 0));
  const std::string path = WriteBytes("sticky.cap", file.str());
  absl::StatusOr<CaptureReader> r = CaptureReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  const absl::Status first = r->Next().status();
  EXPECT_THAT(first, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("99")));
  EXPECT_THAT(r->Next().status(), Eq(first));
}

// --------------------------------------------------- truncation and noise

// A small capture with a record of each kind; and where its records start.
struct SmallCapture {
  std::string bytes;
  std::vector<size_t> boundaries;  // offsets where a record starts, and size
  size_t header_len = 0;
};

SmallCapture MakeSmallCapture(const std::string& path) {
  SmallCapture s;
  absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, SampleHeader());
  EXPECT_TRUE(w.ok()) << w.status();
  s.header_len = w->bytes_written();
  s.boundaries.push_back(w->bytes_written());
  auto mark = [&](absl::Status st) {
    EXPECT_TRUE(st.ok()) << st;
    s.boundaries.push_back(w->bytes_written());
  };
  mark(w->Write(Ipv4Read()));
  mark(w->Write(SampleProcessEvents()[0]));
  mark(w->Write(Ipv6AcceptWithoutEnter()));
  mark(w->WriteDrops(1, 2, 3));
  mark(w->WriteCounters(4, KernelCounters{1, 2, 3, 4, 5}));
  mark(w->Write(UnixConnectFailed()));
  mark(w->Write(TlsReadExitOnly()));
  EXPECT_TRUE(w->Close(5, KernelCounters{5, 6, 7, 8, 9}).ok());
  s.bytes = ReadBytes(path);
  // Close() appended the final counters (8 + 56 bytes) and the end record.
  s.boundaries.push_back(s.boundaries.back() + 64);
  s.boundaries.push_back(s.bytes.size());
  EXPECT_THAT(s.boundaries.back() - s.boundaries[s.boundaries.size() - 2],
              Eq(24u));
  return s;
}

TEST_F(CaptureFileTest, TruncationAtEveryByteIsRefusedCleanly) {
  const SmallCapture s = MakeSmallCapture(Path("small.cap"));
  ASSERT_THAT(s.bytes.size(), Lt(1000u));
  for (size_t cut = 0; cut < s.bytes.size(); ++cut) {
    SCOPED_TRACE("cut at byte " + std::to_string(cut));
    const std::string path = WriteBytes("cut.cap", s.bytes.substr(0, cut));
    absl::StatusOr<CaptureReader> r = CaptureReader::Open(path);
    if (cut < s.header_len) {
      ASSERT_FALSE(r.ok());
      EXPECT_THAT(r.status().code(), cut == 0
                                         ? absl::StatusCode::kInvalidArgument
                                         : absl::StatusCode::kOutOfRange);
      if (cut > 0) {
        EXPECT_THAT(r.status().message(), HasSubstr("truncated header"));
      }
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.status();
    auto [records, status] = ReadAll(*r);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kOutOfRange, ::testing::_));
    // Records wholly before the cut were read, and nothing else.
    size_t whole = 0;
    while (whole + 1 < s.boundaries.size() && s.boundaries[whole + 1] <= cut) {
      ++whole;
    }
    EXPECT_THAT(records, SizeIs(whole));
    const bool at_boundary = std::find(s.boundaries.begin(), s.boundaries.end(),
                                       cut) != s.boundaries.end();
    if (at_boundary) {
      EXPECT_THAT(status.message(),
                  HasSubstr("no end record: capture was cut short at byte " +
                            std::to_string(cut)));
      absl::StatusOr<Capture> c = ReadCapture(path, ReadMode::kBestEffort);
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_FALSE(c->complete);
      EXPECT_THAT(c->events.size() + c->process_events.size() +
                      c->drops.size() + c->counters.size(),
                  Eq(whole));
    } else {
      EXPECT_THAT(status.message(), HasSubstr("truncated record at byte "));
    }
    std::filesystem::remove(path);
  }
}

TEST_F(CaptureFileTest, RandomBytesNeverCrashTheReader) {
  std::mt19937_64 rng(42);
  const SmallCapture s = MakeSmallCapture(Path("seed.cap"));
  int ok = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes;
    switch (i % 3) {
      case 0: {  // pure noise, sometimes with the right magic
        bytes.resize(rng() % 600);
        for (char& c : bytes) c = static_cast<char>(rng());
        if (rng() % 2 && bytes.size() >= 8) {
          bytes.replace(0, 8, std::string_view("REQCOST\0", 8));
        }
        break;
      }
      case 1: {  // valid header, noise after it
        bytes = s.bytes.substr(0, s.header_len);
        const size_t n = rng() % 400;
        for (size_t k = 0; k < n; ++k)
          bytes.push_back(static_cast<char>(rng()));
        break;
      }
      case 2: {  // a valid file with a few bytes changed
        bytes = s.bytes;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) {
          bytes[rng() % bytes.size()] = static_cast<char>(rng());
        }
        break;
      }
    }
    const std::string path = WriteBytes("noise.cap", bytes);
    absl::StatusOr<CaptureReader> r = CaptureReader::Open(path);
    if (r.ok()) {
      auto [records, status] = ReadAll(*r);
      if (status.ok()) ++ok;
      EXPECT_THAT(status.code(), ::testing::AnyOf(absl::StatusCode::kOk,
                                                  absl::StatusCode::kOutOfRange,
                                                  absl::StatusCode::kDataLoss));
    } else {
      EXPECT_THAT(r.status().code(),
                  ::testing::AnyOf(absl::StatusCode::kInvalidArgument,
                                   absl::StatusCode::kUnimplemented,
                                   absl::StatusCode::kOutOfRange,
                                   absl::StatusCode::kDataLoss));
    }
    std::filesystem::remove(path);
  }
  // Flips in payloads, comms and timestamps leave a readable file.
  EXPECT_THAT(ok, ::testing::Gt(0));
}

// --------------------------------------------------- scale

TEST_F(CaptureFileTest, MillionEventsStreamInBoundedMemory) {
  constexpr int kEvents = 1'000'000;
  const std::string path = Path("million.cap");
  SyscallEvent e = Ipv4Read();
  e.payload = "GET /x HTTP/1";  // short enough for the string's own storage

  const auto t0 = std::chrono::steady_clock::now();
  uint64_t file_bytes = 0;
  {
    absl::StatusOr<CaptureWriter> w =
        CaptureWriter::Create(path, SampleHeader());
    ASSERT_TRUE(w.ok()) << w.status();
    const uint64_t allocs_before = g_alloc_count.load();
    for (int i = 0; i < kEvents; ++i) {
      e.tid = static_cast<uint32_t>(i);
      e.exit_ns = static_cast<uint64_t>(i) * 1000;
      const absl::Status s = w->Write(e);
      if (!s.ok()) FAIL() << s;
    }
    EXPECT_THAT(g_alloc_count.load() - allocs_before, Le(0u))
        << "writing allocates per event";
    ASSERT_TRUE(w->Close(kEvents, {}).ok());
    file_bytes = w->bytes_written();
  }
  const auto t1 = std::chrono::steady_clock::now();

  absl::StatusOr<CaptureReader> r = CaptureReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  const uint64_t allocs_before = g_alloc_count.load();
  const uint64_t bytes_before = g_alloc_bytes.load();
  uint64_t events = 0;
  uint64_t checksum = 0;
  for (;;) {
    absl::StatusOr<CaptureRecord> rec = r->Next();
    ASSERT_TRUE(rec.ok()) << rec.status();
    if (const auto* ev = std::get_if<SyscallEvent>(&*rec)) {
      ++events;
      checksum += ev->tid;
    } else if (std::holds_alternative<CaptureEnd>(*rec)) {
      break;
    }
  }
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_THAT(events, Eq(static_cast<uint64_t>(kEvents)));
  EXPECT_THAT(checksum, Eq(uint64_t{kEvents} * (kEvents - 1) / 2));
  // The file is ~100 MB; reading it allocates (next to) nothing.
  EXPECT_THAT(g_alloc_count.load() - allocs_before, Lt(16u));
  EXPECT_THAT(g_alloc_bytes.load() - bytes_before, Lt(1u << 20));

  const double w_s = std::chrono::duration<double>(t1 - t0).count();
  const double r_s = std::chrono::duration<double>(t2 - t1).count();
  const double mb = static_cast<double>(file_bytes) / 1e6;
  std::printf(
      "[throughput] %d events, %.1f MB (%.1f bytes/event): write %.0f MB/s "
      "%.2f M events/s; read %.0f MB/s %.2f M events/s\n",
      kEvents, mb, static_cast<double>(file_bytes) / kEvents, mb / w_s,
      kEvents / w_s / 1e6, mb / r_s, kEvents / r_s / 1e6);
}

// ---------------------------------------------------------------------------
// TLS data records (version 3).

// An SSL_read of nginx's that began with the client preface and kept two
// frame headers.
TlsDataEvent PrefaceRead() {
  TlsDataEvent t;
  t.op = TlsDataEvent::Op::kReadEx;
  t.flags = TlsDataEvent::kH2 | TlsDataEvent::kPreface;
  t.tgid = 9376;
  t.tid = 9377;
  t.enter_ns = 1'000'000'100;
  t.exit_ns = 1'000'000'900;
  t.ssl = 0xfeedfacecafebeefull;
  t.bytes = 124;
  t.fd = 12;
  t.frames_seen = 3;
  t.frames = {{18, 0, 4, 0}, {0x10203, 0x7fffffff, 1, 5}};
  t.payload = "PRI * HTTP/2.0";
  return t;
}

TEST_F(CaptureFileTest, TlsDataRoundTripsWithItsPayloadOnlyWithAPrefix) {
  const TlsDataEvent t = PrefaceRead();
  for (uint32_t payload_bytes : {0u, 64u}) {
    const std::string path = Path("tls" + std::to_string(payload_bytes));
    CaptureHeader header = SampleHeader();
    header.payload_capture_bytes = payload_bytes;
    {
      absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, header);
      ASSERT_TRUE(w.ok()) << w.status();
      ASSERT_TRUE(w->Write(Ipv4Read()).ok());
      ASSERT_TRUE(w->Write(t).ok());
      ASSERT_TRUE(w->Close(9, KernelCounters{1, 0, 0, 0, 0, 77}).ok());
    }
    absl::StatusOr<Capture> c = ReadCapture(path);
    ASSERT_TRUE(c.ok()) << c.status();
    TlsDataEvent want = t;
    if (payload_bytes == 0) want.payload.clear();
    EXPECT_THAT(c->tls_data, ElementsAre(want)) << payload_bytes;
    EXPECT_THAT(c->events, ElementsAre(Ipv4Read()));
    ASSERT_THAT(c->counters, SizeIs(1));
    EXPECT_THAT(c->counters[0].counters.tls_calls, Eq(77u));
  }
}

TEST_F(CaptureFileTest, TlsDataRecordMatchesTheDocumentedBytes) {
  const std::string path = Path("tls-golden.cap");
  CaptureHeader header;
  header.payload_capture_bytes = 16;
  {
    absl::StatusOr<CaptureWriter> w = CaptureWriter::Create(path, header);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Write(PrefaceRead()).ok());
  }  // no Close: only the records written are wanted
  Bytes body;
  body.U16(2).U16(3).U32(9376).U32(9377);
  body.U64(1'000'000'100).U64(1'000'000'900).U64(0xfeedfacecafebeefull);
  body.U64(124).U32(12).U16(3).U8(2);
  body.U32(18).U32(0).U8(4).U8(0);
  body.U32(0x10203).U32(0x7fffffff).U8(1).U8(5);
  body.Raw("PRI * HTTP/2.0");
  const std::string bytes = ReadBytes(path);
  const std::string record = Record(6, body).str();
  ASSERT_GE(bytes.size(), record.size());
  EXPECT_THAT(bytes.substr(bytes.size() - record.size()), Eq(record));
}

// A hand-built version 3 file: each TLS data record is read as the format
// says; one with too many frames, or frames past its end, is corrupt.
TEST_F(CaptureRecordErrorTest, HandBuiltTlsDataRecordsDecode) {
  Bytes body;
  body.U16(3).U16(1).U32(10).U32(11).U64(5).U64(6).U64(7).U64(8).U32(9);
  body.U16(1).U8(1).U32(40).U32(3).U8(1).U8(4);  // HEADERS, END_HEADERS
  Bytes records = Record(6, body);
  records.Append(EndRecord(9, 1));
  Bytes file = MinimalHeader();
  file.Append(records);
  const std::string path = WriteBytes("tls-hand.cap", file.str());
  absl::StatusOr<CaptureReader> r = CaptureReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  auto [read, status] = ReadAll(*r);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_THAT(read, SizeIs(2));
  const auto* t = std::get_if<TlsDataEvent>(&read[0]);
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->op, Eq(TlsDataEvent::Op::kWrite));
  EXPECT_TRUE(t->h2());
  EXPECT_THAT(t->tgid, Eq(10u));
  EXPECT_THAT(t->tid, Eq(11u));
  EXPECT_THAT(t->enter_ns, Eq(5u));
  EXPECT_THAT(t->exit_ns, Eq(6u));
  EXPECT_THAT(t->ssl, Eq(7u));
  EXPECT_THAT(t->bytes, Eq(8));
  EXPECT_THAT(t->fd, Eq(9));
  EXPECT_THAT(t->frames_seen, Eq(1u));
  ASSERT_THAT(t->frames, SizeIs(1));
  EXPECT_THAT(t->frames[0], Eq(H2FrameHeader{40, 3, 1, 4}));
  EXPECT_THAT(t->payload, IsEmpty());

  Bytes too_many;
  too_many.U16(1).U16(0).U32(1).U32(1).U64(0).U64(0).U64(0).U64(0).U32(0);
  too_many.U16(0).U8(17);
  for (int i = 0; i < 17; ++i) too_many.U32(0).U32(0).U8(0).U8(0);
  EXPECT_THAT(ErrorOf(Record(6, too_many)),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("17 frame headers do not fit")));
  Bytes short_frames;
  short_frames.U16(1).U16(0).U32(1).U32(1).U64(0).U64(0).U64(0).U64(0);
  short_frames.U32(0).U16(0).U8(2).U32(0).U32(0).U8(0).U8(0);
  EXPECT_THAT(ErrorOf(Record(6, short_frames)),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("2 frame headers do not fit")));
  Bytes bad_op;
  bad_op.U16(9).U16(0).U32(1).U32(1).U64(0).U64(0).U64(0).U64(0).U32(0);
  bad_op.U16(0).U8(0);
  EXPECT_THAT(ErrorOf(Record(6, bad_op)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("unknown op 9")));
  EXPECT_THAT(ErrorOf(Record(6, Bytes().U16(1).U16(0))),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("too short for a TLS data record")));
}

// Version 2 captures (no TLS data) still read; a TLS data record in one is
// corrupt.
TEST_F(CaptureRecordErrorTest, VersionTwoReadsAndHasNoTlsData) {
  Bytes file = MinimalHeader(2);
  Bytes event = SyscallFixedBody(AF_UNIX, 0);
  event.U8(0).U8(0).Raw("x");
  file.Append(Record(1, event));
  file.Append(Record(4, Bytes().U64(1).U64(2).U64(3).U64(4).U64(5).U64(6)));
  file.Append(EndRecord(9, 2));
  const std::string path = WriteBytes("v2.cap", file.str());
  absl::StatusOr<Capture> c = ReadCapture(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->events, SizeIs(1));
  EXPECT_THAT(c->tls_data, IsEmpty());
  ASSERT_THAT(c->counters, SizeIs(1));
  EXPECT_THAT(c->counters[0].counters.foreign, Eq(6u));
  EXPECT_THAT(c->counters[0].counters.tls_calls, Eq(0u));

  Bytes v2 = MinimalHeader(2);
  Bytes body;
  body.U16(1).U16(0).U32(1).U32(1).U64(0).U64(0).U64(0).U64(0).U32(0);
  body.U16(0).U8(0);
  v2.Append(Record(6, body));
  const std::string bad = WriteBytes("v2-tls.cap", v2.str());
  absl::StatusOr<CaptureReader> r = CaptureReader::Open(bad);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(ReadAll(*r).second,
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("in a version 2 capture")));
}

}  // namespace
}  // namespace reqcost::collector
