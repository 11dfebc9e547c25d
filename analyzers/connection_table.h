// The connection table: every open connection of the traced processes by
// (tgid, fd), its socket identity, its pairing with the other end and its
// role (the definitions: connections.h). Internal to the profiler.
#ifndef REQCOST_ANALYZERS_CONNECTION_TABLE_H_
#define REQCOST_ANALYZERS_CONNECTION_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analyzers/connections.h"
#include "analyzers/process_table.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

// At most this many open call connections (Role::kCall) per process keep
// call state; more (a pool of thousands) are ignored and counted in
// Anomalies::call_connections_over_cap.
inline constexpr size_t kMaxCallConnsPerProcess = 1024;

class ConnectionTable {
 public:
  // What the table asks of the stages that keep state on its connections.
  class Owner {
   public:
    virtual ~Owner() = default;
    // `conn`'s fd was reused and its own close never came: whatever it
    // carries ends now; the table forgets it right after.
    virtual void OnCloseLost(Conn* conn) = 0;
    // `conn`, taken for a client connection, is one end of a backend link:
    // its open request, if any, is dropped.
    virtual void OnClientDropped(Conn* conn) = 0;
    // `link` was paired with `side`, the backend's end of it.
    virtual void OnPaired(Conn* link, const Conn& side) = 0;
  };

  // `processes` learns the roles the table finds; `anomalies` counts the
  // connections it ignores or reclassifies.
  ConnectionTable(ProcessTable* processes, Anomalies* anomalies, Owner* owner)
      : processes_(processes), anomalies_(anomalies), owner_(owner) {}

  // The name service (kNscd, kResolved) whose connection `e` is a call on,
  // or kClient when `e` is not on one. A connect to a name service opens
  // one, a close ends it, and an accept or connect on its fd means the fd
  // is another connection's now.
  Target NameServiceCall(const SyscallEvent& e);

  // The open connection on (tgid, fd), or null.
  Conn* Find(uint32_t tgid, int32_t fd) {
    auto it = by_fd_.find({tgid, fd});
    return it == by_fd_.end() ? nullptr : it->second;
  }
  // The open unix connection whose own socket is `sock`, or null.
  Conn* FindUnix(uint64_t sock) {
    auto it = sock != 0 ? unix_index_.find(sock) : unix_index_.end();
    return it == unix_index_.end() ? nullptr : &conns_.at(it->second);
  }
  // The connection `conn` is paired with, or null when it is not or that one
  // is closed.
  Conn* Paired(const Conn& conn) {
    if (!conn.partner.has_value()) return nullptr;
    auto it = conns_.find(*conn.partner);
    return it == conns_.end() ? nullptr : &it->second;
  }

  // A new connection of e's process on `fd` (role kUnknown until Classify):
  // one still open on that fd is set aside to wait for its own close.
  Conn* Open(const SyscallEvent& e, int32_t fd, bool accepted);
  // Pairs a new connection with its other end, if open, and decides its
  // role (and, when pairing says so, its partner's).
  void Classify(Conn* conn);
  // The connection set aside on e's fd when `e` is its own close (told by
  // the socket), else null; one whose close has waited too long is ended
  // (Owner::OnCloseLost) and forgotten.
  Conn* Settle(const SyscallEvent& e) { return Settle(e, false); }
  // Forgets `conn` (its stages' state included: end that first).
  void Close(Conn* conn);

  // One of the connections still set aside (in no promised order), or null.
  Conn* AnyDisplaced() const {
    return displaced_.empty() ? nullptr : displaced_.begin()->second.conn;
  }
  // The uids of `tgid`'s open connections, in uid order.
  std::vector<uint64_t> UidsOf(uint32_t tgid) const;
  // How many entries the table keeps over all its indexes (each is bounded
  // by the open connections and fds of live processes).
  size_t entries() const {
    return conns_.size() + by_fd_.size() + displaced_.size() +
           name_service_fds_.size() + unix_index_.size() + inet_index_.size() +
           call_conns_.size();
  }
  // The connection with `uid`, which is open.
  Conn* At(uint64_t uid) { return &conns_.at(uid); }
  // Calls `fn(const Conn&)` on every open connection, in uid order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [uid, conn] : conns_) fn(conn);
  }

 private:
  Conn* Settle(const SyscallEvent& e, bool expire_now);
  // The open connection that is the other end of `conn`'s socket, or null.
  Conn* FindPartner(const Conn& conn);
  void Index(Conn* conn);
  void Unindex(Conn* conn);
  void MakeLink(Conn* link, Conn* side);
  // Whether a connection `conn` opened (or first seen on) with `partner`
  // (null when untraced) is a call of a backend: its process has
  // backend-side connections and `partner`'s process is not a server whose
  // backend link leads to that process.
  bool IsCall(const Conn& conn, const Conn* partner) const;
  // Gives `conn` the call role, or kIgnored over the per-process cap.
  void MakeCall(Conn* conn);
  // `conn`, if it is a call connection, no longer counts against the cap.
  void ReleaseCallPlace(const Conn* conn);
  void NoteClient(uint32_t tgid);
  // `call` (a call connection) and `accepted` (a client connection of a
  // traced peer) are the two ends of one connection: the peer's requests on
  // it are nested in the calls (nested_requests.h).
  void PairCall(Conn* call, Conn* accepted);

  ProcessTable* const processes_;
  Anomalies* const anomalies_;
  Owner* const owner_;

  uint64_t next_uid_ = 1;
  std::map<uint64_t, Conn> conns_;  // by uid
  // Lookups only (never iterated: their order is not the uid order).
  absl::flat_hash_map<std::pair<uint32_t, int32_t>, Conn*> by_fd_;
  // Connections whose fd was reused before their close was seen, by that
  // fd: in a threaded process the fd is free before close() returns, so
  // another thread's accept or connect can come first. Each waits for its
  // own close (told by the socket) up to kDisplacedWaitNs (see Settle).
  struct Displaced {
    Conn* conn = nullptr;
    uint64_t since_ns = 0;  // exit of the event that reused its fd
  };
  absl::flat_hash_map<std::pair<uint32_t, int32_t>, Displaced> displaced_;
  // Unix stream connections to a name service (nscd, systemd-resolved), by
  // fd: their calls are side calls, until their close.
  absl::flat_hash_map<std::pair<uint32_t, int32_t>, Target> name_service_fds_;
  absl::flat_hash_map<uint64_t, uint64_t> unix_index_;  // sock id -> uid
  absl::flat_hash_map<TupleKey, uint64_t> inet_index_;
  std::set<uint16_t> listen_ports_;
  // Open call connections per process (see kMaxCallConnsPerProcess).
  absl::flat_hash_map<uint32_t, size_t> call_conns_;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_CONNECTION_TABLE_H_
