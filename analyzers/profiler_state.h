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
#include "analyzers/exchange_tracker.h"
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

struct Profiler::State : public ConnectionTable::Owner {
  explicit State(const ProfilerOptions& options)
      : options(options),
        reorder(options.reorder_window_ns),
        connections(&processes, &anomalies, this),
        exchanges(&connections, &anomalies, &first_drop_ns) {}

  ProfilerOptions options;
  std::function<void(const Request&)> callback;
  RequestStats stats;
  Anomalies anomalies;

  ReorderBuffer reorder;
  ProcessTable processes;
  std::vector<std::pair<uint64_t, uint64_t>> drops;
  // Start of the first drop window ever (drops forgets old windows): a
  // connection first seen after it may have had its accept dropped.
  std::optional<uint64_t> first_drop_ns;
  ConnectionTable connections;
  ExchangeTracker exchanges;

  uint64_t next_request_id = 1;

  // ConnectionTable::Owner.
  void OnCloseLost(Conn* conn) override;
  void OnClientDropped(Conn* conn) override;
  void OnPaired(Conn* link, const Conn& side) override;
  // Ends what the stages keep on `conn` and forgets it.
  void CloseConn(Conn* conn);
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

};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PROFILER_STATE_H_
