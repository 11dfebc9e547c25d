// User-side throughput: how many events per second one core turns from raw
// ring-buffer records into requests and statistics. The stream is
// tests/bench/synthetic_stack.h (nginx + php-fpm, several connections in
// flight, unix or TCP to the backend), pre-encoded as the kernel writes it
// (struct rc_syscall_event, bpf/reqcost.h); each iteration decodes every
// record (collector::DecodeRecord), feeds a fresh analyzers::Profiler,
// finishes it and builds the report: exactly what `reqcost attach` does
// per event, minus the ring buffer itself. Target: >= 2M events/s.
//
// Run: build/tests/bench/pipeline_bench (Google Benchmark flags apply, e.g.
// --benchmark_filter=Profile).
#include <linux/types.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "analyzers/profiler.h"
#include "analyzers/render/otlp.h"
#include "cli/exporters/metrics.h"
#include "cli/exporters/span_exporter.h"
#include "collector/decoder.h"
#include "collector/event.h"
#include "reqcost.h"
#include "tests/bench/synthetic_stack.h"

namespace reqcost::bench {
namespace {

constexpr size_t kEventsPerStream = 400'000;

// The kernel's record for `e` (no payload: the default).
void Encode(const SyscallEvent& e, std::vector<uint8_t>* out) {
  rc_syscall_event r;
  std::memset(&r, 0, RC_SYSCALL_EVENT_HEADER_SIZE);
  r.kind = RC_REC_SYSCALL;
  r.size = RC_SYSCALL_EVENT_HEADER_SIZE;
  r.syscall = static_cast<__u16>(e.syscall);
  r.flags = e.flags;
  r.tgid = e.tgid;
  r.tid = e.tid;
  r.enter_ns = e.enter_ns;
  r.exit_ns = e.exit_ns;
  r.ret = e.ret;
  r.fd = e.fd;
  r.payload_len = 0;
  r.sock.sock = e.sock.sock;
  r.sock.peer = e.sock.peer;
  std::memcpy(r.sock.local_addr, e.sock.local_addr.data(), RC_ADDR_LEN);
  std::memcpy(r.sock.remote_addr, e.sock.remote_addr.data(), RC_ADDR_LEN);
  r.sock.local_port = e.sock.local_port;
  r.sock.remote_port = e.sock.remote_port;
  r.sock.family = e.sock.family;
  r.sock.type = e.sock.type;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&r);
  out->insert(out->end(), bytes, bytes + RC_SYSCALL_EVENT_HEADER_SIZE);
}

struct Stream {
  std::vector<uint8_t> bytes;  // records back to back, each 104 bytes
  size_t events = 0;
  uint64_t end_ns = 0;
  uint64_t requests = 0;
};

Stream MakeStream(const SyntheticOptions& options) {
  Stream s;
  SyntheticStack stack(options);
  s.bytes.reserve(kEventsPerStream * RC_SYSCALL_EVENT_HEADER_SIZE);
  for (size_t i = 0; i < kEventsPerStream; ++i) Encode(stack.Next(), &s.bytes);
  s.events = kEventsPerStream;
  s.end_ns = stack.now_ns() + 1'000'000;
  s.requests = stack.requests_started();
  return s;
}

SyntheticOptions OptionsFor(const benchmark::State& state) {
  SyntheticOptions o;
  o.tcp_backend = state.range(0) != 0;
  o.connections = static_cast<int>(state.range(1));
  o.requests_per_connection = static_cast<int>(state.range(2));
  o.nginx_workers = 2;
  return o;
}

void SetLabel(benchmark::State& state) {
  state.SetLabel(
      std::string(state.range(0) ? "tcp" : "unix") + " backend, " +
      std::to_string(state.range(1)) + " connections, " +
      (state.range(2) > 1 ? "keep-alive" : "new connection per request"));
}

// Decode only.
void BM_Decode(benchmark::State& state) {
  Stream s = MakeStream(OptionsFor(state));
  SyscallEvent syscall;
  ProcessEvent process;
  collector::RecordKind kind;
  for (auto _ : state) {
    for (size_t off = 0; off < s.bytes.size();
         off += RC_SYSCALL_EVENT_HEADER_SIZE) {
      absl::Status st = collector::DecodeRecord(s.bytes.data() + off,
                                                RC_SYSCALL_EVENT_HEADER_SIZE,
                                                &kind, &syscall, &process);
      benchmark::DoNotOptimize(st);
    }
    benchmark::DoNotOptimize(syscall);
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(s.events),
                         benchmark::Counter::kIsIterationInvariantRate);
  SetLabel(state);
}

// Decodes every record of `s` into `profiler` and finishes it; false when a
// record does not decode.
bool Feed(const Stream& s, analyzers::Profiler* profiler) {
  SyscallEvent syscall;
  ProcessEvent process;
  collector::RecordKind kind;
  for (size_t off = 0; off < s.bytes.size();
       off += RC_SYSCALL_EVENT_HEADER_SIZE) {
    if (!collector::DecodeRecord(s.bytes.data() + off,
                                 RC_SYSCALL_EVENT_HEADER_SIZE, &kind, &syscall,
                                 &process)
             .ok()) {
      return false;
    }
    profiler->OnEvent(syscall);
  }
  profiler->Finish(s.end_ns);
  return true;
}

// Decode + request assembly + statistics + report: the whole user side.
void BM_DecodeProfileReport(benchmark::State& state) {
  Stream s = MakeStream(OptionsFor(state));
  uint64_t complete = 0, count = 0;
  for (auto _ : state) {
    analyzers::Profiler profiler;
    if (!Feed(s, &profiler)) {
      state.SkipWithError("decode failed");
      return;
    }
    analyzers::Report report = profiler.BuildReport({1.0, s.events, 0});
    complete = report.complete;
    count = report.count;
    benchmark::DoNotOptimize(report);
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(s.events),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["requests/s"] =
      benchmark::Counter(static_cast<double>(count),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["events/request"] =
      static_cast<double>(s.events) / static_cast<double>(count);
  // Sanity: the synthetic requests must assemble (all but the few in flight).
  state.counters["complete%"] =
      100.0 * static_cast<double>(complete) / static_cast<double>(count);
  SetLabel(state);
}

// The same with the fleet exporters on as `attach --metrics ... --otlp-json
// ...` runs them. Arg 3 is a bit mask: 1 = every request observed into the
// Prometheus histograms, 2 = offered to the span exporter, whose worker
// thread writes OTLP/JSON to a temporary file (a request that finds its
// queue full is dropped and counted, as live); 0 = the same loop with no
// observer, for alternating runs.
void BM_DecodeProfileReportFleet(benchmark::State& state) {
  Stream s = MakeStream(OptionsFor(state));
  const bool with_metrics = (state.range(3) & 1) != 0;
  const bool fleet = (state.range(3) & 2) != 0;
  exporters::Metrics metrics;
  std::unique_ptr<exporters::SpanExporter> spans;
  char dir[] = "/tmp/reqcost-bench-XXXXXX";
  if (fleet) {
    if (mkdtemp(dir) == nullptr) {
      state.SkipWithError("mkdtemp failed");
      return;
    }
    exporters::SpanExporterOptions o;
    o.file = std::string(dir) + "/spans.jsonl";
    auto ex = exporters::SpanExporter::Start(o);
    if (!ex.ok()) {
      state.SkipWithError("span exporter did not start");
      return;
    }
    spans = *std::move(ex);
  }
  const std::string server = "nginx";
  uint64_t count = 0;
  for (auto _ : state) {
    analyzers::Profiler profiler;
    if (with_metrics || fleet) {
      profiler.SetRequestCallback([&](const analyzers::Request& r) {
        if (with_metrics) metrics.OnRequest(r, server);
        if (fleet) spans->Offer(r, {server, "bench", r.pid});
      });
    }
    if (!Feed(s, &profiler)) {
      state.SkipWithError("decode failed");
      return;
    }
    if (with_metrics) metrics.Flush();  // attach: once a second
    analyzers::Report report = profiler.BuildReport({1.0, s.events, 0});
    count = report.count;
    benchmark::DoNotOptimize(report);
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(s.events),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["requests/s"] =
      benchmark::Counter(static_cast<double>(count),
                         benchmark::Counter::kIsIterationInvariantRate);
  if (fleet) {
    exporters::SpanExportStats st = spans->Finish(absl::Seconds(30));
    state.counters["spans_exported"] =
        static_cast<double>(st.exported_requests);
    state.counters["spans_dropped"] = static_cast<double>(st.dropped());
    spans.reset();
    std::remove((std::string(dir) + "/spans.jsonl").c_str());
    rmdir(dir);
  }
  SetLabel(state);
}

// The span exporter's worker alone: requests per second (one core) turned
// into OTLP/JSON text (OtlpBatch::Add, Take, dump) in batches of 512 — the
// rate above which `--otlp-*` drops requests (counted) on a busy stack.
void BM_OtlpEncode(benchmark::State& state) {
  Stream s = MakeStream(OptionsFor(state));
  std::vector<analyzers::SpanSource> sources;
  analyzers::Profiler profiler;
  profiler.SetRequestCallback([&](const analyzers::Request& r) {
    if (r.complete && sources.size() < 512) {
      sources.push_back(
          analyzers::SpanSource::From(r, {"nginx", "bench", r.pid}));
    }
  });
  if (!Feed(s, &profiler) || sources.size() < 512) {
    state.SkipWithError("not enough complete requests");
    return;
  }
  analyzers::OtlpBatch batch(1, 0);
  size_t bytes = 0;
  for (auto _ : state) {
    for (const analyzers::SpanSource& src : sources) batch.Add(src);
    std::string body = batch.Take("bench");
    bytes = body.size();
    benchmark::DoNotOptimize(body);
  }
  state.counters["requests/s"] =
      benchmark::Counter(static_cast<double>(sources.size()),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes/request"] = static_cast<double>(bytes) / sources.size();
  SetLabel(state);
}

// Args: tcp backend (0/1), connections in flight, requests per client
// connection.
void Cases(benchmark::internal::Benchmark* b) {
  b->ArgNames({"tcp", "conns", "reqs_per_conn"});
  for (int tcp : {0, 1}) {
    for (int conns : {1, 8, 64}) b->Args({tcp, conns, 1});
    b->Args({tcp, 8, 10});
  }
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Decode)
    ->Args({0, 8, 1})
    ->ArgNames({"tcp", "conns", "reqs_per_conn"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeProfileReport)->Apply(Cases);
BENCHMARK(BM_OtlpEncode)
    ->Args({0, 8, 1})
    ->ArgNames({"tcp", "conns", "reqs_per_conn"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeProfileReportFleet)
    ->ArgNames({"tcp", "conns", "reqs_per_conn", "fleet"})
    ->Args({0, 8, 1, 0})
    ->Args({0, 8, 1, 1})
    ->Args({0, 8, 1, 2})
    ->Args({0, 8, 1, 3})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace reqcost::bench

BENCHMARK_MAIN();
