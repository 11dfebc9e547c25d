// compare, --group-by and timeline on real processes: nginx in front of php-fpm
// (hello.php over a unix socket), recorded by the reqcost binary with and
// without client keep-alive (ab -k), then compared, grouped and exported as a
// timeline.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "tests/analyzers/trace_nesting.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kRequests = 200;

#define ASSERT_OK_AND_ASSIGN(lhs, expr)            \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

// nginx + php-fpm on a unix socket; each ab run in `runs` (keep-alive or
// not) recorded into `capture` by one `reqcost record`.
class Stack {
 public:
  static absl::StatusOr<Stack> Start(const TempDir& dir) {
    Stack s;
    absl::StatusOr<Server> fpm = StartPhpFpm(dir, {});
    if (!fpm.ok()) return fpm.status();
    s.fpm_.emplace(*std::move(fpm));
    NginxOptions nopts;
    nopts.upstream = s.fpm_->address();
    absl::StatusOr<Server> nginx = StartNginx(dir, nopts);
    if (!nginx.ok()) return nginx.status();
    s.nginx_.emplace(*std::move(nginx));
    return s;
  }

  // One ab run: its path, requests and keep-alive.
  struct Run {
    bool keepalive = false;
    std::string path = "/hello.php";
    int requests = kRequests;
  };

  // Records ab runs (one per element: keep-alive or not) into `capture`;
  // returns the complete requests ab counted.
  absl::StatusOr<int> Record(const TempDir& dir, const std::string& capture,
                             const std::vector<bool>& keepalive_runs) {
    std::vector<Run> runs;
    for (bool keepalive : keepalive_runs) runs.push_back({keepalive});
    return Record(dir, capture, runs, 0);
  }

  // The same with any runs, and a payload prefix of `payload` bytes.
  absl::StatusOr<int> Record(const TempDir& dir, const std::string& capture,
                             const std::vector<Run>& runs, int payload) {
    absl::StatusOr<ReqcostRun> run =
        ReqcostRun::Attach(dir, {"record", "-p", std::to_string(nginx_->pid()),
                                 "-p", std::to_string(fpm_->pid()), "--payload",
                                 std::to_string(payload), "-o", capture});
    if (!run.ok()) return run.status();
    int complete = 0;
    for (const Run& r : runs) {
      const bool keepalive = r.keepalive;
      AbOptions ab;
      ab.url = nginx_->Url(r.path);
      ab.requests = r.requests;
      ab.concurrency = 1;
      ab.keepalive = keepalive;
      absl::StatusOr<AbResult> result = RunAb(ab);
      if (!result.ok()) return result.status();
      if (keepalive && result->keepalive_requests < r.requests - 1) {
        return absl::InternalError(absl::StrCat(
            "ab -k kept only ", result->keepalive_requests, " requests alive"));
      }
      complete += result->complete;
    }
    absl::StatusOr<int> code = run->StopWith(SIGINT);
    if (!code.ok()) return code.status();
    if (*code != 0) {
      return absl::InternalError(
          absl::StrCat("record exited ", *code, ": ", run->err()));
    }
    return complete;
  }

 private:
  std::optional<Server> fpm_;
  std::optional<Server> nginx_;
};

const json* FindSyscall(const json& report, const std::string& name,
                        const std::string& side) {
  for (const json& s : report["syscalls"]) {
    if (s["name"] == name && s["side"] == side) return &s;
  }
  return nullptr;
}

// Calls of `name` on `side` per complete request (0 when never seen).
double PerRequest(const json& report, const std::string& name,
                  const std::string& side) {
  const json* s = FindSyscall(report, name, side);
  double complete = report["requests"]["complete"].get<double>();
  return s == nullptr || complete == 0 ? 0
                                       : (*s)["count"].get<double>() / complete;
}

// Time in `name` on `side` per complete request, in µs (0 when never seen).
double UsPerRequest(const json& report, const std::string& name,
                    const std::string& side) {
  const json* s = FindSyscall(report, name, side);
  return s == nullptr
             ? 0
             : PerRequest(report, name, side) * (*s)["mean_us"].get<double>();
}

// Copies the captures and outputs to $REQCOST_KEEP_DIR when set (for docs).
void Keep(const std::string& path, const std::string& name) {
  const char* keep = std::getenv("REQCOST_KEEP_DIR");
  if (keep == nullptr) return;
  std::string cmd = absl::StrCat("cp '", path, "' '", keep, "/", name, "'");
  if (std::system(cmd.c_str()) != 0)
    std::fprintf(stderr, "could not keep %s\n", name.c_str());
}

TEST(CompareTest, KeepAliveRemovesAcceptAndCloseAndIsExported) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-compare"));
  ASSERT_OK_AND_ASSIGN(stack, Stack::Start(dir));
  std::string a = dir.File("close.cap");
  std::string b = dir.File("keepalive.cap");
  ASSERT_OK_AND_ASSIGN(a_complete, stack.Record(dir, a, {false}));
  ASSERT_OK_AND_ASSIGN(b_complete, stack.Record(dir, b, {true}));
  ASSERT_EQ(a_complete, kRequests);
  ASSERT_EQ(b_complete, kRequests);
  Keep(a, "close.cap");
  Keep(b, "keepalive.cap");

  ASSERT_OK_AND_ASSIGN(cmp,
                       RunReqcost(dir, {"compare", a, b, "--format", "json"}));
  ASSERT_EQ(cmp.code, 0) << cmp.err;
  json c = json::parse(cmp.out);
  SCOPED_TRACE(c["delta"].dump());
  EXPECT_EQ(c["schema"], "reqcost.compare/3");
  EXPECT_EQ(c["a"]["schema"], "reqcost.report/2");
  EXPECT_EQ(c["b"]["schema"], "reqcost.report/2");
  for (const char* phase :
       {"total", "server", "transport", "backend", "queue"}) {
    EXPECT_TRUE(c["delta"].contains(phase)) << phase;
  }
  // "clear" is what the rule says: the interval excludes 0 and the change
  // reaches 2%. (That the interval surrounds its own mean, and that the
  // delta is b - a, hold by construction and are not asserted.)
  EXPECT_EQ(c["threshold_pct"], 2.0);
  for (const char* phase : {"total", "server", "transport", "backend"}) {
    const json& d = c["delta"][phase];
    ASSERT_TRUE(d["ci95_us"].is_array()) << phase;
    const double low = d["ci95_us"][0].get<double>();
    const double high = d["ci95_us"][1].get<double>();
    const bool clear =
        (low > 0 || high < 0) && std::fabs(d["pct"].get<double>()) >= 2.0;
    EXPECT_EQ(d["clear"].get<bool>(), clear) << phase;
  }
  // What the client saw: every complete request has a response time, and
  // the rate is over the time requests ran (c=1: about one in flight).
  for (const char* side : {"a", "b"}) {
    const json& v = c["client"][side];
    EXPECT_EQ(v["response"]["count"], kRequests) << side;
    EXPECT_GT(v["rate_per_s"].get<double>(), 0) << side;
    EXPECT_GT(v["in_flight"].get<double>(), 0) << side;
    EXPECT_LE(v["in_flight"].get<double>(), 1.0 + 1e-9) << side;  // ab -c 1
  }
  // Every request answered in both runs (ab -k's connection is still open
  // at the end: its last request is complete too).
  EXPECT_EQ(c["a"]["requests"]["complete"], kRequests);
  EXPECT_EQ(c["b"]["requests"]["complete"], kRequests);
  double a_accept = PerRequest(c["a"], "accept4", "server");
  double b_accept = PerRequest(c["b"], "accept4", "server");
  double a_close = PerRequest(c["a"], "close", "server");
  double b_close = PerRequest(c["b"], "close", "server");
  double a_server = c["a"]["phases"]["server"]["mean_us"].get<double>();
  double b_server = c["b"]["phases"]["server"]["mean_us"].get<double>();
  std::printf(
      "[ keep-alive ] accept4/request %.3f -> %.3f, close/request (server) "
      "%.3f -> %.3f, server %.1f us -> %.1f us, total %.1f us -> %.1f us "
      "(%+.1f%%)\n",
      a_accept, b_accept, a_close, b_close, a_server, b_server,
      c["a"]["phases"]["total"]["mean_us"].get<double>(),
      c["b"]["phases"]["total"]["mean_us"].get<double>(),
      c["delta"]["total"]["pct"].get<double>());
  EXPECT_NEAR(a_accept, 1.0, 0.05);
  EXPECT_LT(b_accept, 0.1);
  EXPECT_GT(a_close, 0.9);  // the client connection's (and the link's)
  EXPECT_LT(b_close, a_close - 0.5);
  // What keep-alive takes away is asserted above as calls per request: how
  // long they took is two runs' timing, which this VM's drift can flip
  // (CI saw accept4 + close at 18.7 µs per request with keep-alive against
  // 13.0 without), so it is printed, not compared.
  std::printf(
      "[ keep-alive ] accept4 + close per request: %.1f us -> %.1f us\n",
      UsPerRequest(c["a"], "accept4", "server") +
          UsPerRequest(c["a"], "close", "server"),
      UsPerRequest(c["b"], "accept4", "server") +
          UsPerRequest(c["b"], "close", "server"));

  ASSERT_OK_AND_ASSIGN(text, RunReqcost(dir, {"compare", a, b}));
  ASSERT_EQ(text.code, 0) << text.err;
  // The verdict is the line before the closing note on drift.
  std::vector<std::string> lines = absl::StrSplit(text.out, '\n');
  std::string verdict;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (absl::StartsWith(lines[i], "note: ")) verdict = lines[i - 2] + "\n";
  }
  std::printf("[ verdict ] %s", verdict.c_str());
  // Which way the total moved is a comparison of two runs, which this VM's
  // drift can flip: the verdict is checked for its form and for agreeing
  // with its own statistics, never for a direction.
  EXPECT_THAT(verdict, ::testing::AnyOf(
                           ::testing::StartsWith("B saves"),
                           ::testing::StartsWith("B costs"),
                           ::testing::StartsWith("No clear difference (~)")));
  EXPECT_EQ(absl::StartsWith(verdict, "No clear difference"),
            !c["delta"]["total"]["clear"].get<bool>());
  EXPECT_EQ(c["verdict"].get<std::string>() + "\n", verdict);
  EXPECT_THAT(verdict, ::testing::HasSubstr("The client saw"));
  EXPECT_THAT(text.out, ::testing::HasSubstr("what the client saw"));
  EXPECT_THAT(text.out, ::testing::HasSubstr("interleaved runs"));
  Keep(text.out_path, "compare.txt");

  // The timeline of A: a request slice per complete request, nested.
  std::string trace_path = dir.File("trace.json");
  ASSERT_OK_AND_ASSIGN(tl, RunReqcost(dir, {"timeline", a, "-o", trace_path}));
  ASSERT_EQ(tl.code, 0) << tl.err;
  EXPECT_THAT(tl.out, ::testing::HasSubstr("wrote"));
  struct stat st;
  ASSERT_EQ(stat(trace_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_OK_AND_ASSIGN(trace_text, ReadFileToString(trace_path));
  json trace = json::parse(trace_text);
  int complete_slices = 0, backend_slices = 0;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] != "X") continue;
    if (e["cat"] == "request" && e["args"]["complete"] == true)
      ++complete_slices;
    if (e["cat"] == "phase" && e["name"] == "backend") ++backend_slices;
  }
  EXPECT_EQ(complete_slices, kRequests);
  EXPECT_GE(backend_slices, kRequests);
  std::vector<std::string> errors =
      analyzers::test_support::TraceNestingErrors(trace);
  EXPECT_THAT(errors, ::testing::IsEmpty());
  Keep(trace_path, "trace.json");

  // It does not overwrite without --force.
  ASSERT_OK_AND_ASSIGN(again,
                       RunReqcost(dir, {"timeline", a, "-o", trace_path}));
  EXPECT_EQ(again.code, 2);
  EXPECT_THAT(again.err, ::testing::HasSubstr("--force"));
  ASSERT_OK_AND_ASSIGN(
      forced, RunReqcost(dir, {"timeline", a, "-o", trace_path, "--force"}));
  EXPECT_EQ(forced.code, 0) << forced.err;

  // A bad capture: the same exit code as report.
  std::string bad = dir.File("bad.cap");
  ASSERT_TRUE(WriteStringToFile(bad, std::string("REQCOST\0garbage", 15)).ok());
  ASSERT_OK_AND_ASSIGN(bad_cmp, RunReqcost(dir, {"compare", a, bad}));
  ASSERT_OK_AND_ASSIGN(bad_report, RunReqcost(dir, {"report", bad}));
  EXPECT_EQ(bad_cmp.code, 6);
  EXPECT_EQ(bad_cmp.code, bad_report.code);
  EXPECT_EQ(bad_cmp.err, bad_report.err);
}

TEST(CompareTest, GroupByClientConnShowsNewAndReusedOfOneCapture) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-compare"));
  ASSERT_OK_AND_ASSIGN(stack, Stack::Start(dir));
  std::string mixed = dir.File("mixed.cap");
  ASSERT_OK_AND_ASSIGN(complete, stack.Record(dir, mixed, {false, true}));
  ASSERT_EQ(complete, 2 * kRequests);
  Keep(mixed, "mixed.cap");

  ASSERT_OK_AND_ASSIGN(j, RunReqcost(dir, {"report", mixed, "--group-by",
                                           "client-conn", "--format", "json"}));
  ASSERT_EQ(j.code, 0) << j.err;
  json g = json::parse(j.out);
  EXPECT_EQ(g["schema"], "reqcost.compare-groups/3");
  ASSERT_EQ(g["groups"].size(), 2u) << g.dump(2);
  EXPECT_EQ(g["groups"][0]["client_conn"], "new");
  EXPECT_EQ(g["groups"][1]["client_conn"], "reused");
  // ab without -k: 200 new connections; with -k: 1 new, 199 reused.
  EXPECT_EQ(g["groups"][0]["report"]["requests"]["complete"], kRequests + 1);
  EXPECT_EQ(g["groups"][1]["report"]["requests"]["complete"], kRequests - 1);
  EXPECT_LT(PerRequest(g["groups"][1]["report"], "accept4", "server"), 0.01);
  EXPECT_NEAR(PerRequest(g["groups"][0]["report"], "accept4", "server"), 1.0,
              0.01);
  ASSERT_EQ(g["comparisons"].size(), 1u);

  ASSERT_OK_AND_ASSIGN(
      t, RunReqcost(dir, {"report", mixed, "--group-by", "client-conn"}));
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_THAT(t.out, ::testing::HasSubstr("client new"));
  EXPECT_THAT(t.out, ::testing::HasSubstr("client reused"));
  Keep(t.out_path, "groups.txt");
  std::printf("%s", t.out.c_str());

  ASSERT_OK_AND_ASSIGN(both, RunReqcost(dir, {"report", mixed, "--group-by",
                                              "client-conn,backend-conn"}));
  EXPECT_EQ(both.code, 0) << both.err;
  ASSERT_OK_AND_ASSIGN(unknown,
                       RunReqcost(dir, {"report", mixed, "--group-by", "pid"}));
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, ::testing::HasSubstr("client-conn"));
  // Recorded without a payload prefix: no request lines, said so.
  ASSERT_OK_AND_ASSIGN(no_url,
                       RunReqcost(dir, {"report", mixed, "--group-by", "url"}));
  EXPECT_EQ(no_url.code, 2);
  EXPECT_THAT(no_url.err, ::testing::HasSubstr("--payload 64"));
}

// The top groups as the code ranks them: largest total time first.
void ExpectByTotalTime(const json& groups) {
  double last = -1;
  for (const json& g : groups) {
    const json& total = g["report"]["phases"]["total"];
    if (g.contains("other") || total["mean_us"].is_null()) continue;
    double t = total["mean_us"].get<double>() * total["count"].get<double>();
    if (last >= 0) {
      EXPECT_LE(t, last * (1 + 1e-9)) << g["label"];
    }
    last = t;
  }
}

TEST(CompareTest, GroupByUrlAndProcessSplitOneCapture) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-compare"));
  ASSERT_OK_AND_ASSIGN(stack, Stack::Start(dir));
  std::string cap = dir.File("urls.cap");
  // Two URLs, with and without a query (which the key leaves out), over
  // kept and new client connections.
  ASSERT_OK_AND_ASSIGN(complete, stack.Record(dir, cap,
                                              {{true, "/hello.php", 60},
                                               {true, "/sleep.php?us=2000", 20},
                                               {false, "/hello.php?x=1", 20}},
                                              64));
  ASSERT_EQ(complete, 100);
  Keep(cap, "urls.cap");

  ASSERT_OK_AND_ASSIGN(j, RunReqcost(dir, {"report", cap, "--group-by", "url",
                                           "--format", "json"}));
  ASSERT_EQ(j.code, 0) << j.err;
  json g = json::parse(j.out);
  EXPECT_EQ(g["schema"], "reqcost.compare-groups/3");
  EXPECT_EQ(g["group_by"], json{"url"});
  std::map<std::string, int> by_url;
  for (const json& group : g["groups"]) {
    // A request reqcost could not complete has no phases, and may have no
    // line (its group is "(no request line)"): only complete ones count.
    int n = group["report"]["requests"]["complete"].get<int>();
    if (n > 0) by_url[group["label"].get<std::string>()] = n;
  }
  EXPECT_THAT(by_url, ::testing::UnorderedElementsAre(
                          ::testing::Pair("/hello.php", 80),
                          ::testing::Pair("/sleep.php", 20)));
  EXPECT_TRUE(g["comparisons"].empty());
  ExpectByTotalTime(g["groups"]);

  // --top 1: the other URL is "other", nothing lost.
  ASSERT_OK_AND_ASSIGN(
      top, RunReqcost(dir, {"report", cap, "--group-by", "url", "--top", "1",
                            "--format", "json"}));
  ASSERT_EQ(top.code, 0) << top.err;
  json t = json::parse(top.out);
  ASSERT_EQ(t["groups"].size(), 2u);
  EXPECT_EQ(t["groups"][1]["label"], "other");
  EXPECT_EQ(t["groups"][1]["other_groups"], 1);
  EXPECT_EQ(t["groups"][0]["report"]["requests"]["complete"].get<int>() +
                t["groups"][1]["report"]["requests"]["complete"].get<int>(),
            100);

  ASSERT_OK_AND_ASSIGN(text,
                       RunReqcost(dir, {"report", cap, "--group-by", "url"}));
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_THAT(text.out, ::testing::HasSubstr("requests by url"));
  EXPECT_THAT(text.out, ::testing::HasSubstr("/sleep.php"));
  std::printf("%s", text.out.c_str());
  Keep(text.out_path, "groups-url.txt");

  // One nginx worker serves them all; php-fpm's two children share them.
  ASSERT_OK_AND_ASSIGN(srv, RunReqcost(dir, {"report", cap, "--group-by",
                                             "process", "--format", "json"}));
  ASSERT_EQ(srv.code, 0) << srv.err;
  json s = json::parse(srv.out);
  EXPECT_EQ(s["group_by"], json{"server_process"});
  ASSERT_EQ(s["groups"].size(), 1u);
  EXPECT_EQ(s["groups"][0]["report"]["requests"]["complete"], 100);
  EXPECT_THAT(s["groups"][0]["label"].get<std::string>(),
              ::testing::StartsWith("nginx "));
  ASSERT_OK_AND_ASSIGN(
      be, RunReqcost(dir, {"report", cap, "--group-by", "backend-process",
                           "--format", "json"}));
  ASSERT_EQ(be.code, 0) << be.err;
  json b = json::parse(be.out);
  int sum = 0;
  for (const json& group : b["groups"]) {
    int n = group["report"]["requests"]["complete"].get<int>();
    // Every complete request here was measured on a php-fpm child.
    if (n > 0) {
      EXPECT_THAT(group["label"].get<std::string>(),
                  ::testing::StartsWith("php-fpm"));
    }
    sum += n;
  }
  EXPECT_EQ(sum, 100);
  ExpectByTotalTime(b["groups"]);
}

}  // namespace
}  // namespace reqcost::testing
