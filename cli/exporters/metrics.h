// Prometheus metrics of a live run (prometheus-cpp): the request phase and
// syscall histograms, request and event counters, served at /metrics by
// MetricsServer or written to a node_exporter textfile by MetricsFile.
//
// Label cardinality is bounded: at most kMaxBackends distinct `backend`
// values, kMaxServers `server` values, kMaxReasons incomplete `reason`
// values and kMaxPeers backend-call `peer` values; the ones past a cap are reported as "other" and counted in
// reqcost_label_overflow_total{label}.
#ifndef REQCOST_CLI_EXPORTERS_METRICS_H_
#define REQCOST_CLI_EXPORTERS_METRICS_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "analyzers/phase.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}

namespace reqcost::exporters {

inline constexpr size_t kMaxBackends = 32;
inline constexpr size_t kMaxServers = 16;
inline constexpr size_t kMaxReasons = 32;
inline constexpr size_t kMaxPeers = 32;

// Bucket upper bounds in seconds: exponential, four per decade, from 1 us
// to 10 s (29 bounds; +Inf is implicit).
std::vector<double> DurationBuckets();

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Counts `r` and, when complete, observes its phases and its syscalls
  // whose duration is known. `server` is the server process's comm.
  // Called on the collector's thread, like Flush: observations are summed
  // in plain arrays there and reach the histograms at the next Flush.
  void OnRequest(const analyzers::Request& r, const std::string& server);

  // Moves the observations summed since the last Flush into the
  // histograms (one lock per series that changed). The collector's loop
  // calls it every second and at the end.
  void Flush();

  // The run's counters so far (monotonic: only the growth is added).
  void SetEventCounts(uint64_t events, uint64_t dropped_events);
  void SetTracedProcesses(uint64_t n);
  // The span exporter `exporter` ("file" or "http") has so far handled
  // this many requests with `outcome` ("exported", "dropped_queue_full",
  // "dropped_failed", "dropped_at_exit"): reqcost_otlp_requests_total.
  void SetSpanOutcome(const std::string& exporter, const std::string& outcome,
                      uint64_t total);
  // The profiler's anomaly counters so far, as
  // reqcost_anomalies_total{counter} (one series per counter the report's
  // `anomalies` object has: a fixed set).
  void SetAnomalies(const analyzers::Anomalies& anomalies);

  // The text exposition format (what /metrics serves).
  std::string Exposition() const;

  const std::shared_ptr<prometheus::Registry>& registry() const {
    return registry_;
  }

 private:
  // One histogram series and what was observed since the last Flush.
  struct Series {
    prometheus::Histogram* histogram = nullptr;
    std::vector<double> pending;  // per bucket, +Inf last
    double pending_sum = 0;
    bool dirty = false;
  };
  // phase histograms of one label set, by PhaseIndex().
  using PhaseHistograms = std::array<Series*, analyzers::kPhaseCount>;
  using PhaseKey = std::tuple<std::string, std::string, analyzers::ConnReuse,
                              analyzers::ConnReuse>;

  PhaseHistograms& PhasesFor(const std::string& server,
                             const std::string& backend,
                             analyzers::ConnReuse client,
                             analyzers::ConnReuse backend_conn);
  Series* NewSeries(prometheus::Histogram* histogram);
  void Observe(Series* s, uint64_t ns);
  // `value`, or "other" once `seen` holds `cap` other values.
  std::string Capped(const std::string& value, std::vector<std::string>* seen,
                     size_t cap, const char* label);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>* phases_;
  prometheus::Family<prometheus::Histogram>* syscalls_;
  // reqcost_backend_call_duration_seconds{peer,protocol}, by peer.
  prometheus::Family<prometheus::Histogram>* calls_;
  std::map<std::string, Series*> call_cache_;  // at most kMaxPeers
  Series* other_calls_ = nullptr;
  prometheus::Family<prometheus::Counter>* incomplete_;
  prometheus::Family<prometheus::Counter>* overflow_;
  prometheus::Family<prometheus::Counter>* otlp_;
  prometheus::Family<prometheus::Counter>* anomalies_;
  std::map<std::string, std::pair<prometheus::Counter*, uint64_t>>
      anomalies_seen_;
  std::map<std::pair<std::string, std::string>,
           std::pair<prometheus::Counter*, uint64_t>>
      otlp_seen_;
  prometheus::Counter* complete_total_;
  prometheus::Counter* incomplete_total_;
  prometheus::Counter* events_total_;
  prometheus::Counter* dropped_total_;
  prometheus::Gauge* traced_processes_;
  std::vector<double> buckets_;
  std::map<PhaseKey, PhaseHistograms> phase_cache_;
  std::map<std::string, prometheus::Counter*> reason_cache_;
  // [side][syscall]
  std::array<std::array<Series*, kSyscallMax>, 2> syscall_cache_{};
  std::vector<std::unique_ptr<Series>> series_;
  std::vector<std::string> backends_, servers_, reasons_, peers_;
  uint64_t events_seen_ = 0, dropped_seen_ = 0;
};

// Serves `metrics` at http://ADDR:PORT/metrics on its own threads.
class MetricsServer {
 public:
  // `address` is "HOST:PORT" or "[V6]:PORT" (port 0: any free port).
  // InvalidArgument, naming --metrics, for a malformed address or one it
  // cannot listen on.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, const Metrics& metrics);
  ~MetricsServer();
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

// Writes `metrics` to PATH in node_exporter's textfile-collector format
// every `period` and once more at Stop(), each time through a temporary
// file in the same directory renamed over PATH (readers never see half a
// file).
class MetricsFile {
 public:
  // Writes once at start: InvalidArgument, naming --metrics-file, when PATH
  // cannot be written.
  static absl::StatusOr<std::unique_ptr<MetricsFile>> Start(
      const std::string& path, const Metrics& metrics, int period_ms);
  ~MetricsFile();
  // The final write; returns its error, or the first of the periodic ones.
  absl::Status Stop();
  uint64_t writes() const { return writes_; }

 private:
  MetricsFile(std::string path, const Metrics& metrics)
      : path_(std::move(path)), metrics_(metrics) {}
  absl::Status WriteOnce();
  void Loop(int period_ms);

  std::string path_;
  const Metrics& metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  absl::Status first_error_;
  std::atomic<uint64_t> writes_{0};
  std::thread thread_;
};

}  // namespace reqcost::exporters

#endif  // REQCOST_CLI_EXPORTERS_METRICS_H_
