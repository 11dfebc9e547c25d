#include "collector/capture_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "collector/status_macros.h"

namespace reqcost::collector {
namespace {

// Where the header's end time lives, patched by Close().
constexpr off_t kEndNsOffset = 32;
// The reader's one buffer; holds the largest record several times.
constexpr size_t kReadBufferBytes = 256u << 10;
static_assert(kReadBufferBytes >= kRecordPrefixBytes + kMaxRecordBodyBytes);
// Bit 15 of a record type: readers that do not know the type skip it.
constexpr uint16_t kOptionalRecordBit = 0x8000;

// Fixed parts of the record bodies (see RecordType).
constexpr uint32_t kSyscallFixedBytes = 65;
constexpr uint32_t kProcessFixedBytes = 26;
constexpr uint32_t kDropsBytes = 24;
constexpr uint32_t kCountersBytes = 56;
constexpr uint32_t kCountersV1Bytes = 40;  // without `foreign`
// A TLS data record without frames or payload (version 3 on), and each
// frame header's bytes.
constexpr uint32_t kTlsDataFixedBytes = 51;
constexpr uint32_t kTlsFrameBytes = 10;
static_assert(kTlsDataFixedBytes + kTlsFrameBytes * TlsDataEvent::kMaxFrames +
                  kMaxPayloadBytes <=
              kMaxRecordBodyBytes);
// Bytes of a syscall event's TLS block: u8 flags, u8 count, count × {u8
// type, u16 length} (format version 2 on).
constexpr uint32_t TlsBlockBytes(uint8_t count) { return 2u + 3u * count; }
constexpr uint32_t kEndBytes = 16;
static_assert(kSyscallFixedBytes + 32 + TlsBlockBytes(TlsRecords::kMax) + 4 +
                  kMaxPayloadBytes <=
              kMaxRecordBodyBytes);
static_assert(kProcessFixedBytes + kMaxCommBytes <= kMaxRecordBodyBytes);

// Smallest on-disk size of one process-table entry (two empty strings).
constexpr size_t kProcessInfoMinBytes = 4 + 4 + 8 + 4 + 4;

// Little-endian stores; each returns the position after what it wrote.
inline uint8_t* PutU8(uint8_t* p, uint8_t v) {
  p[0] = v;
  return p + 1;
}
inline uint8_t* PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  return p + 2;
}
inline uint8_t* PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
  return p + 4;
}
inline uint8_t* PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
  return p + 8;
}
inline uint8_t* PutBytes(uint8_t* p, const void* data, size_t n) {
  if (n != 0) std::memcpy(p, data, n);
  return p + n;
}

// Little-endian loads.
inline uint16_t GetU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Appends little-endian values to a growing byte string (header only).
class HeaderBuilder {
 public:
  void U32(uint32_t v) {
    uint8_t b[4];
    PutU32(b, v);
    out_.append(reinterpret_cast<char*>(b), 4);
  }
  void U64(uint64_t v) {
    uint8_t b[8];
    PutU64(b, v);
    out_.append(reinterpret_cast<char*>(b), 8);
  }
  void Raw(std::string_view s) { out_.append(s); }
  // False when the string alone would exceed the header limit.
  bool Str(std::string_view s) {
    if (s.size() > kMaxCaptureHeaderBytes) return false;
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
    return true;
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

// Reads little-endian values in the order the writer's Put* calls stored
// them, moving on as it goes. Unchecked: the caller first makes sure the
// bytes are there (a record's length against what its type needs), as the
// writer reserves a record's bytes before it puts them.
class ByteCursor {
 public:
  ByteCursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

  uint8_t U8() { return data_[pos_++]; }
  uint16_t U16() { return Take(GetU16(data_ + pos_), 2); }
  uint32_t U32() { return Take(GetU32(data_ + pos_), 4); }
  uint64_t U64() { return Take(GetU64(data_ + pos_), 8); }
  // The next `n` bytes, in place.
  const uint8_t* Bytes(size_t n) { return Take(data_ + pos_, n); }
  // The next `n` bytes as a string.
  std::string String(size_t n) {
    return std::string(reinterpret_cast<const char*>(Bytes(n)), n);
  }
  void Skip(size_t n) { pos_ += n; }

 private:
  template <typename T>
  T Take(T value, size_t n) {
    pos_ += n;
    return value;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Reads the fields of a header held fully in memory; every read is checked
// against the header's end, and a field that does not fit is named.
class HeaderCursor {
 public:
  HeaderCursor(const std::vector<uint8_t>& bytes, size_t pos)
      : bytes_(bytes.data(), bytes.size()), size_(bytes.size()) {
    bytes_.Skip(pos);
  }

  size_t pos() const { return bytes_.pos(); }
  size_t left() const { return bytes_.left(); }

  // OK when `n` more bytes of `field` are in the header.
  absl::Status Need(size_t n, std::string_view field) const {
    if (left() >= n) return absl::OkStatus();
    return absl::DataLossError(absl::StrFormat(
        "corrupt header: %s at byte %d needs %d bytes, but the header ends "
        "at byte %d",
        field, pos(), n, size_));
  }
  absl::StatusOr<uint32_t> U32(std::string_view field) {
    RETURN_IF_ERROR(Need(4, field));
    return bytes_.U32();
  }
  absl::StatusOr<uint64_t> U64(std::string_view field) {
    RETURN_IF_ERROR(Need(8, field));
    return bytes_.U64();
  }
  absl::StatusOr<std::string> Str(std::string_view field) {
    const size_t at = pos();
    ASSIGN_OR_RETURN(const uint32_t len, U32(field));
    if (left() < len) {
      return absl::DataLossError(absl::StrFormat(
          "corrupt header: %s length %u at byte %d runs past the end of the "
          "header at byte %d",
          field, len, at, size_));
    }
    return bytes_.String(len);
  }

 private:
  ByteCursor bytes_;
  size_t size_;
};

bool ValidSyscall(Syscall s) {
  const auto v = static_cast<uint16_t>(s);
  return v >= 1 && v < kSyscallMax;
}

bool ValidOp(ProcessEvent::Op op) {
  const auto v = static_cast<uint16_t>(op);
  return v >= static_cast<uint16_t>(ProcessEvent::Op::kFork) &&
         v <= static_cast<uint16_t>(ProcessEvent::Op::kLeave);
}

// Bytes of each address to store: up to the last non-zero byte of either.
uint8_t UsedAddressBytes(const SocketId& s) {
  for (int n = 16; n > 0; --n) {
    if (s.local_addr[n - 1] != 0 || s.remote_addr[n - 1] != 0) {
      return static_cast<uint8_t>(n);
    }
  }
  return 0;
}

// Writes all of `data`, retrying short writes and EINTR.
absl::Status WriteAll(int fd, const uint8_t* data, size_t n,
                      const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(
          errno, absl::StrFormat("write capture file %s", path));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

// A record type in messages, with its article: "a syscall event".
std::string_view RecordName(uint16_t type) {
  switch (static_cast<RecordType>(type)) {
    case RecordType::kSyscallEvent:
      return "a syscall event";
    case RecordType::kProcessEvent:
      return "a process event";
    case RecordType::kDrops:
      return "a drop notice";
    case RecordType::kCounters:
      return "a counters record";
    case RecordType::kEnd:
      return "an end record";
    case RecordType::kTlsData:
      return "a TLS data record";
  }
  return "an optional record";
}

// The header's fields after its 16-byte prefix, read in the order
// CaptureWriter::Create built them. `bytes` is the whole header, at least
// kCaptureFixedHeaderBytes long.
absl::Status ParseHeader(const std::vector<uint8_t>& bytes,
                         CaptureHeader* header) {
  HeaderCursor c(bytes, 16);
  ASSIGN_OR_RETURN(const uint64_t mono_to_wall_ns, c.U64("clock offset"));
  header->mono_to_wall_ns = static_cast<int64_t>(mono_to_wall_ns);
  ASSIGN_OR_RETURN(header->start_mono_ns, c.U64("start time"));
  ASSIGN_OR_RETURN(header->end_mono_ns, c.U64("end time"));
  ASSIGN_OR_RETURN(header->payload_capture_bytes,
                   c.U32("payload capture bytes"));
  // Flags: none defined in version 1.
  RETURN_IF_ERROR(c.U32("flags").status());

  ASSIGN_OR_RETURN(header->host, c.Str("host name"));
  ASSIGN_OR_RETURN(header->kernel_release, c.Str("kernel release"));
  ASSIGN_OR_RETURN(header->reqcost_version, c.Str("reqcost version"));

  size_t at = c.pos();
  ASSIGN_OR_RETURN(const uint32_t argc, c.U32("command line argument count"));
  if (argc > c.left() / 4) {
    return absl::DataLossError(absl::StrFormat(
        "corrupt header: command line argument count %u at byte %d does not "
        "fit in the %d bytes left in the header",
        argc, at, c.left()));
  }
  header->command_line.resize(argc);
  for (std::string& arg : header->command_line) {
    ASSIGN_OR_RETURN(arg, c.Str("command line argument"));
  }

  at = c.pos();
  ASSIGN_OR_RETURN(const uint32_t nproc, c.U32("process count"));
  if (nproc > c.left() / kProcessInfoMinBytes) {
    return absl::DataLossError(absl::StrFormat(
        "corrupt header: process count %u at byte %d does not fit in the %d "
        "bytes left in the header",
        nproc, at, c.left()));
  }
  header->processes.resize(nproc);
  for (ProcessInfo& proc : header->processes) {
    ASSIGN_OR_RETURN(proc.pid, c.U32("process pid"));
    ASSIGN_OR_RETURN(proc.ppid, c.U32("process ppid"));
    ASSIGN_OR_RETURN(proc.start_ns, c.U64("process start time"));
    ASSIGN_OR_RETURN(proc.comm, c.Str("process comm"));
    ASSIGN_OR_RETURN(proc.exe, c.Str("process exe"));
  }
  // Bytes after the process table belong to later format additions.
  return absl::OkStatus();
}

// The smallest body a record of `type` can have; 0 for an optional record.
// DataLoss for a type that is neither known nor optional.
absl::StatusOr<uint32_t> MinBodyBytes(uint16_t type, uint64_t at) {
  switch (static_cast<RecordType>(type)) {
    case RecordType::kSyscallEvent:
      return kSyscallFixedBytes;
    case RecordType::kProcessEvent:
      return kProcessFixedBytes;
    case RecordType::kDrops:
      return kDropsBytes;
    case RecordType::kCounters:
      return kCountersV1Bytes;
    case RecordType::kEnd:
      return kEndBytes;
    case RecordType::kTlsData:
      return kTlsDataFixedBytes;
  }
  if ((type & kOptionalRecordBit) == 0) {
    return absl::DataLossError(
        absl::StrFormat("unknown record type %u at byte %d", type, at));
  }
  return 0;
}

// A syscall event's body, read as CaptureWriter::Write(SyscallEvent) put it.
// The body holds at least kSyscallFixedBytes; `at` is the record's offset.
absl::StatusOr<SyscallEvent> ParseSyscall(ByteCursor b, uint64_t at,
                                          uint32_t version) {
  const size_t len = b.left();
  SyscallEvent e;
  const uint16_t syscall = b.U16();
  if (!ValidSyscall(static_cast<Syscall>(syscall)) ||
      (version < 4 && syscall == static_cast<uint16_t>(Syscall::kSocketpair))) {
    return absl::DataLossError(absl::StrFormat(
        "syscall event at byte %d: unknown syscall %u", at, syscall));
  }
  e.syscall = static_cast<Syscall>(syscall);
  e.flags = b.U16();
  e.tgid = b.U32();
  e.tid = b.U32();
  e.fd = static_cast<int32_t>(b.U32());
  e.ret = static_cast<int64_t>(b.U64());
  e.enter_ns = b.U64();
  e.exit_ns = b.U64();
  e.sock.family = b.U16();
  e.sock.type = b.U16();
  e.sock.sock = b.U64();
  e.sock.peer = b.U64();
  e.sock.local_port = b.U16();
  e.sock.remote_port = b.U16();
  const uint8_t addr_len = b.U8();
  if (addr_len > 16) {
    return absl::DataLossError(absl::StrFormat(
        "syscall event at byte %d: address length %u exceeds 16", at,
        addr_len));
  }
  if (b.left() < 2u * addr_len) {
    return absl::DataLossError(absl::StrFormat(
        "record length %u too short for a syscall event with %u-byte "
        "addresses at byte %d (minimum %u)",
        len, addr_len, at, kSyscallFixedBytes + 2u * addr_len));
  }
  std::memcpy(e.sock.local_addr.data(), b.Bytes(addr_len), addr_len);
  std::memcpy(e.sock.remote_addr.data(), b.Bytes(addr_len), addr_len);
  if (version >= 2) {
    // The TLS block (version 1 files have none).
    auto misfit = [&](uint8_t count) {
      return absl::DataLossError(absl::StrFormat(
          "syscall event at byte %d: TLS block of %u records does not fit "
          "its %u-byte record",
          at, count, len));
    };
    if (b.left() < 2) return misfit(0);
    e.tls.flags = b.U8();
    const uint8_t count = b.U8();
    if (count > TlsRecords::kMax || b.left() < 3u * count) return misfit(count);
    e.tls.count = count;
    for (int i = 0; i < count; ++i) {
      e.tls.type[i] = b.U8();
      e.tls.length[i] = b.U16();
    }
  }
  if (version >= 3 && (e.flags & SyscallEvent::kTcpSeq) != 0) {
    if (b.left() < 4) {
      return absl::DataLossError(absl::StrFormat(
          "syscall event at byte %d: its TCP sequence number does not fit "
          "its %u-byte record",
          at, len));
    }
    e.tcp_seq = b.U32();
  } else {
    // Versions before 3 had no number: the flag bit meant nothing there.
    e.flags &= ~SyscallEvent::kTcpSeq;
  }
  e.payload = b.String(b.left());
  return e;
}

// A process event's body, read as CaptureWriter::Write(ProcessEvent) put it.
// The body holds at least kProcessFixedBytes.
absl::StatusOr<ProcessEvent> ParseProcess(ByteCursor b, uint64_t at) {
  ProcessEvent e;
  const uint16_t op = b.U16();
  if (!ValidOp(static_cast<ProcessEvent::Op>(op))) {
    return absl::DataLossError(
        absl::StrFormat("process event at byte %d: unknown op %u", at, op));
  }
  e.op = static_cast<ProcessEvent::Op>(op);
  e.tgid = b.U32();
  e.parent_tgid = b.U32();
  e.ts_ns = b.U64();
  e.start_ns = b.U64();
  e.comm = b.String(b.left());
  return e;
}

// A drop notice's body, as CaptureWriter::WriteDrops put it.
DropNotice ParseDrops(ByteCursor b) {
  DropNotice d;
  d.from_ns = b.U64();
  d.to_ns = b.U64();
  d.count = b.U64();
  return d;
}

// A counters record's body, as CaptureWriter::WriteCounters put it; version
// 1 bodies end before `foreign`.
CountersSnapshot ParseCounters(ByteCursor b) {
  CountersSnapshot c;
  c.at_ns = b.U64();
  c.counters.emitted = b.U64();
  c.counters.dropped = b.U64();
  c.counters.unpaired = b.U64();
  c.counters.enter_lost = b.U64();
  if (b.left() >= 8) c.counters.foreign = b.U64();
  if (b.left() >= 8) c.counters.tls_calls = b.U64();
  return c;
}

bool ValidTlsOp(TlsDataEvent::Op op) {
  const auto v = static_cast<uint16_t>(op);
  return v >= static_cast<uint16_t>(TlsDataEvent::Op::kRead) &&
         v <= static_cast<uint16_t>(TlsDataEvent::Op::kSyscallWrite);
}

// A TLS data record's body, read as CaptureWriter::Write(TlsDataEvent) put
// it. The body holds at least kTlsDataFixedBytes.
absl::StatusOr<TlsDataEvent> ParseTlsData(ByteCursor b, uint64_t at) {
  const size_t len = b.left();
  TlsDataEvent e;
  const uint16_t op = b.U16();
  if (!ValidTlsOp(static_cast<TlsDataEvent::Op>(op))) {
    return absl::DataLossError(absl::StrFormat(
        "TLS data record at byte %d: unknown op %u", at, op));
  }
  e.op = static_cast<TlsDataEvent::Op>(op);
  e.flags = b.U16();
  e.tgid = b.U32();
  e.tid = b.U32();
  e.enter_ns = b.U64();
  e.exit_ns = b.U64();
  e.ssl = b.U64();
  e.bytes = static_cast<int64_t>(b.U64());
  e.fd = static_cast<int32_t>(b.U32());
  e.frames_seen = b.U16();
  const uint8_t count = b.U8();
  if (count > TlsDataEvent::kMaxFrames || b.left() < kTlsFrameBytes * count) {
    return absl::DataLossError(absl::StrFormat(
        "TLS data record at byte %d: %u frame headers do not fit its %u-byte "
        "record (at most %d)",
        at, count, len, TlsDataEvent::kMaxFrames));
  }
  e.frames.resize(count);
  for (H2FrameHeader& f : e.frames) {
    f.length = b.U32();
    f.stream_id = b.U32();
    f.type = b.U8();
    f.flags = b.U8();
  }
  e.payload = b.String(b.left());
  return e;
}

// An end record's body, as CaptureWriter::Close put it.
CaptureEnd ParseEnd(ByteCursor b) {
  CaptureEnd end;
  end.end_ns = b.U64();
  end.records = b.U64();
  return end;
}

}  // namespace

bool operator==(const CaptureHeader& a, const CaptureHeader& b) {
  return a.mono_to_wall_ns == b.mono_to_wall_ns &&
         a.start_mono_ns == b.start_mono_ns && a.end_mono_ns == b.end_mono_ns &&
         a.host == b.host && a.kernel_release == b.kernel_release &&
         a.reqcost_version == b.reqcost_version &&
         a.payload_capture_bytes == b.payload_capture_bytes &&
         a.command_line == b.command_line && a.processes == b.processes;
}

// ---------------------------------------------------------------- writer

CaptureWriter::CaptureWriter(int fd, std::string path, size_t buffer_bytes,
                             bool sync)
    : fd_(fd),
      path_(std::move(path)),
      buf_(new uint8_t[buffer_bytes]),
      capacity_(buffer_bytes),
      sync_on_close_(sync) {}

CaptureWriter::CaptureWriter(CaptureWriter&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      buf_(std::move(other.buf_)),
      capacity_(std::exchange(other.capacity_, 0)),
      used_(std::exchange(other.used_, 0)),
      file_bytes_(other.file_bytes_),
      records_(other.records_),
      sync_on_close_(other.sync_on_close_),
      closed_(std::exchange(other.closed_, true)),
      error_(std::move(other.error_)),
      keep_tls_payload_(other.keep_tls_payload_) {}

CaptureWriter& CaptureWriter::operator=(CaptureWriter&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    buf_ = std::move(other.buf_);
    capacity_ = std::exchange(other.capacity_, 0);
    used_ = std::exchange(other.used_, 0);
    file_bytes_ = other.file_bytes_;
    records_ = other.records_;
    sync_on_close_ = other.sync_on_close_;
    closed_ = std::exchange(other.closed_, true);
    error_ = std::move(other.error_);
    keep_tls_payload_ = other.keep_tls_payload_;
  }
  return *this;
}

CaptureWriter::~CaptureWriter() { Release(); }

void CaptureWriter::Release() {
  if (fd_ >= 0) {
    if (error_.ok()) (void)FlushBuffer();  // no end record: reads as cut short
    ::close(fd_);
    fd_ = -1;
  }
  closed_ = true;
}

absl::StatusOr<CaptureWriter> CaptureWriter::Create(
    std::string_view path, const CaptureHeader& header) {
  return Create(path, header, Options());
}

absl::StatusOr<CaptureWriter> CaptureWriter::Create(std::string_view path,
                                                    const CaptureHeader& header,
                                                    const Options& options) {
  const std::string p(path);
  if (p.empty()) {
    return absl::InvalidArgumentError("capture file path is empty");
  }

  HeaderBuilder h;
  h.Raw(kCaptureMagic);
  h.U32(kCaptureFormatVersion);
  h.U32(0);  // header length, patched below
  h.U64(static_cast<uint64_t>(header.mono_to_wall_ns));
  h.U64(header.start_mono_ns);
  h.U64(0);  // end time: Close() patches it
  h.U32(header.payload_capture_bytes);
  h.U32(0);  // flags
  bool fits = h.Str(header.host) && h.Str(header.kernel_release) &&
              h.Str(header.reqcost_version);
  if (fits) {
    h.U32(static_cast<uint32_t>(
        std::min<size_t>(header.command_line.size(), UINT32_MAX)));
    for (const std::string& arg : header.command_line) {
      if (!h.Str(arg) || h.bytes().size() > kMaxCaptureHeaderBytes) {
        fits = false;
        break;
      }
    }
  }
  if (fits) {
    h.U32(static_cast<uint32_t>(
        std::min<size_t>(header.processes.size(), UINT32_MAX)));
    for (const ProcessInfo& proc : header.processes) {
      h.U32(proc.pid);
      h.U32(proc.ppid);
      h.U64(proc.start_ns);
      if (!h.Str(proc.comm) || !h.Str(proc.exe) ||
          h.bytes().size() > kMaxCaptureHeaderBytes) {
        fits = false;
        break;
      }
    }
  }
  std::string& bytes = h.bytes();
  if (!fits || bytes.size() > kMaxCaptureHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "capture header for %s is over the limit of %u bytes (%d processes, "
        "%d command line arguments)",
        p, kMaxCaptureHeaderBytes, header.processes.size(),
        header.command_line.size()));
  }
  PutU32(reinterpret_cast<uint8_t*>(bytes.data()) + 12,
         static_cast<uint32_t>(bytes.size()));

  if (options.overwrite && ::unlink(p.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(
        errno, absl::StrFormat("remove old capture file %s", p));
  }
  const int fd =
      ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
             S_IRUSR | S_IWUSR);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "capture file %s already exists; remove it or choose another path",
          p));
    }
    return absl::ErrnoToStatus(errno,
                               absl::StrFormat("create capture file %s", p));
  }
  // The umask may have taken bits away; captures may hold payload bytes, so
  // the owner alone reads them, whatever the umask.
  if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
    absl::Status s = absl::ErrnoToStatus(
        errno, absl::StrFormat("set mode 0600 on capture file %s", p));
    ::close(fd);
    ::unlink(p.c_str());
    return s;
  }
  const size_t capacity = std::max<size_t>(
      options.buffer_bytes, 2 * (kRecordPrefixBytes + kMaxRecordBodyBytes));
  CaptureWriter writer(fd, p, capacity, options.sync_on_close);
  writer.keep_tls_payload_ = header.payload_capture_bytes > 0;
  if (absl::Status s = WriteAll(
          fd, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), p);
      !s.ok()) {
    writer.error_ = s;
    writer.Release();
    ::unlink(p.c_str());
    return s;
  }
  writer.file_bytes_ = bytes.size();
  return writer;
}

absl::Status CaptureWriter::CheckWritable() const {
  if (!error_.ok()) return error_;
  if (closed_ || fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("capture file %s is already closed", path_));
  }
  return absl::OkStatus();
}

absl::Status CaptureWriter::FlushBuffer() {
  if (used_ == 0) return absl::OkStatus();
  absl::Status s = WriteAll(fd_, buf_.get(), used_, path_);
  if (!s.ok()) {
    error_ = s;
    return s;
  }
  file_bytes_ += used_;
  used_ = 0;
  return absl::OkStatus();
}

uint8_t* CaptureWriter::Reserve(size_t record_bytes) {
  if (capacity_ - used_ < record_bytes && !FlushBuffer().ok()) return nullptr;
  return buf_.get() + used_;
}

absl::Status CaptureWriter::Write(const SyscallEvent& e) {
  RETURN_IF_ERROR(CheckWritable());
  if (!ValidSyscall(e.syscall)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "syscall event with unknown syscall %d not written to %s",
        static_cast<uint16_t>(e.syscall), path_));
  }
  if (e.payload.size() > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "syscall event payload of %d bytes is over the limit of %d bytes; not "
        "written to %s",
        e.payload.size(), kMaxPayloadBytes, path_));
  }
  const uint8_t addr_len = UsedAddressBytes(e.sock);
  const uint8_t tls_count = std::min<uint8_t>(e.tls.count, TlsRecords::kMax);
  const bool has_seq = (e.flags & SyscallEvent::kTcpSeq) != 0;
  const uint32_t body = kSyscallFixedBytes + 2u * addr_len +
                        TlsBlockBytes(tls_count) + (has_seq ? 4u : 0u) +
                        static_cast<uint32_t>(e.payload.size());
  uint8_t* p = Reserve(kRecordPrefixBytes + body);
  if (p == nullptr) return error_;
  p = PutU16(p, static_cast<uint16_t>(RecordType::kSyscallEvent));
  p = PutU16(p, 0);
  p = PutU32(p, body);
  p = PutU16(p, static_cast<uint16_t>(e.syscall));
  p = PutU16(p, e.flags);
  p = PutU32(p, e.tgid);
  p = PutU32(p, e.tid);
  p = PutU32(p, static_cast<uint32_t>(e.fd));
  p = PutU64(p, static_cast<uint64_t>(e.ret));
  p = PutU64(p, e.enter_ns);
  p = PutU64(p, e.exit_ns);
  p = PutU16(p, e.sock.family);
  p = PutU16(p, e.sock.type);
  p = PutU64(p, e.sock.sock);
  p = PutU64(p, e.sock.peer);
  p = PutU16(p, e.sock.local_port);
  p = PutU16(p, e.sock.remote_port);
  p = PutU8(p, addr_len);
  p = PutBytes(p, e.sock.local_addr.data(), addr_len);
  p = PutBytes(p, e.sock.remote_addr.data(), addr_len);
  p = PutU8(p, e.tls.flags);
  p = PutU8(p, tls_count);
  for (int i = 0; i < tls_count; ++i) {
    p = PutU8(p, e.tls.type[i]);
    p = PutU16(p, e.tls.length[i]);
  }
  if (has_seq) p = PutU32(p, e.tcp_seq);
  PutBytes(p, e.payload.data(), e.payload.size());
  used_ += kRecordPrefixBytes + body;
  ++records_;
  return absl::OkStatus();
}

absl::Status CaptureWriter::Write(const ProcessEvent& e) {
  RETURN_IF_ERROR(CheckWritable());
  if (!ValidOp(e.op)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("process event with unknown op %d not written to %s",
                        static_cast<uint16_t>(e.op), path_));
  }
  if (e.comm.size() > kMaxCommBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "process event comm of %d bytes is over the limit of %d bytes; not "
        "written to %s",
        e.comm.size(), kMaxCommBytes, path_));
  }
  const uint32_t body =
      kProcessFixedBytes + static_cast<uint32_t>(e.comm.size());
  uint8_t* p = Reserve(kRecordPrefixBytes + body);
  if (p == nullptr) return error_;
  p = PutU16(p, static_cast<uint16_t>(RecordType::kProcessEvent));
  p = PutU16(p, 0);
  p = PutU32(p, body);
  p = PutU16(p, static_cast<uint16_t>(e.op));
  p = PutU32(p, e.tgid);
  p = PutU32(p, e.parent_tgid);
  p = PutU64(p, e.ts_ns);
  p = PutU64(p, e.start_ns);
  PutBytes(p, e.comm.data(), e.comm.size());
  used_ += kRecordPrefixBytes + body;
  ++records_;
  return absl::OkStatus();
}

absl::Status CaptureWriter::Write(const TlsDataEvent& e) {
  RETURN_IF_ERROR(CheckWritable());
  if (!ValidTlsOp(e.op)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("TLS data event with unknown op %d not written to %s",
                        static_cast<uint16_t>(e.op), path_));
  }
  if (e.frames.size() > TlsDataEvent::kMaxFrames) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TLS data event with %d frame headers (at most %d) not written to %s",
        e.frames.size(), TlsDataEvent::kMaxFrames, path_));
  }
  const size_t payload = keep_tls_payload_ ? e.payload.size() : 0;
  if (payload > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TLS data event payload of %d bytes is over the limit of %d bytes; "
        "not written to %s",
        payload, kMaxPayloadBytes, path_));
  }
  const auto count = static_cast<uint8_t>(e.frames.size());
  const uint32_t body = kTlsDataFixedBytes + kTlsFrameBytes * count +
                        static_cast<uint32_t>(payload);
  uint8_t* p = Reserve(kRecordPrefixBytes + body);
  if (p == nullptr) return error_;
  p = PutU16(p, static_cast<uint16_t>(RecordType::kTlsData));
  p = PutU16(p, 0);
  p = PutU32(p, body);
  p = PutU16(p, static_cast<uint16_t>(e.op));
  p = PutU16(p, e.flags);
  p = PutU32(p, e.tgid);
  p = PutU32(p, e.tid);
  p = PutU64(p, e.enter_ns);
  p = PutU64(p, e.exit_ns);
  p = PutU64(p, e.ssl);
  p = PutU64(p, static_cast<uint64_t>(e.bytes));
  p = PutU32(p, static_cast<uint32_t>(e.fd));
  p = PutU16(p, e.frames_seen);
  p = PutU8(p, count);
  for (const H2FrameHeader& f : e.frames) {
    p = PutU32(p, f.length);
    p = PutU32(p, f.stream_id);
    p = PutU8(p, f.type);
    p = PutU8(p, f.flags);
  }
  PutBytes(p, e.payload.data(), payload);
  used_ += kRecordPrefixBytes + body;
  ++records_;
  return absl::OkStatus();
}

absl::Status CaptureWriter::WriteDrops(uint64_t from_ns, uint64_t to_ns,
                                       uint64_t count) {
  RETURN_IF_ERROR(CheckWritable());
  uint8_t* p = Reserve(kRecordPrefixBytes + kDropsBytes);
  if (p == nullptr) return error_;
  p = PutU16(p, static_cast<uint16_t>(RecordType::kDrops));
  p = PutU16(p, 0);
  p = PutU32(p, kDropsBytes);
  p = PutU64(p, from_ns);
  p = PutU64(p, to_ns);
  PutU64(p, count);
  used_ += kRecordPrefixBytes + kDropsBytes;
  ++records_;
  return absl::OkStatus();
}

absl::Status CaptureWriter::WriteCounters(uint64_t at_ns,
                                          const KernelCounters& c) {
  RETURN_IF_ERROR(CheckWritable());
  uint8_t* p = Reserve(kRecordPrefixBytes + kCountersBytes);
  if (p == nullptr) return error_;
  p = PutU16(p, static_cast<uint16_t>(RecordType::kCounters));
  p = PutU16(p, 0);
  p = PutU32(p, kCountersBytes);
  p = PutU64(p, at_ns);
  p = PutU64(p, c.emitted);
  p = PutU64(p, c.dropped);
  p = PutU64(p, c.unpaired);
  p = PutU64(p, c.enter_lost);
  p = PutU64(p, c.foreign);
  PutU64(p, c.tls_calls);
  used_ += kRecordPrefixBytes + kCountersBytes;
  ++records_;
  return absl::OkStatus();
}

absl::Status CaptureWriter::Flush() {
  RETURN_IF_ERROR(CheckWritable());
  return FlushBuffer();
}

absl::Status CaptureWriter::Close(uint64_t end_ns,
                                  const KernelCounters& final_counters) {
  RETURN_IF_ERROR(CheckWritable());
  absl::Status status = WriteCounters(end_ns, final_counters);
  if (status.ok()) {
    uint8_t* p = Reserve(kRecordPrefixBytes + kEndBytes);
    if (p == nullptr) {
      status = error_;
    } else {
      p = PutU16(p, static_cast<uint16_t>(RecordType::kEnd));
      p = PutU16(p, 0);
      p = PutU32(p, kEndBytes);
      p = PutU64(p, end_ns);
      PutU64(p, records_);
      used_ += kRecordPrefixBytes + kEndBytes;
      status = FlushBuffer();
    }
  }
  if (status.ok()) {
    uint8_t end[8];
    PutU64(end, end_ns);
    ssize_t w;
    do {
      w = ::pwrite(fd_, end, sizeof(end), kEndNsOffset);
    } while (w < 0 && errno == EINTR);
    if (w != static_cast<ssize_t>(sizeof(end))) {
      status =
          w < 0
              ? absl::ErrnoToStatus(
                    errno, absl::StrFormat("record end time in capture file %s",
                                           path_))
              : absl::DataLossError(absl::StrFormat(
                    "record end time in capture file %s: short write", path_));
    }
  }
  if (status.ok() && sync_on_close_ && ::fsync(fd_) != 0) {
    status = absl::ErrnoToStatus(
        errno, absl::StrFormat("fsync capture file %s", path_));
  }
  const int fd = std::exchange(fd_, -1);
  closed_ = true;
  if (::close(fd) != 0 && status.ok()) {
    status = absl::ErrnoToStatus(
        errno, absl::StrFormat("close capture file %s", path_));
  }
  if (!status.ok()) error_ = status;
  return status;
}

// ---------------------------------------------------------------- reader

CaptureReader::CaptureReader(int fd, std::string name)
    : fd_(fd), name_(std::move(name)), buf_(new uint8_t[kReadBufferBytes]) {}

CaptureReader::CaptureReader(CaptureReader&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      name_(std::move(other.name_)),
      header_(std::move(other.header_)),
      version_(other.version_),
      buf_(std::move(other.buf_)),
      begin_(std::exchange(other.begin_, 0)),
      end_(std::exchange(other.end_, 0)),
      offset_(other.offset_),
      records_(other.records_),
      eof_(other.eof_),
      done_(other.done_),
      end_record_(other.end_record_),
      error_(std::move(other.error_)) {
  other.error_ = absl::FailedPreconditionError("capture reader was moved from");
}

CaptureReader& CaptureReader::operator=(CaptureReader&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    name_ = std::move(other.name_);
    header_ = std::move(other.header_);
    version_ = other.version_;
    buf_ = std::move(other.buf_);
    begin_ = std::exchange(other.begin_, 0);
    end_ = std::exchange(other.end_, 0);
    offset_ = other.offset_;
    records_ = other.records_;
    eof_ = other.eof_;
    done_ = other.done_;
    end_record_ = other.end_record_;
    error_ = std::move(other.error_);
    other.error_ =
        absl::FailedPreconditionError("capture reader was moved from");
  }
  return *this;
}

CaptureReader::~CaptureReader() { Release(); }

void CaptureReader::Release() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

absl::StatusOr<CaptureReader> CaptureReader::Open(std::string_view path) {
  const std::string p(path);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrFormat("open capture file %s", p));
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is a directory, not a reqcost capture file", p));
  }
  return FromFd(fd, p);
}

absl::StatusOr<CaptureReader> CaptureReader::FromFd(int fd,
                                                    std::string_view name) {
  CaptureReader reader(fd, std::string(name));
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: invalid file descriptor %d", name, fd));
  }
  RETURN_IF_ERROR(reader.ReadHeader());
  return reader;
}

size_t CaptureReader::Fill(size_t want) {
  want = std::min(want, kReadBufferBytes);
  if (end_ - begin_ >= want || eof_ || !error_.ok()) return end_ - begin_;
  if (begin_ > 0) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  while (end_ < want) {
    ssize_t n = ::read(fd_, buf_.get() + end_, kReadBufferBytes - end_);
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = absl::ErrnoToStatus(
          errno, absl::StrFormat("%s: read at byte %d", name_, offset_ + end_));
      break;
    }
    if (n == 0) {
      eof_ = true;
      break;
    }
    end_ += static_cast<size_t>(n);
  }
  return end_ - begin_;
}

absl::Status CaptureReader::Fail(absl::Status status) {
  // An I/O error met while filling outranks what it made the data look like.
  if (error_.ok()) {
    error_ = absl::Status(status.code(),
                          absl::StrCat(name_, ": ", status.message()));
  }
  return error_;
}

absl::Status CaptureReader::ReadHeader() {
  size_t have = Fill(16);
  if (!error_.ok()) return error_;
  if (have == 0) {
    return Fail(
        absl::InvalidArgumentError("empty file, not a reqcost capture file"));
  }
  ByteCursor prefix(buf_.get() + begin_, have);
  const size_t magic_have = std::min<size_t>(have, kCaptureMagic.size());
  if (std::memcmp(prefix.Bytes(magic_have), kCaptureMagic.data(), magic_have) !=
      0) {
    return Fail(absl::InvalidArgumentError(
        "not a reqcost capture file (bad magic at byte 0)"));
  }
  if (have < 16) {
    return Fail(absl::OutOfRangeError(absl::StrFormat(
        "truncated header at byte 0: need 16 bytes, have %d", have)));
  }
  version_ = prefix.U32();
  if (version_ == 0) {
    return Fail(absl::DataLossError(
        "corrupt header: format version 0 at byte 8 is invalid"));
  }
  if (version_ > kCaptureFormatVersion) {
    return Fail(absl::UnimplementedError(absl::StrFormat(
        "capture format version %u is newer than this reqcost (%u); upgrade "
        "reqcost",
        version_, kCaptureFormatVersion)));
  }
  const uint32_t header_len = prefix.U32();
  if (header_len < kCaptureFixedHeaderBytes) {
    return Fail(absl::DataLossError(absl::StrFormat(
        "corrupt header: header length %u at byte 12 is shorter than the "
        "minimum of %u bytes",
        header_len, kCaptureFixedHeaderBytes)));
  }
  if (header_len > kMaxCaptureHeaderBytes) {
    return Fail(absl::DataLossError(absl::StrFormat(
        "corrupt header: header length %u at byte 12 exceeds the limit of %u "
        "bytes",
        header_len, kMaxCaptureHeaderBytes)));
  }

  // Copy the header out of the read buffer; the copy grows only as bytes
  // arrive, so a lying length cannot make us allocate what the file lacks.
  std::vector<uint8_t> bytes;
  while (bytes.size() < header_len) {
    have = Fill(header_len - bytes.size());
    if (!error_.ok()) return error_;
    if (have == 0) {
      return Fail(absl::OutOfRangeError(
          absl::StrFormat("truncated header at byte 0: need %u bytes, have %d",
                          header_len, bytes.size())));
    }
    const size_t take = std::min<size_t>(have, header_len - bytes.size());
    bytes.insert(bytes.end(), buf_.get() + begin_, buf_.get() + begin_ + take);
    begin_ += take;
    offset_ += take;
  }
  if (absl::Status s = ParseHeader(bytes, &header_); !s.ok()) return Fail(s);
  return absl::OkStatus();
}

absl::StatusOr<CaptureRecord> CaptureReader::Next() {
  for (;;) {
    if (!error_.ok()) return error_;
    if (done_) return end_record_;

    // The prefix, as the writer puts it: type, reserved, body length.
    const uint64_t at = offset_;
    size_t have = Fill(kRecordPrefixBytes);
    if (!error_.ok()) return error_;
    if (have == 0) {
      return Fail(absl::OutOfRangeError(absl::StrFormat(
          "no end record: capture was cut short at byte %d after %d records",
          at, records_)));
    }
    if (have < kRecordPrefixBytes) {
      return Fail(absl::OutOfRangeError(
          absl::StrFormat("truncated record at byte %d: need %u bytes, have %d",
                          at, kRecordPrefixBytes, have)));
    }
    ByteCursor prefix(buf_.get() + begin_, kRecordPrefixBytes);
    const uint16_t type = prefix.U16();
    prefix.Skip(2);
    const uint32_t len = prefix.U32();

    absl::StatusOr<uint32_t> min_len = MinBodyBytes(type, at);
    if (!min_len.ok()) return Fail(min_len.status());
    if (len > kMaxRecordBodyBytes) {
      return Fail(absl::DataLossError(absl::StrFormat(
          "record length %u exceeds the limit of %u bytes at byte %d", len,
          kMaxRecordBodyBytes, at)));
    }
    if (len < *min_len) {
      return Fail(absl::DataLossError(absl::StrFormat(
          "record length %u too short for %s at byte %d (minimum %u)", len,
          RecordName(type), at, *min_len)));
    }
    const size_t total = kRecordPrefixBytes + len;
    have = Fill(total);
    if (!error_.ok()) return error_;
    if (have < total) {
      return Fail(absl::OutOfRangeError(
          absl::StrFormat("truncated record at byte %d: need %d bytes, have %d",
                          at, total, have)));
    }
    // The whole record is in the buffer: consume it, then read its body.
    ByteCursor body(buf_.get() + begin_ + kRecordPrefixBytes, len);
    begin_ += total;
    offset_ += total;

    switch (static_cast<RecordType>(type)) {
      case RecordType::kSyscallEvent: {
        absl::StatusOr<SyscallEvent> e = ParseSyscall(body, at, version_);
        if (!e.ok()) return Fail(e.status());
        ++records_;
        return CaptureRecord(*std::move(e));
      }
      case RecordType::kProcessEvent: {
        absl::StatusOr<ProcessEvent> e = ParseProcess(body, at);
        if (!e.ok()) return Fail(e.status());
        ++records_;
        return CaptureRecord(*std::move(e));
      }
      case RecordType::kDrops:
        ++records_;
        return CaptureRecord(ParseDrops(body));
      case RecordType::kCounters:
        ++records_;
        return CaptureRecord(ParseCounters(body));
      case RecordType::kEnd:
        return ReadEnd(ParseEnd(body), at);
      case RecordType::kTlsData: {
        // Older versions have no such record: one there is corrupt.
        if (version_ < 3) {
          return Fail(absl::DataLossError(absl::StrFormat(
              "TLS data record at byte %d in a version %u capture (they "
              "begin with version 3)",
              at, version_)));
        }
        absl::StatusOr<TlsDataEvent> e = ParseTlsData(body, at);
        if (!e.ok()) return Fail(e.status());
        ++records_;
        return CaptureRecord(*std::move(e));
      }
    }
    // An optional record this version does not know: skip it.
    ++records_;
  }
}

absl::StatusOr<CaptureRecord> CaptureReader::ReadEnd(const CaptureEnd& end,
                                                     uint64_t at) {
  if (end.records != records_) {
    return Fail(absl::DataLossError(absl::StrFormat(
        "end record at byte %d counts %d records, but %d precede it", at,
        end.records, records_)));
  }
  // Nothing may follow the end record.
  Fill(1);
  if (!error_.ok()) return error_;
  if (end_ > begin_) {
    return Fail(absl::DataLossError(absl::StrFormat(
        "trailing data at byte %d after the end record", offset_)));
  }
  done_ = true;
  end_record_ = end;
  Release();
  return CaptureRecord(end);
}

absl::StatusOr<Capture> ReadCapture(std::string_view path, ReadMode mode) {
  ASSIGN_OR_RETURN(CaptureReader reader, CaptureReader::Open(path));
  Capture capture;
  capture.header = reader.header();
  for (;;) {
    absl::StatusOr<CaptureRecord> record = reader.Next();
    if (!record.ok()) {
      if (mode == ReadMode::kBestEffort &&
          absl::IsOutOfRange(record.status())) {
        capture.problem = record.status();
        return capture;
      }
      return record.status();
    }
    if (auto* e = std::get_if<SyscallEvent>(&*record)) {
      capture.events.push_back(std::move(*e));
    } else if (auto* pe = std::get_if<ProcessEvent>(&*record)) {
      capture.process_events.push_back(std::move(*pe));
    } else if (auto* d = std::get_if<DropNotice>(&*record)) {
      capture.drops.push_back(*d);
    } else if (auto* c = std::get_if<CountersSnapshot>(&*record)) {
      capture.counters.push_back(*c);
    } else if (auto* t = std::get_if<TlsDataEvent>(&*record)) {
      capture.tls_data.push_back(std::move(*t));
    } else {
      capture.complete = true;
      return capture;
    }
  }
}

}  // namespace reqcost::collector
