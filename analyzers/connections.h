// Socket identity and pairing: which connection is a client connection, a
// backend link or the backend side of one, and which process is a server or
// a backend (internal to the profiler; ConnectionTable in connection_table.h
// keeps the open connections and applies these rules).
//
// Connections are (tgid, fd) from accept/connect to close. A connection
// accepted by a traced process is a *client* connection unless it pairs with
// a traced connect (then it is the *backend side* of that link); a connection
// connected by a traced process is a *backend link*. Pairing is by socket
// identity among connections that are open at the same time: for AF_UNIX one
// end's `peer` is the other end's `sock`; for AF_INET/AF_INET6 the local
// address:port of one end is the remote of the other. An id is forgotten when
// its connection closes, so a reused kernel address never pairs a new
// connection with an old one. The kernel frees an fd before close() returns,
// so in a threaded process another thread's accept or connect can return the
// same fd before that close is seen: the old connection then waits aside for
// a close with its own socket identity until the fd's next other close, for
// up to kDisplacedWaitNs of event time, or until the fd is reused once more;
// if none comes, it was lost, and
// its request is incomplete ("close not seen"). A connection first seen on a
// read/write was
// opened before attach: it is paired the same way; if unpaired, a TCP one is
// taken as a client connection when its local port is a port traced
// processes accepted on or is lower than its remote port, a backend link
// otherwise; an unpaired unix one is taken as a backend link. When its other
// end shows up later, pairing corrects the guess (the end in the process
// that has client connections, else the end with the higher port, is the
// link). That last rule is a guess (on unix sockets, which have no ports, a
// coin): when one of the two processes later shows a client connection, a
// guessed pair is turned round so that its end is the link.
//
// Process role: "backend" if it has backend-side connections (paired evidence
// is the more specific rule, so a process that is both is a backend),
// else "server" if it has client connections, else "other".
#ifndef REQCOST_ANALYZERS_CONNECTIONS_H_
#define REQCOST_ANALYZERS_CONNECTIONS_H_

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "analyzers/call_conn.h"
#include "analyzers/client_requests.h"
#include "analyzers/exchanges.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/payload.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

// How long a connection whose fd was reused waits for its own close.
inline constexpr uint64_t kDisplacedWaitNs = 1'000'000'000;

// kCall: an outgoing stream connection of a backend process to a peer that
// is not the server whose requests it serves (its database, cache or HTTP
// service): its exchanges are the backend's calls, not backend exchanges.
enum class Role { kUnknown, kClient, kLink, kBackendSide, kIgnored, kCall };

// One connection: its identity, shared by every role, beside the state of
// the role it has (a client connection's requests, a backend link's
// exchanges, a backend side's backend requests). Only the stage of a role
// reads or changes that role's state; the connection table gives a
// connection its role (and fresh state for it) as pairing decides.
struct Conn {
  uint64_t uid = 0;
  uint32_t tgid = 0;
  int32_t fd = -1;
  bool preattach =
      false;  // first seen on a read/write/close, not accept/connect
  // Why its first request is incomplete when preattach (see Open's caller).
  IncompleteReason preattach_reason = IncompleteReason::kOpenedBeforeAttach;
  bool accepted = false;      // opened by accept (vs connect or unknown)
  bool role_guessed = false;  // paired before attach with no evidence
  SocketId sock;
  // The unix socket path its connect asked for ("@name" for an abstract
  // one); empty when not known.
  std::string peer_path;
  uint64_t requests = 0;  // client requests / exchanges / backend works so far
  std::optional<uint64_t> partner;  // uid of the paired connection
  // An accepted connection whose other end is a traced backend's call
  // connection: its requests are nested in the calls (nested_requests.h).
  bool call_peer = false;
  // Bytes sent / read on it while traced: stream offsets that match the other
  // end's when both ends were opened while tracing.
  uint64_t bytes_out = 0;
  uint64_t bytes_in = 0;
  // Its accept (a client connection's or a backend side's), when seen.
  std::optional<SyscallRecord> accept;
  std::optional<uint64_t> accept_exit;
  // FastCGI framing of what it sends and what it reads (links and backend
  // sides), kept across a change of role.
  FastCgiStream fcgi_out;
  FastCgiStream fcgi_in;

  Role role() const { return role_; }
  // Its role's state, or null when it has another role.
  ClientConn* client() { return std::get_if<ClientConn>(&state_); }
  const ClientConn* client() const { return std::get_if<ClientConn>(&state_); }
  BackendLink* link() { return std::get_if<BackendLink>(&state_); }
  const BackendLink* link() const { return std::get_if<BackendLink>(&state_); }
  BackendSide* side() { return std::get_if<BackendSide>(&state_); }
  const BackendSide* side() const {
    return std::get_if<BackendSide>(&state_);
  }
  CallConn* call() { return std::get_if<CallConn>(&state_); }
  // Its client request still open, or null (and null for other roles).
  OpenRequest* open_request() const {
    const ClientConn* c = client();
    return c == nullptr ? nullptr : c->request.get();
  }

  // Its backend link state, or the one set aside when pairing gave it
  // another role after it was a link; null when it never was one.
  BackendLink* link_state() {
    return link() != nullptr ? link() : set_aside_link_.get();
  }
  const BackendLink* link_state() const {
    return link() != nullptr ? link() : set_aside_link_.get();
  }

  // Gives it `role`. A client connection's state starts fresh (a connection
  // becomes one only when first classified); a backend link's or backend
  // side's is set aside when it takes another role and taken back if it
  // returns to it (pairing before attach can change its mind), fresh the
  // first time. kUnknown and kIgnored have no state.
  void SetRole(Role role);
  // Gives it fresh backend link and backend side state, set aside or not.
  void ResetBackendState();

 private:
  Role role_ = Role::kUnknown;
  std::variant<std::monostate, ClientConn, BackendLink, BackendSide, CallConn>
      state_;
  std::unique_ptr<BackendLink> set_aside_link_;
  std::unique_ptr<BackendSide> set_aside_side_;
};

// A TCP/IP socket's identity as (local address, local port, remote address,
// remote port).
using TupleKey = std::tuple<std::array<uint8_t, 16>, uint16_t,
                            std::array<uint8_t, 16>, uint16_t>;

// Whether two identities name the same socket: a unix socket by its own
// address (its peer may be gone by close), TCP by its 4-tuple.
bool SameSocket(const SocketId& a, const SocketId& b);

// Only connected stream sockets carry requests: AF_UNIX SOCK_STREAM and TCP.
// Netlink, UDP, raw, packet and unix datagram sockets never become client
// connections or backend links: their calls are side calls, shown inside the
// request the process is serving (name resolution: a netlink address dump,
// DNS over UDP). A socket of unknown family (0) is left to Classify.
bool CarriesRequests(const SocketId& sock);
// The kind of a socket that carries no requests: kNetlink, kDns (UDP to or
// from port 53), kUdp, kUnixDgram, else kSocket.
Target SideCallTarget(const SocketId& sock);
// The name service a unix stream connect asked for (its path, from the
// event's payload when kPeerPath is set: nscd's /var/run/nscd/socket or
// /run/nscd/socket, systemd-resolved's /run/systemd/resolve/...): kNscd or
// kResolved; kClient (no name service) otherwise. Such a connection carries
// no requests either: its calls are side calls.
Target NameServiceTarget(const SyscallEvent& connect);

// The backend a link leads to, as a metrics label and span attribute:
// "host:port" ("[v6]:port") for TCP, the socket path for unix, "unix" when
// the path is unknown (a link opened before attach, or connect's path not
// captured), "unknown" for a socket of unknown family.
std::string BackendAddress(const Conn& link);

// The key of a TCP/IP socket in the index of open connections.
TupleKey LocalKey(const SocketId& sock);
// The key its other end has in that index: local and remote swapped.
TupleKey PeerKey(const SocketId& sock);

// The role of a connection first seen on a read/write, with no other end
// paired: kIgnored without a socket identity, kLink for a unix socket, else
// kClient when its local port is in `listen_ports` or lower than its remote
// port, kLink otherwise.
Role GuessUnpairedRole(const SocketId& sock,
                       const std::set<uint16_t>& listen_ports);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_CONNECTIONS_H_
