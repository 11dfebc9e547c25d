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
#include "analyzers/request_finalizer.h"
#include "collector/event.h"

namespace reqcost::analyzers {

struct Profiler::State : public ConnectionTable::Owner {
  explicit State(const ProfilerOptions& options)
      : options(options),
        reorder(options.reorder_window_ns),
        finalizer(&reorder, &processes, &exchanges, &anomalies),
        connections(&processes, &anomalies, this),
        exchanges(&connections, &anomalies, &finalizer.first_drop_ns()) {}

  ProfilerOptions options;
  Anomalies anomalies;

  ReorderBuffer reorder;
  ProcessTable processes;
  RequestFinalizer finalizer;
  ConnectionTable connections;
  ExchangeTracker exchanges;

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
