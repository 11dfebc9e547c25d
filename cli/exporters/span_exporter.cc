#include "cli/exporters/span_exporter.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace reqcost::exporters {
namespace {

size_t DiscardBody(char*, size_t size, size_t n, void*) { return size * n; }

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// `body` as one gzip member (RFC 1952), as Content-Encoding: gzip wants.
absl::StatusOr<std::string> Gzip(const std::string& body) {
  z_stream z{};
  // 15 + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("zlib could not start a gzip stream");
  }
  std::string out(deflateBound(&z, body.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  z.avail_in = static_cast<uInt>(body.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::InternalError("gzip failed");
  return out;
}

// A TLS failure that retrying cannot cure, in words that say what to check.
std::string TlsAdvice(CURLcode rc, const std::string& certificate,
                      const std::string& source) {
  switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
      return certificate.empty()
                 ? "the collector's TLS certificate is not signed by a CA "
                   "this system trusts; set OTEL_EXPORTER_OTLP_CERTIFICATE to "
                   "the PEM file of the CA that signed it"
                 : "the collector's TLS certificate is not signed by the CA "
                   "in " +
                       certificate + " (" + source +
                       "), or does not name the host of the URL";
    case CURLE_SSL_CACERT_BADFILE:
      return "the CA file " + certificate + " holds no usable certificate";
    case CURLE_SSL_CERTPROBLEM:
      return "the client certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE) "
             "could not be used";
    case CURLE_SSL_CONNECT_ERROR:
      return "the TLS handshake with the collector failed";
    default:
      return "";
  }
}

std::chrono::nanoseconds ToChrono(absl::Duration d) {
  return std::chrono::nanoseconds(absl::ToInt64Nanoseconds(d));
}

}  // namespace

void ApplyOtlpConfig(const OtlpConfig& config, SpanExporterOptions* o) {
  o->endpoint = config.traces_url;
  o->endpoint_source = config.traces_url_source;
  o->headers = config.headers;
  o->gzip = config.gzip;
  o->export_timeout = config.timeout;
  o->certificate = config.certificate;
  o->certificate_source = config.certificate_source;
  o->client_certificate = config.client_certificate;
  o->client_key = config.client_key;
  o->resource_attributes = config.resource_attributes;
}

SpanExporter::SpanExporter(SpanExporterOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<SpanExporter>> SpanExporter::Start(
    SpanExporterOptions options) {
  auto ex = std::unique_ptr<SpanExporter>(new SpanExporter(std::move(options)));
  SpanExporterOptions& o = ex->options_;
  if (!o.file.empty()) {
    // Like every output file of reqcost: new, 0600, never over a symlink.
    int fd = open(o.file.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || (ex->file_ = fdopen(fd, "w")) == nullptr) {
      std::string error = std::strerror(errno);
      if (fd >= 0) close(fd);
      return absl::InvalidArgumentError(absl::StrFormat(
          "--otlp-json %s: cannot create it (%s)", o.file, error));
    }
  } else {
    if (o.endpoint_source.empty()) o.endpoint_source = "--otlp-endpoint";
    if (o.endpoint.rfind("http://", 0) != 0 &&
        o.endpoint.rfind("https://", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s %s is not an http:// or https:// URL (e.g. "
          "http://127.0.0.1:4318, the OpenTelemetry Collector's OTLP/HTTP "
          "port)",
          o.endpoint_source, UrlForDisplay(o.endpoint)));
    }
    ex->url_ = o.endpoint;
    static std::once_flag curl_init;
    std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    ex->curl_ = curl_easy_init();
    if (ex->curl_ == nullptr) {
      return absl::InternalError("libcurl could not start a session");
    }
    curl_slist* headers =
        curl_slist_append(nullptr, "Content-Type: application/json");
    if (o.gzip) headers = curl_slist_append(headers, "Content-Encoding: gzip");
    for (const auto& [name, value] : o.headers) {
      // "Name;" is libcurl's spelling of a header with an empty value.
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      headers = curl_slist_append(headers, line.c_str());
    }
    ex->curl_headers_ = headers;
    CURL* curl = static_cast<CURL*>(ex->curl_);
    curl_easy_setopt(curl, CURLOPT_URL, ex->url_.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, ("reqcost/" + o.version).c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // a worker thread
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, DiscardBody);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &SpanExporter::OnProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, ex.get());
    if (!o.certificate.empty()) {
      curl_easy_setopt(curl, CURLOPT_CAINFO, o.certificate.c_str());
    }
    if (!o.client_certificate.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSLCERT, o.client_certificate.c_str());
    }
    if (!o.client_key.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSLKEY, o.client_key.c_str());
    }
  }
  ex->worker_ = std::thread([p = ex.get()] { p->Loop(); });
  return ex;
}

SpanExporter::~SpanExporter() {
  Finish(absl::ZeroDuration());
  if (file_ != nullptr) std::fclose(file_);
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
  if (curl_headers_ != nullptr) {
    curl_slist_free_all(static_cast<curl_slist*>(curl_headers_));
  }
}

std::string SpanExporter::Describe() const {
  return options_.file.empty()
             ? absl::StrCat(options_.endpoint_source, " ", UrlForDisplay(url_))
             : absl::StrCat("--otlp-json ", options_.file);
}

void SpanExporter::Offer(const analyzers::Request& r,
                         analyzers::OtlpResource resource) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!r.complete) {
    ++stats_.incomplete_skipped;
    return;
  }
  ++stats_.offered;
  if (stopping_) {
    ++stats_.dropped_at_exit;
    return;
  }
  if (queue_.size() >= options_.max_queue) {
    if (!options_.block_when_full) {
      ++stats_.dropped_queue_full;
      return;
    }
    space_.wait(lock, [this] {
      return queue_.size() < options_.max_queue || stopping_;
    });
  }
  // Built under the lock: a copy of a few strings, no syscall timeline.
  queue_.push_back(analyzers::SpanSource::From(r, std::move(resource)));
  if (queue_.size() >= options_.max_batch) wake_.notify_one();
}

SpanExportStats SpanExporter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void SpanExporter::Loop() {
  analyzers::OtlpBatch batch(options_.seed, options_.mono_to_wall_ns);
  batch.SetResourceAttributes(options_.resource_attributes);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait_for(lock, ToChrono(options_.flush_every), [this] {
      return queue_.size() >= options_.max_batch || stopping_;
    });
    if (stopping_ && (queue_.empty() || absl::Now() >= stop_deadline_)) {
      stats_.dropped_at_exit += queue_.size();
      queue_.clear();
      space_.notify_all();
      return;
    }
    if (queue_.empty()) continue;
    size_t n = std::min(queue_.size(), options_.max_batch);
    std::vector<analyzers::SpanSource> taken;
    taken.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      taken.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    space_.notify_all();
    lock.unlock();

    for (const analyzers::SpanSource& s : taken) batch.Add(s);
    size_t spans = batch.spans();
    std::string body = batch.Take(options_.version);
    absl::Status sent = Send(body, n);

    lock.lock();
    if (sent.ok()) {
      stats_.exported_requests += n;
      stats_.exported_spans += spans;
      ++stats_.batches;
    } else {
      stats_.dropped_failed += n;
      stats_.last_error = std::string(sent.message());
    }
  }
}

absl::Status SpanExporter::Send(const std::string& body, size_t requests) {
  (void)requests;
  if (file_ != nullptr) {
    if (std::fputs(body.c_str(), file_) < 0 || std::fputc('\n', file_) < 0 ||
        std::fflush(file_) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("write ", options_.file));
    }
    return absl::OkStatus();
  }
  std::string gzipped;
  const std::string* payload = &body;
  if (options_.gzip) {
    absl::StatusOr<std::string> z = Gzip(body);
    if (!z.ok()) return z.status();
    gzipped = *std::move(z);
    payload = &gzipped;
  }
  absl::Time give_up_at = absl::Now() + options_.export_timeout;
  absl::Duration backoff = options_.first_backoff;
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    bool retryable = false;
    last = Post(*payload, give_up_at - absl::Now(), &retryable);
    if (last.ok() || !retryable || attempt == options_.max_attempts ||
        absl::Now() + backoff >= give_up_at) {
      break;
    }
    std::unique_lock<std::mutex> lock(mu_);
    ++stats_.retries;
    // Back off, but not past the exit deadline.
    bool give_up = wake_.wait_for(lock, ToChrono(backoff), [this] {
      return stopping_ && absl::Now() >= stop_deadline_;
    });
    if (give_up) break;
    backoff *= 2;
  }
  return last;
}

// OnProgress is libcurl's curl_xferinfo_callback.
static_assert(std::is_same_v<curl_off_t, int64_t>);

int SpanExporter::OnProgress(void* self, int64_t, int64_t, int64_t, int64_t) {
  auto* ex = static_cast<SpanExporter*>(self);
  return MonotonicNs() >= ex->abort_after_ns_.load() ? 1 : 0;
}

absl::Status SpanExporter::Post(const std::string& body, absl::Duration timeout,
                                bool* retryable) {
  CURL* curl = static_cast<CURL*>(curl_);
  // At least 1 ms: 0 would mean no limit to libcurl.
  long timeout_ms = static_cast<long>(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout)));
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  const std::string where = "POST " + UrlForDisplay(url_);
  if (rc != CURLE_OK) {
    std::string detail = curl_easy_strerror(rc);
    if (error[0] != '\0') absl::StrAppend(&detail, " (", error, ")");
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      detail = "still sending when the exit deadline passed";
    }
    std::string advice = TlsAdvice(rc, options_.certificate,
                                   options_.certificate_source.empty()
                                       ? "OTEL_EXPORTER_OTLP_CERTIFICATE"
                                       : options_.certificate_source);
    // Refused, reset, timed out, a handshake cut short: the collector may
    // be back. A certificate it does not like stays so.
    *retryable = (advice.empty() || rc == CURLE_SSL_CONNECT_ERROR) &&
                 rc != CURLE_ABORTED_BY_CALLBACK;
    return absl::UnavailableError(
        advice.empty() ? absl::StrFormat("%s: %s", where, detail)
                       : absl::StrFormat("%s: %s (%s)", where, advice, detail));
  }
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 200 && code < 300) return absl::OkStatus();
  // OTLP/HTTP: 429, 502, 503 and 504 are worth retrying; other codes mean
  // the data itself was refused.
  *retryable = code == 429 || code == 502 || code == 503 || code == 504;
  std::string hint;
  if (code == 401 || code == 403) {
    hint = options_.headers.empty()
               ? " (the collector wants credentials: set "
                 "OTEL_EXPORTER_OTLP_HEADERS or --otlp-header)"
               : " (the collector refused the credentials in the headers)";
  } else if (code == 415) {
    hint = " (the collector does not take OTLP/JSON)";
  }
  return absl::UnavailableError(
      absl::StrFormat("%s: HTTP status %d%s", where, code, hint));
}

SpanExportStats SpanExporter::Finish(absl::Duration deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = absl::Now() + deadline;
      abort_after_ns_ = MonotonicNs() + absl::ToInt64Nanoseconds(deadline);
    }
  }
  wake_.notify_all();
  space_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (file_ != nullptr) std::fflush(file_);
  return stats();
}

}  // namespace reqcost::exporters
