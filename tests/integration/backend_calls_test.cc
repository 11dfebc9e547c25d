// A backend's own calls on real servers: nginx + php-fpm running a page
// (samples/php/calls.php) that calls Redis, MariaDB (unix socket and TCP)
// and an HTTP service with curl. Ground truth is the page's own hrtime()
// around each call, logged per request. Every server is started in a temp
// dir and stopped by its PID; every wait is bounded.
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/html/page_checks.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/profiled_run.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/browser.h"
#include "tests/support/require_bpf.h"
#include "tests/support/otlp_json_check.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

constexpr int kRequests = 50;
constexpr int kRedisCalls = 20;
constexpr int kQueries = 2;
constexpr int kQueryMs = 4;
constexpr int kHttpCalls = 2;
constexpr int kSleepUs = 5000;

// A server of the test's own (redis-server, mariadbd): stopped by PID.
absl::StatusOr<Subprocess> StartServer(const TempDir& dir,
                                       const std::string& name,
                                       const std::vector<std::string>& argv,
                                       const std::string& address) {
  absl::StatusOr<Subprocess> p = Subprocess::Start(
      argv, dir.File(name + ".out"), dir.File(name + ".err"));
  if (!p.ok()) return p.status();
  absl::Status up = WaitForListening(address, absl::Seconds(60), &*p);
  if (!up.ok()) return up;
  return p;
}

absl::StatusOr<Subprocess> StartRedis(const TempDir& dir, int port) {
  return StartServer(dir, "redis",
                     {"/usr/bin/redis-server", "--port", std::to_string(port), "--bind",
                      "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                      dir.path()},
                     absl::StrCat("127.0.0.1:", port));
}

// mariadbd on a copy-free datadir made once per test binary; `port` 0:
// --skip-networking (the unix socket only).
absl::StatusOr<Subprocess> StartMariadb(const TempDir& dir,
                                        const std::string& datadir,
                                        const std::string& socket, int port) {
  std::vector<std::string> argv = {"/usr/sbin/mariadbd",
                                   "--no-defaults",
                                   "--datadir=" + datadir,
                                   "--socket=" + socket,
                                   "--user=root",
                                   "--pid-file=" + dir.File("mariadbd.pid"),
                                   "--log-error=" + dir.File("mariadbd.log"),
                                   "--skip-log-bin",
                                   "--innodb-buffer-pool-size=8M"};
  if (port == 0) {
    argv.push_back("--skip-networking");
  } else {
    argv.push_back("--bind-address=127.0.0.1");
    argv.push_back("--port=" + std::to_string(port));
  }
  return StartServer(dir, "mariadbd", argv,
                     port == 0 ? socket : absl::StrCat("127.0.0.1:", port));
}

class BackendCallsTest : public ::testing::Test {
 protected:
  // mariadb-install-db takes seconds: once for the whole binary.
  static void SetUpTestSuite() {
    absl::StatusOr<TempDir> d = TempDir::Create("reqcost-mariadb");
    if (!d.ok()) return;
    db_dir_ = new TempDir(std::move(*d));
    absl::StatusOr<Subprocess> p = Subprocess::Start(
        {"/usr/bin/mariadb-install-db", "--no-defaults",
         "--datadir=" + db_dir_->File("data"),
         "--auth-root-authentication-method=normal", "--skip-test-db",
         "--user=root"},
        db_dir_->File("install.out"), db_dir_->File("install.err"));
    if (!p.ok()) return;
    absl::StatusOr<int> status = p->WaitForExit(absl::Seconds(120));
    installed_ = status.ok() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  }
  static void TearDownTestSuite() {
    delete db_dir_;
    db_dir_ = nullptr;
  }
  static TempDir* db_dir_;
  static bool installed_;
};
TempDir* BackendCallsTest::db_dir_ = nullptr;
bool BackendCallsTest::installed_ = false;

// The page's own log: one line per request; per peer kind, the calls that
// opened its connection and the others, each as [calls, ns].
struct KindCalls {
  int open_calls = 0;
  double open_ns = 0;
  int calls = 0;
  double ns = 0;
};
using PageCalls = std::map<std::string, KindCalls>;

absl::StatusOr<std::vector<PageCalls>> ReadPageLog(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  std::vector<PageCalls> out;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    json j = json::parse(line);
    PageCalls p;
    for (const auto& [kind, v] : j.items()) {
      p[kind] = {v["open"][0].get<int>(), v["open"][1].get<double>(),
                 v["calls"][0].get<int>(), v["calls"][1].get<double>()};
    }
    out.push_back(p);
  }
  return out;
}

struct Peers {
  std::string redis, mysql, http;  // addresses
};

// Checks each complete request against the page's line for it (in order:
// one client at a time), per peer: the calls made; the time of the calls
// after the connection's opening within max(5%, 50 us + 5 us per call) of
// the page's clock; the opening's calls no longer than the page's clock
// around them (plus that tolerance: the page's clock there also holds the
// client library's setup, a resolver call and socket()); backend own =
// backend - calls.
void ExpectCallsMatchPage(const std::vector<json>& requests,
                          const std::vector<PageCalls>& page,
                          const Peers& peers) {
  std::vector<json> complete;
  for (const json& q : requests) {
    if (q["complete"] == true) complete.push_back(q);
  }
  ASSERT_EQ(complete.size(), page.size());
  std::sort(complete.begin(), complete.end(), [](const json& a, const json& b) {
    return a["start_ns"].get<uint64_t>() < b["start_ns"].get<uint64_t>();
  });
  double worst_error_us = 0;
  int compared = 0, outside = 0;
  for (size_t i = 0; i < complete.size(); ++i) {
    const json& q = complete[i];
    SCOPED_TRACE(absl::StrCat("request ", i, ": ", q.dump().substr(0, 3000)));
    ASSERT_EQ(q["backend_timing"], "measured");
    std::map<std::string, std::vector<double>> seen;  // by kind: durations
    double calls_us = 0;
    for (const json& c : q["calls"]) {
      const std::string address = c["address"];
      std::string kind = address == peers.redis   ? "redis"
                         : address == peers.mysql ? "mysql"
                         : address == peers.http  ? "http"
                                                  : address;
      seen[kind].push_back(c["dur_us"].get<double>());
      calls_us += c["dur_us"].get<double>();
    }
    for (const auto& [kind, truth] : page[i]) {
      const std::vector<double>& d = seen[kind];
      ASSERT_EQ(d.size(), static_cast<size_t>(truth.open_calls + truth.calls))
          << kind;
      double open_us = 0, rest_us = 0;
      for (size_t k = 0; k < d.size(); ++k) {
        (static_cast<int>(k) < truth.open_calls ? open_us : rest_us) += d[k];
      }
      auto tolerance = [](double us, int calls) {
        return std::max(0.05 * us, 50.0 + 5.0 * calls);
      };
      if (truth.calls > 0) {
        const double truth_us = truth.ns / 1000.0;
        const double error = std::abs(rest_us - truth_us);
        worst_error_us = std::max(worst_error_us, error);
        ++compared;
        if (error > tolerance(truth_us, truth.calls)) {
          ++outside;
          std::cout << "request " << i << " " << kind << ": reqcost "
                    << rest_us << " us, page " << truth_us << " us\n";
        }
        // Never the wrong side by more than the page's own overhead: the
        // calls lie inside the page's clock.
        EXPECT_LE(rest_us, truth_us + tolerance(truth_us, truth.calls))
            << kind;
      }
      const double open_truth_us = truth.open_ns / 1000.0;
      EXPECT_LE(open_us, open_truth_us + tolerance(open_truth_us,
                                                   truth.open_calls))
          << kind << " opening: reqcost " << open_us << " us, page "
          << open_truth_us << " us";
    }
    for (const auto& [kind, v] : seen) {
      EXPECT_EQ(page[i].count(kind), 1u) << "unexpected peer " << kind;
    }
    // Sequential calls: their union is their sum.
    EXPECT_NEAR(q["backend_own_us"].get<double>(),
                q["backend_us"].get<double>() - calls_us, 0.01);
  }
  std::cout << "worst per-peer error vs the page's clock: " << worst_error_us
            << " us over " << complete.size() << " requests; " << outside
            << " of " << compared << " outside the tolerance\n";
  // On a machine shared with other builds (load 15 on 2 vCPUs) the page is
  // at times descheduled between its clock and the call: a few requests'
  // clock holds a slice of someone else's time. At most 1 in 20.
  EXPECT_LE(outside * 20, compared);
}

// The page: 20 Redis GETs, MariaDB on its unix socket (no
// networking) with 2 x SELECT SLEEP(0.004), 2 curl fetches of an HTTP
// service, 5 ms of sleep. Without --payload: peers named by port and path;
// with --syscall-times.
TEST_F(BackendCallsTest, RedisMariadbUnixAndCurlMatchThePageClock) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_TRUE(installed_) << "mariadb-install-db failed; see "
                          << (db_dir_ ? db_dir_->File("install.err") : "");
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-calls"));
  ASSERT_OK_AND_ASSIGN(redis_port, FreeTcpPort());
  ASSERT_OK_AND_ASSIGN(redis, StartRedis(dir, redis_port));
  const std::string sock = dir.File("mysqld.sock");
  ASSERT_OK_AND_ASSIGN(mariadb,
                       StartMariadb(dir, db_dir_->File("data"), sock, 0));
  FcgiBackendOptions hopts;
  hopts.listen = "tcp";
  hopts.mode = "http";
  hopts.name = "http-service";
  ASSERT_OK_AND_ASSIGN(http, StartFcgiBackend(dir, hopts));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, {}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));

  const std::string log = dir.File("page.log");
  AbOptions ab;
  ab.url = nginx.Url(absl::StrCat(
      "/calls.php?redis=", redis_port, "&rn=", kRedisCalls, "&my=", sock,
      "&mq=", kQueries, "&ms=", kQueryMs, "&http=http://", http.address(),
      "/x%3Fwork_us%3D200&hn=", kHttpCalls, "&us=", kSleepUs, "&log=", log));
  ab.requests = kRequests;
  // --syscall-times: a call's start is its send's enter. By default a send
  // is seen at its end, and each call is short by the send's own time (a
  // loopback TCP send delivers to the peer inline: 5-8 us here), more than
  // the 5 us per call this test allows.
  ASSERT_OK_AND_ASSIGN(run, ProfileAb(dir, {nginx.pid(), fpm.pid()}, ab,
                                      {"--syscall-times"}));
  EXPECT_EQ(run.ab.complete, kRequests);
  EXPECT_EQ(run.report["requests"]["complete"], kRequests);
  EXPECT_EQ(run.report["anomalies"]["unattributed_exchanges"], 0);
  EXPECT_EQ(run.report["anomalies"]["unattributed_calls"], 0);

  ASSERT_OK_AND_ASSIGN(page, ReadPageLog(log));
  ASSERT_EQ(page.size(), static_cast<size_t>(kRequests));
  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(run.capture));
  ExpectCallsMatchPage(requests, page,
                       {absl::StrCat("127.0.0.1:", redis_port), sock,
                        http.address()});

  // Peers by port and path without payload: MariaDB's socket names it.
  std::vector<std::string> names;
  for (const json& p : run.report["calls"]["peers"]) {
    names.push_back(p["peer"]);
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(
                         "mysql:" + sock,
                         absl::StrCat("tcp:127.0.0.1:", redis_port),
                         "tcp:" + http.address()));
  for (const json& p : run.report["calls"]["peers"]) {
    if (p["peer"] == "mysql:" + sock) {
      EXPECT_DOUBLE_EQ(p["calls_per_request"].get<double>(), 2 + kQueries + 1);
    }
    if (p["peer"] == absl::StrCat("tcp:127.0.0.1:", redis_port)) {
      EXPECT_DOUBLE_EQ(p["calls_per_request"].get<double>(), 1 + kRedisCalls);
    }
  }
  for (Subprocess* s : {&redis, &mariadb}) {
    EXPECT_TRUE(s->Stop(absl::Seconds(20)).ok()) << s->name();
  }
}

// MariaDB over TCP on a free port, with --payload: the peers are named from
// their first bytes (the MariaDB greeting, RESP), the queries' text and the
// Redis command name are kept, and never a Redis argument.
TEST_F(BackendCallsTest, MariadbTcpAndRedisWithPayloadNameTheirQueries) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_TRUE(installed_);
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-calls"));
  ASSERT_OK_AND_ASSIGN(redis_port, FreeTcpPort());
  ASSERT_OK_AND_ASSIGN(redis, StartRedis(dir, redis_port));
  ASSERT_OK_AND_ASSIGN(my_port, FreeTcpPort());
  ASSERT_OK_AND_ASSIGN(mariadb, StartMariadb(dir, db_dir_->File("data"),
                                             dir.File("mysqld.sock"), my_port));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, {}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));

  const std::string log = dir.File("page.log");
  const std::string my = absl::StrCat("127.0.0.1:", my_port);
  AbOptions ab;
  ab.url = nginx.Url(absl::StrCat("/calls.php?redis=", redis_port,
                                  "&rn=5&my=", my, "&mq=", kQueries,
                                  "&ms=", kQueryMs, "&log=", log));
  ab.requests = 20;
  ASSERT_OK_AND_ASSIGN(run, ProfileAb(dir, {nginx.pid(), fpm.pid()}, ab,
                                      {"--payload", "64", "--syscall-times"}));
  EXPECT_EQ(run.report["anomalies"]["unattributed_exchanges"], 0);
  EXPECT_EQ(run.report["anomalies"]["unattributed_calls"], 0);
  ASSERT_OK_AND_ASSIGN(page, ReadPageLog(log));
  ASSERT_EQ(page.size(), 20u);
  ASSERT_OK_AND_ASSIGN(requests, ReplayRequests(run.capture));
  ExpectCallsMatchPage(requests, page,
                       {absl::StrCat("127.0.0.1:", redis_port), my, ""});

  int selects = 0, gets = 0;
  for (const json& q : requests) {
    for (const json& c : q["calls"]) {
      if (c["address"] == my) {
        EXPECT_EQ(c["peer"], "mysql:" + my);
        if (c["query"] == "SELECT SLEEP(0.004)") ++selects;
      } else {
        EXPECT_EQ(c["peer"], absl::StrCat("redis:127.0.0.1:", redis_port));
        if (c["opens"] == true) continue;
        EXPECT_EQ(c["query"], "GET") << c.dump();  // never the key
        ++gets;
      }
    }
  }
  EXPECT_EQ(selects, 20 * kQueries);
  EXPECT_EQ(gets, 20 * 5);
  ASSERT_FALSE(run.report["calls"]["slowest"].empty());
  EXPECT_EQ(run.report["calls"]["slowest"][0]["query"], "SELECT SLEEP(0.004)");

  // --group-by peer of the same capture: both peers, their calls counted
  // once each, the MariaDB call no shorter than the query's sleep.
  ASSERT_OK_AND_ASSIGN(by_peer, RunReqcost(dir, {"report", run.capture,
                                                 "--group-by", "peer",
                                                 "--format", "json"}));
  ASSERT_EQ(by_peer.code, 0) << by_peer.err;
  json groups = json::parse(by_peer.out);
  EXPECT_EQ(groups["schema"], "reqcost.group-by-peer/1");
  uint64_t by_peer_calls = 0;
  for (const json& p : groups["peers"]) {
    by_peer_calls += p["calls"].get<uint64_t>();
    if (p["peer"] == "mysql:" + my) {
      EXPECT_GE(p["calls"].get<int>(), 20 * kQueries);
      EXPECT_GE(p["call_us"]["p99"].get<double>(), kQueryMs * 1000.0 * 0.99);
    }
  }
  uint64_t replayed_calls = 0;
  for (const json& q : requests) {
    if (q["complete"] == true && q.contains("backend_own_us") &&
        !q["backend_own_us"].is_null()) {
      replayed_calls += q["calls"].size();
    }
  }
  EXPECT_EQ(by_peer_calls, replayed_calls);
  EXPECT_EQ(groups["calls"].get<uint64_t>(), replayed_calls);

  // OTLP: a CLIENT span per call under its request's backend span, the
  // parents resolved by the strict checker, the query text sent (--payload).
  const std::string spans_path = dir.File("calls-spans.jsonl");
  ASSERT_OK_AND_ASSIGN(otlp, RunReqcost(dir, {"report", run.capture,
                                              "--otlp-json", spans_path}));
  ASSERT_EQ(otlp.code, 0) << otlp.err;
  ASSERT_OK_AND_ASSIGN(spans_text, ReadFileToString(spans_path));
  OtlpCheck check;
  for (absl::string_view line :
       absl::StrSplit(spans_text, '\n', absl::SkipEmpty())) {
    CheckOtlpJson(std::string(line), &check);
  }
  ASSERT_TRUE(check.ok()) << check.ErrorText();
  std::map<std::string, std::string> name_of;  // span id -> name
  for (const OtlpSpan& s : check.spans) name_of[s.span_id] = s.name;
  int mysql_spans = 0, redis_spans = 0;
  for (const OtlpSpan& s : check.spans) {
    auto system = s.attributes.find("db.system");
    if (system == s.attributes.end()) continue;
    EXPECT_EQ(s.kind, 3);  // CLIENT
    EXPECT_EQ(name_of[s.parent_span_id], "backend");
    if (system->second["stringValue"] == "mysql" &&
        s.name == "mysql SELECT") {
      ++mysql_spans;
      EXPECT_EQ(s.attributes.at("db.query.text")["stringValue"],
                "SELECT SLEEP(0.004)");
      EXPECT_EQ(s.attributes.at("server.port")["intValue"],
                absl::StrCat(my_port));
    }
    if (system->second["stringValue"] == "redis" && s.name == "redis GET") {
      ++redis_spans;
    }
  }
  EXPECT_EQ(mysql_spans, 20 * kQueries);
  EXPECT_EQ(redis_spans, 20 * 5);

  // compare of the capture with itself: the calls block is there, each
  // peer seen on both sides with a zero delta.
  ASSERT_OK_AND_ASSIGN(cmp, RunReqcost(dir, {"compare", run.capture,
                                             run.capture, "--format", "json"}));
  ASSERT_EQ(cmp.code, 0) << cmp.err;
  json compared = json::parse(cmp.out);
  ASSERT_EQ(compared["calls"]["peers"].size(), 2u) << compared["calls"].dump();
  for (const json& p : compared["calls"]["peers"]) {
    EXPECT_EQ(p["a_seen"], true);
    EXPECT_EQ(p["b_seen"], true);
    EXPECT_NEAR(p["delta"]["mean_us"].get<double>(), 0.0, 1e-6);
  }
  EXPECT_NEAR(compared["calls"]["backend_own"]["mean_us"].get<double>(), 0.0,
              1e-6);

  // The --html page of the capture in Chromium: each slowest request's
  // calls as bars inside its backend bar, a calls table row per peer, the
  // query among the slowest queries.
  const std::string html = dir.File("calls.html");
  ASSERT_OK_AND_ASSIGN(
      page_run, RunReqcost(dir, {"report", run.capture, "--html", html,
                                 "--slowest", "3"}));
  ASSERT_EQ(page_run.code, 0) << page_run.err;
  ASSERT_OK_AND_ASSIGN(page_text, ReadFileToString(html));
  const std::string open = "id=\"reqcost-data\">";
  size_t from = page_text.find(open);
  ASSERT_NE(from, std::string::npos);
  from += open.size();
  json data = json::parse(
      page_text.substr(from, page_text.find("</script>", from) - from));
  ASSERT_EQ(data["slowest"].size(), 3u);
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(dir, html));
  ASSERT_THAT(dom, ::testing::HasSubstr("data-rendered=\"ok\""));
  for (const json& q : data["slowest"]) {
    const std::string svg = SvgOf(dom, absl::StrCat(q["id"].get<uint64_t>()));
    ASSERT_FALSE(svg.empty());
    EXPECT_GT(q["calls"].size(), 5u);  // the GETs at least
    EXPECT_EQ(Count(svg, "<rect class=\"call\""), q["calls"].size());
    EXPECT_EQ(Count(svg, "<rect class=\"call\" data-peer=\"mysql:" + my),
              5u);  // connect + greeting, login, 2 queries, COM_QUIT
  }
  const std::string table = Between(dom, "<table class=\"calls\"", "</table>");
  EXPECT_EQ(Count(table, "<tr data-peer=\"mysql:" + my + "\""), 1u);
  EXPECT_EQ(Count(table, absl::StrCat("<tr data-peer=\"redis:127.0.0.1:",
                                      redis_port, "\"")),
            1u);
  EXPECT_THAT(Between(dom, "<table class=\"slowest-queries\"", "</table>"),
              ::testing::HasSubstr("SELECT SLEEP(0.004)"));
  for (Subprocess* s : {&redis, &mariadb}) {
    EXPECT_TRUE(s->Stop(absl::Seconds(20)).ok()) << s->name();
  }
}

}  // namespace
}  // namespace reqcost::testing
