#include "collector/decoder.h"

#include <linux/types.h>

#include <cstddef>
#include <cstring>

#include "absl/strings/str_format.h"
#include "reqcost.h"

namespace reqcost::collector {
namespace {

// The layout is the contract with the kernel side: pin it.
static_assert(offsetof(rc_syscall_event, payload) ==
              RC_SYSCALL_EVENT_HEADER_SIZE);
static_assert(sizeof(rc_sock_id) == 56);
static_assert(sizeof(rc_process_event) == 48);
static_assert(sizeof(rc_tls_records) == 16);
static_assert(RC_TLS_MAX == TlsRecords::kMax);
static_assert(RC_SYS_MAX == kSyscallMax);
static_assert(RC_F_EXIT_ONLY == SyscallEvent::kExitOnly &&
              RC_F_PEEK == SyscallEvent::kPeek &&
              RC_F_BLOCKED == SyscallEvent::kBlocked &&
              RC_F_PEER_PATH == SyscallEvent::kPeerPath &&
              RC_F_TCP_SEQ == SyscallEvent::kTcpSeq &&
              RC_F_NO_ENTER == SyscallEvent::kNoEnter);
static_assert(RC_TLS_ON == TlsRecords::kOn &&
              RC_TLS_MORE == TlsRecords::kMore &&
              RC_TLS_LOST == TlsRecords::kLost &&
              RC_TLS_H2C == TlsRecords::kH2c);
static_assert(RC_PAYLOAD_MAX < 65536 - RC_SYSCALL_EVENT_HEADER_SIZE);
static_assert(RC_TLS_DATA_SYS_READ ==
                  static_cast<int>(TlsDataEvent::Op::kSyscallRead) &&
              RC_TLS_DATA_SYS_WRITE ==
                  static_cast<int>(TlsDataEvent::Op::kSyscallWrite));
static_assert(offsetof(rc_tls_data_event, payload) ==
              RC_TLS_DATA_EVENT_HEADER_SIZE);
static_assert(sizeof(rc_h2_frame) == 12);
static_assert(RC_H2_FRAMES_MAX == TlsDataEvent::kMaxFrames);
static_assert(RC_TLS_DATA_H2 == TlsDataEvent::kH2 &&
              RC_TLS_DATA_PREFACE == TlsDataEvent::kPreface &&
              RC_TLS_DATA_MORE == TlsDataEvent::kMoreFrames &&
              RC_TLS_DATA_LOST == TlsDataEvent::kFramesLost);

struct RecordPrefix {
  __u16 kind;
  __u16 size;
};

// Fills `*id` from the rc_sock_id at `bytes`, field by field from a copy of
// just the rc_sock_id. (Read out of a copy of the whole record, or through a
// SocketId temporary, its 16-byte addresses straddle the copies' 16-byte
// stores: loads that cannot be forwarded made decoding 2-3x slower.)
void ReadSocketId(const char* bytes, SocketId* id) {
  rc_sock_id s;
  std::memcpy(&s, bytes, sizeof(s));
  id->family = s.family;
  id->type = s.type;
  id->sock = s.sock;
  id->peer = s.peer;
  std::memcpy(id->local_addr.data(), s.local_addr, sizeof(s.local_addr));
  std::memcpy(id->remote_addr.data(), s.remote_addr, sizeof(s.remote_addr));
  id->local_port = s.local_port;
  id->remote_port = s.remote_port;
}

absl::Status DecodeSyscall(const void* data, size_t len, SyscallEvent* out) {
  if (len < RC_SYSCALL_EVENT_HEADER_SIZE) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "syscall record of %d bytes is shorter than its %d-byte header", len,
        RC_SYSCALL_EVENT_HEADER_SIZE));
  }
  rc_syscall_event e;
  std::memcpy(&e, data, RC_SYSCALL_EVENT_HEADER_SIZE);
  if (e.payload_len > RC_PAYLOAD_MAX ||
      len != RC_SYSCALL_EVENT_HEADER_SIZE + e.payload_len) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "syscall record of %d bytes declares a payload of %d bytes", len,
        e.payload_len));
  }
  if (e.syscall == 0 || e.syscall >= kSyscallMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("syscall record with unknown syscall %d", e.syscall));
  }
  out->syscall = static_cast<Syscall>(e.syscall);
  out->flags = e.flags;
  out->tgid = e.tgid;
  out->tid = e.tid;
  out->fd = e.fd;
  out->ret = e.ret;
  out->enter_ns = e.enter_ns;
  out->exit_ns = e.exit_ns;
  const auto* bytes = static_cast<const char*>(data);
  ReadSocketId(bytes + offsetof(rc_syscall_event, sock), &out->sock);
  const rc_tls_records& tls = e.tls;
  out->tls.count = tls.count <= RC_TLS_MAX ? tls.count : RC_TLS_MAX;
  out->tls.flags = tls.flags;
  for (int i = 0; i < RC_TLS_MAX; ++i) {
    out->tls.type[i] = tls.type[i];
    out->tls.length[i] = tls.length[i];
  }
  // Only a flagged record has a number: the rest compare equal whatever the
  // kernel left in the field.
  out->tcp_seq = (e.flags & RC_F_TCP_SEQ) != 0 ? e.tcp_seq : 0;
  if (e.payload_len == 0) {
    out->payload.clear();  // the default: no call into the string's assign
  } else {
    out->payload.assign(bytes + RC_SYSCALL_EVENT_HEADER_SIZE, e.payload_len);
  }
  return absl::OkStatus();
}

absl::Status DecodeProcess(const void* data, size_t len, ProcessEvent* out) {
  if (len != sizeof(rc_process_event)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("process record of %d bytes, expected %d", len,
                        sizeof(rc_process_event)));
  }
  rc_process_event e;
  std::memcpy(&e, data, sizeof(e));
  if (e.op < RC_PROC_FORK || e.op > RC_PROC_LEAVE) {
    return absl::InvalidArgumentError(
        absl::StrFormat("process record with unknown op %d", e.op));
  }
  static_assert(static_cast<int>(ProcessEvent::Op::kLeave) == RC_PROC_LEAVE);
  out->op = static_cast<ProcessEvent::Op>(e.op);
  out->tgid = e.tgid;
  out->parent_tgid = e.parent_tgid;
  out->ts_ns = e.ts_ns;
  out->start_ns = e.start_ns;
  out->comm.assign(e.comm, strnlen(e.comm, sizeof(e.comm)));
  return absl::OkStatus();
}

absl::Status DecodeTlsData(const void* data, size_t len, TlsDataEvent* out) {
  if (len < RC_TLS_DATA_EVENT_HEADER_SIZE) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TLS data record of %d bytes is shorter than its %d-byte header", len,
        RC_TLS_DATA_EVENT_HEADER_SIZE));
  }
  rc_tls_data_event e;
  std::memcpy(&e, data, RC_TLS_DATA_EVENT_HEADER_SIZE);
  if (e.payload_len > RC_PAYLOAD_MAX ||
      len != RC_TLS_DATA_EVENT_HEADER_SIZE + e.payload_len) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TLS data record of %d bytes declares a payload of %d bytes", len,
        e.payload_len));
  }
  if (e.op < RC_TLS_DATA_READ || e.op > RC_TLS_DATA_SYS_WRITE) {
    return absl::InvalidArgumentError(
        absl::StrFormat("TLS data record with unknown op %d", e.op));
  }
  if (e.frame_count > RC_H2_FRAMES_MAX) {
    return absl::InvalidArgumentError(
        absl::StrFormat("TLS data record with %d frames, at most %d fit",
                        e.frame_count, RC_H2_FRAMES_MAX));
  }
  out->op = static_cast<TlsDataEvent::Op>(e.op);
  out->flags = e.flags;
  out->tgid = e.tgid;
  out->tid = e.tid;
  out->enter_ns = e.enter_ns;
  out->exit_ns = e.exit_ns;
  out->ssl = e.ssl;
  out->bytes = e.bytes;
  out->fd = e.fd;
  out->frames_seen = e.frames_seen;
  out->frames.resize(e.frame_count);
  for (int i = 0; i < e.frame_count; ++i) {
    out->frames[i].length = e.frames[i].length;
    out->frames[i].stream_id = e.frames[i].stream_id;
    out->frames[i].type = e.frames[i].type;
    out->frames[i].flags = e.frames[i].flags;
  }
  out->payload.assign(
      static_cast<const char*>(data) + RC_TLS_DATA_EVENT_HEADER_SIZE,
      e.payload_len);
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeRecord(const void* data, size_t len, RecordKind* kind,
                          SyscallEvent* syscall, ProcessEvent* process) {
  TlsDataEvent scratch;
  return DecodeRecord(data, len, kind, syscall, process, &scratch);
}

absl::Status DecodeRecord(const void* data, size_t len, RecordKind* kind,
                          SyscallEvent* syscall, ProcessEvent* process,
                          TlsDataEvent* tls_data) {
  if (len < sizeof(RecordPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("record of %d bytes is too short for a kind", len));
  }
  RecordPrefix prefix;
  std::memcpy(&prefix, data, sizeof(prefix));
  if (prefix.size != len) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "record says %d bytes but %d arrived", prefix.size, len));
  }
  switch (prefix.kind) {
    case RC_REC_SYSCALL:
      *kind = RecordKind::kSyscall;
      return DecodeSyscall(data, len, syscall);
    case RC_REC_PROCESS:
      *kind = RecordKind::kProcess;
      return DecodeProcess(data, len, process);
    case RC_REC_TLS_DATA:
      *kind = RecordKind::kTlsData;
      return DecodeTlsData(data, len, tls_data);
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("record of unknown kind %d", prefix.kind));
  }
}

}  // namespace reqcost::collector
