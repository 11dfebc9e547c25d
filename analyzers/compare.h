// Two captures (or two groups of requests of one capture) side by side:
// per phase and per syscall kind and side, with absolute and relative
// deltas, a 95% confidence interval per phase, and a verdict in words
// computed from those numbers. Pure: Reports in, values out (printed by
// render/compare_format.h).
//
// The uncertainty: the interval of a phase's mean difference B - A is
// Welch's t interval, (mB - mA) +- t(0.975, df) * sqrt(sA^2/nA + sB^2/nB)
// with the Welch-Satterthwaite df, from each side's count, mean and sample
// variance of that phase over its complete requests. A difference is
// *clear* when the interval excludes 0 and |B - A| is at least the
// threshold (percent of A's mean; default 2%); otherwise the verdict says
// "no clear difference" (benchstat's "~"). The interval assumes independent
// requests from a steady machine: it says how well the means are known, not
// whether the machine drifted between two captures.
#ifndef REQCOST_ANALYZERS_COMPARE_H_
#define REQCOST_ANALYZERS_COMPARE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analyzers/phase.h"
#include "analyzers/report.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

// A change of a mean smaller than this (percent of A's) is no clear
// difference, whatever its interval (`--threshold`).
inline constexpr double kDefaultThresholdPct = 2.0;

struct CompareOptions {
  double threshold_pct = kDefaultThresholdPct;
};

// One phase in A and B. mean_us = B - A; pct = 100 * (B - A) / A, unset
// when A's mean is 0 or either side has no data. ci95 is the 95% interval
// of B - A (unset below two values on either side); clear: the interval
// excludes 0 and |pct| >= the threshold (|B - A| > 0 when A's mean is 0).
struct PhaseDelta {
  std::string phase;  // PhaseName(), or "response" for the client's view
  std::optional<PhaseSummary> a, b;
  std::optional<double> mean_us;
  std::optional<double> pct;
  std::optional<double> ci_low_us, ci_high_us;
  bool clear = false;
};

// The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1;
// a fractional df is rounded down, which widens the interval).
double TQuantile975(double df);

// B - A of one statistic, with its interval and whether it is clear.
PhaseDelta DeltaOf(std::string phase, const std::optional<PhaseSummary>& a,
                   const std::optional<PhaseSummary>& b, double threshold_pct);

// One syscall kind on one side in A and B, per complete request: how often
// it ran and the time it took (count * mean / complete requests).
struct SyscallDelta {
  std::string name;
  std::string side;
  std::string peer;                    // side calls only (see SyscallSummary)
  std::optional<SyscallSummary> a, b;  // unset: not seen on that side
  double a_count_per_request = 0;
  double b_count_per_request = 0;
  double a_us_per_request = 0;
  double b_us_per_request = 0;
  double delta_us_per_request = 0;  // B - A
  // The same without the calls' time asleep (waiting is not cost).
  double a_busy_us_per_request = 0;
  double b_busy_us_per_request = 0;
  double delta_busy_us_per_request = 0;
};

// A against B.
// One peer of the backend's calls in A and B: calls per request and its
// calls' time per request that called it.
struct PeerCallsDelta {
  std::string peer;
  std::string protocol;
  double a_calls_per_request = 0;  // 0: not called in that run
  double b_calls_per_request = 0;
  PhaseDelta time;  // phase = the peer; a or b unset where not called
};

// The backend phase's split in A and B: its own time and each peer's.
struct CallsDelta {
  PhaseDelta backend_own;
  std::vector<PeerCallsDelta> peers;  // A's order, then peers only in B
  // Whether either run counted a request with a backend own time.
  bool any() const { return backend_own.a.has_value() ||
                            backend_own.b.has_value(); }
};

// Backend own time and each peer's call time, B - A.
CallsDelta CompareCalls(const CallsSummary& a, const CallsSummary& b,
                        double threshold_pct);

struct Comparison {
  std::string a_label;
  std::string b_label;
  Report a;
  Report b;
  std::vector<PhaseDelta> phases;      // one per kPhases entry, in its order
  std::vector<SyscallDelta> syscalls;  // largest |delta_us_per_request| first
  // What the client saw: first request byte to last response byte.
  PhaseDelta response;
  double threshold_pct = kDefaultThresholdPct;
  std::string verdict;  // sentences from the numbers above
  CallsDelta calls;     // the backend's own time and calls

  // The delta of `phase`.
  const PhaseDelta& Delta(Phase phase) const {
    return phases[PhaseIndex(phase)];
  }
};

// Compares `a` with `b` (B is the candidate: "B saves ... over A").
Comparison Compare(const Report& a, const Report& b, std::string a_label = "A",
                   std::string b_label = "B", CompareOptions options = {});

// "+12.0 us", "-1.234 ms": a signed FormatDuration.
std::string FormatSigned(double us);

// "+12.5%"; "-" when unset.
std::string FormatPct(const std::optional<double>& pct);

// A delta's 95% interval, "[-65.2 us, -54.8 us]"; "-" without one.
std::string FormatInterval(const PhaseDelta& p);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_COMPARE_H_
