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
#include "analyzers/connection_table.h"
#include "analyzers/connections.h"
#include "analyzers/exchanges.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/payload.h"
#include "analyzers/process_table.h"
#include "analyzers/profiler.h"
#include "analyzers/profiler_records.h"
#include "analyzers/reorder_buffer.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

// What the attribution of exchanges to requests keeps per process.
struct ProcessQueues {
  uint64_t last_exchange_start_ns = 0;  // of its latest backend exchange
  std::vector<OpenRequest*> waiting;  // no response write yet, oldest first
  std::deque<std::shared_ptr<Exchange>> candidates;  // unattributed
};

struct Profiler::State : public ConnectionTable::Owner {
  explicit State(const ProfilerOptions& options)
      : options(options),
        reorder(options.reorder_window_ns),
        connections(&processes, &anomalies, this) {}

  ProfilerOptions options;
  std::function<void(const Request&)> callback;
  RequestStats stats;
  Anomalies anomalies;

  ReorderBuffer reorder;
  ProcessTable processes;
  ConnectionTable connections;

  uint64_t next_request_id = 1;
  uint64_t next_exchange_seq = 1;
  std::map<uint32_t, ProcessQueues> queues;  // by tgid
  std::vector<std::pair<uint64_t, uint64_t>> drops;
  // Start of the first drop window ever (drops forgets old windows): a
  // connection first seen after it may have had its accept dropped.
  std::optional<uint64_t> first_drop_ns;

  // ConnectionTable::Owner.
  void OnCloseLost(Conn* conn) override;
  void OnClientDropped(Conn* conn) override;
  void OnPaired(Conn* link, const Conn& side) override;
  // Ends what the stages keep on `conn` and forgets it.
  void CloseConn(Conn* conn);
  // Ends what the exchange stage keeps on `conn`: its exchange is done.
  void EndRoleState(Conn* conn);
  // Reports `conn`'s open client request, if any, incomplete for `reason`.
  void FinalizeIfOpen(Conn* conn, IncompleteReason reason);

  // Reordering and dispatch (profiler.cc).
  template <typename Event>
  void Push(uint64_t key, const Event& event);
  void Drain(bool all);
  void HandleQueued(const Queued& q);
  void Handle(const SyscallEvent& e);
  void Dispatch(Conn* conn, const SyscallEvent& e);
  void ProcessExit(uint32_t tgid);

  // The request as reported (phases.cc).
  // Reports `conn`'s open request: incomplete for `reason`, else for the
  // first reason found, else complete.
  void FinalizeRequest(const Conn& conn, ClientConn* client,
                       std::optional<IncompleteReason> reason = std::nullopt);
  // A send seen at the socket layer is stamped when its call returns, which
  // can be after the peer read what it sent: a backend reply the server
  // already read may still wait in the reorder queue. Takes the writes of
  // `work`'s connection that wait there (up to kLateSendNs past what was
  // processed) into `work` now.
  void TakeQueuedReplyWrites(BackendWork* work);

  // Client request boundaries (client_requests.cc).
  void OnClientEvent(Conn* conn, ClientConn* client, const SyscallEvent& e);
  OpenRequest* OpenClientRequest(Conn* conn, ClientConn* client,
                                 const SyscallEvent& e,
                                 const SyscallRecord& rec);
  // A read or write on a TLS client connection that is not a request's:
  // handshake, session tickets, alerts. False when it is a request's.
  bool OnTlsEvent(Conn* conn, ClientConn* client, const SyscallEvent& e,
                  const SyscallRecord& rec);
  // A call on a socket that carries no requests (of kind `target`): given
  // to the request its process is serving.
  void OnSideCall(const SyscallEvent& e, Target target);

  // Backend exchanges and attribution (exchanges.cc).
  void OnLinkEvent(Conn* conn, BackendLink* link, const SyscallEvent& e);
  void OnBackendSideEvent(Conn* conn, BackendSide* side,
                          const SyscallEvent& e);
  bool ContinuesWork(const Conn& side, const BackendWork& work, uint64_t len);
  void StartWorkAt(BackendWork* work, uint64_t first_read_exit);
  std::shared_ptr<Exchange> NewExchange(Conn* conn, BackendLink* link,
                                        uint32_t tid,
                                        uint64_t start_enter,
                                        bool partial);
  bool ReadBytesOf(const Conn& link, const BackendWork& work,
                   const Exchange& ex);
  void Bind(const Conn& conn, BackendLink* link);
  void Attribute(OpenRequest* request, uint64_t write_start);
  void PruneCandidates(uint32_t tgid);
  void StopWaiting(OpenRequest* request);
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PROFILER_STATE_H_
