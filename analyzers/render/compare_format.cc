#include "analyzers/render/compare_format.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analyzers/compare.h"
#include "analyzers/duration.h"
#include "analyzers/payload.h"
#include "analyzers/render/format.h"
#include "analyzers/report.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {
namespace {

using nlohmann::json;

std::string PhaseCell(const std::optional<PhaseSummary>& p) {
  if (!p.has_value()) return "-";
  return absl::StrFormat("%s / %s / %s", FormatDuration(p->mean_us),
                         FormatDuration(p->p50_us), FormatDuration(p->p99_us));
}

std::string SyscallCell(const std::optional<SyscallSummary>& s,
                        double per_request) {
  if (!s.has_value()) return "-";
  if (s->timed() == 0)
    return absl::StrFormat("x%.2f (no durations)", per_request);
  return absl::StrFormat("x%.2f %s / %s / %s", per_request,
                         FormatDuration(s->mean_us), FormatDuration(s->p50_us),
                         FormatDuration(s->p99_us));
}

json DeltaToJson(const PhaseDelta& p) {
  return json{{"mean_us", p.mean_us.has_value() ? json(*p.mean_us) : json()},
              {"pct", p.pct.has_value() ? json(*p.pct) : json()},
              {"ci95_us", p.ci_low_us.has_value()
                              ? json::array({*p.ci_low_us, *p.ci_high_us})
                              : json()},
              {"clear", p.clear}};
}

json ClientToJson(const ClientView& v) {
  json response = nullptr;
  if (v.response.has_value()) {
    response = {
        {"count", v.response->count},   {"mean_us", v.response->mean_us},
        {"p50_us", v.response->p50_us}, {"p90_us", v.response->p90_us},
        {"p99_us", v.response->p99_us}, {"max_us", v.response->max_us}};
  }
  return json{{"busy_s", v.busy_s},
              {"rate_per_s", v.rate_per_s},
              {"in_flight", v.in_flight},
              {"response", response}};
}

}  // namespace

std::string FormatCallsComparisonText(const CallsDelta& d) {
  if (!d.any()) return "";
  const int w = 34;
  std::string out =
      "\nbackend calls (mean / p50 / p99 per request; calls per request):\n";
  auto delta_cell = [](const PhaseDelta& p) -> std::string {
    if (!p.mean_us.has_value()) return "-";
    return absl::StrCat(FormatSigned(*p.mean_us), " (", FormatPct(p.pct), ") ",
                        FormatInterval(p), p.clear ? "" : " ~");
  };
  absl::StrAppendFormat(&out, "  %-20s %-*s %-*s %s\n", "backend own", w,
                        PhaseCell(d.backend_own.a), w,
                        PhaseCell(d.backend_own.b), delta_cell(d.backend_own));
  for (const PeerCallsDelta& p : d.peers) {
    auto cell = [](const std::optional<PhaseSummary>& s, double per_request) {
      return s.has_value()
                 ? absl::StrFormat("%s x%.2f", PhaseCell(s), per_request)
                 : std::string("-");
    };
    absl::StrAppendFormat(&out, "  %s\n  %-20s %-*s %-*s %s\n",
                          TerminalText(p.peer), "", w,
                          cell(p.time.a, p.a_calls_per_request), w,
                          cell(p.time.b, p.b_calls_per_request),
                          delta_cell(p.time));
  }
  return out;
}

nlohmann::json CallsDeltaToJson(const CallsDelta& d) {
  json peers = json::array();
  for (const PeerCallsDelta& p : d.peers) {
    peers.push_back({{"peer", ValidUtf8(p.peer)},
                     {"protocol", p.protocol.empty() ? json() : json(p.protocol)},
                     {"a_calls_per_request", p.a_calls_per_request},
                     {"b_calls_per_request", p.b_calls_per_request},
                     {"a_seen", p.time.a.has_value()},
                     {"b_seen", p.time.b.has_value()},
                     {"delta", DeltaToJson(p.time)}});
  }
  return json{{"backend_own", DeltaToJson(d.backend_own)},
              {"peers", std::move(peers)}};
}

std::string FormatComparisonText(const Comparison& c) {
  std::string out;
  const int w = 34;
  absl::StrAppendFormat(&out, "%-22s %-*s %-*s %s\n", "", w, c.a_label, w,
                        c.b_label, "delta");
  auto requests = [](const Report& r) {
    return absl::StrFormat("%d (%d complete)", r.count, r.complete);
  };
  absl::StrAppendFormat(&out, "%-22s %-*s %-*s\n", "requests", w, requests(c.a),
                        w, requests(c.b));
  absl::StrAppendFormat(&out, "%-22s %-*s %-*s\n", "rate", w,
                        absl::StrFormat("%.1f/s", c.a.rate_per_s), w,
                        absl::StrFormat("%.1f/s", c.b.rate_per_s));
  absl::StrAppendFormat(&out, "%-22s %-*s %-*s\n", "backend timing", w,
                        c.a.backend_timing, w, c.b.backend_timing);
  absl::StrAppendFormat(
      &out,
      "\nphases (mean / p50 / p99; delta of the means, its 95%% interval, "
      "~ when not clear):\n");
  auto delta_cell = [](const PhaseDelta& p) -> std::string {
    if (!p.mean_us.has_value()) return "-";
    return absl::StrCat(FormatSigned(*p.mean_us), " (", FormatPct(p.pct), ") ",
                        FormatInterval(p), p.clear ? "" : " ~");
  };
  for (size_t i = 0; i < c.phases.size(); ++i) {
    const PhaseDelta& p = c.phases[i];
    std::string row = absl::StrFormat("  %-20s %-*s %-*s %s", p.phase, w,
                                      PhaseCell(p.a), w, PhaseCell(p.b),
                                      delta_cell(p));
    // Requests with the phase null are not in its figures: say how many.
    if (i < kPhaseCount) {
      const uint64_t ua = c.a.phases.unknown[i], ub = c.b.phases.unknown[i];
      if (ua > 0 || ub > 0) {
        absl::StrAppendFormat(&row, " (unknown in %d / %d)", ua, ub);
      }
    }
    absl::StrAppend(&out, row, "\n");
  }
  auto rate = [](const ClientView& v) {
    return v.rate_per_s > 0 ? absl::StrFormat("%.1f/s (%.2f in flight)",
                                              v.rate_per_s, v.in_flight)
                            : std::string("-");
  };
  absl::StrAppendFormat(&out, "\nwhat the client saw:\n");
  absl::StrAppendFormat(&out, "  %-20s %-*s %-*s\n", "rate while busy", w,
                        rate(c.a.client), w, rate(c.b.client));
  absl::StrAppendFormat(&out, "  %-20s %-*s %-*s %s\n", "first byte->last", w,
                        PhaseCell(c.response.a), w, PhaseCell(c.response.b),
                        delta_cell(c.response));
  absl::StrAppendFormat(
      &out,
      "\nsyscalls (calls per request x mean / p50 / p99; delta of time per "
      "request):\n");
  for (const SyscallDelta& s : c.syscalls) {
    absl::StrAppendFormat(
        &out, "  %-20s %-*s %-*s %s\n",
        absl::StrCat(s.side, " ", s.name, s.peer.empty() ? "" : " ", s.peer), w,
        SyscallCell(s.a, s.a_count_per_request), w,
        SyscallCell(s.b, s.b_count_per_request),
        FormatSigned(s.delta_us_per_request));
  }
  absl::StrAppend(&out, FormatCallsComparisonText(c.calls));
  absl::StrAppend(&out, "\n", c.verdict, "\n");
  return out;
}

nlohmann::json ComparisonClientToJson(const Comparison& c) {
  return json{{"a", ClientToJson(c.a.client)},
              {"b", ClientToJson(c.b.client)},
              {"response_delta", DeltaToJson(c.response)}};
}

nlohmann::json ComparisonDeltasToJson(const Comparison& c) {
  json delta = json::object();
  for (const PhaseDelta& p : c.phases) delta[p.phase] = DeltaToJson(p);
  return delta;
}

nlohmann::json ComparisonToJson(const Comparison& c) {
  return json{{"schema", kCompareSchema},
              {"threshold_pct", c.threshold_pct},
              {"a", ReportToJson(c.a)},
              {"b", ReportToJson(c.b)},
              {"delta", ComparisonDeltasToJson(c)},
              {"client", ComparisonClientToJson(c)},
              {"calls", CallsDeltaToJson(c.calls)},
              {"verdict", c.verdict}};
}

}  // namespace reqcost::analyzers
