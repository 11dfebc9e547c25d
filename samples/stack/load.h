// Load generators (ab, wrk), a one-shot HTTP client, and parsers for the
// backends' own per-request measurements.
#ifndef REQCOST_SAMPLES_STACK_LOAD_H_
#define REQCOST_SAMPLES_STACK_LOAD_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace reqcost::stack {

struct AbOptions {
  std::string url;  // http://127.0.0.1:PORT/path?query
  int requests = 100;
  int concurrency = 1;
  bool keepalive = false;  // ab -k
  // ab -r: a receive error (a reset when a server closes a kept-alive
  // connection as the next request arrives, as nginx's retiring workers do
  // on a reload) fails that request instead of ending the run.
  bool continue_on_receive_errors = false;
  // ab -f for https:// URLs: "TLS1.2", "TLS1.3", ...; empty = ab's default.
  std::string tls_protocol;
  absl::Duration timeout =
      absl::Seconds(60);  // the whole run; ab -s gets it too
  std::string work_dir;   // where ab's output goes; a fresh temp dir if empty
};

struct AbResult {
  int complete = 0;
  int failed = 0;
  int non_2xx = 0;
  int keepalive_requests = 0;
  double time_per_request_ms = 0;  // ab's first "Time per request" (mean)
  double requests_per_s = 0;
  std::string output;  // ab's stdout
};

// Runs ab and parses its report. Fails when ab cannot start, exits non-zero
// (with its stderr), outlives opts.timeout (killed), or prints no report.
absl::StatusOr<AbResult> RunAb(const AbOptions& opts);

// Parses ab's stdout; exposed for tests.
absl::StatusOr<AbResult> ParseAbOutput(absl::string_view output);

struct WrkOptions {
  std::string url;
  int threads = 1;
  int connections = 1;
  absl::Duration duration = absl::Seconds(2);
  std::string work_dir;  // a fresh temp dir if empty
};

struct WrkResult {
  int64_t requests = 0;
  int64_t non_2xx_3xx = 0;
  int64_t socket_errors = 0;  // connect + read + write + timeout
  double requests_per_s = 0;
  std::string output;
};

// Runs wrk for opts.duration (bounded: killed after duration + 30 s).
absl::StatusOr<WrkResult> RunWrk(const WrkOptions& opts);

// Parses wrk's stdout; exposed for tests.
absl::StatusOr<WrkResult> ParseWrkOutput(absl::string_view output);

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// One HTTP/1.0 GET on a new connection to http://127.0.0.1:PORT/...; reads
// until the server closes. Every step is bounded by `timeout`.
absl::StatusOr<HttpResponse> HttpGet(
    absl::string_view url, absl::Duration timeout = absl::Seconds(10));

// One line of reqcost-fcgi-backend --log.
struct BackendLogEntry {
  pid_t pid = 0;
  pid_t tid = 0;
  int64_t start_ns = 0;  // CLOCK_MONOTONIC
  int64_t end_ns = 0;
  int64_t elapsed_us = 0;
  std::string uri;
};

// Parses "pid tid start_ns end_ns elapsed_us uri" lines; errors name the line.
absl::StatusOr<std::vector<BackendLogEntry>> ParseBackendLog(
    absl::string_view text);
// Reads and parses a --log file (a missing file is an empty log).
absl::StatusOr<std::vector<BackendLogEntry>> ReadBackendLog(
    const std::string& path);
// Reads the log until it holds `n` entries or `timeout` passed, and returns
// what it holds then: the backend writes a request's line after its reply,
// so a client that has its response may not see the line yet.
absl::StatusOr<std::vector<BackendLogEntry>> WaitForBackendLog(
    const std::string& path, size_t n, absl::Duration timeout);

// One line of the php-fpm access log written with samples/php-fpm's
// access.format = "%{micro}d %p %m %r%Q%q %s".
struct PhpFpmAccessEntry {
  double duration_us = 0;  // php-fpm's own clock
  pid_t pid = 0;           // the child that served it
  std::string method;
  std::string uri;
  int status = 0;
};

// Parses access-log lines; errors name the line.
absl::StatusOr<std::vector<PhpFpmAccessEntry>> ParsePhpFpmAccessLog(
    absl::string_view text);
// Reads and parses an access log (a missing file is an empty log).
absl::StatusOr<std::vector<PhpFpmAccessEntry>> ReadPhpFpmAccessLog(
    const std::string& path);

// The backend's own durations in µs, in log order.
std::vector<double> ElapsedUs(const std::vector<BackendLogEntry>& entries);
std::vector<double> DurationsUs(const std::vector<PhpFpmAccessEntry>& entries);

struct Summary {
  size_t count = 0;
  double mean = 0, min = 0, p50 = 0, p90 = 0, max = 0;
};

// count/mean/min/p50/p90/max (nearest rank); all zero when empty.
Summary Summarize(std::vector<double> values);

}  // namespace reqcost::stack

#endif  // REQCOST_SAMPLES_STACK_LOAD_H_
