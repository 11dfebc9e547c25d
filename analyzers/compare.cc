#include "analyzers/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "analyzers/format.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {
namespace {

using nlohmann::json;

constexpr const char* kPhaseNames[] = {"total",   "server", "transport",
                                       "backend", "queue",  "tls"};
// A syscall is named in the verdict when its change per request is at least
// this share of the total change.
constexpr double kVerdictSyscallShare = 0.05;
constexpr size_t kVerdictSyscalls = 3;

const std::optional<PhaseSummary>& PhaseOf(const PhaseSet& set,
                                           const std::string& name) {
  if (name == "server") return set.server;
  if (name == "transport") return set.transport;
  if (name == "backend") return set.backend;
  if (name == "queue") return set.queue;
  if (name == "tls") return set.tls;
  return set.total;
}

// "+12.0 us", "-1.234 ms".
std::string Signed(double us) {
  return absl::StrCat(us < 0 ? "-" : "+", FormatDuration(std::fabs(us)));
}

std::string Pct(const std::optional<double>& pct) {
  if (!pct.has_value()) return "-";
  return absl::StrFormat("%+.1f%%", *pct);
}

std::string Verdict(const Comparison& c) {
  const PhaseDelta& total = c.phases[0];
  if (!total.a.has_value() || !total.b.has_value()) {
    return absl::StrFormat(
        "No comparison: %s has no complete requests.",
        !total.a.has_value() ? c.a_label : c.b_label);
  }
  const double d = *total.mean_us;
  const bool significant =
      total.pct.has_value() ? std::fabs(*total.pct) >= kSignificantPct
                            : d != 0;
  if (!significant) {
    return absl::StrFormat(
        "No significant difference: a request takes %s in %s and %s in %s "
        "(%s, under %.0f%%).",
        FormatDuration(total.b->mean_us), c.b_label,
        FormatDuration(total.a->mean_us), c.a_label, Pct(total.pct),
        kSignificantPct);
  }
  std::string out =
      d < 0 ? absl::StrFormat("%s saves %s per request (%.1f%%) over %s",
                              c.b_label, FormatDuration(-d),
                              std::fabs(total.pct.value_or(0)), c.a_label)
            : absl::StrFormat("%s costs %s more per request (%.1f%%) than %s",
                              c.b_label, FormatDuration(d),
                              std::fabs(total.pct.value_or(0)), c.a_label);
  // The phase that moved most in the direction of the total.
  const PhaseDelta* phase = nullptr;
  for (size_t i = 1; i <= 3; ++i) {
    const PhaseDelta& p = c.phases[i];
    if (!p.mean_us.has_value() || (*p.mean_us < 0) != (d < 0)) continue;
    if (phase == nullptr || std::fabs(*p.mean_us) > std::fabs(*phase->mean_us)) {
      phase = &p;
    }
  }
  if (phase != nullptr) {
    absl::StrAppend(&out, ", mostly ", phase->phase, " time (",
                    Signed(*phase->mean_us), ")");
  }
  // The syscalls whose time per request moved most in that direction.
  std::vector<const SyscallDelta*> named;
  for (const SyscallDelta& s : c.syscalls) {
    if ((s.delta_us_per_request < 0) != (d < 0) ||
        std::fabs(s.delta_us_per_request) <
            kVerdictSyscallShare * std::fabs(d)) {
      continue;
    }
    named.push_back(&s);
    if (named.size() == kVerdictSyscalls) break;
  }
  if (!named.empty()) {
    std::vector<std::string> parts;
    for (const SyscallDelta* s : named) {
      std::string part = absl::StrCat(s->side, " ", s->name, " ",
                                      Signed(s->delta_us_per_request));
      if (std::fabs(s->a_count_per_request - s->b_count_per_request) >= 0.1) {
        absl::StrAppendFormat(&part, " (%.2f -> %.2f calls)",
                              s->a_count_per_request, s->b_count_per_request);
      }
      parts.push_back(std::move(part));
    }
    absl::StrAppend(&out, "; the syscalls that changed most per request: ",
                    absl::StrJoin(parts, ", "));
  }
  absl::StrAppend(&out, ".");
  return out;
}

std::string PhaseCell(const std::optional<PhaseSummary>& p) {
  if (!p.has_value()) return "-";
  return absl::StrFormat("%s / %s / %s", FormatDuration(p->mean_us),
                         FormatDuration(p->p50_us), FormatDuration(p->p99_us));
}

std::string SyscallCell(const std::optional<SyscallSummary>& s,
                        double per_request) {
  if (!s.has_value()) return "-";
  if (s->timed() == 0) return absl::StrFormat("x%.2f (no durations)", per_request);
  return absl::StrFormat("x%.2f %s / %s / %s", per_request,
                         FormatDuration(s->mean_us), FormatDuration(s->p50_us),
                         FormatDuration(s->p99_us));
}

json DeltaToJson(const PhaseDelta& p) {
  return json{{"mean_us", p.mean_us.has_value() ? json(*p.mean_us) : json()},
              {"pct", p.pct.has_value() ? json(*p.pct) : json()}};
}

json DeltasToJson(const Comparison& c) {
  json delta = json::object();
  for (const PhaseDelta& p : c.phases) delta[p.phase] = DeltaToJson(p);
  return delta;
}

std::string GroupLabel(GroupKeys keys, ConnReuse client, ConnReuse backend) {
  std::vector<std::string> parts;
  if (keys.client_conn) {
    parts.push_back(absl::StrCat("client ", std::string(ReuseName(client))));
  }
  if (keys.backend_conn) {
    parts.push_back(absl::StrCat("backend ", std::string(ReuseName(backend))));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

Comparison Compare(const Report& a, const Report& b, std::string a_label,
                   std::string b_label) {
  Comparison c;
  c.a_label = std::move(a_label);
  c.b_label = std::move(b_label);
  c.a = a;
  c.b = b;
  for (const char* name : kPhaseNames) {
    PhaseDelta p;
    p.phase = name;
    p.a = PhaseOf(a.phases, name);
    p.b = PhaseOf(b.phases, name);
    if (p.a.has_value() && p.b.has_value()) {
      p.mean_us = p.b->mean_us - p.a->mean_us;
      if (p.a->mean_us != 0) p.pct = 100.0 * *p.mean_us / p.a->mean_us;
    }
    c.phases.push_back(p);
  }
  // Syscalls of both, in A's order then B's new ones.
  using Key = std::tuple<std::string, std::string, std::string>;
  std::vector<Key> order;
  std::map<Key, SyscallDelta> by_key;
  auto add = [&](const Report& r, bool is_a) {
    for (const SyscallSummary& s : r.syscalls) {
      Key key{s.name, s.side, s.peer};
      auto [it, inserted] = by_key.try_emplace(key);
      if (inserted) order.push_back(key);
      SyscallDelta& d = it->second;
      d.name = s.name;
      d.side = s.side;
      d.peer = s.peer;
      double per_request =
          r.complete > 0 ? static_cast<double>(s.count) / r.complete : 0;
      (is_a ? d.a : d.b) = s;
      (is_a ? d.a_count_per_request : d.b_count_per_request) = per_request;
      (is_a ? d.a_us_per_request : d.b_us_per_request) =
          per_request * s.mean_us;
    }
  };
  add(a, true);
  add(b, false);
  for (const auto& key : order) {
    SyscallDelta d = by_key.at(key);
    d.delta_us_per_request = d.b_us_per_request - d.a_us_per_request;
    c.syscalls.push_back(d);
  }
  std::stable_sort(c.syscalls.begin(), c.syscalls.end(),
                   [](const SyscallDelta& x, const SyscallDelta& y) {
                     return std::fabs(x.delta_us_per_request) >
                            std::fabs(y.delta_us_per_request);
                   });
  c.verdict = Verdict(c);
  return c;
}

std::string FormatComparisonText(const Comparison& c) {
  std::string out;
  const int w = 34;
  absl::StrAppendFormat(&out, "%-22s %-*s %-*s %s\n", "", w, c.a_label, w,
                        c.b_label, "delta");
  auto requests = [](const Report& r) {
    return absl::StrFormat("%d (%d complete)", r.count, r.complete);
  };
  absl::StrAppendFormat(&out, "%-22s %-*s %-*s\n", "requests", w,
                        requests(c.a), w, requests(c.b));
  absl::StrAppendFormat(&out, "%-22s %-*s %-*s\n", "rate", w,
                        absl::StrFormat("%.1f/s", c.a.rate_per_s), w,
                        absl::StrFormat("%.1f/s", c.b.rate_per_s));
  absl::StrAppendFormat(&out, "%-22s %-*s %-*s\n", "backend timing", w,
                        c.a.backend_timing, w, c.b.backend_timing);
  absl::StrAppendFormat(&out, "\nphases (mean / p50 / p99):\n");
  for (const PhaseDelta& p : c.phases) {
    std::string delta = p.mean_us.has_value()
                            ? absl::StrCat(Signed(*p.mean_us), " (",
                                           Pct(p.pct), ")")
                            : "-";
    absl::StrAppendFormat(&out, "  %-20s %-*s %-*s %s\n", p.phase, w,
                          PhaseCell(p.a), w, PhaseCell(p.b), delta);
  }
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
        Signed(s.delta_us_per_request));
  }
  absl::StrAppend(&out, "\n", c.verdict, "\n");
  return out;
}

nlohmann::json ComparisonToJson(const Comparison& c) {
  return json{{"schema", kCompareSchema},
              {"a", ReportToJson(c.a)},
              {"b", ReportToJson(c.b)},
              {"delta", DeltasToJson(c)},
              {"verdict", c.verdict}};
}

std::optional<GroupKeys> ParseGroupBy(const std::string& text,
                                      std::string* error) {
  GroupKeys keys;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part == "client-conn") {
      keys.client_conn = true;
    } else if (part == "backend-conn") {
      keys.backend_conn = true;
    } else {
      *error = absl::StrFormat(
          "--group-by %s: \"%s\" is not a key; use client-conn, "
          "backend-conn or both (client-conn,backend-conn)",
          text, part);
      return std::nullopt;
    }
  }
  return keys;
}

void GroupedStats::Add(const Request& r) {
  ConnReuse client = keys_.client_conn ? r.client_conn : ConnReuse::kNone;
  ConnReuse backend = keys_.backend_conn ? r.backend_conn : ConnReuse::kNone;
  groups_[{client, backend}].Add(r);
}

std::vector<GroupReport> GroupedStats::Reports(const Report& base) const {
  std::vector<GroupReport> out;
  for (const auto& [key, stats] : groups_) {
    GroupReport g;
    g.label = GroupLabel(keys_, key.first, key.second);
    if (keys_.client_conn) g.client_conn = std::string(ReuseName(key.first));
    if (keys_.backend_conn) {
      g.backend_conn = std::string(ReuseName(key.second));
    }
    g.report.capture = base.capture;
    g.report.processes = base.processes;
    g.report.anomalies = base.anomalies;
    stats.Fill(&g.report);
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<Comparison> CompareGroups(const std::vector<GroupReport>& groups) {
  std::vector<Comparison> out;
  for (size_t i = 1; i < groups.size(); ++i) {
    out.push_back(Compare(groups[0].report, groups[i].report, groups[0].label,
                          groups[i].label));
  }
  return out;
}

std::string FormatGroupComparisonText(
    const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons) {
  std::string out = "groups:\n";
  for (const GroupReport& g : groups) {
    absl::StrAppendFormat(&out, "  %-32s %d requests (%d complete)\n", g.label,
                          g.report.count, g.report.complete);
  }
  if (groups.size() < 2) {
    absl::StrAppend(&out,
                    "\nonly one group: nothing to compare (every request has "
                    "the same connection reuse)\n");
  }
  for (const Comparison& c : comparisons) {
    absl::StrAppend(&out, "\n", FormatComparisonText(c));
  }
  return out;
}

nlohmann::json GroupComparisonToJson(
    GroupKeys keys, const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons) {
  json group_by = json::array();
  if (keys.client_conn) group_by.push_back("client_conn");
  if (keys.backend_conn) group_by.push_back("backend_conn");
  json list = json::array();
  for (const GroupReport& g : groups) {
    json j = {{"label", g.label}};
    if (keys.client_conn) j["client_conn"] = g.client_conn;
    if (keys.backend_conn) j["backend_conn"] = g.backend_conn;
    j["report"] = ReportToJson(g.report);
    list.push_back(std::move(j));
  }
  json cs = json::array();
  for (const Comparison& c : comparisons) {
    cs.push_back({{"a", c.a_label},
                  {"b", c.b_label},
                  {"delta", DeltasToJson(c)},
                  {"verdict", c.verdict}});
  }
  return json{{"schema", kCompareGroupsSchema},
              {"group_by", group_by},
              {"groups", list},
              {"comparisons", cs}};
}

}  // namespace reqcost::analyzers
