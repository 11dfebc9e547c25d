// The reqcost capture file: a versioned, little-endian binary file holding
// what one `reqcost record` saw. A header (magic, format version, clock
// offset, host, kernel, command line, process table at attach) is followed by
// a stream of length-prefixed records (syscall events, process events, drop
// notices, kernel counters) and a closing end record; a file without the end
// record was cut short. Every field is encoded one by one, never by copying a
// struct. The reader checks every length before it reads, caps every
// allocation, and reports each problem with the byte offset where it is.
//
// Layout (all integers little-endian; str = u32 length, then the bytes):
//
//   offset  size  header field
//        0     8  magic "REQCOST\0"
//        8     4  u32 format version (4; 1 to 3 still read)
//       12     4  u32 header length: bytes from offset 0 to the first record
//       16     8  i64 monotonic→wall offset ns (wall = mono + offset)
//       24     8  u64 capture start, CLOCK_MONOTONIC ns
//       32     8  u64 capture end, CLOCK_MONOTONIC ns (0 until Close())
//       40     4  u32 payload capture size (bytes asked per read/write)
//       44     4  u32 flags (reserved, 0)
//       48        str host name, str kernel release, str reqcost version,
//                 u32 argc + argc × str command line,
//                 u32 n + n × {u32 pid, u32 ppid, u64 start_ns, str comm,
//                 str exe} process table; a reader skips any bytes left
//                 before `header length` (room for later additions).
//
//   record: u16 type, u16 reserved (0), u32 body length, body.
//   Types with bit 15 set are optional: a reader that does not know one
//   skips it. Bodies (see RecordType) never exceed kMaxRecordBodyBytes.
#ifndef REQCOST_COLLECTOR_CAPTURE_FILE_H_
#define REQCOST_COLLECTOR_CAPTURE_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "collector/event.h"

namespace reqcost::collector {

// The first 8 bytes of every capture file.
inline constexpr std::string_view kCaptureMagic{"REQCOST\0", 8};
// The format version this build writes and the newest it reads.
// Version 2 added the TLS block of syscall events and counters.foreign;
// version 3 the TLS data records (kTlsData), counters.tls_calls and the TCP
// sequence number of syscall events; version 4 the process op kLeave (a
// process that left the traced cgroups), the TLS data records of a
// cleartext HTTP/2 connection's syscalls (ops 5 and 6, same layout) and
// socketpair events (syscall 17). Version 1 to 3 files still read (1 and 2
// have no TLS data and their events no sequence number; none before 4 has a
// socketpair event).
inline constexpr uint32_t kCaptureFormatVersion = 4;
// Size of the fixed part of the header (magic through flags).
inline constexpr uint32_t kCaptureFixedHeaderBytes = 48;
// Largest header a reader accepts or a writer produces.
inline constexpr uint32_t kMaxCaptureHeaderBytes = 16u << 20;
// Size of a record's type + reserved + length prefix.
inline constexpr uint32_t kRecordPrefixBytes = 8;
// Largest record body a reader accepts or a writer produces.
inline constexpr uint32_t kMaxRecordBodyBytes = 64u << 10;
// Largest payload prefix a writer accepts in one SyscallEvent.
inline constexpr size_t kMaxPayloadBytes = 32u << 10;
// Largest `comm` a writer accepts in one ProcessEvent.
inline constexpr size_t kMaxCommBytes = 4096;

// Record type numbers on disk. Body layouts (little-endian):
//   kSyscallEvent (min 65 bytes): u16 syscall, u16 flags, u32 tgid, u32 tid,
//     i32 fd, i64 ret, u64 enter_ns, u64 exit_ns, u16 family, u16 type,
//     u64 sock, u64 peer, u16 local_port, u16 remote_port, u8 addr_len
//     (0..16), local_addr[addr_len], remote_addr[addr_len], (version 2 on)
//     u8 tls flags, u8 tls count (0..4), count × {u8 type, u16 length},
//     (version 3 on, only when flags has SyscallEvent::kTcpSeq) u32 tcp_seq,
//     payload (the rest). addr_len is the shortest length that keeps every
//     non-zero byte of both addresses (IPv4: ≤ 4, unix: 0); omitted bytes are
//     zero.
//   kProcessEvent (min 26): u16 op, u32 tgid, u32 parent_tgid, u64 ts_ns,
//     u64 start_ns, comm (the rest).
//   kDrops (min 24): u64 from_ns, u64 to_ns, u64 count.
//   kCounters (min 40): u64 at_ns, u64 emitted, u64 dropped, u64 unpaired,
//     u64 enter_lost, (version 2 on) u64 foreign, (version 3 on) u64
//     tls_calls.
//   kTlsData (version 3 on; min 51): u16 op, u16 flags, u32 tgid, u32 tid,
//     u64 enter_ns, u64 exit_ns, u64 ssl, i64 bytes, i32 fd, u16
//     frames_seen, u8 frame count (0..16), count × {u32 length, u32
//     stream_id, u8 type, u8 flags}, payload (the rest: only when the
//     capture was recorded with a payload prefix, else none).
//   kEnd (min 16): u64 end_ns, u64 number of records before this one.
// Fixed-size bodies may grow in later versions: readers ignore extra bytes.
enum class RecordType : uint16_t {
  kSyscallEvent = 1,
  kProcessEvent = 2,
  kDrops = 3,
  kCounters = 4,
  kEnd = 5,
  kTlsData = 6,
};

// What a capture says about itself; written once at Create().
struct CaptureHeader {
  int64_t mono_to_wall_ns = 0;  // wall clock ns = CLOCK_MONOTONIC ns + this
  uint64_t start_mono_ns = 0;   // CLOCK_MONOTONIC when capture started
  uint64_t end_mono_ns = 0;     // CLOCK_MONOTONIC at Close(); 0 if never closed
  std::string host;             // uname nodename
  std::string kernel_release;   // uname release
  std::string reqcost_version;  // version of the reqcost that wrote the file
  uint32_t payload_capture_bytes = 0;     // payload prefix asked; 0: none
  std::vector<std::string> command_line;  // argv of the recording reqcost
  std::vector<ProcessInfo> processes;     // traced processes at attach

  friend bool operator==(const CaptureHeader& a, const CaptureHeader& b);
};

// The kernel lost `count` events between `from_ns` and `to_ns` (monotonic).
struct DropNotice {
  uint64_t from_ns = 0;
  uint64_t to_ns = 0;
  uint64_t count = 0;
  friend bool operator==(const DropNotice& a, const DropNotice& b) {
    return a.from_ns == b.from_ns && a.to_ns == b.to_ns && a.count == b.count;
  }
};

// The kernel side's counters as they were at monotonic time `at_ns`.
struct CountersSnapshot {
  uint64_t at_ns = 0;
  KernelCounters counters;
  friend bool operator==(const CountersSnapshot& a, const CountersSnapshot& b) {
    return a.at_ns == b.at_ns && a.counters.emitted == b.counters.emitted &&
           a.counters.dropped == b.counters.dropped &&
           a.counters.unpaired == b.counters.unpaired &&
           a.counters.enter_lost == b.counters.enter_lost &&
           a.counters.foreign == b.counters.foreign;
  }
};

// The end record: the capture is complete. `records` counts all before it.
struct CaptureEnd {
  uint64_t end_ns = 0;
  uint64_t records = 0;
  friend bool operator==(const CaptureEnd& a, const CaptureEnd& b) {
    return a.end_ns == b.end_ns && a.records == b.records;
  }
};

// One record read from a capture; CaptureEnd marks a complete end of file.
using CaptureRecord = std::variant<SyscallEvent, ProcessEvent, DropNotice,
                                   CountersSnapshot, CaptureEnd, TlsDataEvent>;

// Writes a capture file through one large buffer: no syscall and no heap
// allocation per record. Not thread-safe. After the first I/O error every
// call returns that error. Destroying a writer that was not closed flushes
// what it buffered but writes no end record, so readers see it as cut short.
class CaptureWriter {
 public:
  struct Options {
    // Replace an existing file at the path (unlinked first, never followed
    // if it is a symlink). Without it, an existing path is an error.
    bool overwrite = false;
    // Bytes buffered before a write(2); at least one largest record.
    size_t buffer_bytes = 1u << 20;
    // fsync(2) the file in Close().
    bool sync_on_close = false;
  };

  // Creates `path` (O_CREAT|O_EXCL|O_NOFOLLOW: never an existing file or a
  // symlink), mode 0600 whatever the umask, and writes `header` (its
  // end_mono_ns is ignored: Close() sets it). AlreadyExists if the path
  // exists; InvalidArgument if the header is over kMaxCaptureHeaderBytes.
  static absl::StatusOr<CaptureWriter> Create(std::string_view path,
                                              const CaptureHeader& header);
  // As above, with options.
  static absl::StatusOr<CaptureWriter> Create(std::string_view path,
                                              const CaptureHeader& header,
                                              const Options& options);

  CaptureWriter(CaptureWriter&& other) noexcept;
  CaptureWriter& operator=(CaptureWriter&& other) noexcept;
  CaptureWriter(const CaptureWriter&) = delete;
  CaptureWriter& operator=(const CaptureWriter&) = delete;
  ~CaptureWriter();

  // Appends a syscall event. InvalidArgument for an unknown syscall or a
  // payload over kMaxPayloadBytes (nothing is written then).
  absl::Status Write(const SyscallEvent& event);
  // Appends a process event. InvalidArgument for an unknown op or a comm over
  // kMaxCommBytes.
  absl::Status Write(const ProcessEvent& event);
  // Appends a TLS library call's data: its frame headers, and its payload
  // only when the header asked for a payload prefix (payload_capture_bytes
  // > 0). InvalidArgument for an unknown op, more than
  // TlsDataEvent::kMaxFrames frames or a payload over kMaxPayloadBytes.
  absl::Status Write(const TlsDataEvent& event);
  // Appends a drop notice: the kernel lost `count` events in [from_ns, to_ns].
  absl::Status WriteDrops(uint64_t from_ns, uint64_t to_ns, uint64_t count);
  // Appends a snapshot of the kernel counters taken at monotonic `at_ns`.
  absl::Status WriteCounters(uint64_t at_ns, const KernelCounters& counters);
  // Hands everything buffered to the kernel (write(2), not fsync).
  absl::Status Flush();
  // Appends the final counters and the end record, flushes, records `end_ns`
  // in the header, fsyncs if asked, and closes the file. The writer accepts
  // nothing afterwards.
  absl::Status Close(uint64_t end_ns, const KernelCounters& final_counters);

  // Records appended so far (buffered ones included).
  uint64_t records_written() const { return records_; }
  // Bytes of file appended so far (buffered ones included).
  uint64_t bytes_written() const { return file_bytes_ + used_; }
  // The path given to Create().
  const std::string& path() const { return path_; }

 private:
  CaptureWriter(int fd, std::string path, size_t buffer_bytes, bool sync);
  uint8_t* Reserve(size_t record_bytes);
  absl::Status FlushBuffer();
  absl::Status CheckWritable() const;
  void Release();

  int fd_ = -1;
  std::string path_;
  std::unique_ptr<uint8_t[]> buf_;
  size_t capacity_ = 0;
  size_t used_ = 0;
  uint64_t file_bytes_ = 0;  // bytes handed to the kernel
  uint64_t records_ = 0;
  bool sync_on_close_ = false;
  bool closed_ = false;
  absl::Status error_;  // sticky: the first I/O error
  // A TLS data record's payload is kept only with a payload prefix.
  bool keep_tls_payload_ = false;
};

// Streams a capture file through one fixed-size buffer: memory use does not
// depend on the file's size. Status codes: InvalidArgument (not a capture
// file), Unimplemented (newer format), OutOfRange (file cut short: the
// records read before it are good), DataLoss (corrupt bytes), or an errno
// code for I/O errors. Messages name the file and the byte offset.
class CaptureReader {
 public:
  // Opens `path` and reads and checks its header.
  static absl::StatusOr<CaptureReader> Open(std::string_view path);
  // Takes ownership of `fd` (read from its current position, then closed)
  // and reads and checks the header; `name` is used in messages.
  static absl::StatusOr<CaptureReader> FromFd(int fd, std::string_view name);

  CaptureReader(CaptureReader&& other) noexcept;
  CaptureReader& operator=(CaptureReader&& other) noexcept;
  CaptureReader(const CaptureReader&) = delete;
  CaptureReader& operator=(const CaptureReader&) = delete;
  ~CaptureReader();

  // The header as read; end_mono_ns is 0 if the writer never closed.
  const CaptureHeader& header() const { return header_; }
  // The format version of the file (≤ kCaptureFormatVersion).
  uint32_t format_version() const { return version_; }

  // The next record; CaptureEnd once the end record is read (and on every
  // later call). A file that ends without an end record gives OutOfRange
  // "no end record: capture was cut short ...". After any error, every later
  // call returns the same error.
  absl::StatusOr<CaptureRecord> Next();

  // Byte offset in the file of the next record to read.
  uint64_t offset() const { return offset_; }
  // Records read so far, not counting the end record.
  uint64_t records_read() const { return records_; }

 private:
  CaptureReader(int fd, std::string name);
  absl::Status ReadHeader();
  // Checks the end record read at byte `at` and that nothing follows it.
  absl::StatusOr<CaptureRecord> ReadEnd(const CaptureEnd& end, uint64_t at);
  size_t Fill(size_t want);
  absl::Status Fail(absl::Status status);
  void Release();

  int fd_ = -1;
  std::string name_;
  CaptureHeader header_;
  uint32_t version_ = 0;
  std::unique_ptr<uint8_t[]> buf_;
  size_t begin_ = 0;     // first unread byte in buf_
  size_t end_ = 0;       // one past the last valid byte in buf_
  uint64_t offset_ = 0;  // file offset of buf_[begin_]
  uint64_t records_ = 0;
  bool eof_ = false;
  bool done_ = false;
  CaptureEnd end_record_;
  absl::Status error_;  // sticky
};

// How ReadCapture treats a file that was cut short.
enum class ReadMode {
  kStrict,      // any problem is an error
  kBestEffort,  // a cut-short file gives what was read, with `problem` set
};

// A whole capture in memory.
struct Capture {
  CaptureHeader header;
  std::vector<SyscallEvent> events;
  std::vector<ProcessEvent> process_events;
  std::vector<DropNotice> drops;
  std::vector<CountersSnapshot> counters;
  std::vector<TlsDataEvent> tls_data;  // version 3 on
  bool complete = false;  // the end record was read
  absl::Status problem;   // kBestEffort: why the capture is incomplete
};

// Reads every record of `path`. Corrupt data is always an error; a file cut
// short (OutOfRange) is an error in kStrict mode and, in kBestEffort mode,
// returns the records before the cut with `complete` false and `problem`.
absl::StatusOr<Capture> ReadCapture(std::string_view path,
                                    ReadMode mode = ReadMode::kStrict);

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_CAPTURE_FILE_H_
