// Client request boundaries: where a request on a client connection starts
// and ends (internal to the profiler; the stage that applies this is
// ClientRequestBoundaries, in client_request_boundaries.h).
//
// Requests on a client connection: a request starts with the first read
// returning data (> 0) after accept or after the previous response (an
// interim "100 Continue" written before the response, seen with payload, is
// not a response: the request's body follows it), and ends
// at the exit of the last write before the next request's first data read, or
// at close. The first request of a connection owns its accept; the last owns
// its close and shutdown (its total time: phases.h). Reads after the last
// response write (EAGAIN, EOF) that are not followed by another response
// write are outside the request; so is the gap between accept and the first
// data read.
// Pipelined requests (next request read before the previous response ended)
// are merged into one: syscalls show no boundary between them. When the
// payload shows the response heads (plain HTTP/1.x, --payload 10 or more),
// each final response head a request writes after its first counts one
// merged request (Anomalies::merged_requests), so that requests served =
// requests reported + merged requests.
#ifndef REQCOST_ANALYZERS_CLIENT_REQUESTS_H_
#define REQCOST_ANALYZERS_CLIENT_REQUESTS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analyzers/exchanges.h"
#include "analyzers/hpack.h"
#include "analyzers/http2_frames.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/profiler_records.h"
#include "analyzers/request.h"
#include "analyzers/tls.h"

namespace reqcost::analyzers {

// A request on a client connection, while it is open.
// A client connection's syscalls before its first request (its TLS
// handshake, a peek at the first byte) and the server's time in the
// handshake so far: the first request owns them, as it owns the accept.
struct PreRequest {
  std::vector<SyscallRecord> syscalls;
  bool tls = false;        // a handshake was seen
  uint64_t tls_ns = 0;     // closed legs of the handshake
  uint64_t leg_start = 0;  // the open leg's first read's start (0: none)
  uint64_t leg_end = 0;    // the open leg's latest exit
  bool leg_wrote = false;  // the server answered in the open leg

  // Adds a handshake read or write (or an empty read inside a leg): a read
  // after the server's answer begins the next leg.
  void AddHandshake(const SyscallRecord& rec, bool write);
  // Ends the open leg; returns the handshake's server time.
  uint64_t CloseLeg();
};

struct OpenRequest {
  OpenRequest() { syscalls.reserve(kSyscallsReserved); }

  uint64_t conn_uid = 0;
  uint32_t tgid = 0;
  uint32_t tid = 0;  // the thread that read its request
  bool first_of_conn = false;
  std::optional<IncompleteReason> partial_reason;
  std::optional<SyscallRecord> accept;
  bool has_read = false;
  uint64_t first_read_start = 0;  // its enter, else its exit
  uint64_t first_read_exit = 0;
  uint64_t last_read_exit = 0;
  // Byte offsets on its connection of its first data read's first byte and
  // past its last data read's bytes (plain HTTP/1.x requests).
  std::optional<uint64_t> first_read_offset;
  uint64_t read_end_offset = 0;
  std::optional<std::string> request_line;
  bool has_write = false;
  uint32_t response_heads = 0;  // final HTTP/1.x response heads it wrote
  uint64_t first_write_start = 0;
  uint64_t last_write_exit = 0;
  std::vector<SyscallRecord> syscalls;  // client connection, in the interval
  std::vector<SyscallRecord> trailing;  // after the last write, so far
  std::vector<SyscallRecord> closes;
  std::shared_ptr<Exchange> exchange;
  bool waiting = false;  // in its process's list of requests awaiting reply
  // First request: its connection's syscalls before it (TLS handshake).
  std::vector<SyscallRecord> pre_request;
  // First request over TLS: the handshake's server time before its first
  // read (added to T) and of session tickets written during it (inside T).
  std::optional<uint64_t> tls_before_ns;
  uint64_t tls_inside_ns = 0;
  uint64_t tls_mark_ns = 0;  // end of the last ticket write counted
  // Calls on sockets that carry no requests (name resolution, ...), made
  // by its process while it waited for its response.
  std::vector<SyscallRecord> side_calls;
  // Its first reads with a TCP sequence number (for joining hosts), and the
  // exit of its first read that began with a FastCGI BEGIN_REQUEST record
  // (0: none seen, or no payload): its server is then a FastCGI backend.
  std::vector<WireRead> wire_reads;
  uint64_t fastcgi_begin_exit = 0;
  // Its first read was a FastCGI record other than BEGIN_REQUEST: the tail
  // of the previous request (php-fpm reads a request's empty FCGI_STDIN
  // record after its reply). Without a response of its own it is no
  // request.
  bool fastcgi_tail = false;
  // HTTP/2: its stream id (0 for HTTP/1.x), and whether its backend
  // exchange could not be told from other streams' (it is then incomplete).
  uint32_t stream_id = 0;
  bool stream_unpaired = false;
};

// A client connection whose TLS library calls are seen (the uprobes'
// TlsDataEvents): its requests are split from the decrypted bytes, HTTP/2
// streams from their frames, not from the TLS records.
struct DecryptedConn {
  bool h2 = false;    // the decrypted bytes are HTTP/2 frames
  bool lost = false;  // HTTP/2 frame boundaries lost: nothing more is split
  // The first request's connection-level parts (accept, handshake, the
  // syscalls before it) until a request takes them.
  std::unique_ptr<OpenRequest> first;
  // Open HTTP/2 streams' requests, by stream id.
  std::map<uint32_t, std::unique_ptr<OpenRequest>> streams;
  Http2StreamTracker tracker;
  // Stream 1 of a connection upgraded by `Upgrade: h2c`, until the read of
  // the client's preface, which joins it to that read's turn: a server may
  // begin its exchange only once it has read the preface (lighttpd).
  OpenRequest* upgraded = nullptr;
  // Reads and writes on the socket not yet claimed by a TLS call: the one
  // that ends inside a call's [enter, exit] carried its bytes.
  std::vector<SyscallRecord> pending;
  // With --payload: the client's frames, followed through the captured
  // prefixes, and their header blocks decoded, while every block was seen.
  std::unique_ptr<Http2FrameParser> client_frames;
  HpackDecoder hpack;
  bool paths = true;  // no header block missed so far
  std::string header_block;  // a HEADERS block waiting for its CONTINUATION
  uint32_t header_stream = 0;
};

// A client connection's state: its open request and what comes before its
// first one.
struct ClientConn {
  std::unique_ptr<OpenRequest> request;
  std::unique_ptr<TlsConnection> tls;  // once a read showed TLS records
  PreRequest pre_request;  // before its first request: TLS handshake, peeks
  bool http2 = false;      // the server spoke first: its requests are not split
  // Once a TLS library call on it was seen (live TLS data): requests are
  // split from the decrypted bytes.
  std::unique_ptr<DecryptedConn> decrypted;
  uint64_t ssl = 0;  // the hashed SSL * of its TLS calls (0: none seen)
  // Its first read was the HTTP/2 client preface (cleartext HTTP/2): the
  // kernel's data records of its syscalls follow each syscall's event.
  bool h2c = false;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_CLIENT_REQUESTS_H_
