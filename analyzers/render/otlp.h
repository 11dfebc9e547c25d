// OpenTelemetry spans of complete requests, encoded as OTLP/JSON
// (ExportTraceServiceRequest, the protobuf JSON mapping with OTLP's rules:
// trace and span ids as lowercase hex, 64-bit integers as decimal strings,
// enums as integers). Pure: ids come from a seed, wall time from a
// monotonic-to-wall offset taken once per capture.
//
// Per complete request, one trace:
//   SERVER "{method} {path}" (or "{method}", or "HTTP" without payload):
//     the request, start_ns .. end_ns, HTTP semantic-convention attributes;
//   CLIENT "{protocol} {backend}" child: the backend exchange;
//   INTERNAL children of the CLIENT span: "transport request" (exchange
//     start .. backend start), "backend" (the backend phase), "transport
//     reply" (backend end .. exchange end), and "queue" (server's connect ..
//     backend's accept) under "transport request" when known;
//   CLIENT children of "backend": the backend's own calls (a database, a
//     cache, an HTTP service), one span each (AppendCallSpans).
// A nested request (a traced peer's request that served a call) is a trace
// of its own only in name: its SERVER span takes the caller's trace id and
// the call's CLIENT span as parent.
// Incomplete requests have no spans.
#ifndef REQCOST_ANALYZERS_RENDER_OTLP_H_
#define REQCOST_ANALYZERS_RENDER_OTLP_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "analyzers/phase.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

// OTLP SpanKind values.
inline constexpr int kSpanKindInternal = 1;
inline constexpr int kSpanKindServer = 2;
inline constexpr int kSpanKindClient = 3;

// The resource a span belongs to: the traced server process.
struct OtlpResource {
  std::string service_name;  // the server's comm, or --service-name
  std::string host_name;
  uint32_t pid = 0;

  friend bool operator<(const OtlpResource& a, const OtlpResource& b) {
    return std::tie(a.service_name, a.host_name, a.pid) <
           std::tie(b.service_name, b.host_name, b.pid);
  }
};

// What a request's spans need, without its syscall timeline: cheap to copy
// from the collector's thread to an exporter's.
struct SpanSource {
  OtlpResource resource;
  uint64_t request_id = 0;
  std::optional<std::string> request_line;
  SocketId client_sock;
  ConnReuse client_conn = ConnReuse::kNew;
  ConnReuse backend_conn = ConnReuse::kNone;
  BackendTiming backend_timing = BackendTiming::kNone;
  // Where the request was seen from: a request seen from the backend link
  // only has its SERVER span bounded by its backend exchange W (the client
  // side was not seen) and carries `reqcost.origin`.
  RequestOrigin origin = RequestOrigin::kClient;
  std::string backend_address;
  std::string backend_protocol;
  uint32_t backend_pid = 0;
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  uint64_t exchange_start_ns = 0;
  uint64_t exchange_end_ns = 0;
  uint64_t backend_start_ns = 0;
  uint64_t backend_end_ns = 0;
  uint64_t queue_start_ns = 0;
  std::optional<uint64_t> total_ns, server_ns, transport_ns, backend_ns,
      queue_ns, tls_ns;
  // The identity on the wire (TCP) of its backend exchange (a front's
  // request), or of the exchange it served (a request seen from the
  // backend's side): the connection and the TCP sequence number of the
  // exchange's first byte. Its trace and span ids derive from it (WireIds).
  std::optional<WireTuple> exchange_wire;
  std::optional<uint32_t> exchange_seq;
  std::optional<WireTuple> served_wire;
  std::optional<uint32_t> served_seq;
  // The backend's own calls while it served the request, in start order.
  std::vector<CallRecord> calls;
  // A nested request (it served a traced backend's call): its SERVER span
  // is a child of that call's CLIENT span, in the caller's trace.
  std::optional<Request::NestedIn> nested_in;

  // From a complete request (the caller checks r.complete).
  static SpanSource From(const Request& r, OtlpResource resource);
  // The field of `phase`.
  const std::optional<uint64_t>& PhaseNs(Phase phase) const;
};

// The 128-bit trace id and 64-bit span ids of one request's spans, derived
// from (seed, request id): distinct per request and run, never all zero.
struct SpanIds {
  uint64_t trace_hi = 0, trace_lo = 0;
  uint64_t server = 0, client = 0, transport_request = 0, backend = 0,
           transport_reply = 0, queue = 0;
  static SpanIds For(uint64_t seed, uint64_t request_id);
};

// Ids derived from one exchange's identity on the wire (the connection's
// 4-tuple and the TCP sequence number of the exchange's first byte), the
// same on every host that sees either end: the trace id of the front's
// request and of the backend's work for it, the front's CLIENT span id (the
// parent of the backend's SERVER span) and that SERVER span's id. A keyed
// mix (kWireIdKey): the ids do not reveal the addresses.
struct WireIds {
  uint64_t trace_hi = 0, trace_lo = 0, client = 0, server = 0;
  static WireIds For(const WireTuple& tuple, uint32_t seq);
};
// The key of WireIds, the same for every agent of a fleet.
inline constexpr uint64_t kWireIdKey = 0x72657163'6f737431ULL;
// The span id of the request's `index`-th call: distinct from the request's
// other span ids and never zero.
uint64_t CallSpanId(const SpanIds& ids, size_t index);

// The name of a call's span: its protocol ("mysql", "redis"; "tcp" or
// "unix" when unknown), then, when its query was captured, the query's
// operation ("mysql SELECT", "redis GET", "http GET").
std::string CallSpanName(const CallRecord& call);

// Lowercase hex of `v`, 16 digits.
std::string Hex64(uint64_t v);

// Appends the spans (OTLP/JSON Span objects, comma-separated) of one
// complete request to `out` and returns how many; wall time = monotonic +
// `mono_to_wall_ns`. Written directly, not through a JSON DOM: the span
// worker's rate is the exporter's capacity (pipeline_bench BM_OtlpEncode).
size_t AppendRequestSpans(const SpanSource& s, uint64_t seed,
                          int64_t mono_to_wall_ns, std::string* out);

// `text` as a JSON string literal, quotes included. Bytes 0x80-0xff are
// written as \u0080-\u00ff: payload bytes need not be UTF-8, and the output
// must be valid JSON whatever they are.
void AppendJsonString(std::string_view text, std::string* out);

// Collects spans of many requests into one ExportTraceServiceRequest, one
// ResourceSpans per resource.
class OtlpBatch {
 public:
  OtlpBatch(uint64_t seed, int64_t mono_to_wall_ns)
      : seed_(seed), mono_to_wall_ns_(mono_to_wall_ns) {}

  void Add(const SpanSource& s);
  // Attributes every resource gets after its own (OTEL_RESOURCE_ATTRIBUTES);
  // one with the key of an own attribute (host.name, ...) replaces it.
  void SetResourceAttributes(
      std::vector<std::pair<std::string, std::string>> attributes) {
    extra_attributes_ = std::move(attributes);
  }
  size_t requests() const { return requests_; }
  size_t spans() const { return spans_; }
  bool empty() const { return requests_ == 0; }
  // The ExportTraceServiceRequest of everything added, one line of JSON;
  // empties the batch.
  std::string Take(const std::string& scope_version);

 private:
  uint64_t seed_;
  int64_t mono_to_wall_ns_;
  size_t requests_ = 0;
  size_t spans_ = 0;
  std::map<OtlpResource, std::string> by_resource_;  // spans, comma-separated
  std::vector<std::pair<std::string, std::string>> extra_attributes_;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_RENDER_OTLP_H_
