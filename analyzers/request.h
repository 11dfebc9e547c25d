// The values the profiler produces: one Request per client request, with its
// phases and syscall timeline.
#ifndef REQCOST_ANALYZERS_REQUEST_H_
#define REQCOST_ANALYZERS_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>
#include <array>

#include "collector/event.h"

namespace reqcost::analyzers {

// Which process made a syscall of a request's timeline.
enum class Side : uint8_t { kServer, kBackend };
// What the syscall's connection was: the client connection, the server's
// backend link, or the backend's side of that link; or, for a socket that
// carries no requests (kNetlink and after), what kind it was: a netlink
// socket (a route or address dump: name resolution), UDP to port 53 (DNS),
// other UDP, a unix datagram socket, anything else, or a unix stream
// connection to a name service (nscd, systemd-resolved).
enum class Target : uint8_t {
  kClient,
  kBackendLink,
  kBackendSide,
  kNetlink,
  kDns,
  kUdp,
  kUnixDgram,
  kSocket,
  kNscd,      // a unix stream connection to nscd
  kResolved,  // a unix stream connection to systemd-resolved
};
inline constexpr size_t kTargetCount = 10;
// Whether `target` is a socket that carries no requests (a side call).
inline bool IsSideCall(Target target) { return target >= Target::kNetlink; }
// Whether the backend phase was measured in the backend, inferred from the
// server's side of the link, or there was no backend exchange.
enum class BackendTiming : uint8_t { kNone, kMeasured, kInferred };
// Reuse of a connection: the request/exchange opened it, or it was reused.
enum class ConnReuse : uint8_t { kNone, kNew, kReused };

// What the request was seen from. A request is normally seen on its client
// connection. When that side cannot be split into requests (a TLS library
// reqcost cannot see into, an HTTP/2 connection begun before attach) its
// backend exchange still makes a request, seen from the server's backend
// link: server time is then unknown. On a host where only the backend is
// traced (its client is untraced or on another host), the backend's accepted
// exchange makes a request: server and transport are then unknown. Unknown
// phases are null, never invented, and such a request is not an anomaly.
enum class RequestOrigin : uint8_t { kClient, kBackendLink, kBackendSide };

// A TCP connection as both of its ends name it: the end that connected
// (client) and the end that accepted (server). Two hosts that see the same
// connection, one from each end, build the same value.
struct WireTuple {
  uint16_t family = 0;  // AF_INET, AF_INET6
  std::array<uint8_t, 16> client_addr{};
  uint16_t client_port = 0;
  std::array<uint8_t, 16> server_addr{};
  uint16_t server_port = 0;

  friend bool operator==(const WireTuple& a, const WireTuple& b) {
    return a.family == b.family && a.client_addr == b.client_addr &&
           a.client_port == b.client_port && a.server_addr == b.server_addr &&
           a.server_port == b.server_port;
  }
  friend bool operator<(const WireTuple& a, const WireTuple& b) {
    return std::tie(a.family, a.client_addr, a.client_port, a.server_addr,
                    a.server_port) < std::tie(b.family, b.client_addr,
                                              b.client_port, b.server_addr,
                                              b.server_port);
  }
};

// One read of a request on a TCP client connection: the TCP sequence number
// of its first byte, the bytes it returned, and its exit.
struct WireRead {
  uint32_t seq = 0;
  uint32_t len = 0;
  uint64_t exit_ns = 0;
};
// Reads kept per request for joining (the first ones with a sequence
// number): a FastCGI backend reads a request in a few reads, and the read
// that holds the server's first byte is among the first.
inline constexpr size_t kMaxWireReads = 8;

std::string_view SideName(Side side);  // "server", "backend"
// The other end of the connection: "client", "backend" (a link), "server"
// (the backend's side of a link); a side call's socket kind: "netlink",
// "dns", "udp", "unix-dgram", "socket", "nscd", "resolved".
std::string_view TargetName(Target target);
std::string_view TimingName(BackendTiming t);  // "none", "measured", ...
std::string_view ReuseName(ConnReuse reuse);   // "none", "new", "reused"
// "client", "backend-link", "backend-side"
std::string_view OriginName(RequestOrigin origin);

// One syscall of a request's timeline.
struct SyscallRecord {
  Syscall syscall = Syscall::kRead;
  Side side = Side::kServer;
  Target target = Target::kClient;
  uint32_t tgid = 0;
  uint32_t tid = 0;
  uint64_t enter_ns = 0;  // 0: enter not seen
  uint64_t exit_ns = 0;
  int64_t ret = 0;
  bool blocked = false;  // the thread slept in it (waited for a client/data)

  bool enter_seen() const { return enter_ns != 0; }
  uint64_t start_ns() const { return enter_ns != 0 ? enter_ns : exit_ns; }
  uint64_t duration_ns() const {
    return enter_ns != 0 && exit_ns > enter_ns ? exit_ns - enter_ns : 0;
  }
};

// One call the backend made while it served the request: from the first
// send of a query to the end of the last read of its reply before the next
// send on that connection (docs/definitions.md, "Backend calls").
struct CallRecord {
  // What it called: "PROTOCOL:ADDRESS" when the protocol is known
  // ("redis:127.0.0.1:6379", "mysql:/run/mysqld/mysqld.sock"), else
  // "tcp:ADDR:PORT" or the unix socket path.
  std::string peer;
  std::string protocol;  // "mysql", "postgresql", "redis", ...; "" unknown
  std::string address;   // "host:port", "[v6]:port" or the unix path
  uint32_t tid = 0;      // the backend thread that made it
  uint64_t start_ns = 0;  // enter (else exit) of its connect or first send
  uint64_t end_ns = 0;    // exit of its last reply read (else of its send)
  bool has_reply = false;
  // Begun by the connect that opened its connection: the connect and what
  // the server sent before the client's first send (a MySQL greeting).
  bool opens = false;
  // The query (--payload only): SQL text cut to the payload size, a Redis
  // command name, a memcached command word, an HTTP request line.
  std::string query;

  // Pairing with a traced peer (docs/definitions.md, "Nested requests"):
  // the uid of the peer's accepted connection when the peer is traced and
  // its end was seen (0: not paired), the byte offset of the call's first
  // send on its connection (valid for pairing when both ends were opened
  // while tracing) and the TCP sequence number of that send's first byte.
  uint64_t peer_conn = 0;
  uint64_t send_offset = 0;
  bool offset_valid = false;
  std::optional<uint32_t> send_seq;
  // The peer's request that served the call (a request of its own, nested):
  // its id, and, when it is complete, its total time as the peer's time
  // (capped at the call's time: its owned accept or close may lie outside
  // the call) and its own phases; transport = call - peer time.
  std::optional<uint64_t> nested_id;
  std::optional<uint64_t> peer_ns;
  std::optional<uint64_t> transport_ns;
  bool peer_capped = false;  // the nested request was longer than the call
  std::optional<uint64_t> nested_server_ns, nested_transport_ns,
      nested_backend_ns;

  uint64_t duration_ns() const {
    return end_ns > start_ns ? end_ns - start_ns : 0;
  }
};

// A request's calls to one peer.
struct PeerTime {
  std::string peer;
  std::string protocol;
  uint64_t calls = 0;
  uint64_t ns = 0;  // summed durations of its calls
};

// One request on a client connection. Phases (ns) are set only for complete
// requests; an incomplete request keeps what was seen but no phase values.
struct Request {
  uint64_t id = 0;           // 1, 2, ... in order of finalization
  uint32_t pid = 0;          // the server process (tgid)
  uint32_t backend_pid = 0;  // the backend process when measured, else 0
  RequestOrigin origin = RequestOrigin::kClient;
  ConnReuse client_conn = ConnReuse::kNew;
  ConnReuse backend_conn = ConnReuse::kNone;
  BackendTiming backend_timing = BackendTiming::kNone;
  std::optional<std::string> request_line;
  // Where its backend exchange went: "host:port", a unix socket path, or
  // "unix" when that path is unknown; empty without a backend exchange.
  std::string backend_address;
  // "fastcgi" or "http" when the payload showed it (--payload), else empty.
  std::string backend_protocol;
  // The client connection's socket, as the server sees it (TCP: local =
  // the server's address and port, remote = the client's).
  SocketId client_sock;
  uint64_t start_ns = 0;  // enter of the owned accept, else of the first read
  uint64_t end_ns = 0;    // exit of the last response write (or close)
  // The backend exchange W = [exchange_start_ns, exchange_end_ns] and the
  // backend phase's own span (measured or inferred, before clamping); 0 when
  // there was no backend exchange or the request is incomplete.
  uint64_t exchange_start_ns = 0;
  uint64_t exchange_end_ns = 0;
  uint64_t backend_start_ns = 0;
  uint64_t backend_end_ns = 0;

  bool complete = false;
  // Name(IncompleteReason) of why it is incomplete (incomplete_reason.h);
  // empty when complete.
  std::string incomplete_reason;

  std::optional<uint64_t> total_ns;
  std::optional<uint64_t> server_ns;
  std::optional<uint64_t> transport_ns;
  std::optional<uint64_t> backend_ns;
  std::optional<uint64_t> queue_ns;  // part of transport; needs both ends
  uint64_t queue_start_ns = 0;       // its start (the connect's exit) when set
  // The server's time in the connection's TLS handshake (part of server),
  // on the connection's first request only.
  std::optional<uint64_t> tls_ns;
  uint64_t client_wait_ns = 0;  // excluded from total
  uint32_t clamped = 0;         // phase values clamped to stay >= 0 (anomalies)

  // For joining captures of several hosts (host_join.h), TCP only: the
  // request's reads on its client connection (its server is a backend when
  // its client is a front on another host), and its backend exchange's
  // connection and the TCP sequence number of the exchange's first byte.
  std::vector<WireRead> client_reads;
  std::optional<WireTuple> exchange_wire;
  std::optional<uint32_t> exchange_seq;
  // On a joined request: the host whose capture measured its backend ("" on
  // one host).
  std::string backend_host;

  // The backend's calls while it served the request, in start order, each
  // clipped to the backend phase (measured backends only; empty otherwise).
  std::vector<CallRecord> calls;
  // backend - the union of the calls' intervals (overlapping calls count
  // once); set for complete requests with a measured backend.
  std::optional<uint64_t> backend_own_ns;

  // When this request served a traced backend's call (a nested request):
  // the calling request's id, the call's index in its calls, and what the
  // calling request's trace ids derive from (its exchange on the wire), so
  // that its spans join the caller's trace.
  struct NestedIn {
    uint64_t request_id = 0;
    size_t call = 0;
    std::optional<WireTuple> exchange_wire;
    std::optional<uint32_t> exchange_seq;
  };
  std::optional<NestedIn> nested_in;

  // In start order (enter, else exit), each clipped to the request's span
  // [start_ns, max(end_ns, exit of its owned close/shutdown)].
  std::vector<SyscallRecord> syscalls;
};

// The request's span on the wall clock, from its start to the end of its
// last response write or of the last syscall of its timeline (an owned
// close), whichever is later. Longer than total_ns when the request had
// time that is not its own (client waits, a blocking accept).
uint64_t WallSpanNs(const Request& request);

// The connection of a TCP socket as `sock` shows it from one end: `accepted`
// says whether that end accepted it (the server) or connected it (the
// client). Nullopt for a socket that is not TCP/IP.
std::optional<WireTuple> WireTupleOf(const SocketId& sock, bool accepted);

// The request's calls grouped by peer, in order of each peer's first call.
std::vector<PeerTime> CallsByPeer(const Request& request);

// The length of the union of the calls' intervals (overlaps count once).
uint64_t CallUnionNs(const std::vector<CallRecord>& calls);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_REQUEST_H_
