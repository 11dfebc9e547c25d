#include "analyzers/connection_table.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "analyzers/connections.h"
#include "analyzers/payload.h"
#include "analyzers/process_table.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {
namespace {

constexpr uint16_t kAfUnix = 1;

}  // namespace

Target ConnectionTable::NameServiceCall(const SyscallEvent& e) {
  const std::pair<uint32_t, int32_t> fd_key{e.tgid, e.conn_fd()};
  if (e.syscall == Syscall::kConnect) {
    if (Target t = NameServiceTarget(e); t != Target::kClient) {
      name_service_fds_[fd_key] = t;
      return t;
    }
  }
  if (name_service_fds_.empty()) return Target::kClient;
  auto it = name_service_fds_.find(fd_key);
  if (it == name_service_fds_.end()) return Target::kClient;
  if (IsAccept(e.syscall) || e.syscall == Syscall::kConnect) {
    name_service_fds_.erase(it);  // the fd is another connection's now
    return Target::kClient;
  }
  Target t = it->second;
  if (e.syscall == Syscall::kClose) name_service_fds_.erase(it);
  return t;
}

std::vector<uint64_t> ConnectionTable::UidsOf(uint32_t tgid) const {
  std::vector<uint64_t> uids;
  for (const auto& [uid, conn] : conns_) {
    if (conn.tgid == tgid) uids.push_back(uid);
  }
  return uids;
}

Conn* ConnectionTable::Open(const SyscallEvent& e, int32_t fd, bool accepted) {
  if (Conn* old = Find(e.tgid, fd)) {
    // The fd was reused before its close was seen: set aside (see
    // displaced_); one still waiting there waits no longer.
    Settle(e, true);
    displaced_[{e.tgid, fd}] = {old, e.exit_ns};  // by_fd_ gets the new one
  }
  uint64_t uid = next_uid_++;
  Conn& conn = conns_[uid];
  conn.uid = uid;
  conn.tgid = e.tgid;
  conn.fd = fd;
  conn.sock = e.sock;
  if (!accepted && (e.flags & SyscallEvent::kPeerPath) != 0) {
    std::string_view path(e.payload);
    path = path.substr(0, path.find('\0', 1));
    // A path is bytes; shown, it must be text (JSON, spans, labels).
    conn.peer_path = !path.empty() && path[0] == '\0'
                         ? "@" + ValidUtf8(path.substr(1))
                         : ValidUtf8(path);
  }
  conn.accepted = accepted;
  by_fd_[{e.tgid, fd}] = &conn;
  processes_->Note(e.tgid);
  return &conn;
}

void ConnectionTable::Index(Conn* conn) {
  if (conn->sock.family == kAfUnix) {
    if (conn->sock.sock != 0) unix_index_[conn->sock.sock] = conn->uid;
  } else if (conn->sock.family != 0) {
    inet_index_[LocalKey(conn->sock)] = conn->uid;
  }
}

void ConnectionTable::Unindex(Conn* conn) {
  if (conn->sock.family == kAfUnix) {
    auto it = unix_index_.find(conn->sock.sock);
    if (it != unix_index_.end() && it->second == conn->uid) {
      unix_index_.erase(it);
    }
  } else if (conn->sock.family != 0) {
    auto it = inet_index_.find(LocalKey(conn->sock));
    if (it != inet_index_.end() && it->second == conn->uid) {
      inet_index_.erase(it);
    }
  }
}

Conn* ConnectionTable::FindPartner(const Conn& conn) {
  std::optional<uint64_t> uid;
  if (conn.sock.family == kAfUnix) {
    if (conn.sock.peer == 0) return nullptr;
    auto it = unix_index_.find(conn.sock.peer);
    if (it != unix_index_.end()) uid = it->second;
  } else if (conn.sock.family != 0) {
    auto it = inet_index_.find(PeerKey(conn.sock));
    if (it != inet_index_.end()) uid = it->second;
  }
  if (!uid.has_value() || *uid == conn.uid) return nullptr;
  Conn* partner = &conns_.at(*uid);
  if (conn.sock.family == kAfUnix && partner->sock.peer != 0 &&
      partner->sock.peer != conn.sock.sock) {
    return nullptr;
  }
  return partner;
}

void ConnectionTable::MakeLink(Conn* link, Conn* side) {
  // A call connection that turns out to be one end of a backend link gives
  // its place under kMaxCallConnsPerProcess back, or the places would leak.
  ReleaseCallPlace(link);
  ReleaseCallPlace(side);
  for (Conn* c : {link, side}) {
    if (c->role() != Role::kClient) continue;
    // A backend's accept that returned before the connect it pairs with
    // (the connect's exit is stamped later) and has carried nothing yet:
    // pairing completes its classification, nothing was taken wrongly.
    const bool accept_first = c->accepted && !c->preattach &&
                              c->requests == 0 && c->bytes_in == 0 &&
                              c->bytes_out == 0;
    if (!accept_first) ++anomalies_->reclassified_connections;
    owner_->OnClientDropped(c);
  }
  link->SetRole(Role::kLink);
  side->SetRole(Role::kBackendSide);
  // A backend's accept that returned before the connect it pairs with (its
  // events came first) was taken as a client's: it is the backend side's.
  if (side->accept.has_value() && side->accept->side == Side::kServer) {
    side->accept->side = Side::kBackend;
    side->accept->target = Target::kBackendSide;
  }
  link->partner = side->uid;
  side->partner = link->uid;
  processes_->SetBackendSide(side->tgid, true);
  owner_->OnPaired(link, *side);
}

bool ConnectionTable::IsCall(const Conn& conn, const Conn* partner) const {
  if (!processes_->has_backend_side(conn.tgid)) return false;
  if (partner == nullptr) return true;
  if (partner->tgid == conn.tgid) return false;
  // A traced peer: a call unless the peer's process is a server with a
  // backend link to this process (then this is the reverse direction of
  // the request's own path).
  for (const auto& [uid, c] : conns_) {
    if (c.tgid != partner->tgid || c.role() != Role::kLink) continue;
    if (!c.partner.has_value()) continue;
    auto it = conns_.find(*c.partner);
    if (it != conns_.end() && it->second.tgid == conn.tgid) return false;
  }
  return true;
}

void ConnectionTable::MakeCall(Conn* conn) {
  size_t& n = call_conns_[conn->tgid];
  if (n >= kMaxCallConnsPerProcess) {
    conn->SetRole(Role::kIgnored);
    ++anomalies_->call_connections_over_cap;
    return;
  }
  ++n;
  conn->SetRole(Role::kCall);
}

void ConnectionTable::PairCall(Conn* call, Conn* accepted) {
  CallConn* state = call->call();
  if (state->peer_uid != 0) return;
  state->peer_uid = accepted->uid;
  state->peer_offsets = !call->preattach && !accepted->preattach;
  accepted->call_peer = true;
  // The accept can come after the call's first send (its exit is stamped
  // later): the call in progress is the peer's too.
  if (state->call && !state->call->opens) {
    state->call->peer_conn = state->peer_uid;
    state->call->offset_valid = state->peer_offsets;
  }
}

// Decides the role of a connection first seen on `e`.
void ConnectionTable::Classify(Conn* conn) {
  Conn* partner = FindPartner(*conn);
  Index(conn);
  if (!conn->preattach) {
    if (conn->accepted) {
      if (partner != nullptr && partner->role() == Role::kLink) {
        MakeLink(partner, conn);
      } else {
        conn->SetRole(Role::kClient);
        NoteClient(conn->tgid);
        listen_ports_.insert(conn->sock.local_port);
        if (partner != nullptr && partner->call() != nullptr) {
          PairCall(partner, conn);
        }
      }
    } else if (IsCall(*conn, partner)) {
      MakeCall(conn);
      if (partner != nullptr && partner->accepted && conn->call() != nullptr &&
          partner->role() == Role::kClient) {
        PairCall(conn, partner);
      }
    } else {
      conn->SetRole(Role::kLink);
      if (partner != nullptr && partner->accepted &&
          (partner->role() == Role::kClient ||
           partner->role() == Role::kBackendSide) &&
          partner->open_request() == nullptr) {
        MakeLink(conn, partner);
      }
    }
    return;
  }
  if (partner != nullptr && partner->call() != nullptr && !partner->preattach) {
    // The other end of a traced backend's call whose connect was seen (its
    // accept was not): the accepting end, a client connection of the peer.
    conn->SetRole(Role::kClient);
    NoteClient(conn->tgid);
    PairCall(partner, conn);
    return;
  }
  if (partner != nullptr) {
    bool this_is_link;
    if (!partner->preattach) {
      // The partner's own accept or connect says which end it is.
      this_is_link = partner->accepted;
    } else {
      const bool mine = processes_->has_client(conn->tgid);
      const bool theirs = processes_->has_client(partner->tgid);
      if (mine != theirs) {
        this_is_link = mine;
      } else {
        // The accepting end has the (lower) service port. A guess (always,
        // on unix sockets): NoteClient corrects it.
        this_is_link = conn->sock.local_port > conn->sock.remote_port;
        conn->role_guessed = partner->role_guessed = true;
      }
    }
    if (this_is_link) {
      MakeLink(conn, partner);
    } else {
      MakeLink(partner, conn);
    }
    return;
  }
  const Role guess = GuessUnpairedRole(conn->sock, listen_ports_);
  if (guess == Role::kLink && IsCall(*conn, nullptr)) {
    // A backend's connection opened before attach (a pool, pconnect): its
    // calls count from the first one seen.
    MakeCall(conn);
    return;
  }
  conn->SetRole(guess);
  if (conn->role() == Role::kIgnored) {
    ++anomalies_->ignored_connections;
  } else if (conn->role() == Role::kClient) {
    NoteClient(conn->tgid);
  }
}

// `tgid` has client connections. Pairs of connections opened before attach
// whose roles were guessed without that evidence are corrected: the end in
// the process with clients is the link. What the wrong roles made of their
// first events is dropped.
void ConnectionTable::NoteClient(uint32_t tgid) {
  if (!processes_->MarkClient(tgid)) return;
  for (auto& [uid, c] : conns_) {
    if (!c.role_guessed || c.tgid != tgid || c.role() != Role::kBackendSide ||
        !c.partner.has_value() || conns_.count(*c.partner) == 0) {
      continue;
    }
    Conn& other = conns_.at(*c.partner);
    if (processes_->has_client(other.tgid)) continue;
    // Taken as a backend request, the link's reply reads left one with no
    // "reply": then its next send begins a whole exchange.
    const BackendWork* work = c.side()->work.get();
    const bool after_reply = work != nullptr && !work->has_write;
    for (Conn* x : {&c, &other}) {
      x->role_guessed = false;
      x->requests = 0;
      x->ResetBackendState();
    }
    c.requests = after_reply ? 1 : 0;
    MakeLink(&c, &other);
    ++anomalies_->reclassified_connections;
  }
  bool side = false;
  for (const auto& [uid, c] : conns_) {
    side = side || (c.tgid == tgid && c.role() == Role::kBackendSide);
  }
  processes_->SetBackendSide(tgid, side);
}

void ConnectionTable::ReleaseCallPlace(const Conn* conn) {
  if (conn->role() != Role::kCall) return;
  auto it = call_conns_.find(conn->tgid);
  if (it != call_conns_.end() && --it->second == 0) call_conns_.erase(it);
}

void ConnectionTable::Close(Conn* conn) {
  ReleaseCallPlace(conn);
  Unindex(conn);
  auto it = by_fd_.find({conn->tgid, conn->fd});
  if (it != by_fd_.end() && it->second == conn) by_fd_.erase(it);
  auto d = displaced_.find({conn->tgid, conn->fd});
  if (d != displaced_.end() && d->second.conn == conn) displaced_.erase(d);
  conns_.erase(conn->uid);
}

// The connection set aside on e's fd, if any, takes e when e is its own
// close (told by the socket); else it waits on, until another close on the
// fd (the new connection's: the old close, which began before the new
// connection existed, would have come first), kDisplacedWaitNs past the
// reuse, or `expire_now`: then its close was lost. Returns it when e was its
// close.
Conn* ConnectionTable::Settle(const SyscallEvent& e, bool expire_now) {
  if (displaced_.empty()) return nullptr;  // the common case: no lookup
  int32_t fd = e.conn_fd();
  auto it = displaced_.find({e.tgid, fd});
  if (it == displaced_.end()) return nullptr;
  Conn* old = it->second.conn;
  if (e.syscall == Syscall::kClose && SameSocket(e.sock, old->sock)) {
    displaced_.erase(it);
    return old;
  }
  if (!expire_now && e.syscall != Syscall::kClose &&
      e.exit_ns < it->second.since_ns + kDisplacedWaitNs) {
    return nullptr;
  }
  displaced_.erase(it);
  owner_->OnCloseLost(old);
  Close(old);
  return nullptr;
}

}  // namespace reqcost::analyzers
