// The request profiler: turns the socket syscalls of a web server and its
// backends into requests with phases. Pure: fed events, returns values.
//
// Definitions (the contract the numbers rely on):
//
// Connections, their pairing and process roles: connections.h.
//
// Requests on a client connection: client_requests.h.
//
// Backend exchanges and their attribution to client requests: exchanges.h.
//
// Phases: backend is *measured* when the link pairs with a traced backend
// side: the k-th exchange on a link pairs with the k-th backend request on
// the paired connection (backend requests split like client requests:
// FastCGI BEGIN_REQUEST, else read-after-write — but not a read returning
// only bytes the link sent before any later exchange began, counted in bytes
// from both ends' start: php-fpm reads a request's empty FCGI_STDIN record
// after its reply), skipping backend requests that began before the exchange
// started and had replied already (one that had not replied yet starts at its
// first read exiting after the exchange began: what it read before was the
// previous request's tail); backend = [exit of the backend's first read of
// the request, exit of its last write of the reply]. Else it
// is *inferred*: [exit of the server's last send before the reply, enter of
// its first reply read]. transport = |W| - backend, server = T - |W|. Values
// are clamped so that 0 <= backend <= |W| <= T (each clamp is counted), so
// the three always add up to T exactly. queue = [exit of the server's
// connect, exit of the backend's accept of that connection], only when both
// are seen; it is part of transport.
//
// Syscall timelines: a request's syscalls (its client connection's, its
// exchange's and the backend's side of it) are each clipped to the request's
// span [start, max(end, exit of its owned close/shutdown)], and the backend's
// to [start of the exchange W, that end]: the duration a request's timeline,
// the per-syscall statistics and the average request show is the part inside
// the request. A backend blocked in accept() or in a read on a kept
// connection before the request existed was idle, and until the server
// began the exchange it was waiting for the server, not working for the
// request: its accept() counts from the server's connect (connect + queue).
// (Without a response the end is unknown and only the start clips.)
//
// Incomplete requests (counted, kept out of phase statistics, never
// attributed): the first request on a connection opened before attach, a
// request whose exchange is inconsistent (started before attach, backend
// traced but its side of the exchange missing), a request overlapping a drop
// window, one without a response, and, at Finish(), one still waiting for its
// response or whose backend exchange is still open (its link neither closed
// nor moved on to a next exchange, and no END_REQUEST seen). A request whose
// response was written on a connection the client still keeps open at
// Finish() is complete: it just does not own a close.
#ifndef REQCOST_ANALYZERS_PROFILER_H_
#define REQCOST_ANALYZERS_PROFILER_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

struct ProfilerOptions {
  // Events are processed once the newest seen exit_ns is this far past
  // theirs: the bound on cross-CPU reordering.
  uint64_t reorder_window_ns = 20'000'000;
};

class Profiler {
 public:
  explicit Profiler(ProfilerOptions options = {});
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // A process known at attach.
  void OnProcess(const ProcessInfo& info);
  // A fork, exec or exit of a traced process (ordered with the syscalls).
  void OnProcessEvent(const ProcessEvent& event);
  // A syscall, in roughly exit_ns order.
  void OnEvent(const SyscallEvent& event);
  // The kernel lost `count` events between from_ns and to_ns: every request
  // overlapping that window that is not yet finalized becomes incomplete.
  void OnDrops(uint64_t from_ns, uint64_t to_ns, uint64_t count);
  // Called for every request as it is finalized, complete or not.
  void SetRequestCallback(std::function<void(const Request&)> callback);
  // Processes everything still buffered and finalizes open requests:
  // answered ones as complete, the rest as incomplete (see above). Call
  // once, at the end of the capture.
  void Finish(uint64_t end_ns);

  // The summary of all requests finalized so far.
  Report BuildReport(const CaptureInfo& info) const;
  const Anomalies& anomalies() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PROFILER_H_
