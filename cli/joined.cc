#include "cli/joined.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "analyzers/host_join.h"
#include "analyzers/payload.h"
#include "analyzers/report.h"
#include "cli/pipeline.h"
#include "collector/capture_file.h"

namespace reqcost::cli {

std::vector<std::string> CaptureSet(const std::string& spec) {
  return absl::StrSplit(spec, ',', absl::SkipEmpty());
}

absl::StatusOr<JoinedCaptures> ProfileAndJoin(
    const std::vector<std::string>& paths) {
  JoinedCaptures out;
  std::vector<analyzers::HostRequests> hosts;
  analyzers::Report merged;
  for (size_t i = 0; i < paths.size(); ++i) {
    OutputOptions quiet;
    quiet.summary = false;
    Pipeline pipeline(quiet, stdout);
    analyzers::HostRequests host;
    host.name = paths[i];
    pipeline.AddRequestObserver([&host](const analyzers::Request& r) {
      host.requests.push_back(r);
    });
    collector::CaptureHeader header;
    absl::Status s = ReplayCapture(paths[i], &pipeline, &header);
    if (!s.ok()) return BadCapture(s);
    host.host = header.host;
    host.mono_to_wall_ns = header.mono_to_wall_ns;
    if (i == 0) out.start_mono_ns = header.start_mono_ns;
    hosts.push_back(std::move(host));

    // What is not per request adds up: the captures' sizes, processes
    // (named with their host: pids of two hosts may be equal) and
    // anomalies.
    const analyzers::Report& r = pipeline.report();
    merged.capture.duration_s =
        std::max(merged.capture.duration_s, r.capture.duration_s);
    merged.capture.events += r.capture.events;
    merged.capture.dropped_events += r.capture.dropped_events;
    // A process whose requests were seen from the backend's side is the
    // backend of a front on another host, not a server.
    std::set<uint32_t> backends;
    for (const analyzers::Request& q : hosts.back().requests) {
      if (q.origin == analyzers::RequestOrigin::kBackendSide) {
        backends.insert(q.pid);
      }
    }
    for (analyzers::ProcessEntry p : r.processes) {
      if (backends.count(p.pid) != 0) p.role = "backend";
      const std::string at = analyzers::ValidUtf8(header.host);
      p.comm = absl::StrCat(p.comm, "@", at);
      if (!p.comm_bytes.empty()) {
        p.comm_bytes = absl::StrCat(p.comm_bytes, "@", header.host);
      }
      merged.processes.push_back(std::move(p));
    }
    merged.anomalies.Add(r.anomalies);
  }
  analyzers::JoinResult joined = analyzers::JoinHosts(std::move(hosts));
  analyzers::RequestStats stats;
  for (const analyzers::Request& r : joined.requests) stats.Add(r);
  stats.Fill(&merged);
  merged.anomalies.clamped_phases += joined.summary.clamped;
  out.report = std::move(merged);
  out.requests = std::move(joined.requests);
  out.summary = std::move(joined.summary);
  return out;
}

std::string FormatJoinText(const analyzers::JoinSummary& s) {
  std::string out = absl::StrFormat(
      "hosts: %d captures joined by TCP 4-tuple and sequence number: %d "
      "backend exchanges matched",
      s.captures, s.matched);
  if (s.matched_incomplete > 0) {
    absl::StrAppendFormat(&out, " (%d of them incomplete on one side)",
                          s.matched_incomplete);
  }
  absl::StrAppendFormat(&out,
                        ", %d front exchanges and %d backend requests "
                        "unmatched\n",
                        s.unmatched_exchanges, s.unmatched_backend);
  constexpr size_t kShown = 10;
  for (size_t i = 0; i < s.unmatched.size() && i < kShown; ++i) {
    const analyzers::UnmatchedEndpoints& u = s.unmatched[i];
    absl::StrAppendFormat(
        &out, "  unmatched %s: %d %s %s -> %s in %s\n", u.side, u.count,
        u.side == "front" ? "exchanges" : "requests",
        analyzers::TerminalText(u.client), analyzers::TerminalText(u.server),
        analyzers::TerminalText(u.capture));
  }
  if (s.unmatched.size() > kShown) {
    absl::StrAppendFormat(&out, "  ... and %d more pairs of endpoints\n",
                          s.unmatched.size() - kShown);
  }
  if (!s.unmatched.empty()) {
    out +=
        "  (a front exchange to a backend host that was recorded matches "
        "only when both hosts see the same 4-tuple: a NAT or TCP load "
        "balancer between them rewrites it)\n";
  }
  return out;
}

nlohmann::json JoinToJson(const analyzers::JoinSummary& s) {
  nlohmann::json unmatched = nlohmann::json::array();
  for (const analyzers::UnmatchedEndpoints& u : s.unmatched) {
    unmatched.push_back({{"capture", analyzers::ValidUtf8(u.capture)},
                         {"side", u.side},
                         {"client", u.client},
                         {"server", u.server},
                         {"count", u.count}});
  }
  return {{"captures", s.captures},
          {"matched", s.matched},
          {"matched_incomplete", s.matched_incomplete},
          {"clamped", s.clamped},
          {"unmatched_exchanges", s.unmatched_exchanges},
          {"unmatched_backend", s.unmatched_backend},
          {"unmatched", unmatched}};
}

}  // namespace reqcost::cli
