// The call tracker: a backend's calls on its call connections (Role::kCall,
// connections.h) and their attribution to the backend request the calling
// thread serves. Internal to the profiler.
//
// A call runs from the first send of a query (or the connect that opened
// the connection) to the end of the last read of its reply before the next
// send on that connection: a send after reply data was read begins the next
// call; sends before any reply (a query written in pieces, a pipeline) and
// the reads that follow belong to one call. A connect is a call of its own
// (CallRecord::opens): the connect and what the server sends before the
// client's first send (a MySQL greeting). On a connection opened before attach, calls count from
// the first send seen. A call belongs to the backend request
// (ExchangeTracker::WorkServing) the thread that began it was serving then.
#ifndef REQCOST_ANALYZERS_CALL_TRACKER_H_
#define REQCOST_ANALYZERS_CALL_TRACKER_H_

#include <string>

#include "analyzers/call_conn.h"
#include "analyzers/connections.h"
#include "analyzers/exchange_tracker.h"
#include "analyzers/report.h"
#include "collector/event.h"

namespace reqcost::analyzers {

class CallTracker {
 public:
  // Finds the owner of each call in `exchanges`; counts calls of no request
  // in `anomalies`.
  CallTracker(ExchangeTracker* exchanges, Anomalies* anomalies)
      : exchanges_(exchanges), anomalies_(anomalies) {}

  // The connect that opened call connection `conn` (`state` its state): its
  // first call begins.
  void OnConnect(const Conn& conn, CallConn* state, const SyscallEvent& e);
  // A read, write or close on call connection `conn`.
  void OnEvent(const Conn& conn, CallConn* state, const SyscallEvent& e);

 private:
  void Begin(const Conn& conn, CallConn* state, uint32_t tid,
             uint64_t start_ns);
  // Names the connection's peer from `protocol` (kUnknown: by port or path).
  void Name(const Conn& conn, CallConn* state, CallProtocol protocol,
            bool from_bytes);

  ExchangeTracker* const exchanges_;
  Anomalies* const anomalies_;
};

// The peer name of a call connection to `address` over `protocol`:
// "PROTOCOL:ADDRESS" when known; else "tcp:ADDRESS" for TCP, the address
// (the unix socket path) for unix.
std::string CallPeerName(CallProtocol protocol, const std::string& address,
                         bool unix_socket);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_CALL_TRACKER_H_
