#include "analyzers/render/format.h"

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analyzers/payload.h"
#include "analyzers/phase.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {
namespace {

using nlohmann::json;

constexpr double kNsPerUs = 1000.0;

json PhaseToJson(const std::optional<PhaseSummary>& p, uint64_t unknown) {
  if (!p.has_value()) {
    return json{{"count", 0},          {"mean_us", nullptr},
                {"p50_us", nullptr},   {"p90_us", nullptr},
                {"p99_us", nullptr},   {"max_us", nullptr},
                {"unknown", unknown}};
  }
  return json{{"count", p->count},   {"mean_us", p->mean_us},
              {"p50_us", p->p50_us}, {"p90_us", p->p90_us},
              {"p99_us", p->p99_us}, {"max_us", p->max_us},
              {"unknown", unknown}};
}

json PhasesToJson(const PhaseSet& set) {
  json out = json::object();
  for (Phase phase : kPhases) {
    out[PhaseName(phase)] = PhaseToJson(set.Of(phase), set.Unknown(phase));
  }
  return out;
}

json NsToUs(const std::optional<uint64_t>& ns) {
  if (!ns.has_value()) return nullptr;
  return *ns / kNsPerUs;
}

json TimelineLineToJson(const TimelineEntry& e) {
  return json{{"name", e.name},
              {"side", e.side},
              {"peer", e.target.empty() ? json(nullptr) : json(e.target)},
              {"offset_us", e.mean_offset_us},
              {"us_per_request", e.mean_us_per_request},
              {"calls_per_request", e.count_per_request},
              {"timed", !e.untimed}};
}

// The average request: what the HTML waterfall draws.
json TimelineToJson(const Report& r) {
  json lines = json::array();
  for (const TimelineEntry& e : r.timeline) {
    lines.push_back(TimelineLineToJson(e));
  }
  return json{
      {"span_us", r.complete > 0 ? json(r.mean_span_us) : json(nullptr)},
      {"exchange", r.exchange.has_value() ? TimelineLineToJson(*r.exchange)
                                          : json(nullptr)},
      {"lines", lines}};
}

// Offset of `ns` from the request's start in microseconds; null for 0 (not
// known).
json OffsetUs(const Request& q, uint64_t ns) {
  if (ns == 0 || !q.complete) return nullptr;
  return (static_cast<double>(ns) - static_cast<double>(q.start_ns)) / kNsPerUs;
}

// The backend's own time and its calls per peer (report.h CallsSummary).
json CallsToJson(const CallsSummary& c) {
  json peers = json::array();
  for (const PeerSummary& p : c.peers) {
    peers.push_back({{"peer", p.peer},
                     {"protocol", p.protocol.empty() ? json(nullptr)
                                                     : json(p.protocol)},
                     {"calls", p.calls},
                     {"requests", p.requests},
                     {"calls_per_request", p.calls_per_request},
                     {"time", PhaseToJson(p.time, 0)},
                     {"nested",
                      p.nested_calls == 0
                          ? json(nullptr)
                          : json{{"calls", p.nested_calls},
                                 {"transport", PhaseToJson(p.transport, 0)},
                                 {"peer", PhaseToJson(p.peer_time, 0)}}},
                     {"folded", p.other ? json(p.folded) : json(nullptr)}});
  }
  json slowest = json::array();
  for (const SlowCallSummary& s : c.slowest) {
    slowest.push_back({{"peer", s.peer},
                       {"query", s.query},
                       {"us", s.us},
                       {"request_id", s.request_id}});
  }
  return json{{"requests", c.requests},
              {"backend_own", PhaseToJson(c.backend_own, 0)},
              {"peers", peers},
              {"slowest", slowest}};
}

std::string CallsTable(const CallsSummary& c) {
  std::string out = absl::StrFormat(
      "\nbackend calls (%d requests with a measured backend):\n", c.requests);
  absl::StrAppendFormat(&out, "  %-40s %10s %10s %10s %10s\n", "", "mean",
                        "p50", "p99", "calls/req");
  auto row = [&](const std::string& name, const std::optional<PhaseSummary>& p,
                 std::optional<double> per_request) {
    absl::StrAppendFormat(
        &out, "  %-40s %10s %10s %10s %10s\n", TerminalText(name),
        p ? FormatDuration(p->mean_us) : "-",
        p ? FormatDuration(p->p50_us) : "-",
        p ? FormatDuration(p->p99_us) : "-",
        per_request ? absl::StrFormat("%.2f", *per_request) : "");
  };
  row("backend own", c.backend_own, std::nullopt);
  for (const PeerSummary& p : c.peers) {
    row(p.other ? absl::StrCat("other peers (", p.folded, " folded)")
                : p.peer,
        p.time, p.calls_per_request);
    if (p.nested_calls > 0) {
      // A traced peer: each call = transport + the peer's own request.
      row(absl::StrCat("  transport, per call (", p.nested_calls, " nested)"),
          p.transport, std::nullopt);
      row("  peer's time, per call", p.peer_time, std::nullopt);
    }
  }
  if (!c.slowest.empty()) {
    out += "\nslowest queries:\n";
    for (const SlowCallSummary& s : c.slowest) {
      absl::StrAppendFormat(&out, "  %10s  %-28s  #%d  %s\n",
                            FormatDuration(s.us), TerminalText(s.peer),
                            s.request_id, TerminalText(s.query));
    }
  }
  return out;
}

// A phase's row; `unknown` requests had it null and are not in it.
std::string PhaseRow(const char* name, const std::optional<PhaseSummary>& p,
                     uint64_t unknown) {
  std::string row =
      p.has_value()
          ? absl::StrFormat("  %-10s %10s %10s %10s %10s %10s", name,
                            FormatDuration(p->mean_us),
                            FormatDuration(p->p50_us),
                            FormatDuration(p->p90_us),
                            FormatDuration(p->p99_us),
                            FormatDuration(p->max_us))
          : absl::StrFormat("  %-10s %10s", name, "-");
  if (unknown > 0) absl::StrAppend(&row, "  (", unknown, " unknown)");
  return row + "\n";
}

std::string PhaseTable(const PhaseSet& set) {
  std::string out =
      absl::StrFormat("  %-10s %10s %10s %10s %10s %10s\n", "phase", "mean",
                      "p50", "p90", "p99", "max");
  for (Phase phase : kPhases) {
    // tls only where known; the others always, "-" without data.
    if (phase == Phase::kTls && !set.tls.has_value()) continue;
    out += PhaseRow(PhaseName(phase), set.Of(phase), set.Unknown(phase));
  }
  return out;
}

}  // namespace

std::string FormatText(const Report& r) {
  std::string out;
  absl::StrAppendFormat(
      &out, "requests: %d (%d complete, %d incomplete), %.1f/s over %.3f s\n",
      r.count, r.complete, r.incomplete, r.rate_per_s, r.capture.duration_s);
  absl::StrAppendFormat(&out, "events: %d, dropped: %d%s\n", r.capture.events,
                        r.capture.dropped_events,
                        r.capture.dropped_events > 0
                            ? " (requests overlapping drops are incomplete)"
                            : "");
  absl::StrAppendFormat(&out, "backend timing: %s\n", r.backend_timing);
  out += "processes:\n";
  for (const ProcessEntry& p : r.processes) {
    const std::string& name = p.comm_bytes.empty() ? p.comm : p.comm_bytes;
    absl::StrAppendFormat(&out, "  %-8d %-16s %s\n", p.pid, TerminalText(name),
                          p.role);
  }
  if (r.processes_not_listed > 0) {
    absl::StrAppendFormat(&out, "  (%d earlier exited processes not listed)\n",
                          r.processes_not_listed);
  }
  for (const auto& [reason, n] : r.incomplete_reasons) {
    absl::StrAppendFormat(&out, "incomplete: %d %s\n", n, reason);
  }
  for (const auto& [origin, n] : r.origins) {
    // Only the requests not seen on their client connection need a word.
    if (origin == OriginName(RequestOrigin::kClient)) continue;
    absl::StrAppendFormat(
        &out, "seen from the %s only: %d complete (their unknown phases are "
              "left out)\n",
        origin == OriginName(RequestOrigin::kBackendLink) ? "backend link"
                                                          : "backend side",
        n);
  }
  out += "\nphases (complete requests):\n";
  out += PhaseTable(r.phases);
  if (!r.timeline.empty()) {
    absl::StrAppendFormat(&out, "\naverage request (%d complete):\n",
                          r.complete);
    for (const TimelineEntry& e : r.timeline) {
      std::string line = absl::StrFormat(
          "  %-8s %-10s %10s  x%.2f", e.side, e.name,
          e.untimed ? "-" : FormatDuration(e.mean_us_per_request),
          e.count_per_request);
      if (!e.target.empty()) absl::StrAppend(&line, "  ", e.target);
      absl::StrAppend(&out, line, "\n");
    }
  }
  if (r.calls.requests > 0 && !r.calls.peers.empty()) {
    out += CallsTable(r.calls);
  }
  if (!r.groups.empty()) {
    out += "\ngroups:\n";
    for (const GroupSummary& g : r.groups) {
      absl::StrAppendFormat(&out, "  client %s, backend %s: %d requests\n",
                            g.client_conn, g.backend_conn, g.requests);
      out += PhaseTable(g.phases);
    }
  }
  if (r.by_process.size() > 1) {
    out += "\nby process:\n";
    for (const ProcessSummary& p : r.by_process) {
      if (p.other) {
        absl::StrAppendFormat(
            &out, "  other processes (%d folded): %d complete, %d incomplete\n",
            p.folded, p.requests, p.incomplete);
      } else {
        absl::StrAppendFormat(&out, "  pid %d: %d complete, %d incomplete\n",
                              p.pid, p.requests, p.incomplete);
      }
      out += PhaseTable(p.phases);
    }
  }
  const Anomalies& a = r.anomalies;
  std::vector<std::string> notes;
  auto note = [&](uint64_t n, const char* what) {
    if (n > 0) notes.push_back(absl::StrCat(n, " ", what));
  };
  note(a.late_events, "events later than the reorder window");
  note(a.clamped_phases, "requests with a phase clamped to stay >= 0");
  note(a.unattributed_exchanges, "backend exchanges of no request");
  note(a.unmatched_backend_work, "backend requests of no exchange");
  note(a.ignored_connections, "connections of unknown role");
  note(a.reclassified_connections, "connections reclassified");
  note(a.stray_events, "events outside any request");
  note(a.side_calls_outside_requests,
       "calls on non-request sockets (netlink, UDP, ...) outside any request");
  note(a.merged_requests, "pipelined requests merged into the one before");
  note(a.unattributed_calls, "backend calls made while serving no request");
  note(a.call_connections_over_cap,
       "backend call connections over the per-process cap (not followed)");
  note(a.http2_frames_lost,
       "HTTP/2 connections whose frames were lost (later streams not split)");
  if (!notes.empty()) {
    absl::StrAppend(&out, "\nanomalies: ", absl::StrJoin(notes, "; "), "\n");
  }
  return out;
}

nlohmann::json AnomaliesToJson(const Anomalies& a) {
  return json{{"late_events", a.late_events},
              {"clamped_phases", a.clamped_phases},
              {"unattributed_exchanges", a.unattributed_exchanges},
              {"unmatched_backend_work", a.unmatched_backend_work},
              {"ignored_connections", a.ignored_connections},
              {"reclassified_connections", a.reclassified_connections},
              {"stray_events", a.stray_events},
              {"side_calls_outside_requests", a.side_calls_outside_requests},
              {"merged_requests", a.merged_requests},
              {"unattributed_calls", a.unattributed_calls},
              {"call_connections_over_cap", a.call_connections_over_cap},
              {"http2_frames_lost", a.http2_frames_lost}};
}

nlohmann::json ReportToJson(const Report& r) {
  json processes = json::array();
  for (const ProcessEntry& p : r.processes) {
    processes.push_back({{"pid", p.pid}, {"comm", p.comm}, {"role", p.role}});
  }
  json syscalls = json::array();
  for (const SyscallSummary& s : r.syscalls) {
    // Durations are over the calls whose start was hooked: null when none
    // was (data syscalls seen at the socket layer).
    syscalls.push_back(
        {{"name", s.name},
         {"side", s.side},
         {"peer", s.peer.empty() ? json(nullptr) : json(s.peer)},
         {"count", s.count},
         {"timed", s.timed()},
         {"mean_us", s.timed() > 0 ? json(s.mean_us) : json(nullptr)},
         {"p99_us", s.timed() > 0 ? json(s.p99_us) : json(nullptr)}});
  }
  json groups = json::array();
  for (const GroupSummary& g : r.groups) {
    groups.push_back({{"client_conn", g.client_conn},
                      {"backend_conn", g.backend_conn},
                      {"requests", g.requests},
                      {"phases", PhasesToJson(g.phases)}});
  }
  return json{
      {"schema", kReportSchema},
      {"capture",
       {{"duration_s", r.capture.duration_s},
        {"events", r.capture.events},
        {"dropped_events", r.capture.dropped_events},
        {"processes", processes},
        {"processes_not_listed", r.processes_not_listed},
        {"socketpair_calls", r.socketpair_calls},
        {"socketpair_ends_forgotten", r.socketpair_ends_forgotten}}},
      {"requests",
       {{"count", r.count},
        {"complete", r.complete},
        {"incomplete", r.incomplete},
        {"rate_per_s", r.rate_per_s},
        {"origins", r.origins}}},
      {"backend_timing", r.backend_timing},
      {"phases", PhasesToJson(r.phases)},
      {"syscalls", syscalls},
      {"groups", groups},
      {"timeline", TimelineToJson(r)},
      {"calls", CallsToJson(r.calls)},
      {"anomalies", AnomaliesToJson(r.anomalies)},
  };
}

nlohmann::json RequestToJson(const Request& q) {
  json syscalls = json::array();
  for (const SyscallRecord& s : q.syscalls) {
    uint64_t start = s.start_ns();
    json bytes = nullptr;
    if (IsRead(s.syscall) || IsWrite(s.syscall)) bytes = s.ret;
    syscalls.push_back(
        {{"name", std::string(SyscallName(s.syscall))},
         {"side", std::string(SideName(s.side))},
         {"peer", std::string(TargetName(s.target))},
         {"offset_us",
          (static_cast<double>(start) - static_cast<double>(q.start_ns)) /
              kNsPerUs},
         {"dur_us",
          s.enter_seen() ? json(s.duration_ns() / kNsPerUs) : json(nullptr)},
         {"bytes", bytes}});
  }
  json out{
      {"id", q.id},
      {"pid", q.pid},
      {"origin", std::string(OriginName(q.origin))},
      {"client_conn", std::string(ReuseName(q.client_conn))},
      {"backend_conn", std::string(ReuseName(q.backend_conn))},
      {"request_line",
       q.request_line.has_value() ? json(*q.request_line) : json(nullptr)},
      {"start_ns", q.start_ns},
      {"span_us", q.complete ? json(WallSpanNs(q) / kNsPerUs) : json(nullptr)},
      {"exchange_offset_us", OffsetUs(q, q.exchange_start_ns)},
      {"exchange_us",
       q.complete && q.exchange_start_ns != 0 &&
               q.exchange_end_ns >= q.exchange_start_ns
           ? json((q.exchange_end_ns - q.exchange_start_ns) / kNsPerUs)
           : json(nullptr)},
      {"backend_offset_us", OffsetUs(q, q.backend_start_ns)},
      {"backend_timing", q.complete
                             ? json(std::string(TimingName(q.backend_timing)))
                             : json(nullptr)},
      {"complete", q.complete},
      {"syscalls", syscalls},
  };
  if (!q.backend_host.empty()) out["backend_host"] = ValidUtf8(q.backend_host);
  for (Phase phase : kPhases) {
    out[absl::StrCat(PhaseName(phase), "_us")] = NsToUs(PhaseNs(q, phase));
  }
  out["backend_own_us"] = NsToUs(q.backend_own_ns);
  json calls = json::array();
  for (const CallRecord& c : q.calls) {
    calls.push_back(
        {{"peer", c.peer},
         {"protocol", c.protocol.empty() ? json(nullptr) : json(c.protocol)},
         {"address", c.address},
         {"tid", c.tid},
         {"offset_us", (static_cast<double>(c.start_ns) -
                        static_cast<double>(q.start_ns)) /
                           kNsPerUs},
         {"dur_us", c.duration_ns() / kNsPerUs},
         {"reply", c.has_reply},
         {"opens", c.opens},
         {"query", c.query.empty() ? json(nullptr) : json(c.query)}});
    if (c.nested_id.has_value()) {
      // A traced peer's request served it: a request of its own.
      calls.back()["nested"] = {
          {"id", *c.nested_id},
          {"peer_us", NsToUs(c.peer_ns)},
          {"transport_us", NsToUs(c.transport_ns)},
          {"capped", c.peer_capped},
          {"phases",
           {{"server_us", NsToUs(c.nested_server_ns)},
            {"transport_us", NsToUs(c.nested_transport_ns)},
            {"backend_us", NsToUs(c.nested_backend_ns)}}}};
    }
  }
  out["calls"] = calls;
  if (q.nested_in.has_value()) {
    out["nested_in"] = {{"request", q.nested_in->request_id},
                        {"call", q.nested_in->call}};
  }
  json peers = json::array();
  for (const PeerTime& p : CallsByPeer(q)) {
    peers.push_back(
        {{"peer", p.peer},
         {"protocol", p.protocol.empty() ? json(nullptr) : json(p.protocol)},
         {"calls", p.calls},
         {"us", p.ns / kNsPerUs}});
  }
  out["peers"] = peers;
  return out;
}

std::string FormatRequestLine(const Request& q) {
  std::string line =
      absl::StrFormat("#%d pid %d %s (client %s, backend %s)", q.id, q.pid,
                      q.request_line.value_or("-"), ReuseName(q.client_conn),
                      ReuseName(q.backend_conn));
  if (q.origin != RequestOrigin::kClient) {
    absl::StrAppend(&line, " [seen from the ", std::string(OriginName(q.origin)),
                    "]");
  }
  if (q.nested_in.has_value()) {
    absl::StrAppend(&line, " [nested in #", q.nested_in->request_id, "]");
  }
  if (!q.complete) {
    absl::StrAppend(&line, ": incomplete, ", q.incomplete_reason);
    return line;
  }
  // "?" for a phase that is null: unknown, not zero.
  auto phase = [](const std::optional<uint64_t>& ns) {
    return ns.has_value() ? FormatDuration(*ns / kNsPerUs) : std::string("?");
  };
  absl::StrAppend(&line, ": total ", phase(q.total_ns), " = server ",
                  phase(q.server_ns), " + transport ", phase(q.transport_ns),
                  " + backend ", phase(q.backend_ns));
  if (q.backend_timing != BackendTiming::kNone) {
    absl::StrAppend(&line, " (", std::string(TimingName(q.backend_timing)),
                    ")");
  }
  if (q.queue_ns.has_value()) {
    absl::StrAppend(&line, ", queue ", FormatDuration(*q.queue_ns / kNsPerUs));
  }
  if (q.tls_ns.has_value()) {
    absl::StrAppend(&line, ", tls ", FormatDuration(*q.tls_ns / kNsPerUs));
  }
  if (q.backend_own_ns.has_value() && !q.calls.empty()) {
    absl::StrAppend(&line, "; backend own ",
                    FormatDuration(*q.backend_own_ns / kNsPerUs));
    for (const PeerTime& p : CallsByPeer(q)) {
      absl::StrAppend(&line, ", ", TerminalText(p.peer), " ",
                      FormatDuration(p.ns / kNsPerUs), " (", p.calls, ")");
    }
  }
  return line;
}

}  // namespace reqcost::analyzers
