#include "analyzers/connections.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
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
  return {sock.local_addr, sock.local_port, sock.remote_addr, sock.remote_port};
}

TupleKey PeerKey(const SocketId& sock) {
  return {sock.remote_addr, sock.remote_port, sock.local_addr, sock.local_port};
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

void Conn::SetRole(Role role) {
  if (role == role_) return;
  if (BackendLink* l = link()) {
    set_aside_link_ = std::make_unique<BackendLink>(std::move(*l));
  } else if (BackendSide* b = side()) {
    set_aside_side_ = std::make_unique<BackendSide>(std::move(*b));
  }
  role_ = role;
  switch (role) {
    case Role::kClient:
      state_.emplace<ClientConn>();
      break;
    case Role::kLink:
      if (set_aside_link_) {
        state_ = std::move(*set_aside_link_);
        set_aside_link_.reset();
      } else {
        state_.emplace<BackendLink>();
      }
      break;
    case Role::kBackendSide:
      if (set_aside_side_) {
        state_ = std::move(*set_aside_side_);
        set_aside_side_.reset();
      } else {
        state_.emplace<BackendSide>();
      }
      break;
    case Role::kCall:
      state_.emplace<CallConn>();
      break;
    case Role::kUnknown:
    case Role::kIgnored:
      state_ = std::monostate();
      break;
  }
}

void Conn::ResetBackendState() {
  set_aside_link_.reset();
  set_aside_side_.reset();
  if (BackendLink* l = link()) *l = BackendLink();
  if (BackendSide* b = side()) *b = BackendSide();
}

}  // namespace reqcost::analyzers
