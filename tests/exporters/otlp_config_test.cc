// The OTEL_* configuration as the OpenTelemetry specification defines it:
// endpoint URLs, the per-signal variables over the generic ones, the flags
// over both, the header and resource attribute lists, timeouts, compression,
// protocol, certificate files and OTEL_SDK_DISABLED. No network.
#include "cli/exporters/otlp_config.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::exporters {
namespace {

using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;

using Env = std::map<std::string, std::string>;

EnvLookup Lookup(const Env& env) {
  return [env](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<OtlpConfig> Resolve(const Env& env, OtlpFlags flags = {}) {
  return ResolveOtlpConfig(flags, Lookup(env));
}

std::string Url(const Env& env, OtlpFlags flags = {}) {
  absl::StatusOr<OtlpConfig> c = Resolve(env, std::move(flags));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? c->traces_url : "error";
}

// The error message of a configuration that must fail with exit code 2.
std::string Error(const Env& env, OtlpFlags flags = {}) {
  absl::StatusOr<OtlpConfig> c = Resolve(env, std::move(flags));
  EXPECT_FALSE(c.ok());
  if (c.ok()) return "";
  EXPECT_THAT(c.status().code(), Eq(absl::StatusCode::kInvalidArgument));
  return std::string(c.status().message());
}

TEST(OtlpConfigTest, NothingSetMeansNoEndpointAndTheDefaults) {
  absl::StatusOr<OtlpConfig> c = Resolve({});
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->traces_url, Eq(""));
  EXPECT_THAT(c->headers, IsEmpty());
  EXPECT_THAT(c->timeout, Eq(absl::Seconds(10)));
  EXPECT_FALSE(c->gzip);
  EXPECT_FALSE(c->sdk_disabled);
  EXPECT_THAT(c->service_name, Eq(""));
}

TEST(OtlpConfigTest, GenericEndpointGetsV1TracesAppended) {
  const char* k = "OTEL_EXPORTER_OTLP_ENDPOINT";
  EXPECT_THAT(Url({{k, "http://collector:4318"}}),
              Eq("http://collector:4318/v1/traces"));
  EXPECT_THAT(Url({{k, "http://collector:4318/"}}),
              Eq("http://collector:4318/v1/traces"));
  // The specification's example 3: a path is kept, the signal path joins it.
  EXPECT_THAT(Url({{k, "http://collector:4318/mycollector/"}}),
              Eq("http://collector:4318/mycollector/v1/traces"));
  EXPECT_THAT(Url({{k, "https://otlp.example.com/otlp"}}),
              Eq("https://otlp.example.com/otlp/v1/traces"));
}

TEST(OtlpConfigTest, TracesEndpointIsUsedAsIsAndWinsOverTheGenericOne) {
  const char* k = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
  EXPECT_THAT(Url({{k, "http://collector:4318/custom/path"}}),
              Eq("http://collector:4318/custom/path"));
  // The specification's example 2: no path is the root path, nothing added.
  EXPECT_THAT(Url({{k, "http://collector:4318"}}),
              Eq("http://collector:4318/"));
  absl::StatusOr<OtlpConfig> c =
      Resolve({{k, "http://traces:4318/in"},
               {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://all:4318"}});
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->traces_url, Eq("http://traces:4318/in"));
  EXPECT_THAT(c->traces_url_source, Eq(k));
}

TEST(OtlpConfigTest, FlagEndpointWinsOverBothVariablesAndGetsV1Traces) {
  OtlpFlags flags;
  flags.endpoint = "http://127.0.0.1:4318";
  absl::StatusOr<OtlpConfig> c =
      Resolve({{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://a:1/x"},
               {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:2"}},
              flags);
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->traces_url, Eq("http://127.0.0.1:4318/v1/traces"));
  EXPECT_THAT(c->traces_url_source, Eq("--otlp-endpoint"));
}

TEST(OtlpConfigTest, EmptyVariablesCountAsUnset) {
  absl::StatusOr<OtlpConfig> c =
      Resolve({{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""},
               {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:2"},
               {"OTEL_EXPORTER_OTLP_TIMEOUT", ""},
               {"OTEL_EXPORTER_OTLP_PROTOCOL", ""}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->traces_url, Eq("http://b:2/v1/traces"));
}

TEST(OtlpConfigTest, BadUrlsNameTheVariable) {
  for (const char* bad :
       {"collector:4318", "ftp://collector", "http://", "not a url"}) {
    EXPECT_THAT(Error({{"OTEL_EXPORTER_OTLP_ENDPOINT", bad}}),
                HasSubstr("OTEL_EXPORTER_OTLP_ENDPOINT="))
        << bad;
  }
  EXPECT_THAT(Error({{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "4318"}}),
              HasSubstr("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=4318 is not"));
  OtlpFlags flags;
  flags.endpoint = "127.0.0.1:4318";
  EXPECT_THAT(Error({}, flags), HasSubstr("--otlp-endpoint"));
}

TEST(OtlpConfigTest, UrlCredentialsAreNotShown) {
  EXPECT_THAT(UrlForDisplay("https://user:s3cret@collector:4318/v1/traces"),
              Eq("https://collector:4318/v1/traces"));
  EXPECT_THAT(Error({{"OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://u:s3cret@h"}}),
              Not(HasSubstr("s3cret")));
}

TEST(OtlpConfigTest, HeaderListsArePercentDecodedAndTrimmed) {
  absl::StatusOr<KeyValues> h = ParseKeyValueList(
      " Authorization = Bearer%20abc%2Cdef ,x-tenant=a%3Db,, empty= ",
      "OTEL_EXPORTER_OTLP_HEADERS", /*headers=*/true);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(*h, ElementsAre(Pair("Authorization", "Bearer abc,def"),
                              Pair("x-tenant", "a=b"), Pair("empty", "")));
}

TEST(OtlpConfigTest, MalformedHeaderListsNameTheVariableNeverTheValue) {
  const char* k = "OTEL_EXPORTER_OTLP_HEADERS";
  std::string e = Error({{k, "Authorization=Bearer%2s3cret"}});
  EXPECT_THAT(e, HasSubstr(k));
  EXPECT_THAT(e, HasSubstr("Authorization"));
  EXPECT_THAT(e, Not(HasSubstr("s3cret")));
  e = Error({{k, "a=b,s3cret"}});  // a bare token: maybe a secret itself
  EXPECT_THAT(e, HasSubstr("entry 2 has no '='"));
  EXPECT_THAT(e, Not(HasSubstr("s3cret")));
  e = Error({{k, "bad name=s3cret"}});
  EXPECT_THAT(e, HasSubstr("invalid key"));
  EXPECT_THAT(e, Not(HasSubstr("s3cret")));
  e = Error({{k, "x=s3cret%0D%0AInjected: 1"}});
  EXPECT_THAT(e, HasSubstr("line break"));
  EXPECT_THAT(e, Not(HasSubstr("s3cret")));
  e = Error({{"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "=s3cret"}});
  EXPECT_THAT(e, HasSubstr("OTEL_EXPORTER_OTLP_TRACES_HEADERS"));
  EXPECT_THAT(e, Not(HasSubstr("s3cret")));
}

TEST(OtlpConfigTest, HeadersCombineInTheSpecificationsOrder) {
  // The per-signal list replaces the generic one as a whole.
  absl::StatusOr<OtlpConfig> c =
      Resolve({{"OTEL_EXPORTER_OTLP_HEADERS", "a=generic,b=generic"},
               {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=traces,c=traces"}});
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->headers,
              ElementsAre(Pair("a", "traces"), Pair("c", "traces")));
  // The flags join the variables' list and win on the same name, whatever
  // its case.
  OtlpFlags flags;
  flags.headers = {"A=flag", "d=flag=with=equals"};
  c = Resolve({{"OTEL_EXPORTER_OTLP_HEADERS", "a=generic,b=generic"}}, flags);
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->headers, ElementsAre(Pair("a", "flag"), Pair("b", "generic"),
                                      Pair("d", "flag=with=equals")));
  flags.headers = {"no-equals-s3cret"};
  std::string e = Error({}, flags);
  EXPECT_THAT(e, HasSubstr("--otlp-header"));
  EXPECT_THAT(e, Not(HasSubstr("s3cret")));
}

TEST(OtlpConfigTest, TimeoutIsMillisecondsPerSignalFirst) {
  absl::StatusOr<OtlpConfig> c =
      Resolve({{"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"}});
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->timeout, Eq(absl::Milliseconds(2500)));
  c = Resolve({{"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"},
               {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700"}});
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->timeout, Eq(absl::Milliseconds(700)));
  // 0 is no limit; a negative value is ignored with a warning.
  c = Resolve({{"OTEL_EXPORTER_OTLP_TIMEOUT", "0"}});
  ASSERT_TRUE(c.ok());
  EXPECT_GT(c->timeout, absl::Hours(24 * 20));
  c = Resolve({{"OTEL_EXPORTER_OTLP_TIMEOUT", "-5"}});
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->timeout, Eq(absl::Seconds(10)));
  EXPECT_THAT(c->warnings, ElementsAre(HasSubstr("is negative")));
  for (const char* bad : {"10s", "1.5", "ten"}) {
    EXPECT_THAT(Error({{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", bad}}),
                HasSubstr("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="))
        << bad;
  }
}

TEST(OtlpConfigTest, CompressionIsGzipOrNone) {
  absl::StatusOr<OtlpConfig> c =
      Resolve({{"OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"}});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->gzip);
  c = Resolve({{"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"},
               {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"}});
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->gzip);
  EXPECT_THAT(Error({{"OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"}}),
              HasSubstr("OTEL_EXPORTER_OTLP_COMPRESSION=zstd is not a "
                        "compression"));
}

TEST(OtlpConfigTest, OnlyHttpJsonIsAccepted) {
  EXPECT_TRUE(Resolve({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"}}).ok());
  EXPECT_TRUE(Resolve({{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP/JSON"},
                       {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}})
                  .ok());
  std::string e = Error({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"}});
  EXPECT_THAT(e, HasSubstr("reqcost sends OTLP as http/json only"));
  EXPECT_THAT(e, HasSubstr("set OTEL_EXPORTER_OTLP_PROTOCOL=http/json"));
  EXPECT_THAT(Error({{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"}}),
              HasSubstr("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc"));
  EXPECT_THAT(Error({{"OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"}}),
              HasSubstr("is not a protocol"));
}

TEST(OtlpConfigTest, CertificateFilesMustBeReadable) {
  absl::StatusOr<OtlpConfig> c = Resolve(
      {{"OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/hostname"},
       {"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "/etc/hostname"},
       {"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/hostname"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->certificate, Eq("/etc/hostname"));
  EXPECT_THAT(c->certificate_source, Eq("OTEL_EXPORTER_OTLP_CERTIFICATE"));
  EXPECT_THAT(c->client_certificate, Eq("/etc/hostname"));
  EXPECT_THAT(c->client_key, Eq("/etc/hostname"));
  EXPECT_THAT(
      Error({{"OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"}}),
      HasSubstr("OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem "
                "cannot be read"));
  EXPECT_THAT(
      Error({{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/nonexistent/k.pem"}}),
      HasSubstr("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY="));
  EXPECT_THAT(Error({{"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/hostname"}}),
              HasSubstr("no client certificate"));
}

TEST(OtlpConfigTest, ServiceNameFlagOverVariableOverResourceAttributes) {
  Env env = {{"OTEL_RESOURCE_ATTRIBUTES",
              "service.name=from-attrs, deployment.environment=prod,"
              "team=web%20ops"}};
  absl::StatusOr<OtlpConfig> c = Resolve(env);
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->service_name, Eq("from-attrs"));
  EXPECT_THAT(c->resource_attributes,
              ElementsAre(Pair("deployment.environment", "prod"),
                          Pair("team", "web ops")));
  env["OTEL_SERVICE_NAME"] = "from-variable";
  c = Resolve(env);
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->service_name, Eq("from-variable"));
  OtlpFlags flags;
  flags.service_name = "from-flag";
  c = Resolve(env, flags);
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(c->service_name, Eq("from-flag"));
  EXPECT_THAT(Error({{"OTEL_RESOURCE_ATTRIBUTES", "a=%zz"}}),
              HasSubstr("OTEL_RESOURCE_ATTRIBUTES"));
}

TEST(OtlpConfigTest, ReportReadsTheResourceButNotTheExporterVariables) {
  OtlpFlags flags;
  flags.live = false;
  absl::StatusOr<OtlpConfig> c =
      Resolve({{"OTEL_SERVICE_NAME", "shop"},
               {"OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"},
               {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}},
              flags);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->service_name, Eq("shop"));
  EXPECT_THAT(c->traces_url, Eq(""));
}

TEST(OtlpConfigTest, SdkDisabledSwitchesOffTheEndpointEvenTheFlags) {
  OtlpFlags flags;
  flags.endpoint = "http://127.0.0.1:4318";
  for (const char* yes : {"true", "TRUE", "True"}) {
    absl::StatusOr<OtlpConfig> c = Resolve({{"OTEL_SDK_DISABLED", yes}}, flags);
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(c->sdk_disabled);
    EXPECT_THAT(c->traces_url, Eq(""));
    EXPECT_THAT(c->traces_url_source, Eq("--otlp-endpoint"));
  }
  for (const char* no : {"false", "1", "yes"}) {
    absl::StatusOr<OtlpConfig> c = Resolve({{"OTEL_SDK_DISABLED", no}}, flags);
    ASSERT_TRUE(c.ok());
    EXPECT_FALSE(c->sdk_disabled) << no;
    EXPECT_THAT(c->traces_url, Not(Eq("")));
    // Only true is true; anything but false is said to be taken as false.
    EXPECT_THAT(c->warnings, SizeIs(std::string(no) == "false" ? 0 : 1));
  }
}

}  // namespace
}  // namespace reqcost::exporters
