// The decoded events that the collector produces and the analyzers consume.
// Plain values: no BPF, no syscalls. Analyzers depend on this header only.
#ifndef REQCOST_COLLECTOR_EVENT_H_
#define REQCOST_COLLECTOR_EVENT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace reqcost {

// The traced syscalls. Values equal bpf/reqcost.h's enum rc_syscall.
enum class Syscall : uint16_t {
  kAccept = 1,
  kAccept4 = 2,
  kConnect = 3,
  kRead = 4,
  kReadv = 5,
  kRecvfrom = 6,
  kRecvmsg = 7,
  kWrite = 8,
  kWritev = 9,
  kSendto = 10,
  kSendmsg = 11,
  kSendfile = 12,
  kClose = 13,
  kShutdown = 14,
  kRecvmmsg = 15,  // seen at the socket layer only
  kSendmmsg = 16,  // seen at the socket layer only
  // A new socket pair: `fd` is its first end, `ret` its second (or -errno),
  // `sock` the first end's identity (its `peer` the second's).
  kSocketpair = 17,
};
inline constexpr uint16_t kSyscallMax = 18;

inline constexpr std::array<std::string_view, kSyscallMax> kSyscallNames = {
    "?",        "accept",  "accept4",  "connect",  "read",    "readv",
    "recvfrom", "recvmsg", "write",    "writev",   "sendto",  "sendmsg",
    "sendfile", "close",   "shutdown", "recvmmsg", "sendmmsg", "socketpair"};

// The name strace would print ("accept4", "sendfile", ...); "?" if unknown.
inline std::string_view SyscallName(Syscall syscall) {
  auto i = static_cast<uint16_t>(syscall);
  return i < kSyscallMax ? kSyscallNames[i] : kSyscallNames[0];
}
// Parses a name printed by SyscallName.
inline std::optional<Syscall> SyscallFromName(std::string_view name) {
  for (uint16_t i = 1; i < kSyscallMax; ++i) {
    if (kSyscallNames[i] == name) return static_cast<Syscall>(i);
  }
  return std::nullopt;
}

inline bool IsAccept(Syscall s) {
  return s == Syscall::kAccept || s == Syscall::kAccept4;
}
// Syscalls that move bytes into the process (ret = bytes read).
inline bool IsRead(Syscall s) {
  return s == Syscall::kRead || s == Syscall::kReadv ||
         s == Syscall::kRecvfrom || s == Syscall::kRecvmsg ||
         s == Syscall::kRecvmmsg;
}
// Syscalls that move bytes out of the process (ret = bytes written).
inline bool IsWrite(Syscall s) {
  return s == Syscall::kWrite || s == Syscall::kWritev ||
         s == Syscall::kSendto || s == Syscall::kSendmsg ||
         s == Syscall::kSendfile || s == Syscall::kSendmmsg;
}

// Who a socket is. `sock` and `peer` are hashed kernel addresses, stable for
// one run: for a connected unix socket, `peer` equals the `sock` of the other
// end. For TCP the addresses and ports say it (host byte order ports; IPv4 in
// the first 4 address bytes); the two ends of a loopback connection mirror.
// The kernel reuses socket addresses: an id names a connection only together
// with its open..close interval.
struct SocketId {
  uint16_t family = 0;  // AF_UNIX, AF_INET, AF_INET6
  uint16_t type = 0;    // SOCK_STREAM, ...
  uint64_t sock = 0;
  uint64_t peer = 0;  // 0: none or not known
  std::array<uint8_t, 16> local_addr{};
  std::array<uint8_t, 16> remote_addr{};
  uint16_t local_port = 0;
  uint16_t remote_port = 0;

  friend bool operator==(const SocketId& a, const SocketId& b) {
    return std::tie(a.family, a.type, a.sock, a.peer, a.local_addr,
                    a.remote_addr, a.local_port, a.remote_port) ==
           std::tie(b.family, b.type, b.sock, b.peer, b.local_addr,
                    b.remote_addr, b.local_port, b.remote_port);
  }
};

// TLS record content types (RFC 8446 5.1).
inline constexpr uint8_t kTlsChangeCipherSpec = 20;
inline constexpr uint8_t kTlsAlert = 21;
inline constexpr uint8_t kTlsHandshake = 22;
inline constexpr uint8_t kTlsApplicationData = 23;

// The TLS records that begin in one read of a stream that carries TLS, from
// their 5-byte headers (the kernel follows record boundaries across reads).
struct TlsRecords {
  static constexpr int kMax = 4;       // headers kept per read
  static constexpr uint8_t kOn = 1;    // a TLS stream: this read was walked
  static constexpr uint8_t kMore = 2;  // more than kMax records began here
  static constexpr uint8_t kLost = 4;  // record boundaries lost
  // Not TLS: the socket's first read began with the HTTP/2 client preface
  // (cleartext HTTP/2, h2c).
  static constexpr uint8_t kH2c = 8;
  uint8_t count = 0;                   // headers kept in type/length
  uint8_t flags = 0;                   // 0: not a TLS stream (or not a read)
  std::array<uint8_t, kMax> type{};
  std::array<uint16_t, kMax> length{};

  bool on() const { return (flags & kOn) != 0; }
  friend bool operator==(const TlsRecords& a, const TlsRecords& b) {
    return std::tie(a.count, a.flags, a.type, a.length) ==
           std::tie(b.count, b.flags, b.type, b.length);
  }
};

// One socket syscall of a traced process, as seen at its exit.
struct SyscallEvent {
  static constexpr uint16_t kNoEnter = 1;   // enter not seen: enter_ns is 0
  static constexpr uint16_t kListener = 2;  // accept on a listening socket
  // Seen at the socket layer, where the call's start is not hooked: enter_ns
  // is 0 and exit_ns is the end of the socket operation.
  static constexpr uint16_t kExitOnly = 4;
  static constexpr uint16_t kPeek = 8;  // MSG_PEEK: the bytes stay queued
  // The thread slept during the call: a blocking accept or read waited for
  // a client or data (calls traced at enter and exit only).
  static constexpr uint16_t kBlocked = 16;
  // A connect on a unix socket: `payload` is the path it asked for.
  static constexpr uint16_t kPeerPath = 32;
  // A TCP read or write that moved bytes: `tcp_seq` is the TCP sequence
  // number of its first byte, the same at both ends of the connection.
  static constexpr uint16_t kTcpSeq = 64;

  Syscall syscall = Syscall::kRead;
  uint16_t flags = 0;
  uint32_t tgid = 0;
  uint32_t tid = 0;
  // accept: the listening fd (-1 unknown), ret is the new fd; socketpair:
  // the first end's fd, ret the second's.
  int32_t fd = -1;
  int64_t ret = 0;  // bytes, new fd, or -errno
  uint64_t enter_ns = 0;  // CLOCK_MONOTONIC; 0 when not seen
  uint64_t exit_ns = 0;
  SocketId sock;        // accept: the accepted socket
  TlsRecords tls;       // reads of a TLS stream
  uint32_t tcp_seq = 0;  // with kTcpSeq: sequence number of the first byte
  std::string payload;  // first bytes moved, only when capture was asked for

  // The TCP sequence number of the first byte moved, when known.
  std::optional<uint32_t> seq() const {
    if ((flags & kTcpSeq) == 0) return std::nullopt;
    return tcp_seq;
  }

  // Whether enter_ns holds the call's start.
  bool enter_seen() const { return (flags & (kNoEnter | kExitOnly)) == 0; }
  // The call was in flight at attach (its enter was missed), as opposed to
  // one whose start is not hooked at all (kExitOnly).
  bool enter_missed() const { return (flags & kNoEnter) != 0; }
  // The fd this event is about: the new fd for accept, `fd` otherwise.
  int32_t conn_fd() const {
    return IsAccept(syscall) ? static_cast<int32_t>(ret) : fd;
  }
  bool ok() const { return ret >= 0; }

  friend bool operator==(const SyscallEvent& a, const SyscallEvent& b) {
    return std::tie(a.syscall, a.flags, a.tgid, a.tid, a.fd, a.ret, a.enter_ns,
                    a.exit_ns, a.sock, a.tls, a.tcp_seq, a.payload) ==
           std::tie(b.syscall, b.flags, b.tgid, b.tid, b.fd, b.ret, b.enter_ns,
                    b.exit_ns, b.sock, b.tls, b.tcp_seq, b.payload);
  }
};

// One HTTP/2 frame header seen inside TLS, decoded.
struct H2FrameHeader {
  uint32_t length = 0;     // payload bytes
  uint32_t stream_id = 0;  // reserved bit cleared
  uint8_t type = 0;
  uint8_t flags = 0;
  friend bool operator==(const H2FrameHeader& a, const H2FrameHeader& b) {
    return std::tie(a.length, a.stream_id, a.type, a.flags) ==
           std::tie(b.length, b.stream_id, b.type, b.flags);
  }
};

// Plaintext that a TLS library call of a traced process moved (OpenSSL's
// SSL_read / SSL_write and their _ex forms, seen by uprobes), emitted when the
// call moved bytes; or (kSyscallRead / kSyscallWrite) the bytes a read or
// write syscall moved on a cleartext HTTP/2 (h2c) client connection, right
// after that syscall's own event. Values equal bpf/reqcost.h's
// rc_tls_data_event.
struct TlsDataEvent {
  enum class Op : uint16_t {
    kRead = 1,
    kReadEx = 2,
    kWrite = 3,
    kWriteEx = 4,
    kSyscallRead = 5,   // h2c: `ssl` is then the socket's id
    kSyscallWrite = 6,
  };
  static constexpr int kMaxFrames = 16;  // frame headers kept per call
  // This direction carries HTTP/2 frames (its first bytes were the client
  // preface or a SETTINGS frame): `frames` are the headers that begin here
  // and bound requests (HEADERS, CONTINUATION, PUSH_PROMISE, RST_STREAM,
  // GOAWAY, END_STREAM); the others are only counted in `frames_seen`.
  static constexpr uint16_t kH2 = 1;
  static constexpr uint16_t kPreface = 2;  // this call began with the preface
  static constexpr uint16_t kMoreFrames = 4;  // more to keep than kMaxFrames
  static constexpr uint16_t kFramesLost = 8;  // frame boundaries lost

  Op op = Op::kRead;
  uint16_t flags = 0;
  uint32_t tgid = 0;
  uint32_t tid = 0;
  uint64_t enter_ns = 0;  // CLOCK_MONOTONIC
  uint64_t exit_ns = 0;
  uint64_t ssl = 0;   // the SSL * hashed with the per-run key: the connection
  int64_t bytes = 0;  // plaintext bytes moved
  int32_t fd = -1;    // the socket the call read or wrote; -1 none seen
  uint16_t frames_seen = 0;  // frame headers that began in these bytes
  std::vector<H2FrameHeader> frames;
  std::string payload;  // the first bytes: 9, or --payload when larger

  bool is_read() const {
    return op == Op::kRead || op == Op::kReadEx || op == Op::kSyscallRead;
  }
  // The bytes came from a socket syscall (h2c), not a TLS library.
  bool from_syscall() const {
    return op == Op::kSyscallRead || op == Op::kSyscallWrite;
  }
  bool h2() const { return (flags & kH2) != 0; }
  friend bool operator==(const TlsDataEvent& a, const TlsDataEvent& b) {
    return std::tie(a.op, a.flags, a.tgid, a.tid, a.enter_ns, a.exit_ns, a.ssl,
                    a.bytes, a.fd, a.frames_seen, a.frames, a.payload) ==
           std::tie(b.op, b.flags, b.tgid, b.tid, b.enter_ns, b.exit_ns, b.ssl,
                    b.bytes, b.fd, b.frames_seen, b.frames, b.payload);
  }
};

// A change in the traced process set, seen in the kernel.
struct ProcessEvent {
  // kLeave: a process traced for its cgroup moved out of every traced
  // cgroup; from then on it is not traced, as if it had exited (capture
  // format 4 on).
  enum class Op : uint16_t { kFork = 1, kExec = 2, kExit = 3, kLeave = 4 };
  // Whether the process is out of view from this event on (exit or leave).
  bool ends() const { return op == Op::kExit || op == Op::kLeave; }
  Op op = Op::kFork;
  uint32_t tgid = 0;
  uint32_t parent_tgid = 0;
  uint64_t ts_ns = 0;     // CLOCK_MONOTONIC
  uint64_t start_ns = 0;  // process start, ns since boot
  std::string comm;
  friend bool operator==(const ProcessEvent& a, const ProcessEvent& b) {
    return std::tie(a.op, a.tgid, a.parent_tgid, a.ts_ns, a.start_ns, a.comm) ==
           std::tie(b.op, b.tgid, b.parent_tgid, b.ts_ns, b.start_ns, b.comm);
  }
};

// What is known of a traced process (from /proc at attach, or from events).
struct ProcessInfo {
  uint32_t pid = 0;
  uint32_t ppid = 0;
  std::string comm;
  std::string exe;
  uint64_t start_ns = 0;  // since boot; tells a reused PID apart
  friend bool operator==(const ProcessInfo& a, const ProcessInfo& b) {
    return std::tie(a.pid, a.ppid, a.comm, a.exe, a.start_ns) ==
           std::tie(b.pid, b.ppid, b.comm, b.exe, b.start_ns);
  }
};

// The kernel side's counters, summed over CPUs.
struct KernelCounters {
  uint64_t emitted = 0;     // records written to the ring buffer
  uint64_t dropped = 0;     // records lost because the ring buffer was full
  uint64_t unpaired = 0;    // exits without a seen enter, not emitted
  uint64_t enter_lost = 0;  // enters not stored: no per-thread storage
  // Socket I/O of a traced process outside a known syscall (io_uring,
  // splice, ...), not emitted.
  uint64_t foreign = 0;
  // TLS library calls (SSL_read, SSL_write, ...) of traced processes, each
  // a uprobe hit at entry,
  uint64_t tls_calls = 0;
  // and the return hits among them: all of them but under a uprobe session
  // link (Tracer::tls_uprobe_session), where a call with no work at its
  // return has none. Not in captures.
  uint64_t tls_returns = 0;
  // Stream sockets whose reads the kernel's record walker keeps a state
  // for: TLS and h2c ones, and plain ones that are not TCP (a plain TCP
  // stream needs none). Not in captures.
  uint64_t stream_states = 0;
};

}  // namespace reqcost

#endif  // REQCOST_COLLECTOR_EVENT_H_
