// The client request stage: where each request on a client connection
// starts and ends, its TLS handshake, and the calls its process makes on
// sockets that carry no requests while it waits (the definitions:
// client_requests.h). Internal to the profiler.
#ifndef REQCOST_ANALYZERS_CLIENT_REQUEST_BOUNDARIES_H_
#define REQCOST_ANALYZERS_CLIENT_REQUEST_BOUNDARIES_H_

#include "analyzers/client_requests.h"
#include "analyzers/connections.h"
#include "analyzers/exchange_tracker.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "analyzers/request_finalizer.h"
#include "collector/event.h"

namespace reqcost::analyzers {

class ClientRequestBoundaries {
 public:
  // Registers requests waiting for their response with `exchanges` (and
  // has them attributed there), hands ended ones to `finalizer`, counts
  // stray events, merged requests and side calls outside requests in
  // `anomalies`.
  ClientRequestBoundaries(ExchangeTracker* exchanges,
                          RequestFinalizer* finalizer, Anomalies* anomalies)
      : exchanges_(exchanges), finalizer_(finalizer), anomalies_(anomalies) {}

  // A read, write, close or shutdown on client connection `conn` (`client`
  // is its state). A data read after a response finalizes that request and
  // opens the next.
  void OnEvent(Conn* conn, ClientConn* client, const SyscallEvent& e);
  // A call on a socket that carries no requests (of kind `target`): given
  // to the request its process is serving, if any.
  void OnSideCall(const SyscallEvent& e, Target target);

 private:
  static void NoteWireRead(OpenRequest* r, const SyscallEvent& e);
  OpenRequest* OpenClientRequest(Conn* conn, ClientConn* client,
                                 const SyscallEvent& e,
                                 const SyscallRecord& rec);
  // A read or write on a TLS client connection that is not a request's:
  // handshake, session tickets, alerts. False when it is a request's.
  bool OnTlsEvent(Conn* conn, ClientConn* client, const SyscallEvent& e,
                  const SyscallRecord& rec);

  ExchangeTracker* const exchanges_;
  RequestFinalizer* const finalizer_;
  Anomalies* const anomalies_;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_CLIENT_REQUEST_BOUNDARIES_H_
