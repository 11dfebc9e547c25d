// A strict reader of OTLP/JSON trace exports (ExportTraceServiceRequest, as
// the OTLP file exporter and OTLP/HTTP JSON carry it), standing in for an
// OpenTelemetry Collector, which these machines cannot install. It rejects
// what the OTLP JSON encoding forbids: base64 or wrong-length ids, numbers
// where 64-bit integers must be decimal strings, enum names or out-of-range
// kinds, unknown fields, AnyValues with no or two values, parents that are
// not in the same trace.
#ifndef REQCOST_TESTS_SUPPORT_OTLP_JSON_CHECK_H_
#define REQCOST_TESTS_SUPPORT_OTLP_JSON_CHECK_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace reqcost::testing {

struct OtlpSpan {
  std::string trace_id, span_id, parent_span_id, name;
  int kind = 0;
  uint64_t start_unix_nano = 0, end_unix_nano = 0;
  std::map<std::string, nlohmann::json> attributes;  // key -> AnyValue
  std::map<std::string, nlohmann::json> resource;
};

struct OtlpCheck {
  std::vector<std::string> errors;
  std::vector<OtlpSpan> spans;
  bool ok() const { return errors.empty(); }
  std::string ErrorText() const {
    std::string text;
    for (const std::string& e : errors) text += e + "\n";
    return text;
  }
};

namespace otlp_check_internal {

inline bool IsLowerHex(const std::string& s, size_t length) {
  if (s.size() != length) return false;
  bool nonzero = false;
  for (char c : s) {
    bool digit = c >= '0' && c <= '9';
    if (!digit && !(c >= 'a' && c <= 'f')) return false;
    nonzero = nonzero || c != '0';
  }
  return nonzero;  // all-zero ids are invalid
}

inline bool DecimalU64(const nlohmann::json& v, uint64_t* out) {
  if (!v.is_string()) return false;  // int64/fixed64 are strings in OTLP/JSON
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 20) return false;
  uint64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t next = x * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != x) return false;
    x = next;
  }
  *out = x;
  return true;
}

inline void OnlyKeys(const nlohmann::json& obj, std::set<std::string> allowed,
                     const std::string& where,
                     std::vector<std::string>* errors) {
  if (!obj.is_object()) {
    errors->push_back(where + " is not an object");
    return;
  }
  for (const auto& [key, value] : obj.items()) {
    if (allowed.count(key) == 0) {
      errors->push_back(where + " has an unknown field " + key);
    }
  }
}

inline void Attributes(const nlohmann::json& list, const std::string& where,
                       std::map<std::string, nlohmann::json>* out,
                       std::vector<std::string>* errors) {
  if (!list.is_array()) {
    errors->push_back(where + ".attributes is not an array");
    return;
  }
  for (const nlohmann::json& kv : list) {
    OnlyKeys(kv, {"key", "value"}, where + " attribute", errors);
    if (!kv.is_object() || !kv.contains("key") || !kv["key"].is_string() ||
        !kv.contains("value") || !kv["value"].is_object()) {
      errors->push_back(where + ": attribute without a string key and a value");
      continue;
    }
    const std::string key = kv["key"];
    const nlohmann::json& v = kv["value"];
    if (v.size() != 1) {
      errors->push_back(where + "." + key +
                        ": an AnyValue has exactly one field");
      continue;
    }
    uint64_t unused;
    if (v.contains("stringValue")) {
      if (!v["stringValue"].is_string())
        errors->push_back(key + ": stringValue");
    } else if (v.contains("intValue")) {
      const nlohmann::json& i = v["intValue"];
      std::string s = i.is_string() ? i.get<std::string>() : "";
      if (!s.empty() && s[0] == '-') s = s.substr(1);
      if (!DecimalU64(nlohmann::json(s), &unused)) {
        errors->push_back(key + ": intValue must be a decimal string");
      }
    } else if (v.contains("doubleValue")) {
      if (!v["doubleValue"].is_number())
        errors->push_back(key + ": doubleValue");
    } else if (v.contains("boolValue")) {
      if (!v["boolValue"].is_boolean()) errors->push_back(key + ": boolValue");
    } else {
      errors->push_back(key + ": unexpected AnyValue " + v.dump());
    }
    if (out->count(key) != 0) errors->push_back(where + ": duplicate " + key);
    (*out)[key] = v;
  }
}

}  // namespace otlp_check_internal

// Checks one ExportTraceServiceRequest (one line of an OTLP/JSON file, or
// one OTLP/HTTP JSON body) and appends its spans to `check`.
inline void CheckOtlpJson(const std::string& text, OtlpCheck* check) {
  using namespace otlp_check_internal;
  std::vector<std::string>& errors = check->errors;
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    errors.push_back("not JSON: " + text.substr(0, 80));
    return;
  }
  OnlyKeys(doc, {"resourceSpans"}, "ExportTraceServiceRequest", &errors);
  if (!doc.contains("resourceSpans") || !doc["resourceSpans"].is_array()) {
    errors.push_back("resourceSpans missing or not an array");
    return;
  }
  std::map<std::string, std::set<std::string>> spans_of_trace;
  std::vector<OtlpSpan> spans;
  for (const nlohmann::json& rs : doc["resourceSpans"]) {
    OnlyKeys(rs, {"resource", "scopeSpans", "schemaUrl"}, "ResourceSpans",
             &errors);
    std::map<std::string, nlohmann::json> resource;
    if (rs.contains("resource")) {
      OnlyKeys(rs["resource"], {"attributes", "droppedAttributesCount"},
               "Resource", &errors);
      Attributes(rs["resource"].value("attributes", nlohmann::json::array()),
                 "resource", &resource, &errors);
    }
    if (!rs.contains("scopeSpans") || !rs["scopeSpans"].is_array()) {
      errors.push_back("scopeSpans missing");
      continue;
    }
    for (const nlohmann::json& ss : rs["scopeSpans"]) {
      OnlyKeys(ss, {"scope", "spans", "schemaUrl"}, "ScopeSpans", &errors);
      if (!ss.contains("spans") || !ss["spans"].is_array()) {
        errors.push_back("spans missing");
        continue;
      }
      for (const nlohmann::json& s : ss["spans"]) {
        OnlyKeys(s,
                 {"traceId", "spanId", "parentSpanId", "name", "kind",
                  "startTimeUnixNano", "endTimeUnixNano", "attributes",
                  "status", "traceState", "flags", "events", "links",
                  "droppedAttributesCount"},
                 "Span", &errors);
        OtlpSpan span;
        span.resource = resource;
        span.name = s.value("name", "");
        if (span.name.empty()) errors.push_back("a span has no name");
        span.trace_id = s.value("traceId", "");
        span.span_id = s.value("spanId", "");
        span.parent_span_id = s.value("parentSpanId", "");
        if (!IsLowerHex(span.trace_id, 32)) {
          errors.push_back(span.name +
                           ": traceId not 32 hex digits: " + span.trace_id);
        }
        if (!IsLowerHex(span.span_id, 16)) {
          errors.push_back(span.name +
                           ": spanId not 16 hex digits: " + span.span_id);
        }
        if (s.contains("parentSpanId") &&
            !IsLowerHex(span.parent_span_id, 16)) {
          errors.push_back(span.name + ": parentSpanId not 16 hex digits");
        }
        if (!s.contains("kind") || !s["kind"].is_number_integer() ||
            s["kind"].get<int>() < 1 || s["kind"].get<int>() > 5) {
          errors.push_back(span.name + ": kind must be an integer 1..5");
        } else {
          span.kind = s["kind"];
        }
        if (!s.contains("startTimeUnixNano") ||
            !DecimalU64(s["startTimeUnixNano"], &span.start_unix_nano) ||
            !s.contains("endTimeUnixNano") ||
            !DecimalU64(s["endTimeUnixNano"], &span.end_unix_nano)) {
          errors.push_back(span.name + ": times must be decimal strings");
        } else if (span.end_unix_nano < span.start_unix_nano) {
          errors.push_back(span.name + ": ends before it starts");
        }
        if (s.contains("attributes")) {
          Attributes(s["attributes"], span.name, &span.attributes, &errors);
        }
        if (!spans_of_trace[span.trace_id].insert(span.span_id).second) {
          errors.push_back(span.name + ": duplicate span id in its trace");
        }
        spans.push_back(std::move(span));
      }
    }
  }
  for (const OtlpSpan& span : spans) {
    if (!span.parent_span_id.empty() &&
        spans_of_trace[span.trace_id].count(span.parent_span_id) == 0) {
      errors.push_back(span.name + ": parent " + span.parent_span_id +
                       " is not a span of its trace");
    }
  }
  for (OtlpSpan& span : spans) check->spans.push_back(std::move(span));
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_SUPPORT_OTLP_JSON_CHECK_H_
