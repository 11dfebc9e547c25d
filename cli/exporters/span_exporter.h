// Exports the OTLP spans of complete requests (analyzers/render/otlp.h) off the
// collector's thread: Offer() copies what the spans need into a bounded
// queue and returns; a worker thread batches them into one
// ExportTraceServiceRequest per batch and hands it to a sink: a file (one
// JSON object per line, as the OTLP file exporter writes) or an OTLP/HTTP
// JSON endpoint (POST to the traces URL through libcurl, retried with
// backoff; headers, gzip and TLS as cli/exporters/otlp_config.h resolves
// them).
//
// Nothing is dropped silently: a request that finds the queue full, a batch
// the endpoint still refuses after its retries and what is left when the
// exit deadline passes are counted in Stats, which the caller prints.
#ifndef REQCOST_CLI_EXPORTERS_SPAN_EXPORTER_H_
#define REQCOST_CLI_EXPORTERS_SPAN_EXPORTER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "analyzers/render/otlp.h"
#include "analyzers/request.h"
#include "cli/exporters/otlp_config.h"

namespace reqcost::exporters {

struct SpanExporterOptions {
  std::string file;      // --otlp-json: a new file, created 0600
  std::string endpoint;  // the traces URL, as is (OtlpConfig::traces_url)
  std::string endpoint_source;     // what set it, for messages
  KeyValues headers;               // sent with every POST; values are secrets
  bool gzip = false;               // Content-Encoding: gzip
  std::string certificate;         // CA bundle to verify the collector
  std::string certificate_source;  // the variable that named it
  std::string client_certificate;  // mTLS
  std::string client_key;
  // Resource attributes every resource gets (OTEL_RESOURCE_ATTRIBUTES); one
  // named like a detected attribute (host.name, process.pid) replaces it.
  KeyValues resource_attributes;
  // Requests waiting to be exported, at most (a full queue drops, counted;
  // a file exporter given block_when_full waits instead: `report` does).
  size_t max_queue = 16384;
  size_t max_batch = 512;                         // requests per export
  absl::Duration flush_every = absl::Seconds(1);  // a partial batch's wait
  int max_attempts = 4;                           // per batch, HTTP only
  absl::Duration first_backoff = absl::Milliseconds(200);  // then doubled
  // One batch's export, all attempts and backoffs included (the
  // specification's OTEL_EXPORTER_OTLP_TIMEOUT); an attempt gets what is
  // left.
  absl::Duration export_timeout = kDefaultOtlpTimeout;
  bool block_when_full = false;
  uint64_t seed = 0;            // of trace and span ids (SpanIds::For)
  int64_t mono_to_wall_ns = 0;  // wall = CLOCK_MONOTONIC + this
  std::string version;          // the instrumentation scope's version
};

// Sets the HTTP exporter's fields of `o` (URL, headers, gzip, timeout, TLS
// files) and the resource attributes from a resolved configuration.
void ApplyOtlpConfig(const OtlpConfig& config, SpanExporterOptions* o);

struct SpanExportStats {
  uint64_t offered = 0;            // complete requests offered
  uint64_t exported_requests = 0;  // their spans written / accepted
  uint64_t exported_spans = 0;
  uint64_t batches = 0;             // written / accepted
  uint64_t retries = 0;             // HTTP attempts after a first failure
  uint64_t dropped_queue_full = 0;  // requests
  uint64_t dropped_failed = 0;      // requests of batches given up
  uint64_t dropped_at_exit = 0;     // requests left at the exit deadline
  uint64_t incomplete_skipped = 0;  // incomplete requests: no spans
  std::string last_error;           // of the latest failed attempt

  uint64_t dropped() const {
    return dropped_queue_full + dropped_failed + dropped_at_exit;
  }
};

class SpanExporter {
 public:
  // Opens the file or checks the URL, and starts the worker. Exactly one of
  // file / endpoint is set. InvalidArgument naming the flag when the file
  // cannot be created or the URL is not http(s)://. Header values appear in
  // no message, error or stat.
  static absl::StatusOr<std::unique_ptr<SpanExporter>> Start(
      SpanExporterOptions options);
  ~SpanExporter();

  // Queues the spans of `r` (incomplete: only counted). Never waits, unless
  // block_when_full.
  void Offer(const analyzers::Request& r, analyzers::OtlpResource resource);

  // Exports what is queued, waiting at most `deadline` (what is left then is
  // counted as dropped at exit), and stops the worker.
  SpanExportStats Finish(absl::Duration deadline);

  SpanExportStats stats() const;
  bool is_file() const { return !options_.file.empty(); }
  // "--otlp-json FILE" or "--otlp-endpoint URL" (or the variable that set
  // the URL), the URL without user or password.
  std::string Describe() const;

 private:
  explicit SpanExporter(SpanExporterOptions options);
  void Loop();
  // Sends one batch's body; OK, or the error of its last attempt.
  absl::Status Send(const std::string& body, size_t requests);
  absl::Status Post(const std::string& body, absl::Duration timeout,
                    bool* retryable);
  // libcurl's progress callback: aborts a transfer still running when the
  // exit deadline has passed.
  static int OnProgress(void* self, int64_t, int64_t, int64_t, int64_t);

  SpanExporterOptions options_;
  std::string url_;
  std::FILE* file_ = nullptr;
  void* curl_ = nullptr;          // CURL*, reused: keeps its connection alive
  void* curl_headers_ = nullptr;  // curl_slist*
  // CLOCK_MONOTONIC ns after which a transfer is aborted; max = never.
  std::atomic<int64_t> abort_after_ns_{INT64_MAX};

  mutable std::mutex mu_;
  std::condition_variable wake_;   // the worker: work or stop
  std::condition_variable space_;  // a blocked Offer: room in the queue
  std::deque<analyzers::SpanSource> queue_;
  bool stopping_ = false;
  absl::Time stop_deadline_ = absl::InfiniteFuture();
  SpanExportStats stats_;
  std::thread worker_;
};

}  // namespace reqcost::exporters

#endif  // REQCOST_CLI_EXPORTERS_SPAN_EXPORTER_H_
