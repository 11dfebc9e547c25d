// Backend exchanges and their attribution to client requests (internal to
// the profiler; the stage that applies this is ExchangeTracker, in
// exchange_tracker.h).
//
// Backend exchanges live on backend links of the server process. An exchange
// starts at a connect, or on a reused link at a send that begins a new
// FastCGI request (BEGIN_REQUEST header, when the payload shows record
// headers) or, without FastCGI headers, at the first send after a read that
// returned reply data. It ends with its last reply read (a read with data;
// END_REQUEST, when visible, ends it). W = [enter of the connect or first
// send, exit of the last reply read].
//
// Attribution of an exchange to a client request (causality, FIFO): when a
// request makes its first response write, it takes the earliest-started
// unattributed exchange of the same process that (a) started at or after the
// exit of the request's last request-read and (b) has read reply data before
// that write. A request takes at most one exchange; exchanges that no waiting
// request can take any more (a retry after a failed connect, a subrequest)
// are counted as unattributed. An exchange that began before attach is
// still attributed, so its request is reported incomplete rather than as a
// request without a backend. This is what keeps interleaved requests of one
// nginx worker apart: each request's exchange must start after its own
// request bytes arrived and answer before its own response. Among the
// exchanges it may take, one started by the thread that read the request
// comes first: a threaded server serves each request on one thread, and two
// of its threads' exchanges may answer in either order.
//
// How an exchange is paired with its backend request on a traced backend:
// "Phases" in phases.h.
#ifndef REQCOST_ANALYZERS_EXCHANGES_H_
#define REQCOST_ANALYZERS_EXCHANGES_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "analyzers/profiler_records.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

inline constexpr size_t kMaxQueued = 64;  // bound on per-link binding queues
// Bound on the calls one backend request keeps (a runaway loop of queries).
inline constexpr size_t kMaxCallsPerWork = 4096;

// The backend's side of one exchange: one backend request on a backend-side
// connection.
struct BackendWork {
  BackendWork() { syscalls.reserve(kSyscallsReserved); }

  uint32_t tgid = 0;
  uint32_t tid = 0;  // the thread of its first read: the one serving it
  int32_t fd = -1;  // its backend-side connection's
  uint64_t first_read_exit = 0;
  uint64_t in_end = 0;  // its connection's bytes read by its first read's end
  // Bound to an exchange that began after its first read: its first data
  // read exiting at or after this time is its real start (0: none pending).
  uint64_t starts_after = 0;
  uint64_t last_write_exit = 0;
  bool has_write = false;
  bool ended = false;  // END_REQUEST written
  std::vector<SyscallRecord> syscalls;
  // The calls its thread made while serving it (at most kMaxCallsPerWork;
  // the rest are counted in calls_dropped), each updated until it ends.
  std::vector<std::shared_ptr<CallRecord>> calls;
  uint64_t calls_dropped = 0;
};

// One request/reply exchange on a backend link.
struct Exchange {
  Exchange() { syscalls.reserve(kSyscallsReserved); }

  uint64_t seq = 0;
  uint32_t tgid = 0;
  uint32_t tid = 0;             // the thread that began it
  bool new_conn = false;        // opened by its own connect
  std::string backend_address;  // BackendAddress of its link
  SocketId link_sock;           // its link's socket (for joining hosts)
  // TCP sequence number of its first sent byte, when its link is TCP.
  std::optional<uint32_t> first_send_seq;
  // "fastcgi" or "http" from its first send's payload; empty unknown.
  std::string protocol;
  bool partial = false;  // began before attach
  bool backend_traced = false;
  bool attributed = false;
  // The client connection (uid) of the HTTP/2 stream that took it; 0 when
  // no stream did.
  uint64_t stream_conn_uid = 0;
  uint64_t start_enter = 0;  // connect or first send enter
  uint64_t send_offset = 0;  // its link's bytes sent before it began
  std::optional<uint64_t> connect_exit;
  std::optional<uint64_t> backend_accept_exit;
  bool has_send = false;
  uint64_t last_send_exit = 0;
  std::optional<uint64_t> send_exit_before_reply;
  bool has_reply = false;
  uint64_t first_reply_start = 0;  // its enter, else its exit
  uint64_t first_reply_exit = 0;
  uint64_t last_reply_exit = 0;
  bool ended = false;  // END_REQUEST read
  bool done = false;   // its link closed or began the next exchange
  std::shared_ptr<BackendWork> work;
  std::vector<SyscallRecord> syscalls;
};

// A backend link's state: its current exchange and the exchanges and backend
// requests (of its paired backend side) still to be bound to each other.
struct BackendLink {
  std::shared_ptr<Exchange> exchange;
  // Oldest first, at most kMaxQueued each (vectors: most links never queue
  // more than one, and a deque allocates even when empty).
  std::vector<std::shared_ptr<Exchange>> unbound_exchanges;
  std::vector<std::shared_ptr<BackendWork>> unbound_work;
};

// A backend side's state: the backend request it is serving.
struct BackendSide {
  std::shared_ptr<BackendWork> work;
};

// Whether a request whose last request read exited at `last_read_exit` may
// take `ex` at its first response write, starting at `write_start`: `ex`
// started at or after that read and has read reply data before that write.
bool CanAttribute(const Exchange& ex, uint64_t last_read_exit,
                  uint64_t write_start);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_EXCHANGES_H_
