// The OpenTelemetry exporter configuration reqcost reads, as every
// OpenTelemetry SDK reads it: the OTEL_* environment variables of the
// specification (configuration/sdk-environment-variables.md and
// protocol/exporter.md), with reqcost's flags over them. Pure: the
// environment comes through a lookup function, files are only checked for
// being readable.
//
// Header values are secrets (bearer tokens, API keys): nothing here puts
// one into an error or a warning; errors about a header name its key only.
#ifndef REQCOST_CLI_EXPORTERS_OTLP_CONFIG_H_
#define REQCOST_CLI_EXPORTERS_OTLP_CONFIG_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace reqcost::exporters {

// Ordered key/value pairs; a later duplicate never appears (merged away).
using KeyValues = std::vector<std::pair<std::string, std::string>>;

// The value of an environment variable, or nullopt when it is unset. The
// specification treats an empty value as unset; ResolveOtlpConfig does.
using EnvLookup = std::function<std::optional<std::string>(const char*)>;

// The process environment (getenv).
EnvLookup ProcessEnvironment();

// What the command line says; each set field overrides the environment.
struct OtlpFlags {
  std::string endpoint;              // --otlp-endpoint: gets /v1/traces
  std::vector<std::string> headers;  // --otlp-header K=V, repeatable
  std::string service_name;          // --service-name
  bool live = true;  // attach (reads the OTLP exporter variables) or report
};

// The timeout of one batch's export when no variable sets it (the
// specification's default).
inline constexpr absl::Duration kDefaultOtlpTimeout = absl::Seconds(10);

struct OtlpConfig {
  // OTEL_SDK_DISABLED=true: nothing is sent to a collector.
  bool sdk_disabled = false;
  // The URL spans are POSTed to; "" when no flag or variable names one (or
  // the SDK is disabled).
  std::string traces_url;
  // What set traces_url: "--otlp-endpoint" or the variable's name.
  std::string traces_url_source;
  KeyValues headers;                             // decoded; values are secrets
  absl::Duration timeout = kDefaultOtlpTimeout;  // one batch, all attempts
  bool gzip = false;
  std::string certificate;         // CA bundle (CURLOPT_CAINFO)
  std::string certificate_source;  // the variable that named it
  std::string client_certificate;  // CURLOPT_SSLCERT
  std::string client_key;          // CURLOPT_SSLKEY
  // service.name: --service-name, else OTEL_SERVICE_NAME, else service.name
  // in OTEL_RESOURCE_ATTRIBUTES; "" = the server's comm.
  std::string service_name;
  // OTEL_RESOURCE_ATTRIBUTES without service.name, decoded.
  KeyValues resource_attributes;
  // Values the specification says to ignore with a warning (a negative
  // timeout, a boolean that is neither true nor false), one sentence each.
  std::vector<std::string> warnings;
};

// Reads the variables through `env` and applies `flags` over them. Every
// malformed value is InvalidArgument (exit 2) with a sentence that names the
// variable or flag: a URL that is not http(s), a header or attribute list
// that does not parse, a timeout that is not a number, an unknown
// compression or protocol, http/protobuf or grpc (reqcost sends http/json),
// a certificate or key file that cannot be read.
absl::StatusOr<OtlpConfig> ResolveOtlpConfig(const OtlpFlags& flags,
                                             const EnvLookup& env);

// Parses a W3C-baggage-style list "k1=v1, k2=v2" (whitespace around entries,
// keys and values trimmed; keys and values percent-decoded), as
// OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES are written. A
// later duplicate key replaces the earlier one (keys compared ignoring case
// when `headers`). `what` names the source in errors, which never quote a
// value.
absl::StatusOr<KeyValues> ParseKeyValueList(absl::string_view text,
                                            absl::string_view what,
                                            bool headers);

// `url` (http or https) with its user and password left out: for messages.
std::string UrlForDisplay(const std::string& url);

}  // namespace reqcost::exporters

#endif  // REQCOST_CLI_EXPORTERS_OTLP_CONFIG_H_
