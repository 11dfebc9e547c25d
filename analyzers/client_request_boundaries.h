// The client request stage: where each request on a client connection
// starts and ends, its TLS handshake, and the calls its process makes on
// sockets that carry no requests while it waits (the definitions:
// client_requests.h). Internal to the profiler.
#ifndef REQCOST_ANALYZERS_CLIENT_REQUEST_BOUNDARIES_H_
#define REQCOST_ANALYZERS_CLIENT_REQUEST_BOUNDARIES_H_

#include <memory>
#include <vector>

#include "analyzers/client_requests.h"
#include "analyzers/connections.h"
#include "analyzers/exchange_tracker.h"
#include "analyzers/incomplete_reason.h"
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

  // A TLS library call that moved decrypted bytes on client connection
  // `conn`: from the first one on, the connection's requests are split from
  // the decrypted bytes (HTTP/2: a request per stream, from the client's
  // HEADERS of a new stream to the server's END_STREAM on it; HTTPS/1.1: a
  // request from a read after the response, as on a plain connection).
  void OnTlsData(Conn* conn, ClientConn* client, const TlsDataEvent& e);
  // Finalizes the HTTP/2 streams still open on `conn` (its close, its
  // process's exit, the end of the run): incomplete for `reason`.
  void EndStreams(const Conn& conn, ClientConn* client,
                  IncompleteReason reason);
  // `client`'s streams stop waiting for their response (the connection is
  // no client connection after all).
  void DropStreams(ClientConn* client);
  // Whether `client` has HTTP/2 streams open.
  static bool HasStreams(const ClientConn& client) {
    return client.decrypted != nullptr && !client.decrypted->streams.empty();
  }

 private:
  static void NoteWireRead(OpenRequest* r, const SyscallEvent& e);
  // Decrypted bytes.
  void StartDecrypted(Conn* conn, ClientConn* client);
  // An HTTP/1.1 request answered by a 101 and then the client's HTTP/2
  // preface (`Upgrade: h2c`): it becomes stream 1 of the connection, whose
  // frames the kernel follows from the preface on.
  void StartUpgraded(ClientConn* client);
  void OnDecryptedSyscall(ClientConn* client, const SyscallEvent& e,
                          const SyscallRecord& rec);
  std::unique_ptr<OpenRequest> NewDecryptedRequest(Conn* conn,
                                                   ClientConn* client,
                                                   uint32_t tid,
                                                   uint64_t start_ns,
                                                   uint64_t read_exit);
  void OnH2Read(Conn* conn, ClientConn* client, const TlsDataEvent& e,
                const std::vector<SyscallRecord>& carriers);
  void OnH2Write(Conn* conn, ClientConn* client, const TlsDataEvent& e,
                 const std::vector<SyscallRecord>& carriers);
  void DecodePaths(ClientConn* client, const TlsDataEvent& e);
  void OnH1Data(Conn* conn, ClientConn* client, const TlsDataEvent& e,
                const std::vector<SyscallRecord>& carriers);

  // Fills `r`'s connection part: the connection, its process, whether it is
  // the connection's first request and, if so, the accept, the TLS
  // handshake leg and the syscalls before it (taken from `client`).
  static void TakeConnection(Conn* conn, ClientConn* client, OpenRequest* r);
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
