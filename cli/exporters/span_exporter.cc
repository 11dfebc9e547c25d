#include "cli/exporters/span_exporter.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace reqcost::exporters {
namespace {

size_t DiscardBody(char*, size_t size, size_t n, void*) { return size * n; }

std::chrono::nanoseconds ToChrono(absl::Duration d) {
  return std::chrono::nanoseconds(absl::ToInt64Nanoseconds(d));
}

}  // namespace

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
    std::string base = o.endpoint;
    if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--otlp-endpoint %s is not an http:// or https:// URL (e.g. "
          "http://127.0.0.1:4318, the OpenTelemetry Collector's OTLP/HTTP "
          "port)",
          o.endpoint));
    }
    while (!base.empty() && base.back() == '/') base.pop_back();
    ex->url_ = base + "/v1/traces";
    static std::once_flag curl_init;
    std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    ex->curl_ = curl_easy_init();
    if (ex->curl_ == nullptr) {
      return absl::InternalError("libcurl could not start a session");
    }
  }
  ex->worker_ = std::thread([p = ex.get()] { p->Loop(); });
  return ex;
}

SpanExporter::~SpanExporter() {
  Finish(absl::ZeroDuration());
  if (file_ != nullptr) std::fclose(file_);
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string SpanExporter::Describe() const {
  return options_.file.empty() ? absl::StrCat("--otlp-endpoint ", url_)
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
  absl::Duration backoff = options_.first_backoff;
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    bool retryable = false;
    last = Post(body, &retryable);
    if (last.ok() || !retryable || attempt == options_.max_attempts) break;
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

absl::Status SpanExporter::Post(const std::string& body, bool* retryable) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_slist* headers =
      curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(
                       absl::ToInt64Milliseconds(options_.request_timeout)));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(
                       absl::ToInt64Milliseconds(options_.request_timeout)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // a worker thread
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, DiscardBody);
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    *retryable = true;  // refused, reset, timed out: the collector may be back
    return absl::UnavailableError(
        absl::StrFormat("POST %s: %s", url_, curl_easy_strerror(rc)));
  }
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 200 && code < 300) return absl::OkStatus();
  // OTLP/HTTP: 429, 502, 503 and 504 are worth retrying; other codes mean
  // the data itself was refused.
  *retryable = code == 429 || code == 502 || code == 503 || code == 504;
  return absl::UnavailableError(
      absl::StrFormat("POST %s: HTTP status %d", url_, code));
}

SpanExportStats SpanExporter::Finish(absl::Duration deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = absl::Now() + deadline;
    }
  }
  wake_.notify_all();
  space_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (file_ != nullptr) std::fflush(file_);
  return stats();
}

}  // namespace reqcost::exporters
