#include "analyzers/profiler.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "analyzers/call_tracker.h"
#include "analyzers/client_request_boundaries.h"
#include "analyzers/client_requests.h"
#include "analyzers/connection_table.h"
#include "analyzers/connections.h"
#include "analyzers/exchange_tracker.h"
#include "analyzers/exchanges.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/payload.h"
#include "analyzers/process_table.h"
#include "analyzers/profiler_records.h"
#include "analyzers/reorder_buffer.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "analyzers/request_finalizer.h"
#include "analyzers/socketpair_ends.h"
#include "collector/event.h"

namespace reqcost::analyzers {

namespace {
constexpr uint16_t kAfUnix = 1;
}  // namespace

// The orchestrator: it owns the stages, hands each event to the stage that
// owns what the event concerns, and answers the connection table's
// questions with the other stages.
struct Profiler::State : public ConnectionTable::Owner {
  explicit State(const ProfilerOptions& options)
      : reorder(options.reorder_window_ns),
        finalizer(&reorder, &processes, &exchanges, &anomalies),
        connections(&processes, &anomalies, this),
        exchanges(&connections, &anomalies, &finalizer.first_drop_ns()),
        client_requests(&exchanges, &finalizer, &anomalies),
        calls(&exchanges, &anomalies) {
    exchanges.SetBackendLinkCallback(
        [this](const Exchange& ex, std::optional<IncompleteReason> reason) {
          finalizer.FinalizeBackendLink(ex, reason);
        });
  }

  // Counted by every stage.
  Anomalies anomalies;

  // The stages. Each is given pointers to the ones it reads or tells, and
  // uses them only after construction.
  ReorderBuffer reorder;
  ProcessTable processes;
  RequestFinalizer finalizer;
  ConnectionTable connections;
  ExchangeTracker exchanges;
  ClientRequestBoundaries client_requests;
  CallTracker calls;
  // The socket pairs' ends: no connections (their calls are counted only).
  SocketpairEnds socketpairs;
  uint64_t socketpair_calls = 0;

  // ConnectionTable::Owner.
  void OnCloseLost(Conn* conn) override;
  void OnClientDropped(Conn* conn) override;
  void OnPaired(Conn* link, const Conn& side) override;
  // Ends what the stages keep on `conn` and forgets it.
  void CloseConn(Conn* conn);
  // Reports `conn`'s open client request, if any, incomplete for `reason`.
  void FinalizeIfOpen(Conn* conn, IncompleteReason reason);

  // Reordering and dispatch.
  template <typename Event>
  void Push(uint64_t key, const Event& event);
  void Drain(bool all);
  void HandleQueued(const Queued& q);
  void Handle(const SyscallEvent& e);
  void HandleTlsData(const TlsDataEvent& e);
  // The socket of each (tgid, hashed SSL *) seen with one: a TLS call that
  // did no socket I/O (it returned bytes already decrypted) names none.
  std::map<std::pair<uint32_t, uint64_t>, int32_t> ssl_fds;
  // The client connection each thread (tgid, tid) last read data from: the
  // handshake's last read can take the first request's records too (read
  // ahead), and the TLS call that then returns them does no socket I/O.
  std::map<std::pair<uint32_t, uint32_t>, int32_t> last_client_read;
  void Dispatch(Conn* conn, const SyscallEvent& e);
  void ProcessExit(uint32_t tgid);
  // Whether `e`, first seen on its unix stream socket, is on the second end
  // of a pair whose other end is an open connection of the same process,
  // also first seen mid-stream: a socket pair made before attach (php-fpm's
  // master wakes its own event loop through one on every signal, SIGCHLD
  // included). Both ends become socket pair ends and the first end's
  // connection is forgotten, whatever it kept.
  bool ForgetSelfPair(const SyscallEvent& e);
};

// ---------------------------------------------------------------------------
// Reordering.

template <typename Event>
void Profiler::State::Push(uint64_t key, const Event& event) {
  if (!reorder.Push(key, event)) ++anomalies.late_events;
  Drain(false);
}

void Profiler::State::Drain(bool all) {
  reorder.Drain(all, [this](const Queued& q) { HandleQueued(q); });
}

void Profiler::State::HandleQueued(const Queued& q) {
  if (const auto* e = std::get_if<SyscallEvent>(&q.item)) {
    Handle(*e);
  } else if (const auto* t = std::get_if<TlsDataEvent>(&q.item)) {
    HandleTlsData(*t);
  } else {
    const auto& p = std::get<ProcessEvent>(q.item);
    if (p.ends()) {  // a process that left its cgroup is gone from view too
      ProcessExit(p.tgid);
    } else {
      processes.Rename(p.tgid, p.comm);
    }
  }
}

// ---------------------------------------------------------------------------
// Dispatch.

void Profiler::State::Handle(const SyscallEvent& e) {
  if (e.syscall == Syscall::kSocketpair) {
    socketpairs.Add(e);
    return;
  }
  if (!CarriesRequests(e.sock)) {
    client_requests.OnSideCall(e, SideCallTarget(e.sock));
    return;
  }
  if (Target t = connections.NameServiceCall(e); t != Target::kClient) {
    client_requests.OnSideCall(e, t);
    return;
  }
  Conn* conn = nullptr;
  if (IsAccept(e.syscall) || e.syscall == Syscall::kConnect) {
    // A socket pair's end is never accepted or connected: the kernel gave
    // its address to this new socket.
    socketpairs.Forget(e.sock.sock);
  } else if (socketpairs.Contains(e.sock.sock)) {
    ++socketpair_calls;
    return;
  }
  if (IsAccept(e.syscall) || e.syscall == Syscall::kConnect) {
    bool accepted = IsAccept(e.syscall);
    if (accepted && e.ret < 0) return;  // nothing accepted
    int32_t fd = e.conn_fd();
    if (!accepted) {
      Conn* existing = connections.Find(e.tgid, fd);
      BackendLink* link = existing != nullptr ? existing->link() : nullptr;
      // A second connect on the same socket (EINPROGRESS retry) is the same
      // connection. A connect on the fd with another socket is a new
      // connection whose fd was reused (the old one's close was lost).
      if (link != nullptr && exchanges.OnConnectRetry(*existing, link, e)) {
        return;
      }
      if (existing != nullptr && existing->call() != nullptr &&
          existing->sock.sock == e.sock.sock) {
        return;  // a call connection's EINPROGRESS retry
      }
    }
    conn = connections.Open(e, fd, accepted);
    // Opened while tracing: both directions start at a record boundary.
    conn->fcgi_in = FastCgiStream(true);
    conn->fcgi_out = FastCgiStream(true);
    if (accepted) {
      conn->accept = ToRecord(e, Side::kServer, Target::kClient);
      conn->accept_exit = e.exit_ns;
    }
    connections.Classify(conn);
    if (BackendLink* link = conn->link(); !accepted && link != nullptr) {
      exchanges.OnConnect(conn, link, e);
    }
    if (CallConn* call = conn->call(); !accepted && call != nullptr) {
      calls.OnConnect(*conn, call, e);
    }
    if (accepted && conn->role() == Role::kBackendSide) {
      conn->accept = ToRecord(e, Side::kBackend, Target::kBackendSide);
    }
    return;
  }
  if (Conn* old = connections.Settle(e)) {
    Dispatch(old, e);  // its own close
    return;
  }
  conn = connections.Find(e.tgid, e.fd);
  if (conn == nullptr) {
    if (e.syscall == Syscall::kClose) return;  // opened and closed unseen
    if (ForgetSelfPair(e)) return;
    conn = connections.Open(e, e.fd, false);
    conn->preattach = true;
    conn->preattach_reason =
        finalizer.first_drop_ns().has_value() &&
                e.exit_ns >= *finalizer.first_drop_ns()
            ? IncompleteReason::kOpenedBeforeAttachOrDropped
            : IncompleteReason::kOpenedBeforeAttach;
    connections.Classify(conn);
  }
  Dispatch(conn, e);
}

void Profiler::State::HandleTlsData(const TlsDataEvent& e) {
  int32_t fd = e.fd;
  const auto key = std::make_pair(e.tgid, e.ssl);
  if (fd >= 0) {
    ssl_fds[key] = fd;
  } else {
    auto it = ssl_fds.find(key);
    if (it != ssl_fds.end()) {
      fd = it->second;
    } else {
      // The SSL's first call, on bytes its handshake read ahead: the server
      // goes on from its handshake to its first read on the same thread
      // (nginx, lighttpd), so the thread's last client read was on its
      // socket, unless that connection already has an SSL of its own.
      auto last = last_client_read.find({e.tgid, e.tid});
      if (last == last_client_read.end()) return;
      Conn* guess = connections.Find(e.tgid, last->second);
      if (guess == nullptr || guess->client() == nullptr ||
          guess->client()->ssl != 0) {
        return;
      }
      fd = last->second;
      ssl_fds[key] = fd;
    }
  }
  Conn* conn = connections.Find(e.tgid, fd);
  ClientConn* client = conn != nullptr ? conn->client() : nullptr;
  // TLS to a backend (an upstream over HTTPS) is not split here.
  if (client == nullptr) return;
  client->ssl = e.ssl;
  client_requests.OnTlsData(conn, client, e);
}

// An event on an open connection, by the connection's role; a close ends it.
void Profiler::State::Dispatch(Conn* conn, const SyscallEvent& e) {
  ClientConn* client = conn->client();
  if (client != nullptr && IsRead(e.syscall) && e.ret > 0) {
    last_client_read[{e.tgid, e.tid}] = conn->fd;
  }
  if (client != nullptr) {
    client_requests.OnEvent(conn, client, e);
    // Its requests cannot be split: its process's exchanges that no request
    // takes are requests seen from the backend link.
    // (With its TLS data seen, its HTTP/2 streams are split: not so.)
    if (client->http2 && client->decrypted == nullptr) {
      exchanges.MarkUnsplitFront(*conn, e.exit_ns);
    }
  } else if (BackendLink* link = conn->link()) {
    exchanges.OnLinkEvent(conn, link, e);
  } else if (BackendSide* side = conn->side()) {
    exchanges.OnBackendSideEvent(conn, side, e);
  } else if (CallConn* call = conn->call()) {
    calls.OnEvent(*conn, call, e);
  }
  if (e.ret > 0 && IsRead(e.syscall) && (e.flags & SyscallEvent::kPeek) == 0) {
    conn->bytes_in += e.ret;
  }
  if (e.ret > 0 && IsWrite(e.syscall)) conn->bytes_out += e.ret;
  if (e.syscall == Syscall::kClose) {
    if (client != nullptr && client->request) {
      finalizer.Finalize(*conn, client);
    }
    if (client != nullptr) {
      client_requests.EndStreams(*conn, client, IncompleteReason::kNoResponse);
    }
    CloseConn(conn);
  }
}

bool Profiler::State::ForgetSelfPair(const SyscallEvent& e) {
  if (e.sock.family != kAfUnix || e.sock.peer == 0) return false;
  Conn* other = connections.FindUnix(e.sock.peer);
  if (other == nullptr || other->tgid != e.tgid || !other->preattach ||
      other->sock.peer != e.sock.sock) {
    return false;
  }
  SyscallEvent pair = e;
  pair.syscall = Syscall::kSocketpair;
  pair.ret = 0;
  socketpairs.Add(pair);
  // Nothing it carried was a request or an exchange: dropped, not ended.
  if (other->client() != nullptr) OnClientDropped(other);
  if (BackendLink* link = other->link_state(); link != nullptr) {
    exchanges.Discard(*other, link);
  }
  CloseConn(other);
  ++socketpair_calls;
  return true;
}

void Profiler::State::CloseConn(Conn* conn) {
  if (const ClientConn* client = conn->client();
      client != nullptr && client->ssl != 0) {
    auto it = ssl_fds.find({conn->tgid, client->ssl});
    if (it != ssl_fds.end() && it->second == conn->fd) ssl_fds.erase(it);
  }
  exchanges.OnClose(*conn);
  connections.Close(conn);
}

void Profiler::State::FinalizeIfOpen(Conn* conn, IncompleteReason reason) {
  ClientConn* client = conn->client();
  if (client != nullptr && client->request) {
    finalizer.Finalize(*conn, client, reason);
  }
  if (client != nullptr) client_requests.EndStreams(*conn, client, reason);
}

void Profiler::State::OnCloseLost(Conn* conn) {
  FinalizeIfOpen(conn, IncompleteReason::kCloseNotSeen);
  exchanges.OnClose(*conn);
}

void Profiler::State::OnClientDropped(Conn* conn) {
  ClientConn* client = conn->client();
  if (client->request) {
    exchanges.StopWaiting(client->request.get());
    client->request.reset();
  }
  client_requests.DropStreams(client);
}

void Profiler::State::OnPaired(Conn* conn, const Conn& side) {
  exchanges.OnPaired(*conn, conn->link(), side);
}

void Profiler::State::ProcessExit(uint32_t tgid) {
  // Its links close below as if their exchanges were done: decide the held
  // ones first.
  exchanges.OnProcessExit(tgid);
  for (uint64_t uid : connections.UidsOf(tgid)) {
    Conn* conn = connections.At(uid);
    FinalizeIfOpen(conn, IncompleteReason::kProcessExited);
    CloseConn(conn);
  }
  exchanges.ForgetProcess(tgid);
  processes.Exited(tgid);
  for (auto it = ssl_fds.begin(); it != ssl_fds.end();) {
    it = it->first.first == tgid ? ssl_fds.erase(it) : std::next(it);
  }
  for (auto it = last_client_read.begin(); it != last_client_read.end();) {
    it = it->first.first == tgid ? last_client_read.erase(it) : std::next(it);
  }
}

// ---------------------------------------------------------------------------
// Public API.

Profiler::Profiler(ProfilerOptions options)
    : state_(std::make_unique<State>(options)) {}

Profiler::~Profiler() = default;

Profiler::StateSize Profiler::state_size() const {
  StateSize size;
  size.connection_entries = state_->connections.entries();
  size.attribution_processes = state_->exchanges.tracked_processes();
  size.processes = state_->processes.size();
  size.socketpair_ends = state_->socketpairs.size();
  state_->connections.ForEach([&size](const Conn& conn) {
    if (const ClientConn* client = conn.client()) {
      size.held_records += client->pre_request.syscalls.size();
      if (client->request) size.held_records += client->request->syscalls.size();
    }
    if (const BackendLink* link = conn.link_state(); link && link->exchange) {
      size.held_records += link->exchange->syscalls.size();
    }
    if (const BackendSide* side = conn.side(); side && side->work) {
      size.held_records += side->work->syscalls.size();
    }
  });
  return size;
}

void Profiler::OnProcess(const ProcessInfo& info) {
  state_->processes.OnProcess(info);
}

void Profiler::OnProcessEvent(const ProcessEvent& event) {
  state_->processes.OnProcessEvent(event);
  state_->Push(event.ts_ns, event);
}

void Profiler::OnEvent(const SyscallEvent& event) {
  state_->Push(event.exit_ns, event);
}

void Profiler::OnTlsData(const TlsDataEvent& event) {
  state_->Push(event.exit_ns, event);
}

void Profiler::OnDrops(uint64_t from_ns, uint64_t to_ns, uint64_t count) {
  if (count == 0) return;
  // Forget windows that ended before every open request started. A
  // request's span starts at its connection's accept when it owns it
  // (request_finalizer.cc), so a connection accepted and not yet read, or
  // whose first request is open, holds on to the windows since its accept.
  uint64_t oldest = state_->reorder.processed_ns();
  state_->connections.ForEach([&oldest](const Conn& conn) {
    const OpenRequest* r = conn.open_request();
    if (r != nullptr && r->has_read) {
      oldest = std::min(oldest, r->first_read_exit);
    }
    const bool first_to_come = r == nullptr && conn.requests == 0;
    const bool first_open = r != nullptr && r->first_of_conn;
    if (conn.accept.has_value() && (first_to_come || first_open)) {
      oldest = std::min(oldest, conn.accept->start_ns());
    }
  });
  if (auto queued = state_->reorder.oldest_key()) {
    oldest = std::min(oldest, *queued);
  }
  state_->finalizer.AddDropWindow(from_ns, to_ns, oldest);
}

void Profiler::AdvanceTo(uint64_t now_ns) {
  state_->reorder.AdvanceTo(now_ns);
  state_->Drain(false);
  state_->finalizer.AdvanceNested(state_->reorder.processed_ns());
}

void Profiler::SetRequestCallback(
    std::function<void(const Request&)> callback) {
  state_->finalizer.SetCallback(std::move(callback));
}

void Profiler::Finish(uint64_t end_ns) {
  state_->Drain(true);
  state_->reorder.FinishAt(end_ns);
  // A connection set aside on a reused fd will not see its close any more.
  while (Conn* old = state_->connections.AnyDisplaced()) {
    state_->FinalizeIfOpen(old, IncompleteReason::kCloseNotSeen);
    state_->CloseConn(old);
  }
  std::vector<uint64_t> open, streams;
  state_->connections.ForEach([&open, &streams](const Conn& conn) {
    if (conn.open_request() != nullptr) open.push_back(conn.uid);
    const ClientConn* client = conn.client();
    if (client != nullptr && ClientRequestBoundaries::HasStreams(*client)) {
      streams.push_back(conn.uid);
    }
  });
  // An HTTP/2 stream ends at its END_STREAM: one still open at the end is.
  for (uint64_t uid : streams) {
    Conn* conn = state_->connections.At(uid);
    state_->client_requests.EndStreams(*conn, conn->client(),
                                       IncompleteReason::kStillOpenAtEnd);
  }
  for (uint64_t uid : open) {
    // A request whose response was written is complete on a connection the
    // client keeps open; only one still waiting for its response or for its
    // backend exchange to finish is not.
    Conn* conn = state_->connections.At(uid);
    ClientConn* client = conn->client();
    const OpenRequest& r = *client->request;
    const Exchange* ex = r.exchange.get();
    bool exchange_done = ex == nullptr || ex->ended || ex->done;
    state_->finalizer.Finalize(
        *conn, client,
        r.has_write && exchange_done
            ? std::nullopt
            : std::optional(IncompleteReason::kStillOpenAtEnd));
  }
  state_->exchanges.Flush(IncompleteReason::kStillOpenAtEnd);
  state_->finalizer.FlushNested();
}

Report Profiler::BuildReport(const CaptureInfo& info) const {
  Report report;
  report.capture = info;
  state_->processes.AddTo(&report);
  state_->finalizer.stats().Fill(&report);
  report.anomalies = state_->anomalies;
  report.socketpair_calls = state_->socketpair_calls;
  report.socketpair_ends_forgotten = state_->socketpairs.evicted();
  return report;
}

const Anomalies& Profiler::anomalies() const { return state_->anomalies; }

}  // namespace reqcost::analyzers
