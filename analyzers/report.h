// Statistics over requests and the Report value that the formatters print
// (and that a comparison of two captures can reuse).
#ifndef REQCOST_ANALYZERS_REPORT_H_
#define REQCOST_ANALYZERS_REPORT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "analyzers/call_stats.h"
#include "analyzers/histogram.h"
#include "analyzers/phase.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

// What the caller knows about the capture as a whole.
struct CaptureInfo {
  double duration_s = 0;
  uint64_t events = 0;
  uint64_t dropped_events = 0;
};

// Counters of things the profiler had to skip or correct.
struct Anomalies {
  uint64_t late_events = 0;               // arrived after the reorder window
  uint64_t clamped_phases = 0;            // requests with a clamped phase
  uint64_t unattributed_exchanges = 0;    // backend exchanges of no request
  uint64_t unmatched_backend_work = 0;    // backend requests of no exchange
  uint64_t ignored_connections = 0;       // role could not be decided
  uint64_t reclassified_connections = 0;  // client found to be a backend side
  uint64_t stray_events = 0;              // events outside any request
  // Calls on sockets that carry no requests (netlink, UDP, ...) made while
  // their process served no request: counted, not shown in any request.
  uint64_t side_calls_outside_requests = 0;
  // Pipelined HTTP/1.1 requests merged into the request before them (seen
  // only with payload: client_requests.h).
  uint64_t merged_requests = 0;
  // A backend's calls made while it served no request seen (its work's
  // FastCGI request was not seen, or it called between requests).
  uint64_t unattributed_calls = 0;
  // Call connections of a process beyond kMaxCallConnsPerProcess: their
  // calls are not followed.
  uint64_t call_connections_over_cap = 0;
  // HTTP/2 client connections whose frame boundaries were lost (more frames
  // in one read or write than the kernel follows, or an implausible header):
  // their streams from then on are not split into requests.
  uint64_t http2_frames_lost = 0;

  // Adds every counter of `other` to this one (several captures' or
  // rounds' reports made one).
  void Add(const Anomalies& other);
};

// One traced process and its role: "server", "backend" or "other". From a
// profiler, `comm` is valid UTF-8 (ValidUtf8 in payload.h).
struct ProcessEntry {
  uint32_t pid = 0;
  std::string comm;
  std::string role;
  // The name's bytes as the kernel or capture file gave them (empty when
  // none were kept): only for terminal text, through TerminalText, which
  // shows a byte that is not UTF-8 as `\xHH` where `comm` has U+FFFD.
  std::string comm_bytes;
};

// Statistics of one phase in microseconds; absent (nullopt in PhaseSet) when
// there was no value.
struct PhaseSummary {
  uint64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double max_us = 0;
  double stddev_us = 0;  // sample standard deviation; not in reqcost.report
};

// The phases of a set of complete requests (queue is part of transport,
// tls of server; both only where known).
struct PhaseSet {
  std::optional<PhaseSummary> total, server, transport, backend, queue, tls;
  // By PhaseIndex: how many of the complete requests had that phase null
  // (unknown: the side of the request that would show it was not seen, as
  // in a request seen from the backend link only) and are left out of its
  // statistics. Always 0 for queue and tls, which are only where known.
  std::array<uint64_t, kPhaseCount> unknown{};

  // How many complete requests had `phase` null.
  uint64_t Unknown(Phase phase) const { return unknown[PhaseIndex(phase)]; }

  // The field of `phase`.
  const std::optional<PhaseSummary>& Of(Phase phase) const {
    switch (phase) {
      case Phase::kTotal:
        return total;
      case Phase::kServer:
        return server;
      case Phase::kTransport:
        return transport;
      case Phase::kBackend:
        return backend;
      case Phase::kQueue:
        return queue;
      case Phase::kTls:
        return tls;
    }
    return total;
  }
};

// The time of `phase` in a request (set only for complete requests, queue
// and tls only where known).
inline const std::optional<uint64_t>& PhaseNs(const Request& r, Phase phase) {
  switch (phase) {
    case Phase::kTotal:
      return r.total_ns;
    case Phase::kServer:
      return r.server_ns;
    case Phase::kTransport:
      return r.transport_ns;
    case Phase::kBackend:
      return r.backend_ns;
    case Phase::kQueue:
      return r.queue_ns;
    case Phase::kTls:
      return r.tls_ns;
  }
  return r.total_ns;
}

// One syscall kind on one side (and, for a socket that carries no requests,
// one kind of socket) over complete requests.
struct SyscallSummary {
  std::string name;
  std::string side;
  uint64_t count = 0;
  double mean_us = 0;  // over the timed ones
  double p99_us = 0;
  double p50_us = 0;  // text output only: not part of reqcost.report
  std::string peer;   // "netlink", "dns", ... for side calls; "" otherwise
  // Of `count`, the calls without a known duration (their start was not
  // hooked: data syscalls seen at the socket layer).
  uint64_t untimed = 0;
  // Of the timed calls' time, the part in calls where the thread slept
  // (waited for a connection, data or the peer's close): waiting, not work.
  double slept_us = 0;

  uint64_t timed() const { return count - untimed; }
};

// One line of the average per-request timeline: a syscall kind on one side
// and connection. Lines are in request order: by their mean start offset from
// the request's start (ties in order of first appearance). `name` is "(work)"
// for the backend phase line, which starts where the backend phase starts.
struct TimelineEntry {
  std::string name;
  std::string side;
  std::string target;              // "client", "backend", ""
  double mean_us_per_request = 0;  // summed duration / complete requests
  double count_per_request = 0;
  double mean_offset_us = 0;  // mean start offset from the request's start
  bool untimed = false;       // no occurrence had a known duration
};

// Requests grouped by client and backend connection reuse.
struct GroupSummary {
  std::string client_conn;   // "new", "reused"
  std::string backend_conn;  // "new", "reused", "none"
  uint64_t requests = 0;     // complete requests in the group
  PhaseSet phases;
};

// At most this many server processes get a row of their own in the
// per-process statistics. A row costs six histograms (several KB), and a
// long-lived agent sees a new set of workers on every reload and worker
// recycle; 64 holds every worker of a typical host's pools (nginx runs one per
// core, php-fpm pools a few dozen) while keeping the rows under a megabyte.
inline constexpr size_t kMaxProcessRows = 64;

// Requests of one server process, or (`other`) of the processes whose rows
// were folded together to keep at most kMaxProcessRows of them.
struct ProcessSummary {
  uint32_t pid = 0;       // 0 for the folded row
  uint64_t requests = 0;  // complete
  uint64_t incomplete = 0;
  PhaseSet phases;
  bool other = false;   // the folded row: the least recently active processes
  uint64_t folded = 0;  // rows folded into it (a process folded twice: 2)
};

// What the client saw of the complete requests: how many were answered per
// second while they ran and how long each took from its first request byte
// read to its last response byte written (accept, TLS handshake and close
// left out: the part every way of connecting has).
struct ClientView {
  uint64_t first_start_ns = 0;  // the first request's start (0: none)
  uint64_t last_end_ns = 0;     // the last request's end
  double busy_s = 0;            // last end - first start
  double rate_per_s = 0;        // complete requests / busy_s
  double in_flight = 0;         // mean requests open at once over busy_s
  std::optional<PhaseSummary> response;  // first byte read -> last byte written
};

// One peer's calls over the complete requests with a measured backend.
struct PeerSummary {
  std::string peer;      // CallRecord::peer; "other peers" for the folded row
  std::string protocol;  // "" unknown
  uint64_t calls = 0;
  uint64_t requests = 0;          // requests that called it
  double calls_per_request = 0;   // calls / requests with a measured backend
  std::optional<PhaseSummary> time;  // per request that called it
  // A traced peer: its calls that nested a complete request of the peer's
  // (docs/definitions.md, "Nested requests") and, per such call, transport
  // (call - peer time) and the peer's time; null when none did.
  uint64_t nested_calls = 0;
  std::optional<PhaseSummary> transport;
  std::optional<PhaseSummary> peer_time;
  bool other = false;   // the folded row (kMaxPeerRows in call_stats.h)
  uint64_t folded = 0;  // peers folded into it
};

// One of the slowest calls that carried a query (--payload).
struct SlowCallSummary {
  std::string peer;
  std::string query;
  double us = 0;
  uint64_t request_id = 0;
};

// The backend phase split into the backend's own time and its calls, over
// the complete requests with a measured backend (docs/definitions.md).
struct CallsSummary {
  uint64_t requests = 0;  // requests counted
  std::optional<PhaseSummary> backend_own;
  std::vector<PeerSummary> peers;  // most total time first, folded row last
  std::vector<SlowCallSummary> slowest;  // slowest first
};

// The breakdown of a capture.
struct Report {
  CaptureInfo capture;
  std::vector<ProcessEntry> processes;
  // Exited processes forgotten to keep the list bounded (process_table.h,
  // kMaxExitedProcesses): the list holds the live ones and the latest to exit.
  uint64_t processes_not_listed = 0;
  // Calls on the ends of socket pairs the traced processes made (nginx's
  // master-worker channels): no connections, not in any request.
  uint64_t socketpair_calls = 0;
  // Socket pair ends forgotten to stay within SocketpairEnds::kMaxEnds (the
  // oldest first): a later call on one is no longer known as a pair's.
  uint64_t socketpair_ends_forgotten = 0;
  uint64_t count = 0;
  uint64_t complete = 0;
  uint64_t incomplete = 0;
  double rate_per_s = 0;       // count / duration; 0 if no duration
  std::string backend_timing;  // "measured", "inferred", "mixed", "none"
  PhaseSet phases;
  std::vector<SyscallSummary> syscalls;
  std::vector<TimelineEntry> timeline;
  // The average request's backend exchange W as a line ("(exchange)", server,
  // "backend"): its start offset averaged over the requests that had one.
  // Unset when no complete request had one. Drawn by the HTML waterfall.
  std::optional<TimelineEntry> exchange;
  // The mean wall span of complete requests (WallSpanNs): the length of the
  // average request's time axis, which total does not fill when requests
  // had client waits.
  double mean_span_us = 0;
  std::vector<GroupSummary> groups;
  std::vector<ProcessSummary> by_process;
  std::map<std::string, uint64_t> incomplete_reasons;
  // Complete requests by where they were seen from (OriginName: "client",
  // "backend-link", "backend-side"); an origin with none is absent.
  std::map<std::string, uint64_t> origins;
  Anomalies anomalies;
  ClientView client;  // not in reqcost.report (compare shows it)
  CallsSummary calls;
};

// The statistics of a Summary in microseconds; nullopt when it is empty.
std::optional<PhaseSummary> SummaryOf(const Summary& summary);

// Streaming statistics over requests: memory grows with the number of
// distinct groups, syscall kinds and histogram buckets, not with requests.
class RequestStats {
 public:
  // Counts `request`; a complete one also feeds the phase statistics.
  void Add(const Request& request);
  // Fills the request, phase, syscall, timeline and group fields of a report.
  void Fill(Report* report) const;
  // Adds everything `other` counted, as if its requests had been added here.
  void Merge(const RequestStats& other);

 private:
  struct Phases {
    Summary total, server, transport, backend, queue, tls;
    std::array<uint64_t, kPhaseCount> unknown{};  // null values, by index
    void Add(const Request& request);
    void Merge(const Phases& other);
    PhaseSet ToSet() const;
  };
  // What a timeline line counts: a syscall kind (its Syscall value; one not
  // in the table is counted as 0, "?") or the backend's work.
  static constexpr uint16_t kWorkLine = kSyscallMax;
  static constexpr size_t kLineKinds = kSyscallMax + 1;
  static constexpr size_t kSides = 2;
  static constexpr size_t kTargets = kTargetCount;
  // Syscall statistics are kept apart for side calls, one slot per kind of
  // socket (slot 0: every connection).
  static constexpr size_t kPeerSlots = 1 + kTargetCount - 3;
  struct TimelineKey {
    uint16_t kind = 0;  // a Syscall value or kWorkLine
    Side side = Side::kServer;
    Target target = Target::kClient;
  };
  static size_t LineIndex(const TimelineKey& key);
  static size_t SyscallIndex(uint16_t kind, Side side, size_t peer_slot);

  uint64_t count_ = 0;
  uint64_t complete_ = 0;
  uint64_t measured_ = 0;
  uint64_t inferred_ = 0;
  // Complete requests by RequestOrigin.
  std::array<uint64_t, 3> origins_{};
  Phases phases_;
  std::map<std::pair<ConnReuse, ConnReuse>, std::pair<uint64_t, Phases>>
      groups_;
  // A server process's requests: complete ones with their phases.
  struct ProcessStats {
    uint64_t complete = 0;
    uint64_t incomplete = 0;
    uint64_t last_seen = 0;  // count_ at its latest request (for folding)
    Phases phases;
    void Merge(const ProcessStats& other);
  };
  // The row of `pid`, made (and the least recently seen row folded into
  // other_processes_ when there are kMaxProcessRows already) if it is new.
  ProcessStats& ProcessRow(uint32_t pid);
  // At most kMaxProcessRows, by pid.
  std::map<uint32_t, ProcessStats> by_process_;
  ProcessStats other_processes_;  // the folded rows
  uint64_t folded_processes_ = 0;
  std::map<std::string, uint64_t> incomplete_reasons_;
  // The client's view: the complete requests' span and their response times.
  uint64_t first_start_ns_ = UINT64_MAX;
  uint64_t last_end_ns_ = 0;
  uint64_t open_ns_ = 0;  // summed end - start
  Summary response_;
  // (syscall kind, side, peer slot) in order of first appearance; their
  // counts and summaries of the timed ones by SyscallIndex().
  struct SyscallKey {
    uint16_t kind = 0;
    Side side = Side::kServer;
    size_t peer_slot = 0;
    Target target = Target::kClient;  // a target of that slot, for its name
  };
  std::vector<SyscallKey> syscall_order_;
  std::array<uint64_t, kSyscallMax * kSides * kPeerSlots> syscall_counts_{};
  std::array<Summary, kSyscallMax * kSides * kPeerSlots> syscalls_;
  std::array<uint64_t, kSyscallMax * kSides * kPeerSlots> slept_ns_{};
  struct TimelineSum {
    uint64_t ns = 0;        // summed durations
    uint64_t n = 0;         // occurrences
    uint64_t timed = 0;     // occurrences with a known duration
    int64_t offset_ns = 0;  // summed start offsets from the request start
  };
  TimelineSum exchange_;  // backend exchanges of complete requests
  CallStats calls_;
  uint64_t span_ns_ = 0;  // summed WallSpanNs of complete requests
  std::vector<TimelineKey> timeline_order_;  // first appearance
  // A timeline line of `sum`: per complete request, offset per occurrence.
  TimelineEntry TimelineLine(const TimelineSum& sum, std::string name,
                             std::string side, std::string target) const;
  // By LineIndex().
  std::array<TimelineSum, kLineKinds * kSides * kTargets> timeline_{};
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_REPORT_H_
