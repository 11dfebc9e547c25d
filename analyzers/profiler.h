// The request profiler: turns the socket syscalls of a web server and its
// backends into requests with phases. Pure: fed events, returns values.
//
// Definitions (the contract the numbers rely on), each part beside the code
// that implements it, in pipeline order:
//
//   connections.h      connections, their pairing and process roles
//   client_requests.h  requests on a client connection
//   exchanges.h        backend exchanges and their attribution to requests
//   phases.h           a request's total time, its phases and its syscall
//                      timelines
//
// The stages that apply them, each owning its data (internal):
//
//   reorder_buffer.h             events back in order
//   process_table.h              processes: names, parents, roles
//   connection_table.h           open connections, pairing, roles
//   client_request_boundaries.h  requests on client connections
//   exchange_tracker.h           exchanges, binding, attribution
//   request_finalizer.h          the request as reported, statistics
//
// profiler.cc owns the stages and hands each event to the one it concerns.
// This file keeps the public API and the one definition that spans the
// stages:
//
// Incomplete requests (counted, kept out of phase statistics, never
// attributed): the first request on a connection opened before attach, a
// request whose exchange is inconsistent (started before attach, backend
// traced but its side of the exchange missing), a request overlapping a drop
// window (from its owned accept's start), a request on a client connection
// of a backend process (or of a sibling of one: php-fpm's children) once
// events were dropped (its link's connect may be among them), one on a
// connection that carries HTTP/2 (see tls.h), one without a response, and,
// at Finish(), one still waiting for its
// response or whose backend exchange is still open (its link neither closed
// nor moved on to a next exchange, and no END_REQUEST seen). A request whose
// response was written on a connection the client still keeps open at
// Finish() is complete: it just does not own a close.
#ifndef REQCOST_ANALYZERS_PROFILER_H_
#define REQCOST_ANALYZERS_PROFILER_H_

#include <cstddef>
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
  // A TLS library call's decrypted bytes (SSL_read/SSL_write), in roughly
  // exit_ns order with the syscalls: the client connection it was made on
  // has its requests split from them from then on (definitions.md, "HTTP/2
  // streams").
  void OnTlsData(const TlsDataEvent& event);
  // The kernel lost `count` events between from_ns and to_ns: every request
  // overlapping that window that is not yet finalized becomes incomplete.
  void OnDrops(uint64_t from_ns, uint64_t to_ns, uint64_t count);
  // Tells that no event with exit_ns before `now_ns` is still to come (the
  // collector drained the ring buffer empty after `now_ns`): buffered events
  // older than now_ns minus the reorder window are processed, so that an
  // idle stack's last requests are finalized without waiting for the next
  // event (live metrics and spans).
  void AdvanceTo(uint64_t now_ns);
  // Called for every request as it is finalized, complete or not.
  void SetRequestCallback(std::function<void(const Request&)> callback);
  // Processes everything still buffered and finalizes open requests:
  // answered ones as complete, the rest as incomplete (see above). Call
  // once, at the end of the capture.
  void Finish(uint64_t end_ns);

  // The summary of all requests finalized so far.
  Report BuildReport(const CaptureInfo& info) const;
  const Anomalies& anomalies() const;

  // What the profiler keeps, counted: memory follows these. Under process
  // churn, connections and attribution are bounded by the live processes;
  // the process list grows by one short entry per process seen.
  struct StateSize {
    size_t connection_entries = 0;     // over every connection index
    size_t attribution_processes = 0;  // with exchange attribution state
    size_t processes = 0;  // known: live, and the latest exited (bounded)
    size_t socketpair_ends = 0;  // socket pairs' ends (bounded)
    // Syscall records held by open connections for the request, exchange
    // or backend work they carry: each is finalized (or dropped) when it
    // ends, so these follow the requests in flight.
    size_t held_records = 0;
  };
  // The current counts.
  StateSize state_size() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PROFILER_H_
