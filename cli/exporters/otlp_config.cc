#include "cli/exporters/otlp_config.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "collector/status_macros.h"

namespace reqcost::exporters {
namespace {

constexpr char kEndpoint[] = "OTEL_EXPORTER_OTLP_ENDPOINT";
constexpr char kTracesEndpoint[] = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
constexpr char kHeaders[] = "OTEL_EXPORTER_OTLP_HEADERS";
constexpr char kTracesHeaders[] = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
constexpr char kTimeout[] = "OTEL_EXPORTER_OTLP_TIMEOUT";
constexpr char kTracesTimeout[] = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
constexpr char kCompression[] = "OTEL_EXPORTER_OTLP_COMPRESSION";
constexpr char kTracesCompression[] = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
constexpr char kProtocol[] = "OTEL_EXPORTER_OTLP_PROTOCOL";
constexpr char kTracesProtocol[] = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
constexpr char kCertificate[] = "OTEL_EXPORTER_OTLP_CERTIFICATE";
constexpr char kTracesCertificate[] = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE";
constexpr char kClientCertificate[] = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
constexpr char kTracesClientCertificate[] =
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE";
constexpr char kClientKey[] = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
constexpr char kTracesClientKey[] = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY";
constexpr char kServiceName[] = "OTEL_SERVICE_NAME";
constexpr char kResourceAttributes[] = "OTEL_RESOURCE_ATTRIBUTES";
constexpr char kSdkDisabled[] = "OTEL_SDK_DISABLED";

// A timeout of 0 means no limit; "a very long time" stands in for it, as the
// specification allows.
constexpr int64_t kNoLimitMs = 2147483647;

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using CurlUrl = std::unique_ptr<CURLU, CurlUrlDeleter>;

// A set variable (empty counts as unset), with the name it was read from.
struct Setting {
  std::string name;
  std::string value;
  bool set() const { return !name.empty(); }
};

std::optional<std::string> Get(const EnvLookup& env, const char* name) {
  std::optional<std::string> v = env(name);
  if (v.has_value() && v->empty()) return std::nullopt;
  return v;
}

// The traces-specific variable if set, else the generic one.
Setting Pick(const EnvLookup& env, const char* traces, const char* generic) {
  if (std::optional<std::string> v = Get(env, traces)) return {traces, *v};
  if (std::optional<std::string> v = Get(env, generic)) return {generic, *v};
  return {};
}

std::string CurlPart(CURLU* u, CURLUPart part) {
  char* text = nullptr;
  if (curl_url_get(u, part, &text, 0) != CURLUE_OK || text == nullptr) {
    return "";
  }
  std::string out = text;
  curl_free(text);
  return out;
}

// The URL spans go to: `value` as is (a per-signal variable) or with
// v1/traces appended to its path (the generic variable and the flag).
absl::StatusOr<std::string> TracesUrl(const std::string& source,
                                      const std::string& value,
                                      bool append_signal_path) {
  CurlUrl u(curl_url());
  std::string scheme;
  if (u != nullptr &&
      curl_url_set(u.get(), CURLUPART_URL, value.c_str(), 0) == CURLUE_OK) {
    scheme = absl::AsciiStrToLower(CurlPart(u.get(), CURLUPART_SCHEME));
  }
  // The scheme must be written: curl would guess one for "host:4318".
  bool written = absl::StartsWithIgnoreCase(value, "http://") ||
                 absl::StartsWithIgnoreCase(value, "https://");
  if (!written || (scheme != "http" && scheme != "https") ||
      CurlPart(u.get(), CURLUPART_HOST).empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s=%s is not an http:// or https:// URL with a host (e.g. "
        "http://127.0.0.1:4318, the OpenTelemetry Collector's OTLP/HTTP port)",
        source, UrlForDisplay(value)));
  }
  if (append_signal_path) {
    std::string path = CurlPart(u.get(), CURLUPART_PATH);
    if (path.empty() || path.back() != '/') path += '/';
    path += "v1/traces";
    curl_url_set(u.get(), CURLUPART_PATH, path.c_str(), 0);
  }
  std::string url = CurlPart(u.get(), CURLUPART_URL);  // "/" when no path
  if (url.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s=%s is not a URL", source, UrlForDisplay(value)));
  }
  return url;
}

absl::Status CheckReadable(const std::string& variable,
                           const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s=%s cannot be read (%s); it must name a PEM file",
                        variable, path, std::strerror(errno)));
  }
  close(fd);
  return absl::OkStatus();
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(absl::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexDigit(in[i + 1]), lo = HexDigit(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// An HTTP field name: RFC 9110 token characters.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        std::strchr("!#$%&'*+-.^_`|~", c) == nullptr) {
      return false;
    }
  }
  return true;
}

// Joins `more` into `into`: a key already there takes the new value.
void Merge(KeyValues* into, KeyValues more, bool ignore_case) {
  for (auto& [key, value] : more) {
    bool found = false;
    for (auto& [k, v] : *into) {
      if (ignore_case ? absl::EqualsIgnoreCase(k, key) : k == key) {
        v = std::move(value);
        found = true;
        break;
      }
    }
    if (!found) into->emplace_back(std::move(key), std::move(value));
  }
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string UrlForDisplay(const std::string& url) {
  CurlUrl u(curl_url());
  if (u == nullptr ||
      curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    // Not a URL: shown as given, unless it looks like it holds credentials.
    return url.find('@') == std::string::npos ? url : "(a URL with '@')";
  }
  if (CurlPart(u.get(), CURLUPART_USER).empty() &&
      CurlPart(u.get(), CURLUPART_PASSWORD).empty()) {
    return url;
  }
  curl_url_set(u.get(), CURLUPART_USER, nullptr, 0);
  curl_url_set(u.get(), CURLUPART_PASSWORD, nullptr, 0);
  return CurlPart(u.get(), CURLUPART_URL);
}

absl::StatusOr<KeyValues> ParseKeyValueList(absl::string_view text,
                                            absl::string_view what,
                                            bool headers) {
  KeyValues out;
  int index = 0;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    ++index;
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) continue;
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      // The entry may be a bare secret: only its position is named.
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: entry %d has no '=': write key=value pairs separated by "
          "commas, with ',', '=' and spaces in values percent-encoded "
          "(%%2C, %%3D, %%20)",
          what, index));
    }
    std::string key, value;
    absl::string_view raw_key = absl::StripAsciiWhitespace(entry.substr(0, eq));
    absl::string_view raw_value =
        absl::StripAsciiWhitespace(entry.substr(eq + 1));
    if (!PercentDecode(raw_key, &key) || key.empty() ||
        (headers && !IsToken(key))) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: entry %d has %s key; %s", what, index,
          key.empty() ? "an empty" : "an invalid",
          headers ? "a header name is letters, digits and !#$%&'*+-.^_`|~"
                  : "keys are non-empty, percent-encoded"));
    }
    if (!PercentDecode(raw_value, &value)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the value of %s has a '%%' that is not followed by two hex "
          "digits (percent-encode '%%' as %%25)",
          what, key));
    }
    if (headers && value.find_first_of("\r\n", 0) != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the value of header %s holds a line break", what, key));
    }
    if (value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: the value of %s holds a NUL byte", what, key));
    }
    Merge(&out, {{std::move(key), std::move(value)}}, headers);
  }
  return out;
}

absl::StatusOr<OtlpConfig> ResolveOtlpConfig(const OtlpFlags& flags,
                                             const EnvLookup& env) {
  OtlpConfig c;

  // The resource: every span output, attach and report.
  if (std::optional<std::string> v = Get(env, kResourceAttributes)) {
    ASSIGN_OR_RETURN(KeyValues attrs, ParseKeyValueList(*v, kResourceAttributes,
                                                        /*headers=*/false));
    for (auto& [key, value] : attrs) {
      if (key == "service.name") {
        c.service_name = value;
      } else {
        c.resource_attributes.emplace_back(key, value);
      }
    }
  }
  if (std::optional<std::string> v = Get(env, kServiceName)) {
    c.service_name = *v;
  }
  if (!flags.service_name.empty()) c.service_name = flags.service_name;
  if (!flags.live) return c;  // report: the exporter variables do not apply

  if (std::optional<std::string> v = Get(env, kSdkDisabled)) {
    if (absl::EqualsIgnoreCase(*v, "true")) {
      c.sdk_disabled = true;
    } else if (!absl::EqualsIgnoreCase(*v, "false")) {
      c.warnings.push_back(absl::StrFormat(
          "%s=%s is neither true nor false; taken as false", kSdkDisabled, *v));
    }
  }

  Setting protocol = Pick(env, kTracesProtocol, kProtocol);
  if (protocol.set()) {
    std::string p = absl::AsciiStrToLower(protocol.value);
    if (p == "http/protobuf" || p == "grpc") {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s=%s: reqcost sends OTLP as http/json only (every OpenTelemetry "
          "Collector's OTLP/HTTP receiver accepts it); set %s=http/json or "
          "unset it",
          protocol.name, protocol.value, protocol.name));
    }
    if (p != "http/json") {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s=%s is not a protocol: the specification's are grpc, "
          "http/protobuf and http/json, and reqcost sends http/json",
          protocol.name, protocol.value));
    }
  }

  // The endpoint: the flag over the per-signal variable (as is) over the
  // generic one (v1/traces appended).
  if (!flags.endpoint.empty()) {
    ASSIGN_OR_RETURN(c.traces_url,
                     TracesUrl("--otlp-endpoint", flags.endpoint, true));
    c.traces_url_source = "--otlp-endpoint";
  } else if (Setting e = Pick(env, kTracesEndpoint, kEndpoint); e.set()) {
    ASSIGN_OR_RETURN(c.traces_url,
                     TracesUrl(e.name, e.value, e.name == kEndpoint));
    c.traces_url_source = e.name;
  }

  // Headers: the per-signal list replaces the generic one (each option is
  // overridden as a whole); the flags join it, winning on the same key.
  if (Setting h = Pick(env, kTracesHeaders, kHeaders); h.set()) {
    ASSIGN_OR_RETURN(c.headers,
                     ParseKeyValueList(h.value, h.name, /*headers=*/true));
  }
  for (const std::string& flag : flags.headers) {
    size_t eq = flag.find('=');
    std::string key(absl::StripAsciiWhitespace(flag.substr(0, eq)));
    if (eq == std::string::npos || !IsToken(key)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--otlp-header takes NAME=VALUE with NAME an HTTP header name "
          "(e.g. --otlp-header Authorization=\"Bearer ...\")%s",
          eq == std::string::npos ? " and has no '='" : ""));
    }
    std::string value(absl::StripAsciiWhitespace(flag.substr(eq + 1)));
    if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--otlp-header %s: its value holds a line break or NUL", key));
    }
    Merge(&c.headers, {{key, value}}, /*ignore_case=*/true);
  }

  if (Setting t = Pick(env, kTracesTimeout, kTimeout); t.set()) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(t.value, &ms)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s=%s is not a whole number of milliseconds (e.g. 10000 for 10 s)",
          t.name, t.value));
    }
    if (ms < 0) {
      c.warnings.push_back(absl::StrFormat(
          "%s=%s is negative; the default, %d ms, is used", t.name, t.value,
          absl::ToInt64Milliseconds(kDefaultOtlpTimeout)));
    } else {
      c.timeout = absl::Milliseconds(ms == 0 ? kNoLimitMs : ms);
    }
  }

  if (Setting z = Pick(env, kTracesCompression, kCompression); z.set()) {
    std::string v = absl::AsciiStrToLower(z.value);
    if (v == "gzip") {
      c.gzip = true;
    } else if (v != "none") {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s=%s is not a compression reqcost knows: use gzip or none", z.name,
          z.value));
    }
  }

  struct FileSetting {
    const char* traces;
    const char* generic;
    std::string* into;
  };
  Setting client_cert, client_key;
  for (const FileSetting& f :
       {FileSetting{kTracesCertificate, kCertificate, &c.certificate},
        FileSetting{kTracesClientCertificate, kClientCertificate,
                    &c.client_certificate},
        FileSetting{kTracesClientKey, kClientKey, &c.client_key}}) {
    Setting s = Pick(env, f.traces, f.generic);
    if (!s.set()) continue;
    if (absl::Status ok = CheckReadable(s.name, s.value); !ok.ok()) return ok;
    *f.into = s.value;
    if (f.into == &c.certificate) c.certificate_source = s.name;
    if (f.into == &c.client_key) client_key = s;
    if (f.into == &c.client_certificate) client_cert = s;
  }
  if (client_key.set() && !client_cert.set()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is set but no client certificate is: set %s too",
                        client_key.name, kClientCertificate));
  }

  if (c.sdk_disabled) {
    // The kill switch wins over the flag too; traces_url_source still says
    // what was switched off.
    c.traces_url.clear();
  }
  return c;
}

}  // namespace reqcost::exporters
