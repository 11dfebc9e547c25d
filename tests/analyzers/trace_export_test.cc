#include "analyzers/render/trace_export.h"

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analyzers/profiler.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/analyzers/stream_builder.h"
#include "tests/analyzers/trace_nesting.h"

namespace reqcost::analyzers {
namespace {

using ::nlohmann::json;
using ::reqcost::analyzers::test_support::At;
using ::reqcost::analyzers::test_support::OneFastCgiRequest;
using ::reqcost::analyzers::test_support::OneRequestOptions;
using ::reqcost::analyzers::test_support::RunEvents;
using ::reqcost::analyzers::test_support::StreamBuilder;
using ::reqcost::analyzers::test_support::TraceNestingErrors;
using ::reqcost::analyzers::test_support::UnixSock;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr uint32_t kNginx = 100;
constexpr uint32_t kPhp = 200;

const std::vector<ProcessEntry> kProcesses = {{kNginx, "nginx", "server"},
                                              {kPhp, "php-fpm8.2", "backend"}};

// nginx accepts, connects to php-fpm (which works 20 ms), answers, closes.
// `send_exit`: the end of nginx's send to php-fpm.
StreamBuilder MeasuredRequest(double send_exit = 140) {
  OneRequestOptions o;
  o.send_exit = send_exit;
  return OneFastCgiRequest(o);
}

std::vector<Request> Requests(const StreamBuilder& s) {
  Profiler profiler;
  return RunEvents(profiler, s.InExitOrder());
}

struct Slice {
  std::string name, cat;
  double ts, dur;
  int64_t pid, tid;
};

std::vector<Slice> Slices(const json& trace) {
  std::vector<Slice> out;
  // Complete slices, and instants (a call seen at its end only) as 0 long.
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "i") {
      EXPECT_EQ(e["s"], "t") << e.dump();
      out.push_back({e["name"], e["cat"], e["ts"], 0.0, e["pid"], e["tid"]});
      continue;
    }
    if (e["ph"] != "X") continue;
    out.push_back({e["name"], e["cat"], e["ts"], e["dur"], e["pid"], e["tid"]});
  }
  return out;
}

std::string Describe(const Slice& s) {
  return absl::StrFormat("%d/%d %s %s %.0f+%.0f", s.pid, s.tid, s.cat, s.name,
                         s.ts, s.dur);
}

TEST(ChromeTraceTest, RequestPhasesAndSyscallsNestOnTheirThreads) {
  json trace = ChromeTrace(Requests(MeasuredRequest()), kProcesses, At(0));
  EXPECT_THAT(TraceNestingErrors(trace), IsEmpty());
  std::vector<std::string> slices;
  for (const Slice& s : Slices(trace)) slices.push_back(Describe(s));
  EXPECT_THAT(
      slices,
      ElementsAre(
          // nginx: the request [0, 20305], server | transport | server, the
          // backend span inside transport, syscalls under their phase.
          "100/100 request GET /index.php 0+20305",
          "100/100 phase server 0+100", "100/100 syscall accept4 0+10",
          "100/100 syscall read 50+10", "100/100 phase transport 100+20090",
          "100/100 syscall connect 100+10", "100/100 syscall writev 120+20",
          "100/100 phase backend 160+20010",  // the measured span
          "100/100 syscall read 20180+10", "100/100 phase server 20190+115",
          "100/100 syscall close 20210+5", "100/100 syscall writev 20220+20",
          "100/100 syscall close 20300+5",
          // php-fpm: its part of the request, the measured work inside.
          "200/200 request-part GET /index.php 130+20075",
          "200/200 syscall accept 130+0", "200/200 syscall read 150+10",
          "200/200 phase backend 160+20010", "200/200 syscall write 20160+10",
          "200/200 syscall close 20200+5"));
  // Process and thread names.
  std::map<std::string, std::string> names;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] != "thread_sort_index") {
      names[absl::StrCat(e["name"].get<std::string>(), " ",
                         e["tid"].get<int64_t>())] = e["args"]["name"];
    }
  }
  EXPECT_THAT(names["process_name 100"], Eq("nginx 100 (server)"));
  EXPECT_THAT(names["process_name 200"], Eq("php-fpm8.2 200 (backend)"));
  EXPECT_THAT(names["thread_name 100"], Eq("nginx 100"));
}

TEST(ChromeTraceTest, MeasuredBackendSpanOnTheServerThreadIsTheMeasuredOne) {
  std::vector<Request> requests = Requests(MeasuredRequest());
  ASSERT_THAT(requests, SizeIs(1));
  // The request's own backend span (measured: php's read exit to its last
  // write exit) is what the nginx-side "backend" slice shows.
  EXPECT_THAT(requests[0].backend_start_ns, Eq(At(160)));
  json trace = ChromeTrace(requests, kProcesses, At(0));
  std::vector<Slice> backend;
  for (const Slice& s : Slices(trace)) {
    if (s.pid == kNginx && s.name == "backend") backend.push_back(s);
  }
  ASSERT_THAT(backend, SizeIs(1));
  EXPECT_THAT(backend[0].ts, Eq(160.0));
  EXPECT_THAT(backend[0].dur, Eq(20010.0));
}

TEST(ChromeTraceTest, ASendStillRunningWhenTheBackendStartsIsCutThere) {
  // nginx's send ends at 170, after php-fpm's read returned (160).
  json trace = ChromeTrace(Requests(MeasuredRequest(/*send_exit=*/170)),
                           kProcesses, At(0));
  EXPECT_THAT(TraceNestingErrors(trace), IsEmpty());
  std::vector<Slice> sends;
  for (const Slice& s : Slices(trace)) {
    if (s.pid == kNginx && s.name == "writev" && s.ts == 120.0)
      sends.push_back(s);
  }
  ASSERT_THAT(sends, SizeIs(1));
  EXPECT_THAT(sends[0].dur, Eq(40.0));  // [120, 160], not [120, 170]
}

TEST(ChromeTraceTest, OverlappingRequestsOfOneThreadGetExtraTracks) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10)
      .Read(kNginx, 8, 20, 30, 100)
      .Accept(kNginx, 10, 100, 110)
      .Read(kNginx, 10, 120, 130, 100)
      .Write(kNginx, 8, 200, 300, 500)
      .Close(kNginx, 8, 310, 320)
      .Write(kNginx, 10, 330, 400, 500)
      .Close(kNginx, 10, 410, 420)
      .Accept(kNginx, 8, 500, 510)
      .Read(kNginx, 8, 520, 530, 100)
      .Write(kNginx, 8, 540, 550, 500)
      .Close(kNginx, 8, 560, 570);
  json trace = ChromeTrace(Requests(s), kProcesses, At(0));
  EXPECT_THAT(TraceNestingErrors(trace), IsEmpty());
  std::vector<std::string> requests;
  for (const Slice& sl : Slices(trace)) {
    if (sl.cat == "request") requests.push_back(Describe(sl));
  }
  EXPECT_THAT(requests, ElementsAre("100/100 request request #1 0+320",
                                    "100/1000000000 request request #2 100+320",
                                    "100/100 request request #3 500+70"));
  bool named = false;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name" &&
        e["tid"] == 1000000000) {
      named = true;
      EXPECT_THAT(e["args"]["name"], Eq("nginx 100 (overlap 1)"));
    }
  }
  EXPECT_TRUE(named);
}

TEST(ChromeTraceTest, IncompleteRequestHasNoPhases) {
  StreamBuilder s;
  s.Accept(kNginx, 8, 0, 10).Read(kNginx, 8, 50, 60, 100);  // never answered
  json trace = ChromeTrace(Requests(s), kProcesses, At(0));
  EXPECT_THAT(TraceNestingErrors(trace), IsEmpty());
  std::vector<std::string> slices;
  for (const Slice& sl : Slices(trace)) slices.push_back(Describe(sl));
  EXPECT_THAT(slices, ElementsAre("100/100 request request #1 0+60",
                                  "100/100 syscall accept4 0+10",
                                  "100/100 syscall read 50+10"));
  std::vector<json> request_slices;
  for (const json& e : trace["traceEvents"]) {
    if (e["cat"] == "request") request_slices.push_back(e);
  }
  ASSERT_THAT(request_slices, SizeIs(1));
  EXPECT_THAT(request_slices[0]["args"]["complete"], Eq(false));
  EXPECT_THAT(request_slices[0]["args"]["incomplete_reason"],
              Eq("still open at end"));
}

TEST(ChromeTraceTest, RandomInterleavedRequestsAlwaysNest) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<double> gap(1, 400);
  StreamBuilder s;
  constexpr int kN = 60;
  for (int k = 0; k < kN; ++k) {
    // Each request on its own client fd and link, overlapping its
    // neighbours; php-fpm is not traced (inferred backend).
    double t = k * 150.0;
    int32_t fd = 10 + 2 * k;
    s.Accept(kNginx, fd, t, t + gap(rng) / 10);
    t += 50;
    double read_end = t + gap(rng) / 20;
    s.Read(kNginx, fd, t, read_end, 100);
    double c0 = read_end + gap(rng) / 10;
    s.Connect(kNginx, fd + 1, c0, c0 + 5, UnixSock(0x1000 + k, 0x2000 + k));
    double w0 = c0 + 6;
    double w1 = w0 + gap(rng) / 10;
    s.Write(kNginx, fd + 1, w0, w1, 300);
    double r0 = w1 + gap(rng);
    s.Read(kNginx, fd + 1, r0, r0 + 3, 200);
    s.Close(kNginx, fd + 1, r0 + 4, r0 + 6);
    double a0 = r0 + 7 + gap(rng) / 10;
    s.Write(kNginx, fd, a0, a0 + gap(rng) / 10, 500);
    s.Close(kNginx, fd, a0 + 60, a0 + 65);
  }
  std::vector<Request> requests = Requests(s);
  json trace = ChromeTrace(requests, kProcesses, At(0));
  EXPECT_THAT(TraceNestingErrors(trace), IsEmpty());
  int complete = 0;
  for (const Slice& sl : Slices(trace)) {
    if (sl.cat == "request") ++complete;
  }
  EXPECT_THAT(complete, Eq(kN));
}

}  // namespace
}  // namespace reqcost::analyzers
