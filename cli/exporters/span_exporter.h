// Exports the OTLP spans of complete requests (analyzers/render/otlp.h) off the
// collector's thread: Offer() copies what the spans need into a bounded
// queue and returns; a worker thread batches them into one
// ExportTraceServiceRequest per batch and hands it to a sink: a file (one
// JSON object per line, as the OTLP file exporter writes) or an OTLP/HTTP
// JSON endpoint (POST URL/v1/traces through libcurl, retried with backoff).
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

namespace reqcost::exporters {

struct SpanExporterOptions {
  std::string file;      // --otlp-json: a new file, created 0600
  std::string endpoint;  // --otlp-endpoint: POST to endpoint + "/v1/traces"
  // Requests waiting to be exported, at most (a full queue drops, counted;
  // a file exporter given block_when_full waits instead: `report` does).
  size_t max_queue = 16384;
  size_t max_batch = 512;                          // requests per export
  absl::Duration flush_every = absl::Seconds(1);   // a partial batch's wait
  int max_attempts = 4;                            // per batch, HTTP only
  absl::Duration first_backoff = absl::Milliseconds(200);  // then doubled
  absl::Duration request_timeout = absl::Seconds(2);       // per attempt
  bool block_when_full = false;
  uint64_t seed = 0;             // of trace and span ids (SpanIds::For)
  int64_t mono_to_wall_ns = 0;   // wall = CLOCK_MONOTONIC + this
  std::string version;           // the instrumentation scope's version
};

struct SpanExportStats {
  uint64_t offered = 0;             // complete requests offered
  uint64_t exported_requests = 0;   // their spans written / accepted
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
  // cannot be created or the URL is not http(s)://.
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
  // "--otlp-json FILE" or "--otlp-endpoint URL/v1/traces".
  std::string Describe() const;

 private:
  explicit SpanExporter(SpanExporterOptions options);
  void Loop();
  // Sends one batch's body; OK, or the error of its last attempt.
  absl::Status Send(const std::string& body, size_t requests);
  absl::Status Post(const std::string& body, bool* retryable);

  SpanExporterOptions options_;
  std::string url_;
  std::FILE* file_ = nullptr;
  void* curl_ = nullptr;  // CURL*, reused: keeps its connection alive

  mutable std::mutex mu_;
  std::condition_variable wake_;    // the worker: work or stop
  std::condition_variable space_;   // a blocked Offer: room in the queue
  std::deque<analyzers::SpanSource> queue_;
  bool stopping_ = false;
  absl::Time stop_deadline_ = absl::InfiniteFuture();
  SpanExportStats stats_;
  std::thread worker_;
};

}  // namespace reqcost::exporters

#endif  // REQCOST_CLI_EXPORTERS_SPAN_EXPORTER_H_
