#include "analyzers/call_tracker.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "analyzers/call_conn.h"
#include "analyzers/call_protocols.h"
#include "analyzers/connections.h"
#include "analyzers/exchanges.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

std::string CallPeerName(CallProtocol protocol, const std::string& address,
                         bool unix_socket) {
  if (protocol != CallProtocol::kUnknown) {
    return absl::StrCat(std::string(ProtocolName(protocol)), ":", address);
  }
  return unix_socket ? address : absl::StrCat("tcp:", address);
}

void CallTracker::Name(const Conn& conn, CallConn* state,
                       CallProtocol protocol, bool from_bytes) {
  if (state->address.empty()) state->address = BackendAddress(conn);
  if (protocol == CallProtocol::kUnknown && !from_bytes) {
    protocol = conn.sock.family == AF_UNIX
                   ? ProtocolByPath(conn.peer_path)
                   : ProtocolByPort(conn.sock.remote_port);
  }
  if (from_bytes) {
    if (protocol == CallProtocol::kUnknown) return;  // keep the port's guess
    state->protocol_from_bytes = true;
  }
  state->protocol = protocol;
  state->peer = CallPeerName(protocol, state->address,
                             conn.sock.family == AF_UNIX);
  if (state->call) {
    state->call->protocol = std::string(ProtocolName(protocol));
    state->call->peer = state->peer;
  }
}

void CallTracker::Begin(const Conn& conn, CallConn* state, uint32_t tid,
                        uint64_t start_ns) {
  if (state->peer.empty()) Name(conn, state, CallProtocol::kUnknown, false);
  auto call = std::make_shared<CallRecord>();
  call->peer = state->peer;
  call->protocol = std::string(ProtocolName(state->protocol));
  call->address = state->address;
  call->tid = tid;
  call->start_ns = start_ns;
  call->end_ns = start_ns;
  state->call = call;
  state->replied = false;
  call->peer_conn = state->peer_uid;
  call->send_offset = conn.bytes_out;
  call->offset_valid = state->peer_offsets;
  BackendWork* work = exchanges_->WorkServing(conn.tgid, tid);
  if (work == nullptr) {
    ++anomalies_->unattributed_calls;
  } else if (work->calls.size() >= kMaxCallsPerWork) {
    ++work->calls_dropped;
  } else {
    work->calls.push_back(std::move(call));
  }
}

void CallTracker::OnConnect(const Conn& conn, CallConn* state,
                            const SyscallEvent& e) {
  Begin(conn, state, e.tid, e.enter_seen() ? e.enter_ns : e.exit_ns);
  state->call->opens = true;
  state->call->peer_conn = 0;  // the connect: no request of the peer's
  state->call->end_ns = e.exit_ns;
}

void CallTracker::OnEvent(const Conn& conn, CallConn* state,
                          const SyscallEvent& e) {
  if (e.syscall == Syscall::kClose) {
    state->call.reset();
    return;
  }
  if (e.ret <= 0) return;
  if (IsWrite(e.syscall)) {
    const uint64_t len = static_cast<uint64_t>(e.ret);
    if (!state->protocol_from_bytes && !e.payload.empty()) {
      Name(conn, state, DetectFromSend(e.payload, len), true);
    }
    const bool begins =
        !state->call || state->replied || (state->call->opens && !state->sent);
    if (begins) {
      Begin(conn, state, e.tid, e.enter_seen() ? e.enter_ns : e.exit_ns);
      state->call->send_seq = e.seq();
    }
    CallRecord* call = state->call.get();
    if (call->query.empty() && !e.payload.empty() &&
        state->protocol != CallProtocol::kUnknown) {
      call->query = ExtractQuery(state->protocol, e.payload, e.payload.size());
    }
    state->sent = true;
    if (!call->has_reply) call->end_ns = std::max(call->end_ns, e.exit_ns);
    return;
  }
  if (!IsRead(e.syscall) || (e.flags & SyscallEvent::kPeek) != 0) return;
  if (!state->call) return;  // the tail of a reply begun before attach
  if (!state->sent && !state->protocol_from_bytes && !e.payload.empty()) {
    Name(conn, state, DetectFromGreeting(e.payload), true);
  }
  state->replied = true;
  state->call->has_reply = true;
  state->call->end_ns = std::max(state->call->end_ns, e.exit_ns);
}

}  // namespace reqcost::analyzers
