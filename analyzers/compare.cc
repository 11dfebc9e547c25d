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
#include "analyzers/duration.h"
#include "analyzers/phase.h"
#include "analyzers/report.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

std::string FormatSigned(double us) {
  return absl::StrCat(us < 0 ? "-" : "+", FormatDuration(std::fabs(us)));
}

std::string FormatPct(const std::optional<double>& pct) {
  if (!pct.has_value()) return "-";
  return absl::StrFormat("%+.1f%%", *pct);
}

std::string FormatInterval(const PhaseDelta& p) {
  if (!p.ci_low_us.has_value()) return "-";
  return absl::StrCat("[", FormatSigned(*p.ci_low_us), ", ",
                      FormatSigned(*p.ci_high_us), "]");
}

namespace {

// A syscall is named in the verdict when its change per request is at least
// this share of the total change.
constexpr double kVerdictSyscallShare = 0.05;
constexpr size_t kVerdictSyscalls = 3;

// Why a delta is not clear.
std::string Unclear(const PhaseDelta& p, double threshold_pct) {
  if (!p.ci_low_us.has_value()) return "too few requests for an interval";
  if (*p.ci_low_us <= 0 && *p.ci_high_us >= 0) {
    return absl::StrCat("its 95% interval ", FormatInterval(p), " includes 0");
  }
  return absl::StrFormat("under the %g%% threshold", threshold_pct);
}

std::string TotalVerdict(const Comparison& c) {
  const PhaseDelta& total = c.Delta(Phase::kTotal);
  const double d = *total.mean_us;
  if (!total.clear) {
    return absl::StrFormat(
        "No clear difference (~): a request takes %s in %s and %s in %s "
        "(%s; %s).",
        FormatDuration(total.b->mean_us), c.b_label,
        FormatDuration(total.a->mean_us), c.a_label, FormatPct(total.pct),
        Unclear(total, c.threshold_pct));
  }
  std::string out =
      d < 0 ? absl::StrFormat("%s saves %s per request (%.1f%%) over %s",
                              c.b_label, FormatDuration(-d),
                              std::fabs(total.pct.value_or(0)), c.a_label)
            : absl::StrFormat("%s costs %s more per request (%.1f%%) than %s",
                              c.b_label, FormatDuration(d),
                              std::fabs(total.pct.value_or(0)), c.a_label);
  absl::StrAppend(&out, ", 95% interval ", FormatInterval(total));
  // The clear phase that moved most in the direction of the total.
  const PhaseDelta* phase = nullptr;
  for (Phase name : {Phase::kServer, Phase::kTransport, Phase::kBackend}) {
    const PhaseDelta& p = c.Delta(name);
    if (!p.clear || (*p.mean_us < 0) != (d < 0)) continue;
    if (phase == nullptr ||
        std::fabs(*p.mean_us) > std::fabs(*phase->mean_us)) {
      phase = &p;
    }
  }
  if (phase != nullptr) {
    absl::StrAppend(&out, ", mostly ", phase->phase, " time (",
                    FormatSigned(*phase->mean_us), ")");
  }
  // The syscalls whose busy time per request moved most in that direction:
  // time asleep in a call (a wait for a connection, data or a close) is not
  // cost; what it delayed shows in the phases.
  std::vector<const SyscallDelta*> named;
  for (const SyscallDelta& s : c.syscalls) {
    const double busy = s.delta_busy_us_per_request;
    if ((busy < 0) != (d < 0) ||
        std::fabs(busy) < kVerdictSyscallShare * std::fabs(d)) {
      continue;
    }
    named.push_back(&s);
  }
  std::stable_sort(named.begin(), named.end(),
                   [](const SyscallDelta* x, const SyscallDelta* y) {
                     return std::fabs(x->delta_busy_us_per_request) >
                            std::fabs(y->delta_busy_us_per_request);
                   });
  if (named.size() > kVerdictSyscalls) named.resize(kVerdictSyscalls);
  if (!named.empty()) {
    std::vector<std::string> parts;
    for (const SyscallDelta* s : named) {
      std::string part =
          absl::StrCat(s->side, " ", s->name, " ",
                       FormatSigned(s->delta_busy_us_per_request));
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

// The sentence of what the client saw, and a warning when it contradicts
// the phases: work that overlaps the next request (a process still
// finishing the previous one) lengthens the phases but not the client's
// wait, and only the rate shows that.
std::string ClientVerdict(const Comparison& c) {
  const ClientView& a = c.a.client;
  const ClientView& b = c.b.client;
  if (!c.response.mean_us.has_value() || a.rate_per_s <= 0 ||
      b.rate_per_s <= 0) {
    return "";
  }
  std::string out = absl::StrFormat(
      " The client saw %.1f -> %.1f requests/s while requests ran (%.2f -> "
      "%.2f in flight) and %s -> %s from its first request byte to the last "
      "response byte (%s).",
      a.rate_per_s, b.rate_per_s, a.in_flight, b.in_flight,
      FormatDuration(c.response.a->mean_us),
      FormatDuration(c.response.b->mean_us),
      c.response.clear ? absl::StrCat(FormatPct(c.response.pct), ", clear")
                       : absl::StrCat(FormatPct(c.response.pct), ", ~"));
  const PhaseDelta& total = c.Delta(Phase::kTotal);
  const double rate_pct = 100.0 * (b.rate_per_s - a.rate_per_s) / a.rate_per_s;
  const bool same_load = a.in_flight > 0 && b.in_flight / a.in_flight < 1.25 &&
                         b.in_flight / a.in_flight > 0.8;
  if (total.clear && same_load && std::fabs(rate_pct) >= c.threshold_pct &&
      (rate_pct > 0) == (*total.mean_us > 0)) {
    absl::StrAppendFormat(
        &out,
        " The phases and the client's rate disagree (%+.1f%% requests/s): "
        "part of each request's time overlapped the next request (a process "
        "still finishing the previous one, such as a backend waiting for "
        "its connection's close), which the client did not wait for; judge "
        "throughput by the rate.",
        rate_pct);
  }
  return out;
}

// A sentence for each phase some complete requests had null (unknown: seen
// from a backend only): its means are over the other requests.
std::string UnknownVerdict(const Comparison& c) {
  std::string out;
  for (Phase phase : kPhases) {
    const uint64_t a = c.a.phases.Unknown(phase);
    const uint64_t b = c.b.phases.Unknown(phase);
    if (a == 0 && b == 0) continue;
    absl::StrAppendFormat(&out,
                          " %s is unknown for %d of %s's and %d of %s's "
                          "complete requests (seen from a backend only): its "
                          "figures are over the others.",
                          PhaseName(phase), a, c.a_label, b, c.b_label);
  }
  return out;
}

std::string Verdict(const Comparison& c) {
  const PhaseDelta& total = c.Delta(Phase::kTotal);
  if (!total.a.has_value() || !total.b.has_value()) {
    const Report& r = !total.a.has_value() ? c.a : c.b;
    const std::string& label = !total.a.has_value() ? c.a_label : c.b_label;
    if (r.complete > 0) {
      return absl::StrFormat(
                 "No comparison of totals: %s has no complete request with a "
                 "known total.",
                 label) +
             UnknownVerdict(c);
    }
    return absl::StrFormat("No comparison: %s has no complete requests.",
                           label);
  }
  return TotalVerdict(c) + ClientVerdict(c) + UnknownVerdict(c);
}

}  // namespace

double TQuantile975(double df) {
  static constexpr double kTable[] = {
      12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060,
      2.2622,  2.2281, 2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199,
      2.1098,  2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
      2.0595,  2.0555, 2.0518, 2.0484, 2.0452, 2.0423};
  const double n = df >= 1 ? std::floor(df) : 1;
  if (n <= 30) return kTable[static_cast<int>(n) - 1];
  // The Cornish-Fisher expansion around the normal quantile: within 1e-4 of
  // the exact value from 30 degrees of freedom on.
  const double z = 1.959963984540054;
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z,
               z9 = z7 * z * z;
  const double g1 = (z3 + z) / 4;
  const double g2 = (5 * z5 + 16 * z3 + 3 * z) / 96;
  const double g3 = (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / 384;
  const double g4 =
      (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / 92160;
  return z + g1 / n + g2 / (n * n) + g3 / (n * n * n) + g4 / (n * n * n * n);
}

PhaseDelta DeltaOf(std::string phase, const std::optional<PhaseSummary>& a,
                   const std::optional<PhaseSummary>& b, double threshold_pct) {
  PhaseDelta p;
  p.phase = std::move(phase);
  p.a = a;
  p.b = b;
  if (!a.has_value() || !b.has_value() || a->count == 0 || b->count == 0) {
    return p;
  }
  const double d = b->mean_us - a->mean_us;
  p.mean_us = d;
  if (a->mean_us != 0) p.pct = 100.0 * d / a->mean_us;
  if (a->count < 2 || b->count < 2) return p;
  // Welch: the variance of each mean, and the Welch-Satterthwaite df.
  const double va = a->stddev_us * a->stddev_us / a->count;
  const double vb = b->stddev_us * b->stddev_us / b->count;
  double half = 0;
  if (va + vb > 0) {
    const double df = (va + vb) * (va + vb) /
                      (va * va / (a->count - 1) + vb * vb / (b->count - 1));
    half = TQuantile975(df) * std::sqrt(va + vb);
  }
  p.ci_low_us = d - half;
  p.ci_high_us = d + half;
  const bool excludes_zero = *p.ci_low_us > 0 || *p.ci_high_us < 0;
  const bool large =
      p.pct.has_value() ? std::fabs(*p.pct) >= threshold_pct : d != 0;
  p.clear = excludes_zero && large;
  return p;
}

CallsDelta CompareCalls(const CallsSummary& a, const CallsSummary& b,
                        double threshold_pct) {
  CallsDelta d;
  d.backend_own =
      DeltaOf("backend own", a.backend_own, b.backend_own, threshold_pct);
  auto find = [](const CallsSummary& s, const std::string& peer) {
    const PeerSummary* found = nullptr;
    for (const PeerSummary& p : s.peers) {
      if (p.peer == peer && !p.other) found = &p;
    }
    return found;
  };
  auto add = [&](const PeerSummary* pa, const PeerSummary* pb) {
    PeerCallsDelta p;
    const PeerSummary* any = pa != nullptr ? pa : pb;
    p.peer = any->peer;
    p.protocol = any->protocol;
    p.a_calls_per_request = pa != nullptr ? pa->calls_per_request : 0;
    p.b_calls_per_request = pb != nullptr ? pb->calls_per_request : 0;
    p.time = DeltaOf(p.peer, pa != nullptr ? pa->time : std::nullopt,
                     pb != nullptr ? pb->time : std::nullopt, threshold_pct);
    d.peers.push_back(std::move(p));
  };
  for (const PeerSummary& pa : a.peers) {
    if (pa.other) continue;  // folded rows hold different peers per run
    add(&pa, find(b, pa.peer));
  }
  for (const PeerSummary& pb : b.peers) {
    if (!pb.other && find(a, pb.peer) == nullptr) add(nullptr, &pb);
  }
  return d;
}

Comparison Compare(const Report& a, const Report& b, std::string a_label,
                   std::string b_label, CompareOptions options) {
  Comparison c;
  c.a_label = std::move(a_label);
  c.b_label = std::move(b_label);
  c.a = a;
  c.b = b;
  c.threshold_pct = options.threshold_pct;
  c.calls = CompareCalls(a.calls, b.calls, options.threshold_pct);
  for (Phase phase : kPhases) {
    c.phases.push_back(DeltaOf(PhaseName(phase), a.phases.Of(phase),
                               b.phases.Of(phase), options.threshold_pct));
  }
  c.response = DeltaOf("response", a.client.response, b.client.response,
                       options.threshold_pct);
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
      (is_a ? d.a_busy_us_per_request : d.b_busy_us_per_request) =
          per_request * s.mean_us -
          (r.complete > 0 ? s.slept_us / r.complete : 0);
    }
  };
  add(a, true);
  add(b, false);
  for (const auto& key : order) {
    SyscallDelta d = by_key.at(key);
    d.delta_us_per_request = d.b_us_per_request - d.a_us_per_request;
    d.delta_busy_us_per_request =
        d.b_busy_us_per_request - d.a_busy_us_per_request;
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

}  // namespace reqcost::analyzers
