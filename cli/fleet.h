// The fleet outputs of `attach` and `report`: Prometheus metrics
// served or written to a textfile, OTLP spans to a file or an endpoint. Hung
// off a Pipeline as request observers; their I/O runs on their own threads.
#ifndef REQCOST_CLI_FLEET_H_
#define REQCOST_CLI_FLEET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/exporters/metrics.h"
#include "cli/exporters/span_exporter.h"
#include "cli/pipeline.h"

namespace reqcost::cli {

struct FleetOptions {
  std::string metrics_address;  // --metrics HOST:PORT
  std::string metrics_file;     // --metrics-file PATH
  std::string otlp_json;        // --otlp-json FILE
  std::string otlp_endpoint;    // --otlp-endpoint URL
  std::string service_name;     // --service-name (default: the server's comm)
  std::vector<std::string> otlp_headers;  // --otlp-header K=V, repeatable

  bool any() const {
    return !metrics_address.empty() || !metrics_file.empty() ||
           !otlp_json.empty() || !otlp_endpoint.empty();
  }
};

// How often --metrics-file is rewritten.
inline constexpr int kMetricsFilePeriodMs = 5000;

class FleetOutputs {
 public:
  // Whether a run needs fleet outputs: a flag asks for one, or (when
  // `environment` counts: attach) an OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT
  // variable names a collector.
  static bool Wanted(const FleetOptions& options, bool environment);

  // Starts what `options` asks for and observes `pipeline` (which must
  // outlive this). `live`: attach (the span queue drops when full) rather
  // than report (it waits). The OTEL_* variables are read here
  // (cli/exporters/otlp_config.h; the OTLP exporter ones only when `live`).
  // InvalidArgument naming the flag or variable when an address cannot be
  // listened on, a file cannot be written or a variable is malformed (exit
  // code 2).
  static absl::StatusOr<std::unique_ptr<FleetOutputs>> Start(
      const FleetOptions& options, Pipeline* pipeline, bool live,
      int64_t mono_to_wall_ns, uint64_t id_seed, const std::string& host);

  // Moves the requests' observations into the histograms and updates the
  // event, process and anomaly counters (from the collector's loop, every
  // second and at the end).
  void Tick(uint64_t events, uint64_t dropped, size_t traced_processes);

  // Final metrics file write, spans flushed (bounded); prints one line per
  // exporter to stderr: what it exported and what it dropped. Returns the
  // first error of a metrics file write.
  absl::Status Finish();

 private:
  FleetOutputs() = default;
  // The span exporters' counts into reqcost_otlp_requests_total.
  void UpdateSpanOutcomes();

  Pipeline* pipeline_ = nullptr;
  std::string service_name_;
  std::string host_;
  std::unique_ptr<exporters::Metrics> metrics_;
  std::unique_ptr<exporters::MetricsServer> server_;
  std::unique_ptr<exporters::MetricsFile> file_;
  std::vector<std::unique_ptr<exporters::SpanExporter>> spans_;
};

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_FLEET_H_
