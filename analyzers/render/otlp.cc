#include "analyzers/render/otlp.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analyzers/payload.h"
#include "analyzers/phase.h"

namespace reqcost::analyzers {
namespace {

// splitmix64: a bijective mix, so distinct inputs give distinct ids.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t NonZero(uint64_t v) { return v != 0 ? v : 1; }

// Attributes of one span, written as a JSON array.
class Attrs {
 public:
  void Str(std::string_view key, std::string_view value) {
    Key(key);
    text_ += "{\"stringValue\":";
    AppendJsonString(value, &text_);
    text_ += "}}";
  }
  void Int(std::string_view key, int64_t value) {
    Key(key);
    absl::StrAppend(&text_, "{\"intValue\":\"", value, "\"}}");
  }
  // Microseconds from nanoseconds, exactly (3 decimals).
  void Us(std::string_view key, uint64_t ns) {
    Key(key);
    absl::StrAppend(&text_, "{\"doubleValue\":", ns / 1000, ".",
                    absl::StrFormat("%03d", ns % 1000), "}}");
  }
  std::string Take() { return "[" + std::move(text_) + "]"; }

 private:
  void Key(std::string_view key) {
    if (!text_.empty()) text_ += ',';
    text_ += "{\"key\":";
    AppendJsonString(key, &text_);
    text_ += ",\"value\":";
  }
  std::string text_;
};

std::string IpText(uint16_t family, const std::array<uint8_t, 16>& addr) {
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, addr.data(), text, sizeof(text));
  return text;
}

struct SpanWriter {
  const SpanIds& ids;
  int64_t mono_to_wall_ns;
  std::string* out;
  size_t count = 0;

  void Span(uint64_t span_id, uint64_t parent_id, std::string_view name,
            int kind, uint64_t start_ns, uint64_t end_ns,
            const std::string& attributes) {
    if (count > 0) *out += ',';
    absl::StrAppend(out, "{\"traceId\":\"", Hex64(ids.trace_hi),
                    Hex64(ids.trace_lo), "\",\"spanId\":\"", Hex64(span_id),
                    "\"");
    if (parent_id != 0) {
      absl::StrAppend(out, ",\"parentSpanId\":\"", Hex64(parent_id), "\"");
    }
    *out += ",\"name\":";
    AppendJsonString(name, out);
    absl::StrAppend(out, ",\"kind\":", kind, ",\"startTimeUnixNano\":\"",
                    Wall(start_ns), "\",\"endTimeUnixNano\":\"",
                    Wall(std::max(start_ns, end_ns)),
                    "\",\"attributes\":", attributes, "}");
    ++count;
  }
  uint64_t Wall(uint64_t mono_ns) const {
    return static_cast<uint64_t>(static_cast<int64_t>(mono_ns) +
                                 mono_to_wall_ns);
  }
};

void AddPhaseAttrs(const SpanSource& s, Attrs* attrs) {
  for (Phase phase : kPhases) {
    const std::optional<uint64_t>& ns = s.PhaseNs(phase);
    if (ns.has_value()) {
      attrs->Us(absl::StrCat("reqcost.", PhaseName(phase), "_us"), *ns);
    }
  }
}

std::string ServerAttrs(const SpanSource& s, std::string* name) {
  Attrs attrs;
  *name = "HTTP";
  if (s.request_line.has_value()) {
    const std::string& line = *s.request_line;
    size_t space = line.find(' ');
    std::string method = line.substr(0, space);
    attrs.Str("http.request.method", method);
    *name = method;
    if (space != std::string::npos && space + 1 < line.size()) {
      std::string path = line.substr(space + 1);
      attrs.Str("url.path", path);
      *name = absl::StrCat(method, " ", path);
    }
  }
  const SocketId& c = s.client_sock;
  if (c.family == AF_INET || c.family == AF_INET6) {
    std::string client = IpText(c.family, c.remote_addr);
    attrs.Str("network.transport", "tcp");
    attrs.Str("network.type", c.family == AF_INET ? "ipv4" : "ipv6");
    attrs.Int("server.port", c.local_port);
    attrs.Str("client.address", client);
    attrs.Int("client.port", c.remote_port);
    attrs.Str("network.peer.address", client);
    attrs.Int("network.peer.port", c.remote_port);
    attrs.Str("network.local.address", IpText(c.family, c.local_addr));
    attrs.Int("network.local.port", c.local_port);
  } else if (c.family == AF_UNIX) {
    attrs.Str("network.transport", "unix");
  }
  attrs.Str("reqcost.client_conn", ReuseName(s.client_conn));
  attrs.Str("reqcost.backend_conn", ReuseName(s.backend_conn));
  attrs.Str("reqcost.backend_timing", TimingName(s.backend_timing));
  if (s.origin != RequestOrigin::kClient) {
    attrs.Str("reqcost.origin", OriginName(s.origin));
  }
  AddPhaseAttrs(s, &attrs);
  return attrs.Take();
}

// "host:port", "[v6]:port" or a unix path, as BackendAddress made it.
std::string ClientAttrs(const SpanSource& s) {
  Attrs attrs;
  const std::string& a = s.backend_address;
  size_t colon = a.rfind(':');
  bool tcp = !a.empty() && a[0] != '/' && a[0] != '@' && a != "unix" &&
             a != "unknown" && colon != std::string::npos;
  if (tcp) {
    std::string host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') {
      host = host.substr(1, host.size() - 2);
    }
    attrs.Str("network.transport", "tcp");
    attrs.Str("server.address", host);
    int64_t port = 0;
    for (char ch : a.substr(colon + 1)) port = port * 10 + (ch - '0');
    attrs.Int("server.port", port);
  } else if (a != "unknown") {
    attrs.Str("network.transport", "unix");
    attrs.Str("server.address", ValidUtf8(a));
  }
  if (!s.backend_protocol.empty()) {
    attrs.Str("reqcost.backend.protocol", s.backend_protocol);
  }
  if (s.backend_pid != 0) attrs.Int("reqcost.backend.pid", s.backend_pid);
  return attrs.Take();
}

// The first word of a captured query, upper-cased for SQL and Redis so
// that "select" and "SELECT" are one operation; "" when none was captured.
std::string QueryOperation(const CallRecord& call) {
  std::string_view q = call.query;
  size_t begin = q.find_first_not_of(" \t\r\n(");
  if (begin == std::string_view::npos) return "";
  size_t end = q.find_first_of(" \t\r\n;(", begin);
  std::string op(q.substr(begin, end == std::string_view::npos
                                      ? std::string_view::npos
                                      : end - begin));
  if (op.size() > 32) op.resize(32);  // a name, never a whole payload
  if (call.protocol != "memcached") {
    for (char& ch : op) {
      if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
    }
  }
  return ValidUtf8(op);
}

// A call's attributes: the database or HTTP semantic conventions, where it
// went, and its query only when one was captured (--payload).
std::string CallAttrs(const CallRecord& call) {
  Attrs attrs;
  const std::string& p = call.protocol;
  bool db = p == "mysql" || p == "postgresql" || p == "redis" ||
            p == "memcached";
  std::string op = QueryOperation(call);
  if (db) {
    attrs.Str("db.system", p);
    if (!op.empty()) attrs.Str("db.operation.name", op);
    if (!call.query.empty()) attrs.Str("db.query.text", ValidUtf8(call.query));
  } else if (p == "http") {
    if (!op.empty()) attrs.Str("http.request.method", op);
    size_t space = call.query.find(' ');
    if (space != std::string::npos) {
      size_t end = call.query.find(' ', space + 1);
      std::string path = call.query.substr(
          space + 1, end == std::string::npos ? end : end - space - 1);
      if (!path.empty()) attrs.Str("url.path", ValidUtf8(path));
    }
  } else if (!p.empty()) {
    attrs.Str("reqcost.call.protocol", p);
  }
  const std::string& a = call.address;
  size_t colon = a.rfind(':');
  bool unix_path = a.empty() || a[0] == '/' || a[0] == '@' ||
                   colon == std::string::npos;
  if (unix_path) {
    attrs.Str("network.transport", "unix");
    if (!a.empty()) {
      attrs.Str("server.address", ValidUtf8(a));
      attrs.Str("network.peer.address", ValidUtf8(a));
    }
  } else {
    std::string host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') {
      host = host.substr(1, host.size() - 2);
    }
    int64_t port = 0;
    for (char ch : a.substr(colon + 1)) {
      if (ch < '0' || ch > '9') break;
      port = port * 10 + (ch - '0');
    }
    attrs.Str("network.transport", "tcp");
    attrs.Str("server.address", host);
    attrs.Int("server.port", port);
    attrs.Str("network.peer.address", host);
    attrs.Int("network.peer.port", port);
  }
  attrs.Str("reqcost.call.peer", ValidUtf8(call.peer));
  attrs.Us("reqcost.call.duration_us", call.duration_ns());
  if (call.opens) attrs.Str("reqcost.call.opens", "true");
  if (!call.has_reply) attrs.Str("reqcost.call.reply", "none");
  if (call.tid != 0) attrs.Int("thread.id", call.tid);
  if (call.nested_id.has_value()) {
    attrs.Int("reqcost.call.nested_request", *call.nested_id);
    if (call.transport_ns.has_value()) {
      attrs.Us("reqcost.call.transport_us", *call.transport_ns);
      attrs.Us("reqcost.call.peer_us", *call.peer_ns);
    }
  }
  return attrs.Take();
}

// The calls' CLIENT spans under the request's "backend" span: a call's
// stamps are its own (it ran on the backend's thread inside that phase).
void AppendCallSpans(const SpanSource& s, const SpanIds& ids,
                     SpanWriter* w) {
  for (size_t i = 0; i < s.calls.size(); ++i) {
    const CallRecord& call = s.calls[i];
    w->Span(CallSpanId(ids, i), ids.backend, CallSpanName(call),
            kSpanKindClient, call.start_ns, call.end_ns, CallAttrs(call));
  }
}

}  // namespace

uint64_t CallSpanId(const SpanIds& ids, size_t index) {
  // Mixed from the backend span's id: a bijection of distinct inputs, so
  // two calls never share an id; equal to another of the request's ids
  // with negligible probability (2^-64 per pair).
  return NonZero(Mix(ids.backend ^ Mix(0xca11ULL + index)));
}

std::string CallSpanName(const CallRecord& call) {
  std::string name = call.protocol;
  if (name.empty()) {
    name = !call.address.empty() && call.address[0] != '/' &&
                   call.address[0] != '@' &&
                   call.address.find(':') != std::string::npos
               ? "tcp"
               : "unix";
  }
  std::string op = QueryOperation(call);
  if (!op.empty()) absl::StrAppend(&name, " ", op);
  return name;
}

const std::optional<uint64_t>& SpanSource::PhaseNs(Phase phase) const {
  switch (phase) {
    case Phase::kTotal:
      return total_ns;
    case Phase::kServer:
      return server_ns;
    case Phase::kTransport:
      return transport_ns;
    case Phase::kBackend:
      return backend_ns;
    case Phase::kQueue:
      return queue_ns;
    case Phase::kTls:
      return tls_ns;
  }
  return total_ns;
}

SpanSource SpanSource::From(const Request& r, OtlpResource resource) {
  SpanSource s;
  s.resource = std::move(resource);
  s.request_id = r.id;
  s.request_line = r.request_line;
  s.client_sock = r.client_sock;
  s.client_conn = r.client_conn;
  s.backend_conn = r.backend_conn;
  s.backend_timing = r.backend_timing;
  s.origin = r.origin;
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
  s.exchange_wire = r.exchange_wire;
  s.exchange_seq = r.exchange_seq;
  if (r.origin == RequestOrigin::kBackendSide) {
    s.served_wire = WireTupleOf(r.client_sock, true);
    // The read that began its FastCGI request (an earlier one of the same
    // request held the previous request's tail).
    for (const WireRead& read : r.client_reads) {
      if (read.exit_ns >= r.backend_start_ns) {
        s.served_seq = read.seq;
        break;
      }
    }
  }
  s.calls = r.calls;
  s.nested_in = r.nested_in;
  return s;
}

WireIds WireIds::For(const WireTuple& t, uint32_t seq) {
  auto word = [](const std::array<uint8_t, 16>& a, size_t at) {
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) v |= static_cast<uint64_t>(a[at + i]) << (8 * i);
    return v;
  };
  uint64_t h = Mix(kWireIdKey ^ t.family);
  for (size_t at : {0, 8}) {
    h = Mix(h ^ word(t.client_addr, at));
    h = Mix(h ^ word(t.server_addr, at));
  }
  h = Mix(h ^ (static_cast<uint64_t>(t.client_port) << 48) ^
          (static_cast<uint64_t>(t.server_port) << 32) ^ seq);
  WireIds ids;
  ids.trace_hi = NonZero(Mix(h ^ 1));
  ids.trace_lo = Mix(h ^ 2);
  ids.client = NonZero(Mix(h ^ 3));
  ids.server = NonZero(Mix(h ^ 4));
  return ids;
}

SpanIds SpanIds::For(uint64_t seed, uint64_t request_id) {
  SpanIds ids;
  uint64_t base = Mix(seed ^ Mix(request_id));
  ids.trace_hi = NonZero(Mix(base));
  ids.trace_lo = Mix(base + 1);
  uint64_t* spans[] = {
      &ids.server,  &ids.client,          &ids.transport_request,
      &ids.backend, &ids.transport_reply, &ids.queue};
  uint64_t k = 2;
  for (uint64_t* id : spans) *id = NonZero(Mix(base + k++));
  return ids;
}

std::string Hex64(uint64_t v) { return absl::StrFormat("%016x", v); }

void AppendJsonString(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += '"';
  while (!text.empty()) {
    const char ch = text[0];
    auto c = static_cast<unsigned char>(ch);
    // Well-formed UTF-8 goes as it is; a byte that begins no well-formed
    // sequence is shown as the code point of the same value, so payload
    // bytes stay visible (names are made valid UTF-8 before they get here).
    const size_t n =
        c >= 0x80 ? std::max<size_t>(Utf8SequenceLength(text), 1) : 1;
    if (n > 1) {
      out->append(text.data(), n);
    } else if (c == '"' || c == '\\') {
      *out += '\\';
      *out += ch;
    } else if (c < 0x20 || c >= 0x80) {
      *out += "\\u00";
      *out += kHex[c >> 4];
      *out += kHex[c & 15];
    } else {
      *out += ch;
    }
    text.remove_prefix(n);
  }
  *out += '"';
}

size_t AppendRequestSpans(const SpanSource& s, uint64_t seed, int64_t off,
                          std::string* out) {
  SpanIds ids = SpanIds::For(seed, s.request_id);
  // Across hosts: the front's trace and CLIENT span, and the backend's
  // SERVER span under it, take ids both agents derive on their own.
  uint64_t server_parent = 0;
  if (s.exchange_wire.has_value() && s.exchange_seq.has_value()) {
    const WireIds wire = WireIds::For(*s.exchange_wire, *s.exchange_seq);
    ids.trace_hi = wire.trace_hi;
    ids.trace_lo = wire.trace_lo;
    ids.client = wire.client;
  } else if (s.served_wire.has_value() && s.served_seq.has_value()) {
    const WireIds wire = WireIds::For(*s.served_wire, *s.served_seq);
    ids.trace_hi = wire.trace_hi;
    ids.trace_lo = wire.trace_lo;
    ids.server = wire.server;
    server_parent = wire.client;
  }
  if (s.nested_in.has_value()) {
    // The caller's ids, as the caller derives them: its call's CLIENT span
    // is this request's parent.
    SpanIds caller = SpanIds::For(seed, s.nested_in->request_id);
    if (s.nested_in->exchange_wire.has_value() &&
        s.nested_in->exchange_seq.has_value()) {
      const WireIds wire = WireIds::For(*s.nested_in->exchange_wire,
                                        *s.nested_in->exchange_seq);
      caller.trace_hi = wire.trace_hi;
      caller.trace_lo = wire.trace_lo;
    }
    ids.trace_hi = caller.trace_hi;
    ids.trace_lo = caller.trace_lo;
    server_parent = CallSpanId(caller, s.nested_in->call);
  }
  SpanWriter w{ids, off, out};
  std::string name;
  std::string server_attrs = ServerAttrs(s, &name);
  w.Span(ids.server, server_parent, name, kSpanKindServer, s.start_ns,
         s.end_ns, server_attrs);
  if (s.exchange_end_ns == 0) return w.count;  // no backend exchange

  std::string client_name =
      absl::StrCat(s.backend_protocol.empty() ? "backend" : s.backend_protocol,
                   " ", s.backend_address);
  w.Span(ids.client, ids.server, client_name, kSpanKindClient,
         s.exchange_start_ns, s.exchange_end_ns, ClientAttrs(s));
  // The backend phase inside the exchange (it is clamped to it in phases).
  uint64_t b_start =
      std::clamp(s.backend_start_ns, s.exchange_start_ns, s.exchange_end_ns);
  uint64_t b_end = std::clamp(s.backend_end_ns, b_start, s.exchange_end_ns);
  w.Span(ids.transport_request, ids.client, "transport request",
         kSpanKindInternal, s.exchange_start_ns, b_start, "[]");
  Attrs timing;
  timing.Str("reqcost.backend_timing", TimingName(s.backend_timing));
  w.Span(ids.backend, ids.client, "backend", kSpanKindInternal, b_start, b_end,
         timing.Take());
  w.Span(ids.transport_reply, ids.client, "transport reply", kSpanKindInternal,
         b_end, s.exchange_end_ns, "[]");
  if (s.queue_ns.has_value() && s.queue_start_ns != 0) {
    w.Span(ids.queue, ids.transport_request, "queue", kSpanKindInternal,
           s.queue_start_ns, s.queue_start_ns + *s.queue_ns, "[]");
  }
  AppendCallSpans(s, ids, &w);
  return w.count;
}

void OtlpBatch::Add(const SpanSource& s) {
  std::string& out = by_resource_[s.resource];
  if (!out.empty()) out += ',';
  spans_ += AppendRequestSpans(s, seed_, mono_to_wall_ns_, &out);
  ++requests_;
}

std::string OtlpBatch::Take(const std::string& scope_version) {
  std::string doc = "{\"resourceSpans\":[";
  bool first = true;
  for (auto& [resource, spans] : by_resource_) {
    if (!first) doc += ',';
    first = false;
    Attrs attrs;
    auto replaced = [this](std::string_view key) {
      for (const auto& kv : extra_attributes_) {
        if (kv.first == key) return true;
      }
      return false;
    };
    attrs.Str("service.name", ValidUtf8(resource.service_name));
    if (!replaced("host.name")) attrs.Str("host.name", resource.host_name);
    if (!replaced("process.pid")) attrs.Int("process.pid", resource.pid);
    for (const auto& [key, value] : extra_attributes_) {
      if (key != "service.name") attrs.Str(key, value);
    }
    absl::StrAppend(&doc, "{\"resource\":{\"attributes\":", attrs.Take(),
                    "},\"scopeSpans\":[{\"scope\":{\"name\":\"reqcost\","
                    "\"version\":");
    AppendJsonString(scope_version, &doc);
    absl::StrAppend(&doc, "},\"spans\":[", spans, "]}]}");
  }
  doc += "]}";
  by_resource_.clear();
  requests_ = spans_ = 0;
  return doc;
}

}  // namespace reqcost::analyzers
