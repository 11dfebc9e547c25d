// The profiler's state, shared by its stages (internal to the profiler):
// the per-stage types and Profiler::State, whose methods are defined in the
// stage files.
#ifndef REQCOST_ANALYZERS_PROFILER_STATE_H_
#define REQCOST_ANALYZERS_PROFILER_STATE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analyzers/client_requests.h"
#include "analyzers/connections.h"
#include "analyzers/exchanges.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/payload.h"
#include "analyzers/profiler.h"
#include "analyzers/profiler_records.h"
#include "analyzers/reorder_buffer.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

struct Profiler::State {
  ProfilerOptions options;
  std::function<void(const Request&)> callback;
  RequestStats stats;
  Anomalies anomalies;

  explicit State(const ProfilerOptions& options)
      : options(options), reorder(options.reorder_window_ns) {}

  ReorderBuffer reorder;

  uint64_t next_uid = 1;
  uint64_t next_request_id = 1;
  uint64_t next_exchange_seq = 1;
  std::map<uint64_t, Conn> conns;  // by uid
  // Lookups only (never iterated: their order is not the uid order).
  absl::flat_hash_map<std::pair<uint32_t, int32_t>, Conn*> by_fd;
  // Connections whose fd was reused before their close was seen, by that
  // fd: in a threaded process the fd is free before close() returns, so
  // another thread's accept or connect can come first. Each waits for its
  // own close (told by the socket) up to kDisplacedWaitNs (see Settle).
  struct Displaced {
    Conn* conn = nullptr;
    uint64_t since_ns = 0;  // exit of the event that reused its fd
  };
  absl::flat_hash_map<std::pair<uint32_t, int32_t>, Displaced> displaced;
  // Unix stream connections to a name service (nscd, systemd-resolved), by
  // fd: their calls are side calls, until their close.
  absl::flat_hash_map<std::pair<uint32_t, int32_t>, Target> name_service_fds;
  absl::flat_hash_map<uint64_t, uint64_t> unix_index;  // sock id -> uid
  absl::flat_hash_map<TupleKey, uint64_t> inet_index;
  std::set<uint16_t> listen_ports;
  std::map<uint32_t, ProcessState> processes;
  std::vector<std::pair<uint64_t, uint64_t>> drops;
  // Start of the first drop window ever (drops forgets old windows): a
  // connection first seen after it may have had its accept dropped.
  std::optional<uint64_t> first_drop_ns;

  // Reordering and dispatch (profiler.cc).
  template <typename Event>
  void Push(uint64_t key, const Event& event);
  void Drain(bool all);
  void HandleQueued(const Queued& q);
  void Handle(const SyscallEvent& e);
  void Dispatch(Conn* conn, const SyscallEvent& e);
  void ProcessExit(uint32_t tgid);

  // Socket identity and pairing (connections.cc).
  Conn* Find(uint32_t tgid, int32_t fd);
  Conn* Open(const SyscallEvent& e, int32_t fd, bool accepted);
  void Close(Conn* conn);
  bool Settle(const SyscallEvent& e, bool expire_now = false);
  void Index(Conn* conn);
  void Unindex(Conn* conn);
  Conn* FindPartner(const Conn& conn);
  void Classify(Conn* conn);
  void MakeLink(Conn* link, Conn* side);
  void NoteClient(uint32_t tgid);

  // The request as reported (phases.cc).
  // Reports `conn`'s open request: incomplete for `reason`, else for the
  // first reason found, else complete.
  void FinalizeRequest(Conn* conn,
                       std::optional<IncompleteReason> reason = std::nullopt);
  // A send seen at the socket layer is stamped when its call returns, which
  // can be after the peer read what it sent: a backend reply the server
  // already read may still wait in the reorder queue. Takes the writes of
  // `work`'s connection that wait there (up to kLateSendNs past what was
  // processed) into `work` now.
  void TakeQueuedReplyWrites(BackendWork* work);
  // Whether `tgid` or a sibling of it (same parent: a pool's children) has
  // backend-side connections.
  bool InBackendFamily(uint32_t tgid);

  // Client request boundaries (client_requests.cc).
  void OnClientEvent(Conn* conn, const SyscallEvent& e);
  OpenRequest* OpenClientRequest(Conn* conn, const SyscallEvent& e,
                                 const SyscallRecord& rec);
  // A read or write on a TLS client connection that is not a request's:
  // handshake, session tickets, alerts. False when it is a request's.
  bool OnTlsEvent(Conn* conn, const SyscallEvent& e, const SyscallRecord& rec);
  // A call on a socket that carries no requests (of kind `target`): given
  // to the request its process is serving.
  void OnSideCall(const SyscallEvent& e, Target target);

  // Backend exchanges and attribution (exchanges.cc).
  void OnLinkEvent(Conn* conn, const SyscallEvent& e);
  void OnBackendSideEvent(Conn* conn, const SyscallEvent& e);
  bool ContinuesWork(const Conn& side, const BackendWork& work, uint64_t len);
  void StartWorkAt(BackendWork* work, uint64_t first_read_exit);
  std::shared_ptr<Exchange> NewExchange(Conn* link, uint32_t tid,
                                        uint64_t start_enter,
                                        bool partial);
  bool ReadBytesOf(const Conn& link, const BackendWork& work,
                   const Exchange& ex);
  void Bind(Conn* link);
  void Attribute(OpenRequest* request, uint64_t write_start);
  void PruneCandidates(uint32_t tgid);
  void StopWaiting(OpenRequest* request);
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PROFILER_STATE_H_
