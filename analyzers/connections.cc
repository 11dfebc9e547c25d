#include "analyzers/connections.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string_view>

#include "analyzers/profiler.h"
#include "analyzers/profiler_state.h"
#include "collector/event.h"

namespace reqcost::analyzers {
namespace {

constexpr uint16_t kAfUnix = 1;
constexpr uint16_t kAfInet = 2;
constexpr uint16_t kAfInet6 = 10;
constexpr uint16_t kAfNetlink = 16;
constexpr uint16_t kSockStream = 1;
constexpr uint16_t kSockDgram = 2;

}  // namespace

bool SameSocket(const SocketId& a, const SocketId& b) {
  if (a.family == 0 || a.family != b.family) return false;
  if (a.family == kAfUnix) return a.sock != 0 && a.sock == b.sock;
  // A TCP socket done before its close (the peer closed after our shutdown)
  // is unhashed and reads local port 0: the same socket id and the rest of
  // the tuple still name it.
  const bool port_gone = (a.local_port == 0 || b.local_port == 0) &&
                         a.sock != 0 && a.sock == b.sock;
  return a.local_addr == b.local_addr &&
         (a.local_port == b.local_port || port_gone) &&
         a.remote_addr == b.remote_addr && a.remote_port == b.remote_port;
}

bool CarriesRequests(const SocketId& sock) {
  if (sock.family == 0) return true;
  return (sock.family == kAfUnix || sock.family == kAfInet ||
          sock.family == kAfInet6) &&
         sock.type == kSockStream;
}

Target SideCallTarget(const SocketId& sock) {
  constexpr uint16_t kDnsPort = 53;
  switch (sock.family) {
    case kAfNetlink:
      return Target::kNetlink;
    case kAfUnix:
      return Target::kUnixDgram;
    case kAfInet:
    case kAfInet6:
      if (sock.type != kSockDgram) return Target::kSocket;
      return sock.remote_port == kDnsPort || sock.local_port == kDnsPort
                 ? Target::kDns
                 : Target::kUdp;
    default:
      return Target::kSocket;
  }
}

Target NameServiceTarget(const SyscallEvent& connect) {
  if ((connect.flags & SyscallEvent::kPeerPath) == 0) return Target::kClient;
  std::string_view path(connect.payload);
  path = path.substr(0, path.find('\0'));
  for (std::string_view nscd : {"/var/run/nscd/socket", "/run/nscd/socket"}) {
    if (path == nscd) return Target::kNscd;
  }
  constexpr std::string_view kResolvedDir = "/run/systemd/resolve/";
  if (path.substr(0, kResolvedDir.size()) == kResolvedDir) {
    return Target::kResolved;
  }
  return Target::kClient;
}

std::string BackendAddress(const Conn& link) {
  const SocketId& s = link.sock;
  if (s.family == AF_INET || s.family == AF_INET6) {
    char text[INET6_ADDRSTRLEN] = "?";
    inet_ntop(s.family, s.remote_addr.data(), text, sizeof(text));
    return s.family == AF_INET6 ? absl::StrCat("[", text, "]:", s.remote_port)
                                : absl::StrCat(text, ":", s.remote_port);
  }
  if (s.family != AF_UNIX) return "unknown";
  return link.peer_path.empty() ? "unix" : link.peer_path;
}

TupleKey LocalKey(const SocketId& sock) {
  return {sock.local_addr, sock.local_port, sock.remote_addr,
          sock.remote_port};
}

TupleKey PeerKey(const SocketId& sock) {
  return {sock.remote_addr, sock.remote_port, sock.local_addr,
          sock.local_port};
}

Role GuessUnpairedRole(const SocketId& sock,
                       const std::set<uint16_t>& listen_ports) {
  if (sock.family == 0) return Role::kIgnored;
  if (sock.family == kAfUnix) {
    // A front server's clients come over TCP; an unpaired unix connection is
    // taken as a link (pairing, if its other end shows up, corrects it).
    return Role::kLink;
  }
  if (listen_ports.count(sock.local_port) > 0 ||
      sock.local_port < sock.remote_port) {
    return Role::kClient;
  }
  return Role::kLink;
}

// ---------------------------------------------------------------------------
// Connections.

Conn* Profiler::State::Find(uint32_t tgid, int32_t fd) {
  auto it = by_fd.find({tgid, fd});
  return it == by_fd.end() ? nullptr : it->second;
}

Conn* Profiler::State::Open(const SyscallEvent& e, int32_t fd,
                            bool accepted) {
  if (Conn* old = Find(e.tgid, fd)) {
    // The fd was reused before its close was seen: set aside (see
    // displaced); one still waiting there waits no longer.
    Settle(e, true);
    displaced[{e.tgid, fd}] = {old, e.exit_ns};  // by_fd gets the new one
  }
  uint64_t uid = next_uid++;
  Conn& conn = conns[uid];
  conn.uid = uid;
  conn.tgid = e.tgid;
  conn.fd = fd;
  conn.sock = e.sock;
  if (!accepted && (e.flags & SyscallEvent::kPeerPath) != 0) {
    std::string_view path(e.payload);
    path = path.substr(0, path.find('\0', 1));
    conn.peer_path = !path.empty() && path[0] == '\0'
                         ? "@" + std::string(path.substr(1))
                         : std::string(path);
  }
  conn.accepted = accepted;
  by_fd[{e.tgid, fd}] = &conn;
  processes.try_emplace(e.tgid);
  return &conn;
}

void Profiler::State::Index(Conn* conn) {
  if (conn->sock.family == kAfUnix) {
    if (conn->sock.sock != 0) unix_index[conn->sock.sock] = conn->uid;
  } else if (conn->sock.family != 0) {
    inet_index[LocalKey(conn->sock)] = conn->uid;
  }
}

void Profiler::State::Unindex(Conn* conn) {
  if (conn->sock.family == kAfUnix) {
    auto it = unix_index.find(conn->sock.sock);
    if (it != unix_index.end() && it->second == conn->uid) {
      unix_index.erase(it);
    }
  } else if (conn->sock.family != 0) {
    auto it = inet_index.find(LocalKey(conn->sock));
    if (it != inet_index.end() && it->second == conn->uid) {
      inet_index.erase(it);
    }
  }
}

Conn* Profiler::State::FindPartner(const Conn& conn) {
  std::optional<uint64_t> uid;
  if (conn.sock.family == kAfUnix) {
    if (conn.sock.peer == 0) return nullptr;
    auto it = unix_index.find(conn.sock.peer);
    if (it != unix_index.end()) uid = it->second;
  } else if (conn.sock.family != 0) {
    auto it = inet_index.find(PeerKey(conn.sock));
    if (it != inet_index.end()) uid = it->second;
  }
  if (!uid.has_value() || *uid == conn.uid) return nullptr;
  Conn* partner = &conns.at(*uid);
  if (conn.sock.family == kAfUnix && partner->sock.peer != 0 &&
      partner->sock.peer != conn.sock.sock) {
    return nullptr;
  }
  return partner;
}

void Profiler::State::MakeLink(Conn* link, Conn* side) {
  for (Conn* c : {link, side}) {
    if (c->role != Role::kClient) continue;
    ++anomalies.reclassified_connections;
    if (c->request) {
      StopWaiting(c->request.get());
      c->request.reset();
    }
  }
  link->role = Role::kLink;
  side->role = Role::kBackendSide;
  // A backend's accept that returned before the connect it pairs with (its
  // events came first) was taken as a client's: it is the backend side's.
  if (side->accept.has_value() && side->accept->side == Side::kServer) {
    side->accept->side = Side::kBackend;
    side->accept->target = Target::kBackendSide;
  }
  link->partner = side->uid;
  side->partner = link->uid;
  processes[side->tgid].has_backend_side = true;
  if (link->exchange) {
    link->exchange->backend_traced = true;
    // Queue: the backend accepted the connection the exchange opened.
    if (link->exchange->new_conn && link->requests == 1 &&
        side->accept_exit.has_value()) {
      link->exchange->backend_accept_exit = side->accept_exit;
    }
  }
}

// Decides the role of a connection first seen on `e`.
void Profiler::State::Classify(Conn* conn) {
  Conn* partner = FindPartner(*conn);
  Index(conn);
  if (!conn->preattach) {
    if (conn->accepted) {
      if (partner != nullptr && partner->role == Role::kLink) {
        MakeLink(partner, conn);
      } else {
        conn->role = Role::kClient;
        NoteClient(conn->tgid);
        listen_ports.insert(conn->sock.local_port);
      }
    } else {
      conn->role = Role::kLink;
      if (partner != nullptr && partner->accepted &&
          (partner->role == Role::kClient ||
           partner->role == Role::kBackendSide) &&
          !partner->request) {
        MakeLink(conn, partner);
      }
    }
    return;
  }
  if (partner != nullptr) {
    bool this_is_link;
    if (!partner->preattach) {
      // The partner's own accept or connect says which end it is.
      this_is_link = partner->accepted;
    } else {
      const auto& mine = processes[conn->tgid];
      const auto& theirs = processes[partner->tgid];
      if (mine.has_client != theirs.has_client) {
        this_is_link = mine.has_client;
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
  conn->role = GuessUnpairedRole(conn->sock, listen_ports);
  if (conn->role == Role::kIgnored) {
    ++anomalies.ignored_connections;
  } else if (conn->role == Role::kClient) {
    NoteClient(conn->tgid);
  }
}

// `tgid` has client connections. Pairs of connections opened before attach
// whose roles were guessed without that evidence are corrected: the end in
// the process with clients is the link. What the wrong roles made of their
// first events is dropped.
void Profiler::State::NoteClient(uint32_t tgid) {
  if (processes[tgid].has_client) return;
  processes[tgid].has_client = true;
  for (auto& [uid, c] : conns) {
    if (!c.role_guessed || c.tgid != tgid || c.role != Role::kBackendSide ||
        !c.partner.has_value() || conns.count(*c.partner) == 0) {
      continue;
    }
    Conn& other = conns.at(*c.partner);
    if (processes[other.tgid].has_client) continue;
    // Taken as a backend request, the link's reply reads left one with no
    // "reply": then its next send begins a whole exchange.
    const bool after_reply = c.work && !c.work->has_write;
    for (Conn* x : {&c, &other}) {
      x->role_guessed = false;
      x->requests = 0;
      x->exchange.reset();
      x->unbound_exchanges.clear();
      x->unbound_work.clear();
      x->work.reset();
    }
    c.requests = after_reply ? 1 : 0;
    MakeLink(&c, &other);
    ++anomalies.reclassified_connections;
  }
  bool side = false;
  for (const auto& [uid, c] : conns) {
    side = side || (c.tgid == tgid && c.role == Role::kBackendSide);
  }
  processes[tgid].has_backend_side = side;
}

void Profiler::State::Close(Conn* conn) {
  Unindex(conn);
  if (conn->exchange) conn->exchange->done = true;
  if (conn->role == Role::kLink) {
    anomalies.unmatched_backend_work += conn->unbound_work.size();
  }
  auto it = by_fd.find({conn->tgid, conn->fd});
  if (it != by_fd.end() && it->second == conn) by_fd.erase(it);
  auto d = displaced.find({conn->tgid, conn->fd});
  if (d != displaced.end() && d->second.conn == conn) displaced.erase(d);
  conns.erase(conn->uid);
}

// The connection set aside on e's fd, if any, takes e when e is its own
// close (told by the socket); else it waits on, until another close on the
// fd (the new connection's: the old close, which began before the new
// connection existed, would have come first), kDisplacedWaitNs past the
// reuse, or `expire_now`: then its close was lost. True when e was its
// close.
bool Profiler::State::Settle(const SyscallEvent& e, bool expire_now) {
  if (displaced.empty()) return false;  // the common case: no lookup
  int32_t fd = e.conn_fd();
  auto it = displaced.find({e.tgid, fd});
  if (it == displaced.end()) return false;
  Conn* old = it->second.conn;
  if (e.syscall == Syscall::kClose && SameSocket(e.sock, old->sock)) {
    displaced.erase(it);
    Dispatch(old, e);
    return true;
  }
  if (!expire_now && e.syscall != Syscall::kClose &&
      e.exit_ns < it->second.since_ns + kDisplacedWaitNs) {
    return false;
  }
  displaced.erase(it);
  if (old->request) FinalizeRequest(old, IncompleteReason::kCloseNotSeen);
  Close(old);
  return false;
}

}  // namespace reqcost::analyzers
