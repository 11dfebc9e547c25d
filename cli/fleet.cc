#include "cli/fleet.h"

#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "cli/exporters/otlp_config.h"
#include "collector/status_macros.h"

namespace reqcost::cli {
namespace {

// How long an exit may wait for spans still queued (HTTP: plus at most one
// attempt's timeout).
constexpr absl::Duration kSpanFlushDeadline = absl::Seconds(5);

}  // namespace

bool FleetOutputs::Wanted(const FleetOptions& options, bool environment) {
  if (options.any()) return true;
  if (!environment) return false;
  exporters::EnvLookup env = exporters::ProcessEnvironment();
  for (const char* name :
       {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}) {
    std::optional<std::string> v = env(name);
    if (v.has_value() && !v->empty()) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<FleetOutputs>> FleetOutputs::Start(
    const FleetOptions& options, Pipeline* pipeline, bool live,
    int64_t mono_to_wall_ns, uint64_t id_seed, const std::string& host) {
  exporters::OtlpFlags flags;
  flags.endpoint = options.otlp_endpoint;
  flags.headers = options.otlp_headers;
  flags.service_name = options.service_name;
  flags.live = live;
  ASSIGN_OR_RETURN(
      const exporters::OtlpConfig otel,
      exporters::ResolveOtlpConfig(flags, exporters::ProcessEnvironment()));
  for (const std::string& warning : otel.warnings) {
    std::fprintf(stderr, "reqcost: warning: %s\n", warning.c_str());
  }
  if (otel.sdk_disabled && !otel.traces_url_source.empty()) {
    std::fprintf(stderr,
                 "reqcost: OTEL_SDK_DISABLED=true: no spans are sent to a "
                 "collector (%s is ignored)\n",
                 otel.traces_url_source.c_str());
  }
  auto fleet = std::unique_ptr<FleetOutputs>(new FleetOutputs());
  fleet->pipeline_ = pipeline;
  fleet->service_name_ = otel.service_name;
  fleet->host_ = host;
  if (!options.metrics_address.empty() || !options.metrics_file.empty()) {
    fleet->metrics_ = std::make_unique<exporters::Metrics>();
    if (!options.metrics_address.empty()) {
      ASSIGN_OR_RETURN(fleet->server_,
                       exporters::MetricsServer::Start(options.metrics_address,
                                                       *fleet->metrics_));
    }
    if (!options.metrics_file.empty()) {
      ASSIGN_OR_RETURN(fleet->file_, exporters::MetricsFile::Start(
                                         options.metrics_file, *fleet->metrics_,
                                         kMetricsFilePeriodMs));
    }
    exporters::Metrics* metrics = fleet->metrics_.get();
    pipeline->AddRequestObserver(
        [metrics, pipeline](const analyzers::Request& r) {
          metrics->OnRequest(r, pipeline->Comm(r.pid));
        });
  }
  const std::string* targets[] = {&options.otlp_json, &otel.traces_url};
  for (const std::string* target : targets) {
    if (target->empty()) continue;
    exporters::SpanExporterOptions o;
    if (target == &options.otlp_json) {
      o.file = *target;
      o.resource_attributes = otel.resource_attributes;
    } else {
      exporters::ApplyOtlpConfig(otel, &o);
    }
    o.block_when_full = !live && !o.file.empty();
    o.seed = id_seed;
    o.mono_to_wall_ns = mono_to_wall_ns;
    o.version = REQCOST_VERSION;
    ASSIGN_OR_RETURN(std::unique_ptr<exporters::SpanExporter> ex,
                     exporters::SpanExporter::Start(std::move(o)));
    exporters::SpanExporter* exporter = ex.get();
    FleetOutputs* self = fleet.get();
    pipeline->AddRequestObserver(
        [exporter, self, pipeline](const analyzers::Request& r) {
          analyzers::OtlpResource resource;
          if (r.complete) {
            resource.service_name = self->service_name_.empty()
                                        ? pipeline->Comm(r.pid)
                                        : self->service_name_;
            resource.host_name = self->host_;
            resource.pid = r.pid;
          }
          exporter->Offer(r, std::move(resource));
        });
    fleet->spans_.push_back(std::move(ex));
  }
  return fleet;
}

void FleetOutputs::Tick(uint64_t events, uint64_t dropped,
                        size_t traced_processes) {
  if (metrics_ == nullptr) return;
  metrics_->Flush();
  metrics_->SetEventCounts(events, dropped);
  metrics_->SetTracedProcesses(traced_processes);
  metrics_->SetAnomalies(pipeline_->anomalies());
  UpdateSpanOutcomes();
}

void FleetOutputs::UpdateSpanOutcomes() {
  if (metrics_ == nullptr) return;
  for (const auto& exporter : spans_) {
    exporters::SpanExportStats s = exporter->stats();
    const std::string name = exporter->is_file() ? "file" : "http";
    metrics_->SetSpanOutcome(name, "exported", s.exported_requests);
    metrics_->SetSpanOutcome(name, "dropped_queue_full", s.dropped_queue_full);
    metrics_->SetSpanOutcome(name, "dropped_failed", s.dropped_failed);
    metrics_->SetSpanOutcome(name, "dropped_at_exit", s.dropped_at_exit);
  }
}

absl::Status FleetOutputs::Finish() {
  // Spans first: the textfile's last write then holds what they did.
  for (auto& exporter : spans_) {
    exporters::SpanExportStats s = exporter->Finish(kSpanFlushDeadline);
    std::fprintf(
        stderr,
        "%s: %llu requests exported (%llu spans, %llu batches, %llu "
        "retries); %llu dropped (%llu queue full, %llu export failed, %llu "
        "at exit); %llu incomplete requests not exported%s%s\n",
        exporter->Describe().c_str(),
        static_cast<unsigned long long>(s.exported_requests),
        static_cast<unsigned long long>(s.exported_spans),
        static_cast<unsigned long long>(s.batches),
        static_cast<unsigned long long>(s.retries),
        static_cast<unsigned long long>(s.dropped()),
        static_cast<unsigned long long>(s.dropped_queue_full),
        static_cast<unsigned long long>(s.dropped_failed),
        static_cast<unsigned long long>(s.dropped_at_exit),
        static_cast<unsigned long long>(s.incomplete_skipped),
        s.last_error.empty() ? "" : "; last error: ", s.last_error.c_str());
  }
  UpdateSpanOutcomes();
  absl::Status status;
  if (file_ != nullptr) {
    status = file_->Stop();
    if (!status.ok()) {
      std::fprintf(stderr, "reqcost: --metrics-file: %s\n",
                   std::string(status.message()).c_str());
    }
  }
  std::fflush(stderr);
  return status;
}

}  // namespace reqcost::cli
