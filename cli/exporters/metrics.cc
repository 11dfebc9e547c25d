#include "cli/exporters/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analyzers/payload.h"
#include "analyzers/phase.h"
#include "analyzers/render/format.h"
#include "analyzers/report.h"
#include "prometheus/exposer.h"
#include "prometheus/text_serializer.h"

namespace reqcost::exporters {
namespace {

using analyzers::ConnReuse;
using analyzers::Request;

double Seconds(uint64_t ns) { return ns / 1e9; }

}  // namespace

std::vector<double> DurationBuckets() {
  std::vector<double> b;
  // 10^(k/4) us for k = 0..28, rounded to 4 significant digits so that the
  // `le` labels read well (1e-06, 1.778e-06, 3.162e-06, 5.623e-06, 1e-05...).
  for (int k = 0; k <= 28; ++k) {
    double v = std::pow(10.0, k / 4.0) * 1e-6;
    double scale = std::pow(10.0, 3 - std::floor(std::log10(v)));
    b.push_back(std::round(v * scale) / scale);
  }
  return b;
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      buckets_(DurationBuckets()) {
  phases_ = &prometheus::BuildHistogram()
                 .Name("reqcost_request_duration_seconds")
                 .Help(absl::StrCat(
                     "Time of complete requests by phase (",
                     absl::StrJoin(analyzers::kPhases, ", ",
                                   [](std::string* out, analyzers::Phase p) {
                                     out->append(analyzers::PhaseName(p));
                                   }),
                     "), client and backend connection reuse, backend "
                     "address and server comm."))
                 .Register(*registry_);
  syscalls_ = &prometheus::BuildHistogram()
                   .Name("reqcost_syscall_duration_seconds")
                   .Help(
                       "Duration of the socket syscalls of complete requests "
                       "whose start was traced, by side and syscall.")
                   .Register(*registry_);
  calls_ = &prometheus::BuildHistogram()
                .Name("reqcost_backend_call_duration_seconds")
                .Help("Duration of the backend's calls (to its database, "
                      "cache or HTTP service) in complete requests with a "
                      "measured backend, by peer and protocol.")
                .Register(*registry_);
  auto& requests = prometheus::BuildCounter()
                       .Name("reqcost_requests_total")
                       .Help("Requests seen, complete or incomplete.")
                       .Register(*registry_);
  complete_total_ = &requests.Add({{"status", "complete"}});
  incomplete_total_ = &requests.Add({{"status", "incomplete"}});
  incomplete_ = &prometheus::BuildCounter()
                     .Name("reqcost_incomplete_requests_total")
                     .Help("Incomplete requests by reason.")
                     .Register(*registry_);
  events_total_ = &prometheus::BuildCounter()
                       .Name("reqcost_events_total")
                       .Help("Events received from the kernel.")
                       .Register(*registry_)
                       .Add({});
  dropped_total_ = &prometheus::BuildCounter()
                        .Name("reqcost_dropped_events_total")
                        .Help("Events the kernel lost (ring buffer full).")
                        .Register(*registry_)
                        .Add({});
  traced_processes_ = &prometheus::BuildGauge()
                           .Name("reqcost_traced_processes")
                           .Help("Processes traced now.")
                           .Register(*registry_)
                           .Add({});
  otlp_ = &prometheus::BuildCounter()
               .Name("reqcost_otlp_requests_total")
               .Help(
                   "Complete requests the span exporters exported or "
                   "dropped, by exporter and outcome.")
               .Register(*registry_);
  anomalies_ = &prometheus::BuildCounter()
                    .Name("reqcost_anomalies_total")
                    .Help(
                        "Events the profiler had to skip, correct or merge, "
                        "by counter (the report's anomalies).")
                    .Register(*registry_);
  overflow_ = &prometheus::BuildCounter()
                   .Name("reqcost_label_overflow_total")
                   .Help(
                       "Requests whose backend, server or reason label was "
                       "past its cap and reported as \"other\".")
                   .Register(*registry_);
}

std::string Metrics::Capped(const std::string& value,
                            std::vector<std::string>* seen, size_t cap,
                            const char* label) {
  for (const std::string& s : *seen) {
    if (s == value) return value;
  }
  if (seen->size() < cap) {
    seen->push_back(value);
    return value;
  }
  overflow_->Add({{"label", label}}).Increment();
  return "other";
}

Metrics::PhaseHistograms& Metrics::PhasesFor(const std::string& server,
                                             const std::string& backend,
                                             ConnReuse client,
                                             ConnReuse backend_conn) {
  PhaseKey key{server, backend, client, backend_conn};
  auto it = phase_cache_.find(key);
  if (it != phase_cache_.end()) return it->second;
  PhaseHistograms h{};
  for (analyzers::Phase phase : analyzers::kPhases) {
    h[analyzers::PhaseIndex(phase)] = NewSeries(&phases_->Add(
        {{"phase", analyzers::PhaseName(phase)},
         {"client_conn", std::string(analyzers::ReuseName(client))},
         {"backend_conn", std::string(analyzers::ReuseName(backend_conn))},
         {"backend", backend},
         {"server", server}},
        buckets_));
  }
  return phase_cache_.emplace(key, h).first->second;
}

Metrics::Series* Metrics::NewSeries(prometheus::Histogram* histogram) {
  auto s = std::make_unique<Series>();
  s->histogram = histogram;
  s->pending.assign(buckets_.size() + 1, 0.0);
  series_.push_back(std::move(s));
  return series_.back().get();
}

void Metrics::Observe(Series* s, uint64_t ns) {
  double v = Seconds(ns);
  // The first bound >= v (a value equal to a bound belongs to it: le).
  size_t i =
      std::lower_bound(buckets_.begin(), buckets_.end(), v) - buckets_.begin();
  s->pending[i] += 1;
  s->pending_sum += v;
  s->dirty = true;
}

void Metrics::Flush() {
  for (const auto& s : series_) {
    if (!s->dirty) continue;
    s->histogram->ObserveMultiple(s->pending, s->pending_sum);
    std::fill(s->pending.begin(), s->pending.end(), 0.0);
    s->pending_sum = 0;
    s->dirty = false;
  }
}

void Metrics::OnRequest(const Request& r, const std::string& server) {
  if (!r.complete) {
    incomplete_total_->Increment();
    auto it = reason_cache_.find(r.incomplete_reason);
    if (it == reason_cache_.end()) {
      std::string reason =
          Capped(r.incomplete_reason, &reasons_, kMaxReasons, "reason");
      it = reason_cache_
               .emplace(r.incomplete_reason,
                        &incomplete_->Add({{"reason", reason}}))
               .first;
    }
    it->second->Increment();
    return;
  }
  complete_total_->Increment();
  // Past a cap, the label is "other" and the overflow counted per request.
  std::string server_label =
      Capped(analyzers::LabelText(server), &servers_, kMaxServers, "server");
  std::string backend_label =
      r.backend_address.empty()
          ? "none"
          : Capped(analyzers::LabelText(r.backend_address), &backends_,
                   kMaxBackends, "backend");
  PhaseHistograms& h =
      PhasesFor(server_label, backend_label, r.client_conn, r.backend_conn);
  for (analyzers::Phase phase : analyzers::kPhases) {
    // A request with no backend exchange has no transport or backend time
    // to show (they are 0 by definition): only its total and server time.
    if (r.backend_conn == ConnReuse::kNone &&
        (phase == analyzers::Phase::kTransport ||
         phase == analyzers::Phase::kBackend)) {
      continue;
    }
    const std::optional<uint64_t>& ns = analyzers::PhaseNs(r, phase);
    if (ns.has_value()) Observe(h[analyzers::PhaseIndex(phase)], *ns);
  }
  for (const analyzers::SyscallRecord& s : r.syscalls) {
    if (!s.enter_seen()) continue;
    auto index = static_cast<uint16_t>(s.syscall);
    if (index >= kSyscallMax) continue;
    Series*& series =
        syscall_cache_[s.side == analyzers::Side::kServer ? 0 : 1][index];
    if (series == nullptr) {
      series = NewSeries(
          &syscalls_->Add({{"side", std::string(analyzers::SideName(s.side))},
                           {"syscall", std::string(SyscallName(s.syscall))}},
                          buckets_));
    }
    Observe(series, s.duration_ns());
  }
  for (const analyzers::CallRecord& c : r.calls) {
    Series* series = nullptr;
    auto it = call_cache_.find(c.peer);
    if (it != call_cache_.end()) {
      series = it->second;
    } else {
      const std::string peer =
          Capped(analyzers::LabelText(c.peer), &peers_, kMaxPeers, "peer");
      if (peer == "other") {
        // Past the cap: one shared series, and no cache entry per peer.
        if (other_calls_ == nullptr) {
          other_calls_ = NewSeries(&calls_->Add(
              {{"peer", "other"}, {"protocol", "other"}}, buckets_));
        }
        series = other_calls_;
      } else {
        series = NewSeries(&calls_->Add(
            {{"peer", peer}, {"protocol", analyzers::LabelText(c.protocol)}},
            buckets_));
        call_cache_.emplace(c.peer, series);
      }
    }
    Observe(series, c.duration_ns());
  }
}

void Metrics::SetEventCounts(uint64_t events, uint64_t dropped) {
  if (events > events_seen_) events_total_->Increment(events - events_seen_);
  if (dropped > dropped_seen_) {
    dropped_total_->Increment(dropped - dropped_seen_);
  }
  events_seen_ = std::max(events_seen_, events);
  dropped_seen_ = std::max(dropped_seen_, dropped);
}

void Metrics::SetTracedProcesses(uint64_t n) {
  traced_processes_->Set(static_cast<double>(n));
}

void Metrics::SetSpanOutcome(const std::string& exporter,
                             const std::string& outcome, uint64_t total) {
  auto key = std::make_pair(exporter, outcome);
  auto it = otlp_seen_.find(key);
  if (it == otlp_seen_.end()) {
    prometheus::Counter* c =
        &otlp_->Add({{"exporter", exporter}, {"outcome", outcome}});
    it = otlp_seen_.emplace(key, std::make_pair(c, uint64_t{0})).first;
  }
  auto& [counter, seen] = it->second;
  if (total > seen) counter->Increment(static_cast<double>(total - seen));
  seen = std::max(seen, total);
}

void Metrics::SetAnomalies(const analyzers::Anomalies& anomalies) {
  // Named: items() refers to the object, which must outlive the loop.
  const nlohmann::json counters = analyzers::AnomaliesToJson(anomalies);
  for (const auto& [name, value] : counters.items()) {
    auto it = anomalies_seen_.find(name);
    if (it == anomalies_seen_.end()) {
      prometheus::Counter* c = &anomalies_->Add({{"counter", name}});
      it = anomalies_seen_.emplace(name, std::make_pair(c, uint64_t{0})).first;
    }
    auto& [counter, seen] = it->second;
    const auto total = value.get<uint64_t>();
    if (total > seen) counter->Increment(static_cast<double>(total - seen));
    seen = std::max(seen, total);
  }
}

std::string Metrics::Exposition() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, const Metrics& metrics) {
  size_t colon = address.rfind(':');
  int port = -1;
  std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535 || host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--metrics %s is not an address: use HOST:PORT, e.g. "
                        "127.0.0.1:9464 or [::1]:9464",
                        address));
  }
  auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
  try {
    // One thread: a scrape is one short request.
    server->exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--metrics %s: cannot listen there (%s); give a free local port",
        address, e.what()));
  }
  server->exposer_->RegisterCollectable(metrics.registry());
  std::vector<int> ports = server->exposer_->GetListeningPorts();
  server->port_ = ports.empty() ? port : ports.front();
  return server;
}

MetricsServer::~MetricsServer() = default;

// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<MetricsFile>> MetricsFile::Start(
    const std::string& path, const Metrics& metrics, int period_ms) {
  auto file = std::unique_ptr<MetricsFile>(new MetricsFile(path, metrics));
  if (absl::Status s = file->WriteOnce(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-file: ", s.message()));
  }
  file->thread_ =
      std::thread([f = file.get(), period_ms] { f->Loop(period_ms); });
  return file;
}

MetricsFile::~MetricsFile() { (void)Stop(); }

absl::Status MetricsFile::WriteOnce() {
  // The temporary file sits beside PATH (rename is atomic within one file
  // system) and ends in something node_exporter does not read (*.prom only).
  std::string tmp = absl::StrFormat("%s.%d.tmp", path_, getpid());
  std::string text = metrics_.Exposition();
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", tmp));
  }
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = absl::ErrnoToStatus(errno, absl::StrCat("write ", tmp));
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0 || rename(tmp.c_str(), path_.c_str()) != 0) {
    absl::Status s = absl::ErrnoToStatus(
        errno, absl::StrFormat("cannot replace %s with %s", path_, tmp));
    unlink(tmp.c_str());
    return s;
  }
  ++writes_;
  return absl::OkStatus();
}

void MetricsFile::Loop(int period_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (cv_.wait_for(lock, std::chrono::milliseconds(period_ms),
                     [this] { return stop_; })) {
      break;
    }
    lock.unlock();
    absl::Status s = WriteOnce();
    lock.lock();
    if (!s.ok() && first_error_.ok()) first_error_ = s;
  }
}

absl::Status MetricsFile::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return first_error_;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  absl::Status s = WriteOnce();
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok() && first_error_.ok()) first_error_ = s;
  return first_error_;
}

}  // namespace reqcost::exporters
