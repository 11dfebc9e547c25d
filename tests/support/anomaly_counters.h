// The anomaly counters a report shows (docs/output.md, "anomalies"), for the
// tests that check them all: one list, so a counter added to the report is
// added here once.
#ifndef REQCOST_TESTS_SUPPORT_ANOMALY_COUNTERS_H_
#define REQCOST_TESTS_SUPPORT_ANOMALY_COUNTERS_H_

namespace reqcost::testing {

inline constexpr const char* kAnomalyCounters[] = {
    "late_events",
    "clamped_phases",
    "unattributed_exchanges",
    "unmatched_backend_work",
    "ignored_connections",
    "reclassified_connections",
    "stray_events",
    "side_calls_outside_requests",
    "merged_requests",
    "unattributed_calls",
    "call_connections_over_cap",
    "http2_frames_lost"};

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_SUPPORT_ANOMALY_COUNTERS_H_
