// A traced peer is a request of its own, nested: nginx + php-fpm whose page
// (samples/php/nested_calls.php) fetches, with curl on one kept connection,
// a page of a second nginx + php-fpm on another port; all four are traced
// by one reqcost attach. Ground truth is the page's own hrtime() around
// each curl_exec, logged per request. Every server is started in a temp dir
// and stopped by its PID; every wait is bounded.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/profiled_run.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/otlp_json_check.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kRequests = 60;
constexpr int kFetches = 2;
constexpr int kInnerSleepUs = 300;

// The tolerance for a call's time against the page's clock.
double Tolerance(double us, int calls) {
  return std::max(0.05 * us, 50.0 + 5.0 * calls);
}

TEST(NestedCallsIntegrationTest, CurlToATracedNginxNestsItsRequests) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-nested"));
  ASSERT_OK_AND_ASSIGN(inner_dir, TempDir::Create("reqcost-nested-inner"));
  ASSERT_OK_AND_ASSIGN(inner_fpm, StartPhpFpm(inner_dir, {}));
  NginxOptions inner_opts;
  inner_opts.upstream = inner_fpm.address();
  ASSERT_OK_AND_ASSIGN(inner_nginx, StartNginx(inner_dir, inner_opts));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, {}));
  NginxOptions opts;
  opts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, opts));

  const std::string log = dir.File("page.log");
  const std::string inner_address =
      absl::StrCat("127.0.0.1:", inner_nginx.port());
  AbOptions ab;
  ab.url = nginx.Url(absl::StrCat("/nested_calls.php?url=http://",
                                  inner_address, "/sleep.php%3Fus%3D",
                                  kInnerSleepUs, "&n=", kFetches,
                                  "&log=", log));
  ab.requests = kRequests;
  // --syscall-times: a call starts at its send's enter (see
  // backend_calls_test.cc).
  ASSERT_OK_AND_ASSIGN(
      run, ProfileAb(dir,
                     {nginx.pid(), fpm.pid(), inner_nginx.pid(),
                      inner_fpm.pid()},
                     ab, {"--syscall-times"}));
  EXPECT_EQ(run.ab.complete, kRequests);
  EXPECT_EQ(run.ab.non_2xx, 0);
  // The inner requests are requests of their own, counted once each.
  EXPECT_EQ(run.report["requests"]["count"], kRequests * (1 + kFetches));
  EXPECT_EQ(run.report["requests"]["complete"], kRequests * (1 + kFetches));
  EXPECT_EQ(run.report["anomalies"]["unattributed_exchanges"], 0);
  EXPECT_EQ(run.report["anomalies"]["unattributed_calls"], 0);

  // The page's clock: one line per request, in order (one client at a time).
  ASSERT_OK_AND_ASSIGN(page_text, ReadFileToString(log));
  std::vector<std::vector<std::vector<double>>> page;
  for (absl::string_view line :
       absl::StrSplit(page_text, '\n', absl::SkipEmpty())) {
    page.push_back(
        json::parse(line).get<std::vector<std::vector<double>>>());
  }
  ASSERT_EQ(page.size(), static_cast<size_t>(kRequests));

  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(run.capture));
  std::vector<json> outer;
  std::map<uint64_t, json> inner;  // by id
  for (const json& q : requests) {
    if (q.contains("nested_in")) {
      inner[q["id"].get<uint64_t>()] = q;
    } else {
      outer.push_back(q);
    }
  }
  ASSERT_EQ(outer.size(), static_cast<size_t>(kRequests));
  ASSERT_EQ(inner.size(), static_cast<size_t>(kRequests * kFetches));
  std::sort(outer.begin(), outer.end(), [](const json& a, const json& b) {
    return a["start_ns"].get<uint64_t>() < b["start_ns"].get<uint64_t>();
  });
  std::set<uint64_t> nested_ids;
  int compared = 0, outside = 0, outside_page = 0, capped = 0;
  double worst_us = 0;
  for (size_t i = 0; i < outer.size(); ++i) {
    const json& q = outer[i];
    SCOPED_TRACE(absl::StrCat("request ", i, ": ", q.dump().substr(0, 3000)));
    ASSERT_EQ(q["complete"], true);
    // Per fetch: its calls (the first fetch's connect is a call of its
    // own, served by no request of the peer's).
    std::vector<std::vector<json>> fetches;
    for (const json& c : q["calls"]) {
      ASSERT_EQ(c["address"], inner_address);
      if (c["opens"] == true) {
        EXPECT_FALSE(c.contains("nested"));
        fetches.push_back({c});
        continue;
      }
      ASSERT_TRUE(c.contains("nested")) << c.dump();
      if (fetches.empty() || fetches.back().back()["opens"] != true) {
        fetches.push_back({});
      }
      fetches.back().push_back(c);
      const json& n = c["nested"];
      const uint64_t id = n["id"].get<uint64_t>();
      EXPECT_TRUE(nested_ids.insert(id).second) << "nested twice: " << id;
      ASSERT_EQ(inner.count(id), 1u) << id;
      const json& r = inner[id];
      EXPECT_EQ(r["complete"], true);
      EXPECT_EQ(r["nested_in"]["request"], q["id"]);
      // Exact by construction: transport + the peer's time = the call.
      EXPECT_NEAR(n["transport_us"].get<double>() + n["peer_us"].get<double>(),
                  c["dur_us"].get<double>(), 1e-6);
      if (n["capped"] == true) {
        ++capped;
        EXPECT_DOUBLE_EQ(n["peer_us"].get<double>(),
                         c["dur_us"].get<double>());
      } else {
        EXPECT_DOUBLE_EQ(n["peer_us"].get<double>(),
                         r["total_us"].get<double>());
      }
      // The peer's own breakdown is the nested request's.
      EXPECT_EQ(n["phases"]["backend_us"], r["backend_us"]);
      EXPECT_GE(r["backend_us"].get<double>(), kInnerSleepUs);
    }
    ASSERT_EQ(fetches.size(), static_cast<size_t>(kFetches));
    for (int k = 0; k < kFetches; ++k) {
      double us = 0;
      for (const json& c : fetches[k]) us += c["dur_us"].get<double>();
      // The page's clock around curl_exec, and curl's own time before the
      // transfer (CURLINFO_PRETRANSFER_TIME_T: its setup, the reuse check,
      // and for HTTP the request's send) inside it.
      const double page_us = page[i][k][0] / 1000.0;
      const double pre_us = page[i][k][1];
      const int calls = static_cast<int>(fetches[k].size());
      const double tolerance = Tolerance(page_us, calls);
      // The calls lie inside the page's clock.
      EXPECT_LE(us, page_us + tolerance) << "fetch " << k;
      if (k == 0) continue;  // its clock also holds curl's connect
      ++compared;
      const double error = std::abs(us - page_us);
      worst_us = std::max(worst_us, error);
      if (error > tolerance) ++outside_page;
      // The call, which begins at the request's send, lies between the
      // page's clock less curl's pre-transfer time and the page's clock.
      if (us < page_us - pre_us - tolerance || us > page_us + tolerance) {
        ++outside;
        std::cout << "request " << i << " fetch " << k << ": reqcost " << us
                  << " us, page " << page_us << " us, curl pre-transfer "
                  << pre_us << " us\n";
      }
    }
  }
  EXPECT_EQ(nested_ids.size(), static_cast<size_t>(kRequests * kFetches));
  std::cout << "kept-connection fetches: worst error vs the page's clock "
            << worst_us << " us, " << outside_page << " of " << compared
            << " outside max(5%, 50 us + 5 us per call) of it (curl's own "
            << "time is in that clock); " << outside << " outside [page - "
            << "curl pre-transfer, page] +- that tolerance; " << capped
            << " calls capped\n";
  // As in backend_calls_test.cc: on a loaded machine a page can be
  // descheduled between its clock and the call, at most 1 in 20.
  EXPECT_LE(outside * 20, compared);

  // The report: the traced peer's row says transport and peer per call.
  bool nested_row = false;
  for (const json& p : run.report["calls"]["peers"]) {
    if (p["nested"].is_null()) continue;
    nested_row = true;
    EXPECT_EQ(p["nested"]["calls"], kRequests * (kFetches));
    EXPECT_GT(p["nested"]["peer"]["mean_us"].get<double>(), kInnerSleepUs);
  }
  EXPECT_TRUE(nested_row) << run.report["calls"].dump();
  ASSERT_OK_AND_ASSIGN(text, RunReqcost(dir, {"report", run.capture}));
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_THAT(text.out, ::testing::HasSubstr("transport, per call"));
  const size_t block = text.out.find("backend calls");
  if (block != std::string::npos) {
    std::cout << text.out.substr(block, text.out.find("\n\n", block) - block)
              << "\n";
  }

  // OTLP: each inner request's SERVER span is the child of its call's
  // CLIENT span, in the outer request's trace.
  const std::string spans_path = dir.File("nested-spans.jsonl");
  ASSERT_OK_AND_ASSIGN(otlp, RunReqcost(dir, {"report", run.capture,
                                              "--otlp-json", spans_path}));
  ASSERT_EQ(otlp.code, 0) << otlp.err;
  ASSERT_OK_AND_ASSIGN(spans_text, ReadFileToString(spans_path));
  OtlpCheck check;
  for (absl::string_view line :
       absl::StrSplit(spans_text, '\n', absl::SkipEmpty())) {
    OtlpCheck one;
    CheckOtlpJson(std::string(line), &one);
    // A parent in another batch (line) is resolved over all lines below.
    for (const std::string& e : one.errors) {
      if (e.find("is not a span of its trace") == std::string::npos) {
        check.errors.push_back(e);
      }
    }
    for (OtlpSpan& s : one.spans) check.spans.push_back(std::move(s));
  }
  ASSERT_TRUE(check.ok()) << check.ErrorText();
  std::map<std::pair<std::string, std::string>, const OtlpSpan*> by_id;
  for (const OtlpSpan& s : check.spans) by_id[{s.trace_id, s.span_id}] = &s;
  int nested_servers = 0;
  for (const OtlpSpan& s : check.spans) {
    if (!s.parent_span_id.empty()) {
      EXPECT_EQ(by_id.count({s.trace_id, s.parent_span_id}), 1u) << s.name;
    }
    if (s.kind != 2 || s.parent_span_id.empty()) continue;  // SERVER
    auto parent = by_id.find({s.trace_id, s.parent_span_id});
    if (parent == by_id.end()) continue;
    EXPECT_EQ(parent->second->kind, 3);  // CLIENT
    EXPECT_EQ(parent->second->attributes.count("reqcost.call.nested_request"),
              1u);
    ++nested_servers;
  }
  EXPECT_EQ(nested_servers, kRequests * kFetches);
}

}  // namespace
}  // namespace reqcost::testing
