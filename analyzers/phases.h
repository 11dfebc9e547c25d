// Phases: a request's total time and its split into server, transport and
// backend, and the request as reported (internal to the profiler; the pure
// arithmetic is below, the request as reported in request_finalizer.h).
//
// A request's total time is
//
//   T = accept duration (if owned, its enter was seen and it did not block)
//     + tls (the handshake's server time before the first request read, if
//       owned: see tls.h)
//     + [start of the first data read, exit of the last response write]
//     - client waits
//     + close/shutdown durations (if owned)
//
// where a read's start is its enter, or its exit when its enter is not
// hooked (data I/O seen at the socket layer, the default) or when it blocked
// (the thread slept in it: it waited for the client, as a blocking accept
// waits for a connection: a thread-per-connection server's idle time is not
// the request's); and a client wait is the span from the exit of a read on
// the client connection that returned -EAGAIN to the start of the next read
// on it, when that next read comes before the first response write (the
// server was waiting for the rest of the request).
//
// tls, reported as its own phase, is part of server: that handshake time
// plus the session tickets written while the request was open (TLS 1.3,
// when the client's Finished came with the request).
//
// A send seen at the socket layer is stamped when its call returns, which can
// be after the peer read what it sent: when a request is finalized, its
// backend reply writes still waiting in the reorder queue are taken (see
// TakeQueuedReplyWrites); such a late stamp can make backend exceed |W|,
// and the clamp below brings it back.
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
// previous request's tail) — unless its first read returned bytes the
// exchange sent, by both ends' byte counts when no events were ever dropped:
// a send seen at the socket layer is stamped when its call returns, after a
// backend on another CPU may have read it; backend = [exit of the
// backend's first read of the request, exit of its last write of the
// reply]. Else it
// is *inferred*: [exit of the server's last send before the reply, start of
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
#ifndef REQCOST_ANALYZERS_PHASES_H_
#define REQCOST_ANALYZERS_PHASES_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/types/span.h"
#include "analyzers/exchanges.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

// What the client side of one request's phases is computed from (ns).
struct PhaseInput {
  // Its owned accept, when that accept's enter was seen; else null.
  const SyscallRecord* accept = nullptr;
  bool has_read = false;
  uint64_t first_read_start = 0;  // its enter, else its exit
  uint64_t first_read_exit = 0;
  uint64_t first_write_start = 0;
  uint64_t last_write_exit = 0;
  // Its client connection's syscalls in the request, in order, and its
  // owned closes and shutdowns.
  absl::Span<const SyscallRecord> syscalls;
  absl::Span<const SyscallRecord> closes;
  // First request over TLS: the handshake's server time before its first
  // read (added to T).
  uint64_t tls_before_ns = 0;
  uint64_t exchange_ns = 0;  // |W|; 0 without an exchange
  uint64_t backend_ns = 0;   // measured or inferred; 0 without
};

// The start of the request: the enter of its owned accept, else of its first
// data read (its exit when the enter was not seen), else the start of its
// first syscall, else 0.
uint64_t RequestStartNs(const PhaseInput& in);

// The sum of the client waits among `syscalls` (in order): from the exit of
// a read that returned -EAGAIN to the enter of the next read, for reads that
// start at or before `first_write_start`.
uint64_t ClientWaitNs(absl::Span<const SyscallRecord> syscalls,
                      uint64_t first_write_start);

// The phases of one complete request.
struct RequestPhases {
  uint64_t total_ns = 0;
  uint64_t client_wait_ns = 0;
  uint64_t server_ns = 0;
  uint64_t transport_ns = 0;
  uint64_t backend_ns = 0;
  uint32_t clamped = 0;  // clamps applied (0 <= backend <= |W| <= T)
};

// T and its split; server + transport + backend == total always.
RequestPhases ComputePhases(const PhaseInput& in);

// The backend phase of one exchange, or why it has none.
struct BackendPhase {
  // Why the exchange is not usable (none: it is), and that reason's Name.
  std::optional<IncompleteReason> incomplete;
  std::string_view incomplete_reason;
  BackendTiming timing = BackendTiming::kNone;
  uint64_t start_ns = 0;  // of the backend phase
  uint64_t end_ns = 0;
  uint64_t backend_ns = 0;           // end - start, at least 0
  uint64_t exchange_ns = 0;          // |W|, at least 0
  std::optional<uint64_t> queue_ns;  // when usable and both ends were seen
};

// Measured when the exchange has its backend request, inferred when the
// backend is not traced; incomplete_reason says why neither applies.
BackendPhase MeasureBackend(const Exchange& ex);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_PHASES_H_
