#include "analyzers/otlp.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace reqcost::analyzers {
namespace {

using nlohmann::json;

// splitmix64: a bijective mix, so distinct inputs give distinct ids.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t NonZero(uint64_t v) { return v != 0 ? v : 1; }

json StringAttr(const std::string& key, const std::string& value) {
  return {{"key", key}, {"value", {{"stringValue", value}}}};
}
json IntAttr(const std::string& key, int64_t value) {
  return {{"key", key}, {"value", {{"intValue", std::to_string(value)}}}};
}
json DoubleAttr(const std::string& key, double value) {
  return {{"key", key}, {"value", {{"doubleValue", value}}}};
}

std::string UnixNano(uint64_t mono_ns, int64_t mono_to_wall_ns) {
  return std::to_string(static_cast<uint64_t>(
      static_cast<int64_t>(mono_ns) + mono_to_wall_ns));
}

std::string IpText(uint16_t family, const std::array<uint8_t, 16>& addr) {
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, addr.data(), text, sizeof(text));
  return text;
}

json Span(const SpanIds& ids, uint64_t span_id, uint64_t parent_id,
          const std::string& name, int kind, uint64_t start_ns,
          uint64_t end_ns, int64_t mono_to_wall_ns, json attributes) {
  json span = {
      {"traceId", Hex64(ids.trace_hi) + Hex64(ids.trace_lo)},
      {"spanId", Hex64(span_id)},
      {"name", name},
      {"kind", kind},
      {"startTimeUnixNano", UnixNano(start_ns, mono_to_wall_ns)},
      {"endTimeUnixNano",
       UnixNano(std::max(start_ns, end_ns), mono_to_wall_ns)},
      {"attributes", std::move(attributes)},
  };
  if (parent_id != 0) span["parentSpanId"] = Hex64(parent_id);
  return span;
}

void AddPhaseAttrs(const SpanSource& s, json* attrs) {
  const std::pair<const char*, const std::optional<uint64_t>*> phases[] = {
      {"reqcost.total_us", &s.total_ns},
      {"reqcost.server_us", &s.server_ns},
      {"reqcost.transport_us", &s.transport_ns},
      {"reqcost.backend_us", &s.backend_ns},
      {"reqcost.queue_us", &s.queue_ns},
      {"reqcost.tls_us", &s.tls_ns}};
  for (const auto& [key, value] : phases) {
    if (value->has_value()) attrs->push_back(DoubleAttr(key, **value / 1e3));
  }
}

json ServerAttrs(const SpanSource& s, std::string* name) {
  json attrs = json::array();
  *name = "HTTP";
  if (s.request_line.has_value()) {
    const std::string& line = *s.request_line;
    size_t space = line.find(' ');
    std::string method = line.substr(0, space);
    attrs.push_back(StringAttr("http.request.method", method));
    *name = method;
    if (space != std::string::npos && space + 1 < line.size()) {
      std::string path = line.substr(space + 1);
      attrs.push_back(StringAttr("url.path", path));
      *name = absl::StrCat(method, " ", path);
    }
  }
  const SocketId& c = s.client_sock;
  if (c.family == AF_INET || c.family == AF_INET6) {
    attrs.push_back(StringAttr("network.transport", "tcp"));
    attrs.push_back(
        StringAttr("network.type", c.family == AF_INET ? "ipv4" : "ipv6"));
    attrs.push_back(IntAttr("server.port", c.local_port));
    attrs.push_back(StringAttr("client.address", IpText(c.family, c.remote_addr)));
    attrs.push_back(IntAttr("client.port", c.remote_port));
    attrs.push_back(
        StringAttr("network.peer.address", IpText(c.family, c.remote_addr)));
    attrs.push_back(IntAttr("network.peer.port", c.remote_port));
    attrs.push_back(
        StringAttr("network.local.address", IpText(c.family, c.local_addr)));
    attrs.push_back(IntAttr("network.local.port", c.local_port));
  } else if (c.family == AF_UNIX) {
    attrs.push_back(StringAttr("network.transport", "unix"));
  }
  attrs.push_back(StringAttr("reqcost.client_conn",
                             std::string(ReuseName(s.client_conn))));
  attrs.push_back(StringAttr("reqcost.backend_conn",
                             std::string(ReuseName(s.backend_conn))));
  attrs.push_back(StringAttr("reqcost.backend_timing",
                             std::string(TimingName(s.backend_timing))));
  AddPhaseAttrs(s, &attrs);
  return attrs;
}

// "host:port", "[v6]:port" or a unix path, as BackendAddress made it.
json ClientAttrs(const SpanSource& s) {
  json attrs = json::array();
  const std::string& a = s.backend_address;
  size_t colon = a.rfind(':');
  bool tcp = !a.empty() && a[0] != '/' && a[0] != '@' && a != "unix" &&
             a != "unknown" && colon != std::string::npos;
  if (tcp) {
    std::string host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') {
      host = host.substr(1, host.size() - 2);
    }
    attrs.push_back(StringAttr("network.transport", "tcp"));
    attrs.push_back(StringAttr("server.address", host));
    int64_t port = 0;
    for (char ch : a.substr(colon + 1)) port = port * 10 + (ch - '0');
    attrs.push_back(IntAttr("server.port", port));
  } else if (a != "unknown") {
    attrs.push_back(StringAttr("network.transport", "unix"));
    attrs.push_back(StringAttr("server.address", a));
  }
  if (!s.backend_protocol.empty()) {
    attrs.push_back(StringAttr("reqcost.backend.protocol", s.backend_protocol));
  }
  if (s.backend_pid != 0) attrs.push_back(IntAttr("reqcost.backend.pid", s.backend_pid));
  return attrs;
}

}  // namespace

SpanSource SpanSource::From(const Request& r, OtlpResource resource) {
  SpanSource s;
  s.resource = std::move(resource);
  s.request_id = r.id;
  s.request_line = r.request_line;
  s.client_sock = r.client_sock;
  s.client_conn = r.client_conn;
  s.backend_conn = r.backend_conn;
  s.backend_timing = r.backend_timing;
  s.backend_address = r.backend_address;
  s.backend_protocol = r.backend_protocol;
  s.backend_pid = r.backend_pid;
  s.start_ns = r.start_ns;
  s.end_ns = r.end_ns;
  s.exchange_start_ns = r.exchange_start_ns;
  s.exchange_end_ns = r.exchange_end_ns;
  s.backend_start_ns = r.backend_start_ns;
  s.backend_end_ns = r.backend_end_ns;
  s.queue_start_ns = r.queue_start_ns;
  s.total_ns = r.total_ns;
  s.server_ns = r.server_ns;
  s.transport_ns = r.transport_ns;
  s.backend_ns = r.backend_ns;
  s.queue_ns = r.queue_ns;
  s.tls_ns = r.tls_ns;
  return s;
}

SpanIds SpanIds::For(uint64_t seed, uint64_t request_id) {
  SpanIds ids;
  uint64_t base = Mix(seed ^ Mix(request_id));
  ids.trace_hi = NonZero(Mix(base));
  ids.trace_lo = Mix(base + 1);
  uint64_t* spans[] = {&ids.server,          &ids.client,
                       &ids.transport_request, &ids.backend,
                       &ids.transport_reply, &ids.queue};
  uint64_t k = 2;
  for (uint64_t* id : spans) *id = NonZero(Mix(base + k++));
  return ids;
}

std::string Hex64(uint64_t v) { return absl::StrFormat("%016x", v); }

std::vector<json> RequestSpans(const SpanSource& s, uint64_t seed,
                               int64_t off) {
  SpanIds ids = SpanIds::For(seed, s.request_id);
  std::vector<json> spans;
  std::string name;
  json server_attrs = ServerAttrs(s, &name);
  spans.push_back(Span(ids, ids.server, 0, name, kSpanKindServer, s.start_ns,
                       s.end_ns, off, std::move(server_attrs)));
  if (s.exchange_end_ns == 0) return spans;  // no backend exchange

  std::string client_name = absl::StrCat(
      s.backend_protocol.empty() ? "backend" : s.backend_protocol, " ",
      s.backend_address);
  spans.push_back(Span(ids, ids.client, ids.server, client_name,
                       kSpanKindClient, s.exchange_start_ns, s.exchange_end_ns,
                       off, ClientAttrs(s)));
  // The backend phase inside the exchange (it is clamped to it in phases).
  uint64_t b_start =
      std::clamp(s.backend_start_ns, s.exchange_start_ns, s.exchange_end_ns);
  uint64_t b_end = std::clamp(s.backend_end_ns, b_start, s.exchange_end_ns);
  spans.push_back(Span(ids, ids.transport_request, ids.client,
                       "transport request", kSpanKindInternal,
                       s.exchange_start_ns, b_start, off, json::array()));
  spans.push_back(Span(ids, ids.backend, ids.client, "backend",
                       kSpanKindInternal, b_start, b_end, off,
                       json::array({StringAttr(
                           "reqcost.backend_timing",
                           std::string(TimingName(s.backend_timing)))})));
  spans.push_back(Span(ids, ids.transport_reply, ids.client, "transport reply",
                       kSpanKindInternal, b_end, s.exchange_end_ns, off,
                       json::array()));
  if (s.queue_ns.has_value() && s.queue_start_ns != 0) {
    spans.push_back(Span(ids, ids.queue, ids.transport_request, "queue",
                         kSpanKindInternal, s.queue_start_ns,
                         s.queue_start_ns + *s.queue_ns, off, json::array()));
  }
  return spans;
}

void OtlpBatch::Add(const SpanSource& s) {
  std::vector<json> spans = RequestSpans(s, seed_, mono_to_wall_ns_);
  ++requests_;
  spans_ += spans.size();
  std::vector<json>& out = by_resource_[s.resource];
  for (json& span : spans) out.push_back(std::move(span));
}

json OtlpBatch::Take(const std::string& scope_version) {
  json resource_spans = json::array();
  for (auto& [resource, spans] : by_resource_) {
    json attrs = json::array({StringAttr("service.name", resource.service_name),
                              StringAttr("host.name", resource.host_name),
                              IntAttr("process.pid", resource.pid)});
    resource_spans.push_back(
        {{"resource", {{"attributes", std::move(attrs)}}},
         {"scopeSpans",
          json::array({{{"scope",
                         {{"name", "reqcost"}, {"version", scope_version}}},
                        {"spans", std::move(spans)}}})}});
  }
  by_resource_.clear();
  requests_ = spans_ = 0;
  return {{"resourceSpans", std::move(resource_spans)}};
}

}  // namespace reqcost::analyzers
