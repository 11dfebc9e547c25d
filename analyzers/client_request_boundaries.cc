#include "analyzers/client_request_boundaries.h"

#include <algorithm>
#include <memory>

#include "analyzers/client_requests.h"
#include "analyzers/connections.h"
#include "analyzers/payload.h"
#include "analyzers/profiler_records.h"
#include "analyzers/request.h"
#include "analyzers/tls.h"
#include "collector/event.h"

namespace reqcost::analyzers {

// ---------------------------------------------------------------------------
// Client connections.

void ClientRequestBoundaries::TakeConnection(Conn* conn, ClientConn* client,
                                             OpenRequest* r) {
  r->conn_uid = conn->uid;
  r->tgid = conn->tgid;
  r->first_of_conn = conn->requests == 0;
  ++conn->requests;
  if (r->first_of_conn) {
    r->accept = conn->accept;
    if (conn->preattach) r->partial_reason = conn->preattach_reason;
    PreRequest& pre = client->pre_request;
    if (pre.tls) r->tls_before_ns = pre.CloseLeg();
    r->pre_request = std::move(pre.syscalls);
    pre = PreRequest();
  }
}

OpenRequest* ClientRequestBoundaries::OpenClientRequest(
    Conn* conn, ClientConn* client, const SyscallEvent& e,
    const SyscallRecord& rec) {
  client->request = std::make_unique<OpenRequest>();
  OpenRequest* r = client->request.get();
  TakeConnection(conn, client, r);
  r->has_read = true;
  r->tid = rec.tid;
  // A read that blocked waited for the client: the request starts when it
  // returned.
  r->first_read_start = rec.blocked ? rec.exit_ns : rec.start_ns();
  r->first_read_exit = rec.exit_ns;
  r->tls_mark_ns = r->first_read_start;
  if (e.enter_missed() && !r->partial_reason.has_value()) {
    r->partial_reason = IncompleteReason::kStartNotSeen;
  }
  r->request_line = ParseHttpRequestLine(e.payload);
  exchanges_->Await(r);
  return r;
}

bool ClientRequestBoundaries::OnTlsEvent(Conn* conn, ClientConn* client,
                                         const SyscallEvent& e,
                                         const SyscallRecord& rec) {
  OpenRequest* r = client->request.get();
  const bool request_open = r != nullptr && r->has_read && !r->has_write;
  TlsConnection& tls = *client->tls;
  if (IsRead(e.syscall)) {
    if (e.ret <= 0) {
      tls.OnEmptyRead();
      // Inside the handshake (before any request): the server's own wait
      // for the client's next flight ends its leg.
      if (r == nullptr && conn->requests == 0 && client->pre_request.tls) {
        client->pre_request.AddHandshake(rec, false);
        return true;
      }
      return false;
    }
    TlsRead k = tls.OnRead(e.tls, rec.exit_ns);
    if (k.app_data) {
      // HTTP/2 frames where a request would begin (see tls.h).
      if (k.short_data && (r == nullptr || r->has_write)) client->http2 = true;
      return false;
    }
    if (request_open) {
      r->syscalls.push_back(rec);  // renegotiation or an alert mid-request
    } else if (k.handshake && r == nullptr && conn->requests == 0) {
      client->pre_request.AddHandshake(rec, false);
    } else if (r != nullptr) {
      r->trailing.push_back(rec);  // an alert after the response
    } else if (!client->decrypted) {
      // (With the TLS calls seen, requests are the streams': TLS's own
      // records between them belong to none.)
      ++anomalies_->stray_events;
    }
    return true;
  }
  // A write.
  if (tls.WriteIsTls(request_open,
                     exchanges_->last_exchange_start_ns(conn->tgid))) {
    if (request_open) {
      // Session tickets after a Finished that came with the request.
      r->syscalls.push_back(rec);
      if (r->first_of_conn && rec.exit_ns > r->tls_mark_ns) {
        r->tls_inside_ns += rec.exit_ns - r->tls_mark_ns;
        r->tls_mark_ns = rec.exit_ns;
      }
    } else if (r == nullptr && conn->requests == 0) {
      client->pre_request.AddHandshake(rec, true);
    } else if (r != nullptr) {
      r->trailing.push_back(rec);  // answering the client's alert
    } else if (!client->decrypted) {
      // (With the TLS calls seen, requests are the streams': TLS's own
      // records between them belong to none.)
      ++anomalies_->stray_events;
    }
    return true;
  }
  // A write with no request at all since the last response was finalized
  // (a response's own later writes, such as its close_notify, have one).
  if (r == nullptr && tls.ServerSpokeFirst()) client->http2 = true;
  return false;
}

// Keeps what joining hosts needs of a request read: its stream position,
// and whether it began a FastCGI request (the server is a backend).
void ClientRequestBoundaries::NoteWireRead(OpenRequest* r,
                                           const SyscallEvent& e) {
  if (std::optional<uint32_t> seq = e.seq();
      seq.has_value() && r->wire_reads.size() < kMaxWireReads) {
    r->wire_reads.push_back(
        {*seq, static_cast<uint32_t>(e.ret), e.exit_ns});
  }
  if (r->fastcgi_begin_exit == 0) {
    std::optional<FastCgiHeader> h = ParseFastCgiHeader(e.payload);
    if (h.has_value() && h->type == kFcgiBeginRequest) {
      r->fastcgi_begin_exit = e.exit_ns;
    } else if (h.has_value() && r->last_read_exit == 0 && !r->first_of_conn) {
      r->fastcgi_tail = true;
    }
  }
}

void ClientRequestBoundaries::OnEvent(Conn* conn, ClientConn* client,
                                      const SyscallEvent& e) {
  SyscallRecord rec = ToRecord(e, Side::kServer, Target::kClient);
  OpenRequest* r = client->request.get();
  // The thread is back at its client connections: the HTTP/2 streams it
  // read last have begun all their backend exchanges (unless it is still
  // reading the same connection).
  if (IsRead(e.syscall) || IsWrite(e.syscall)) {
    exchanges_->ClientIo(conn->tgid, rec.tid, conn->uid, IsRead(e.syscall));
  }
  if ((e.flags & SyscallEvent::kPeek) != 0) {
    // A peek moves nothing (nginx looks at the first byte for TLS).
    if (r != nullptr) {
      r->syscalls.push_back(rec);
    } else if (conn->requests == 0) {
      client->pre_request.syscalls.push_back(rec);
    }
    return;
  }
  // Cleartext HTTP/2: the kernel follows its frames and gives each read
  // and write a data record right after its event, from the preface read
  // on. A connection whose preface read was followed by another event and
  // not by a data record (a capture of a reqcost that did not follow h2c,
  // a lost record) cannot be split: its requests are reported unsplit
  // rather than taken for HTTP/1.x requests.
  if (client->h2c && !client->decrypted) client->http2 = true;
  if ((e.tls.flags & TlsRecords::kH2c) != 0) {
    client->h2c = true;
    if (r != nullptr && r->has_write && !client->decrypted &&
        IsRead(e.syscall)) {
      // The preface after a response: the request upgraded the connection.
      StartUpgraded(client);
      OnDecryptedSyscall(client, e, rec);
      return;
    }
  }
  if (e.tls.on() && !client->tls && IsRead(e.syscall) && e.ret > 0) {
    client->tls = std::make_unique<TlsConnection>();
  }
  if (client->tls && (IsRead(e.syscall) || IsWrite(e.syscall)) &&
      (e.tls.on() || !IsRead(e.syscall) || e.ret <= 0) &&
      OnTlsEvent(conn, client, e, rec)) {
    return;
  }
  if (client->decrypted) {
    OnDecryptedSyscall(client, e, rec);
    return;
  }
  if (IsRead(e.syscall) && e.ret > 0) {
    if (r != nullptr && r->has_write) {
      finalizer_->Finalize(*conn, client);
      r = nullptr;
    }
    if (r == nullptr) r = OpenClientRequest(conn, client, e, rec);
    NoteWireRead(r, e);
    if (!r->first_read_offset.has_value()) {
      r->first_read_offset = conn->bytes_in;
    }
    r->read_end_offset = conn->bytes_in + static_cast<uint64_t>(e.ret);
    r->last_read_exit = rec.exit_ns;
    r->syscalls.push_back(rec);
    return;
  }
  if (IsRead(e.syscall)) {
    if (r == nullptr && conn->requests == 0) {
      // Nothing read yet (EAGAIN) or the client's close (0) before any
      // request: a connection its client opened and left unused (ab at the
      // end of a run, a browser's pre-connect) carries no request.
      client->pre_request.syscalls.push_back(rec);
    } else if (r == nullptr) {
      ++anomalies_->stray_events;
    } else if (r->has_write) {
      r->trailing.push_back(rec);
    } else {
      r->syscalls.push_back(rec);
    }
    return;
  }
  if (IsWrite(e.syscall)) {
    // An interim response (100 Continue) before the response: the request
    // goes on (its body is read next), so the response has not begun.
    if (r != nullptr && !r->has_write && IsHttpInterimResponseHead(e.payload)) {
      r->syscalls.push_back(rec);
      return;
    }
    if (r == nullptr) {
      if (!conn->preattach || conn->requests > 0) {
        ++anomalies_->stray_events;
        return;
      }
      // The tail of a request that began before attach.
      client->request = std::make_unique<OpenRequest>();
      r = client->request.get();
      r->conn_uid = conn->uid;
      r->tgid = conn->tgid;
      r->first_of_conn = true;
      r->partial_reason = conn->preattach_reason;
      ++conn->requests;
    }
    if (!r->has_write) {
      r->has_write = true;
      r->first_write_start = rec.start_ns();
      if (r->has_read) exchanges_->Attribute(r, rec.start_ns());
      exchanges_->StopWaiting(r);
    }
    // A second response head in one request: a pipelined request merged.
    if (IsHttpFinalResponseHead(e.payload) && r->response_heads++ > 0) {
      ++anomalies_->merged_requests;
    }
    for (auto& t : r->trailing) r->syscalls.push_back(t);
    r->trailing.clear();
    r->syscalls.push_back(rec);
    r->last_write_exit = rec.exit_ns;
    return;
  }
  if (e.syscall == Syscall::kClose || e.syscall == Syscall::kShutdown) {
    if (r != nullptr) r->closes.push_back(rec);
  }
}

// ---------------------------------------------------------------------------
// Sockets that carry no requests.

void ClientRequestBoundaries::OnSideCall(const SyscallEvent& e, Target target) {
  SyscallRecord rec = ToRecord(e, Side::kServer, target);
  OpenRequest* owner = exchanges_->Serving(e.tgid, rec.tid, rec.start_ns());
  if (owner == nullptr) {
    ++anomalies_->side_calls_outside_requests;
    return;
  }
  owner->side_calls.push_back(rec);
}

}  // namespace reqcost::analyzers
