// Faults, bad input and long runs. reqcost keeps working when the
// traced stack changes under it (a worker killed and respawned, nginx
// reloaded, php-fpm spawning children), when the kernel drops events, when
// it is stopped by a signal and when it is fed a bad capture file; and it
// loses nothing silently: every request is complete (and then right) or
// counted as incomplete.
//
// Mis-attribution is caught with two PHP scripts of very different work
// (fast.php sleeps 10 ms, slow.php 40 ms): a complete request that took the
// other script's backend exchange shows a backend time outside its own
// script's range in php-fpm's access log.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "collector/capture_file.h"
#include "tests/integration/bpf_objects.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

#define ASSERT_OK_AND_ASSIGN(lhs, expr)            \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)
#define ASSERT_OK(expr)         \
  do {                          \
    absl::Status s_ = (expr);   \
    ASSERT_TRUE(s_.ok()) << s_; \
  } while (0)

constexpr int kFastUs = 10000;
constexpr int kSlowUs = 40000;

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// <dir>/www with fast.php and slow.php; returns its path.
absl::StatusOr<std::string> WriteDocroot(const TempDir& dir) {
  std::string root = dir.File("www");
  if (mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, "mkdir " + root);
  }
  for (auto [name, us] : {std::pair<const char*, int>{"fast", kFastUs},
                          std::pair<const char*, int>{"slow", kSlowUs}}) {
    std::string php = absl::StrCat(
        "<?php\nusleep(", us, ");\n$body = \"", name,
        "\\n\";\nheader(\"Content-Length: \" . strlen($body));\necho $body;\n");
    absl::Status s =
        WriteStringToFile(absl::StrCat(root, "/", name, ".php"), php);
    if (!s.ok()) return s;
  }
  return root;
}

// ab in a thread, so the test can break things while it runs.
class BackgroundAb {
 public:
  explicit BackgroundAb(AbOptions opts)
      : thread_([this, opts] { result_ = RunAb(opts); }) {}
  ~BackgroundAb() {
    if (thread_.joinable()) thread_.join();
  }
  absl::StatusOr<AbResult> Join() {
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  absl::StatusOr<AbResult> result_ = absl::UnknownError("ab not run");
  std::thread thread_;
};

AbOptions Ab(const Server& nginx, const std::string& path, int requests,
             int concurrency) {
  AbOptions ab;
  ab.url = nginx.Url(path);
  ab.requests = requests;
  ab.concurrency = concurrency;
  ab.timeout = absl::Seconds(120);
  return ab;
}

std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

struct Counts {
  int complete = 0;
  int incomplete = 0;
  int without_backend = 0;  // complete, backend_timing "none"
};

Counts Count(const std::vector<json>& requests) {
  Counts c;
  for (const json& r : requests) {
    if (!r["complete"].get<bool>()) {
      ++c.incomplete;
    } else {
      ++c.complete;
      if (r["backend_timing"] == "none") ++c.without_backend;
    }
  }
  return c;
}

// `reqcost <args>`, bounded; exit code, stdout, stderr.
struct CommandResult {
  int code = -1;
  std::string out, err;
};

CommandResult RunReqcost(const TempDir& dir, std::vector<std::string> args) {
  static int n = 0;
  std::string out = dir.File(absl::StrCat("cmd-", n, ".out"));
  std::string err = dir.File(absl::StrCat("cmd-", n++, ".err"));
  args.insert(args.begin(), REQCOST_BINARY);
  CommandResult r;
  absl::StatusOr<Subprocess> p = Subprocess::Start(args, out, err);
  if (!p.ok()) {
    r.err = std::string(p.status().message());
    return r;
  }
  absl::StatusOr<int> status = p->WaitForExit(absl::Seconds(60));
  if (!status.ok()) {
    p->Stop();
    r.err = "timed out";
    return r;
  }
  r.code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  r.out = ReadFileToString(out).value_or("");
  r.err = ReadFileToString(err).value_or("");
  return r;
}

// The role reqcost gave each PID in the summary of `capture`.
std::map<int, std::string> Roles(const TempDir& dir,
                                 const std::string& capture) {
  std::map<int, std::string> roles;
  CommandResult r = RunReqcost(dir, {"report", capture, "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  if (r.code != 0) return roles;
  const json report = json::parse(r.out);
  for (const json& p : report["capture"]["processes"]) {
    roles[p["pid"].get<int>()] = p["role"].get<std::string>();
  }
  EXPECT_FALSE(roles.empty()) << r.out;
  return roles;
}

// How much longer than php-fpm's own clock a preempted worker may look (see
// ExpectNoMisattribution): fast.php and slow.php differ by 30 ms.
constexpr double kPreemptionSlackUs = 2000;

// Every complete request that reached php-fpm must carry its own script's
// backend time: at least the script's sleep, inside the range php-fpm's own
// clock gave that script (5% slack, and kPreemptionSlackUs above), and per
// script the mean within 5% of php-fpm's mean. A request answered without a
// backend exchange (nginx's 502 for a killed worker) may only happen
// `allowed_without_backend` times.
void ExpectNoMisattribution(const std::vector<json>& requests,
                            const std::vector<PhpFpmAccessEntry>& log,
                            int allowed_without_backend) {
  std::map<std::string, std::vector<double>> own;  // "GET /fast.php" -> µs
  for (const PhpFpmAccessEntry& e : log) {
    own[e.method + " " + e.uri].push_back(e.duration_us);
  }
  std::map<std::string, std::vector<double>> seen;
  int without_backend = 0;
  std::string without_backend_dumps;
  for (const json& r : requests) {
    if (!r["complete"].get<bool>()) continue;
    SCOPED_TRACE(r.dump());
    ASSERT_TRUE(r["request_line"].is_string());
    const std::string line = r["request_line"];
    const int work = line == "GET /fast.php"   ? kFastUs
                     : line == "GET /slow.php" ? kSlowUs
                                               : -1;
    ASSERT_NE(work, -1) << "unexpected request line";
    if (r["backend_timing"] == "none") {
      ++without_backend;
      without_backend_dumps += r.dump() + "\n";
      continue;
    }
    EXPECT_EQ(r["backend_timing"], "measured");
    const double b = r["backend_us"].get<double>();
    EXPECT_GE(b, work * 0.99) << "shorter than the script's own sleep";
    const std::vector<double>& mine = own[line];
    ASSERT_FALSE(mine.empty()) << "php-fpm logged no " << line;
    const auto [lo, hi] = std::minmax_element(mine.begin(), mine.end());
    EXPECT_GE(b, *lo * 0.95)
        << line << " php-fpm's range " << *lo << ".." << *hi;
    // php-fpm stamps a request's end before its last write, so a worker
    // preempted in between (this test loads the machine on purpose) shows
    // up to a few ms more than its own log: kPreemptionSlackUs on top of
    // the 5%. A request given another script's work is off by far more.
    EXPECT_LE(b, *hi * 1.05 + kPreemptionSlackUs)
        << line << " php-fpm's range " << *lo << ".." << *hi;
    seen[line].push_back(b);
  }
  EXPECT_LE(without_backend, allowed_without_backend)
      << "complete without a backend exchange:\n"
      << without_backend_dumps;
  for (const auto& [line, values] : seen) {
    Summary ours = Summarize(values);
    Summary theirs = Summarize(own[line]);
    std::printf(
        "[ faults ] %s: %zu complete, backend mean %.1f us vs php-fpm "
        "%.1f us (%+.2f%%, %zu logged)\n",
        line.c_str(), ours.count, ours.mean, theirs.mean,
        100 * (ours.mean - theirs.mean) / theirs.mean, theirs.count);
    if (values.size() >= 10) {
      EXPECT_NEAR(ours.mean, theirs.mean, theirs.mean * 0.05) << line;
    }
  }
}

// The access-log lines written after `before` lines.
absl::StatusOr<std::vector<PhpFpmAccessEntry>> LogSince(const Server& fpm,
                                                        size_t before) {
  absl::StatusOr<std::vector<PhpFpmAccessEntry>> all =
      ReadPhpFpmAccessLog(fpm.request_log());
  if (!all.ok()) return all.status();
  return std::vector<PhpFpmAccessEntry>(
      all->begin() + std::min(before, all->size()), all->end());
}

// Waits (bounded) until `server` has a worker that is not in `old`.
std::optional<pid_t> WaitForNewWorker(const Server& server,
                                      const std::vector<pid_t>& old,
                                      absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    for (pid_t p : server.WorkerPids()) {
      if (std::find(old.begin(), old.end(), p) == old.end()) return p;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return std::nullopt;
}

// Waits (bounded) until php-fpm logged `n` requests after the first
// `before`: the load reached the backend.
bool WaitForServed(const Server& fpm, size_t before, size_t n,
                   absl::Duration timeout = absl::Seconds(20)) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<std::vector<PhpFpmAccessEntry>> log = LogSince(fpm, before);
    if (log.ok() && log->size() >= n) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

// Waits (bounded) until the file at `path` holds `n` lines.
bool WaitForLines(const std::string& path, size_t n,
                  absl::Duration timeout = absl::Seconds(20)) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    std::string text = ReadFileToString(path).value_or("");
    if (static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) >= n) {
      return true;
    }
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

// ---------------------------------------------------------------------------
// 1. Process life.

TEST(FaultsTest, KilledPhpFpmChildIsRespawnedTracedAndNothingMisattributed) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-faults"));
  ASSERT_OK_AND_ASSIGN(docroot, WriteDocroot(dir));
  PhpFpmOptions fopts;
  fopts.children = 2;
  fopts.pm = "static";
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, fopts));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  nopts.docroot = docroot;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(fpm.request_log()));
  const std::vector<pid_t> children = fpm.WorkerPids();
  ASSERT_EQ(children.size(), 2u);

  const std::string capture = dir.File("kill.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(fpm.pid()), "--requests", "--format",
                     "jsonl", "--payload", "64", "-o", capture}));
  BackgroundAb fast(Ab(nginx, "/fast.php", 300, 1));
  BackgroundAb slow(Ab(nginx, "/slow.php", 100, 2));
  // Both children serving under load before one is killed.
  ASSERT_TRUE(WaitForServed(fpm, before.size(), 30)) << fpm.LogTail();
  const pid_t victim = children[0];
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  std::optional<pid_t> respawned =
      WaitForNewWorker(fpm, children, absl::Seconds(10));
  const uint64_t respawned_ns = MonotonicNs();
  ASSERT_TRUE(respawned.has_value()) << "php-fpm did not respawn " << victim;
  ASSERT_OK_AND_ASSIGN(fast_result, fast.Join());
  ASSERT_OK_AND_ASSIGN(slow_result, slow.Join());
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  std::vector<json> requests = JsonLines(run.out());
  Counts c = Count(requests);
  const int total = fast_result.complete + slow_result.complete;
  const int errors = fast_result.non_2xx + slow_result.non_2xx;
  std::printf(
      "[ faults ] killed %d, respawned %d: %d requests by ab (%d non-2xx), "
      "%zu by reqcost: %d complete (%d without backend), %d incomplete\n",
      victim, *respawned, total, errors, requests.size(), c.complete,
      c.without_backend, c.incomplete);
  // Every request is accounted for, once.
  EXPECT_EQ(static_cast<int>(requests.size()), total);
  // At most the one in flight in the killed child is not a measured success.
  EXPECT_LE(c.incomplete + c.without_backend, 2);
  ASSERT_OK_AND_ASSIGN(log, LogSince(fpm, before.size()));
  ExpectNoMisattribution(requests, log, errors);
  // After the respawn every request is complete and measured.
  int after = 0;
  for (const json& r : requests) {
    if (r["start_ns"].get<uint64_t>() <= respawned_ns) continue;
    ++after;
    EXPECT_TRUE(r["complete"].get<bool>()) << r.dump();
    EXPECT_EQ(r["backend_timing"], "measured") << r.dump();
  }
  EXPECT_GT(after, 50);
  // The new child was followed from its fork: it served requests and was
  // recognised as a backend from its sockets alone.
  int by_new_child = 0;
  for (const PhpFpmAccessEntry& e : log) by_new_child += e.pid == *respawned;
  EXPECT_GT(by_new_child, 10);
  std::map<int, std::string> roles = Roles(dir, capture);
  EXPECT_EQ(roles[*respawned], "backend");
  EXPECT_EQ(roles[children[1]], "backend");
  EXPECT_EQ(roles[nginx.WorkerPids().at(0)], "server");
}

TEST(FaultsTest, NginxReloadUnderLoadTracesNewWorkersAndKeepsRequestsRight) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-faults"));
  ASSERT_OK_AND_ASSIGN(docroot, WriteDocroot(dir));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, {}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  nopts.docroot = docroot;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(fpm.request_log()));
  const std::vector<pid_t> old_workers = nginx.WorkerPids();
  ASSERT_EQ(old_workers.size(), 1u);

  const std::string capture = dir.File("reload.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(fpm.pid()), "--requests", "--format",
                     "jsonl", "--payload", "64", "-o", capture}));
  BackgroundAb fast(Ab(nginx, "/fast.php", 300, 2));
  BackgroundAb slow(Ab(nginx, "/slow.php", 80, 2));
  // The old worker serving under load before the reload.
  ASSERT_TRUE(WaitForServed(fpm, before.size(), 30)) << fpm.LogTail();
  ASSERT_EQ(kill(nginx.pid(), SIGHUP), 0);  // nginx -s reload
  std::optional<pid_t> new_worker =
      WaitForNewWorker(nginx, old_workers, absl::Seconds(10));
  ASSERT_TRUE(new_worker.has_value()) << nginx.LogTail();
  ASSERT_OK_AND_ASSIGN(fast_result, fast.Join());
  ASSERT_OK_AND_ASSIGN(slow_result, slow.Join());
  ASSERT_OK(WaitForGoneOrKill(old_workers, absl::Seconds(10)));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  std::vector<json> requests = JsonLines(run.out());
  Counts c = Count(requests);
  const int total = fast_result.complete + slow_result.complete;
  std::map<int, int> complete_by_worker;
  for (const json& r : requests) {
    if (r["complete"].get<bool>()) ++complete_by_worker[r["pid"].get<int>()];
  }
  std::printf(
      "[ faults ] reload: %d requests by ab, %zu by reqcost: %d complete "
      "(%d by old worker %d, %d by new worker %d), %d incomplete\n",
      total, requests.size(), c.complete, complete_by_worker[old_workers[0]],
      old_workers[0], complete_by_worker[*new_worker], *new_worker,
      c.incomplete);
  EXPECT_EQ(fast_result.non_2xx + slow_result.non_2xx, 0);
  EXPECT_EQ(static_cast<int>(requests.size()), total);
  EXPECT_LE(c.incomplete, 2);
  EXPECT_GT(complete_by_worker[old_workers[0]], 10);
  EXPECT_GT(complete_by_worker[*new_worker], 10);
  ASSERT_OK_AND_ASSIGN(log, LogSince(fpm, before.size()));
  ExpectNoMisattribution(requests, log, 0);
  std::map<int, std::string> roles = Roles(dir, capture);
  EXPECT_EQ(roles[old_workers[0]], "server");
  EXPECT_EQ(roles[*new_worker], "server");
  for (pid_t child : fpm.WorkerPids())
    EXPECT_EQ(roles[child], "backend") << child;
}

// php-fpm with pm = dynamic, one child at start and room for five: started
// here rather than by StartPhpFpm, whose template starts all of them.
class DynamicPhpFpm {
 public:
  static absl::StatusOr<DynamicPhpFpm> Start(const TempDir& dir) {
    DynamicPhpFpm fpm;
    absl::StatusOr<std::string> binary = FindBinary("php-fpm");
    if (!binary.ok()) return binary.status();
    fpm.socket_ = dir.File("dyn-fpm.sock");
    std::string config = dir.File("dyn-fpm.conf");
    absl::StatusOr<std::string> text =
        ReadFileToString(SamplesDir() + "/php-fpm/php-fpm.conf.in");
    if (!text.ok()) return text.status();
    absl::StatusOr<std::string> filled =
        FillTemplate(*text, {{"PREFIX", dir.path()},
                             {"LISTEN", fpm.socket_},
                             {"PM", "dynamic"},
                             {"CHILDREN", "5"},
                             {"MAX_REQUESTS", "0"}});
    if (!filled.ok()) return filled.status();
    std::string start = "pm.start_servers = 5";
    if (filled->find(start) == std::string::npos) {
      return absl::InternalError("template has no " + start);
    }
    absl::Status s = WriteStringToFile(
        config,
        absl::StrReplaceAll(*filled, {{start, "pm.start_servers = 1"}}));
    if (!s.ok()) return s;
    fpm.log_ = dir.File("php-fpm-access.log");
    absl::StatusOr<Subprocess> p =
        Subprocess::Start({*binary, "-F", "-R", "-y", config, "-p", dir.path()},
                          dir.File("dyn-fpm.out"), dir.File("dyn-fpm.err"));
    if (!p.ok()) return p.status();
    fpm.process_ = *std::move(p);
    s = WaitForListening(fpm.socket_, absl::Seconds(10), &fpm.process_);
    if (!s.ok()) return s;
    absl::StatusOr<std::vector<pid_t>> kids =
        WaitForChildren(fpm.process_.pid(), 1, absl::Seconds(10));
    if (!kids.ok()) return kids.status();
    return fpm;
  }
  DynamicPhpFpm(DynamicPhpFpm&&) = default;
  ~DynamicPhpFpm() {
    if (process_.pid() <= 0) return;
    std::vector<pid_t> all = DescendantPids(process_.pid());
    process_.Stop(absl::Seconds(10)).IgnoreError();
    WaitForGoneOrKill(all, absl::Seconds(10)).IgnoreError();
  }
  pid_t pid() const { return process_.pid(); }
  std::string address() const { return "unix:" + socket_; }
  const std::string& request_log() const { return log_; }

 private:
  DynamicPhpFpm() = default;
  Subprocess process_;
  std::string socket_, log_;
};

TEST(FaultsTest, DynamicPhpFpmSpawningUnderLoadLosesNoRequest) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-faults"));
  ASSERT_OK_AND_ASSIGN(docroot, WriteDocroot(dir));
  ASSERT_OK_AND_ASSIGN(fpm, DynamicPhpFpm::Start(dir));
  const std::vector<pid_t> at_start = ChildPids(fpm.pid());
  ASSERT_EQ(at_start.size(), 1u);
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  nopts.docroot = docroot;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(fpm.request_log()));

  const std::string capture = dir.File("dynamic.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(fpm.pid()), "--requests", "--format",
                     "jsonl", "--payload", "64", "-o", capture}));
  ASSERT_OK_AND_ASSIGN(result, RunAb(Ab(nginx, "/slow.php", 200, 4)));
  const std::vector<pid_t> at_end = ChildPids(fpm.pid());
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  std::vector<json> requests = JsonLines(run.out());
  Counts c = Count(requests);
  ASSERT_OK_AND_ASSIGN(all_log, ReadPhpFpmAccessLog(fpm.request_log()));
  std::vector<PhpFpmAccessEntry> log(all_log.begin() + before.size(),
                                     all_log.end());
  std::set<pid_t> serving;
  for (const PhpFpmAccessEntry& e : log) serving.insert(e.pid);
  std::printf(
      "[ faults ] pm dynamic: %zu children at start, %zu at end, %zu served; "
      "%d requests by ab, %d complete, %d incomplete\n",
      at_start.size(), at_end.size(), serving.size(), result.complete,
      c.complete, c.incomplete);
  EXPECT_GE(at_end.size(), 3u) << "php-fpm did not spawn under load";
  EXPECT_EQ(result.non_2xx, 0);
  EXPECT_EQ(static_cast<int>(requests.size()), result.complete);
  EXPECT_EQ(c.complete, result.complete);
  EXPECT_EQ(c.without_backend, 0);
  ExpectNoMisattribution(requests, log, 0);
  std::map<int, std::string> roles = Roles(dir, capture);
  for (pid_t child : serving) {
    EXPECT_EQ(roles[child], "backend") << "child " << child;
  }
  EXPECT_GE(serving.size(), 3u);
}

// ---------------------------------------------------------------------------
// 2. Loss.

// What one run under the 4 KiB ring gave.
struct LossRun {
  int total = 0;   // requests made (ab and the trickles)
  int errors = 0;  // of them, not answered 200
  uint64_t dropped = 0;
  std::vector<json> requests;  // --requests --format jsonl
  std::vector<PhpFpmAccessEntry> log;
  std::map<std::string, int> reasons;  // incomplete requests by reason
  collector::Capture capture;
};

// A 4 KiB ring holds a few dozen records and is drained every 100 ms: a
// steady trickle of slow.php and fast.php (one request per ~150 ms each)
// nearly fits, bursts of fast.php (ab -n 20 -c 2) overflow it. So some
// requests lose events and some do not, and the ones at the edges of each
// loss are the test.
void RunUnderLoss(LossRun* out) {
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-faults"));
  ASSERT_OK_AND_ASSIGN(docroot, WriteDocroot(dir));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, {}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  nopts.docroot = docroot;
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(before, ReadPhpFpmAccessLog(fpm.request_log()));

  const std::string capture = dir.File("loss.cap");
  ASSERT_OK_AND_ASSIGN(
      run,
      ReqcostRun::Attach(
          dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                std::to_string(fpm.pid()), "--requests", "--format", "jsonl",
                "--payload", "64", "--ring-buffer", "4096", "-o", capture}));
  std::atomic<bool> stop{false};
  struct Trickle {
    std::string path;
    int ok = 0, failed = 0;
  };
  std::vector<Trickle> trickles = {{"/slow.php"}, {"/fast.php"}};
  std::vector<std::thread> threads;
  for (Trickle& t : trickles) {
    threads.emplace_back([&stop, &t, &nginx] {
      while (!stop) {
        absl::StatusOr<HttpResponse> r = HttpGet(nginx.Url(t.path));
        (r.ok() && r->status == 200 ? t.ok : t.failed)++;
        absl::SleepFor(absl::Milliseconds(150));
      }
    });
  }
  absl::Status burst_error;
  for (int burst = 0; burst < 8 && burst_error.ok(); ++burst) {
    absl::SleepFor(absl::Milliseconds(700));
    absl::StatusOr<AbResult> r = RunAb(Ab(nginx, "/fast.php", 20, 2));
    if (!r.ok()) {
      burst_error = r.status();
    } else {
      out->total += r->complete;
      out->errors += r->non_2xx;
    }
  }
  absl::SleepFor(absl::Milliseconds(700));
  stop = true;
  for (std::thread& t : threads) t.join();
  ASSERT_OK(burst_error);
  for (const Trickle& t : trickles) {
    out->total += t.ok + t.failed;
    out->errors += t.failed;
  }
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();
  out->requests = JsonLines(run.out());
  ASSERT_OK_AND_ASSIGN(log, LogSince(fpm, before.size()));
  out->log = log;

  // Drops are shown: JSON and text.
  CommandResult as_json =
      RunReqcost(dir, {"report", capture, "--format", "json"});
  ASSERT_EQ(as_json.code, 0) << as_json.err;
  json report = json::parse(as_json.out);
  out->dropped = report["capture"]["dropped_events"].get<uint64_t>();
  EXPECT_GT(out->dropped, 0u) << "a 4 KiB ring buffer did not overflow";
  CommandResult as_text = RunReqcost(dir, {"report", capture});
  ASSERT_EQ(as_text.code, 0) << as_text.err;
  EXPECT_THAT(as_text.out,
              ContainsRegex(absl::StrCat(" ", out->dropped, " dropped")));
  Counts c = Count(out->requests);
  EXPECT_EQ(report["requests"]["complete"].get<int>(), c.complete);
  EXPECT_EQ(report["requests"]["incomplete"].get<int>(), c.incomplete);
  std::printf(
      "[ faults ] 4 KiB ring: %llu events dropped of %llu; %d requests "
      "made, %zu seen: %d complete, %d incomplete\n",
      static_cast<unsigned long long>(out->dropped),
      static_cast<unsigned long long>(
          report["capture"]["events"].get<uint64_t>() + out->dropped),
      out->total, out->requests.size(), c.complete, c.incomplete);

  // Why each was incomplete (the text lines say).
  CommandResult lines = RunReqcost(dir, {"report", capture, "--requests"});
  ASSERT_EQ(lines.code, 0) << lines.err;
  std::istringstream in(lines.out);
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find(": incomplete, ");
    if (at != std::string::npos) ++out->reasons[line.substr(at + 14)];
  }
  for (const auto& [reason, n] : out->reasons) {
    std::printf("[ faults ]   incomplete: %d %s\n", n, reason.c_str());
  }
  absl::StatusOr<collector::Capture> cap = collector::ReadCapture(capture);
  ASSERT_TRUE(cap.ok()) << cap.status();
  out->capture = *std::move(cap);
  std::fflush(stdout);
}

TEST(FaultsTest, SmallestRingBufferDropsAreCountedAndNoRequestIsMisattributed) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  LossRun loss;
  ASSERT_NO_FATAL_FAILURE(RunUnderLoss(&loss));
  Counts c = Count(loss.requests);
  EXPECT_GT(loss.reasons["events dropped"], 0);
  EXPECT_GT(c.incomplete, 0) << "drops but every request complete";
  // Enough to check (as in NoCompleteRequestOverlapsADropWindow, below).
  EXPECT_GE(c.complete, 5) << "too few complete requests to check";
  // No request is invented: the complete ones are at most those made. A
  // request cut by a drop window can show as several incomplete pieces:
  // the events before the window, those after it ("events dropped"), and
  // its backend exchange reported on its own when the drop hid the server
  // side it pairs with ("connection unpaired while events were dropped",
  // "connection opened ... while events were dropped"). So the seen
  // requests may exceed the made ones by the pieces that name a drop (a CI
  // run: 338 seen of 245 made, 89 + 211 + 11 such pieces).
  EXPECT_LE(c.complete, loss.total);
  int drop_pieces = 0;
  for (const auto& [reason, n] : loss.reasons) {
    if (absl::StrContains(reason, "dropped")) drop_pieces += n;
  }
  EXPECT_LE(static_cast<int>(loss.requests.size()),
            loss.total + drop_pieces);
  EXPECT_EQ(loss.errors, 0);
  uint64_t notified = 0;
  for (const collector::DropNotice& d : loss.capture.drops) notified += d.count;
  EXPECT_EQ(notified, loss.dropped)
      << "drop notices do not add up to the counter";
  // Every complete request carries its own script's backend time.
  ExpectNoMisattribution(loss.requests, loss.log, 0);
}

// Profiler contract (analyzers/profiler.h): a request overlapping a drop
// window is incomplete. Each complete request's timeline (its syscalls'
// spans) must lie outside every drop window of the capture. (Before 86c6bd4
// 1-4 complete requests per run overlapped one: the tracer read the drop
// counter only after handing a whole 100 ms batch to the profiler, which
// finalizes a request 20 ms after its last event.)
TEST(FaultsTest, NoCompleteRequestOverlapsADropWindow) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  LossRun loss;
  ASSERT_NO_FATAL_FAILURE(RunUnderLoss(&loss));
  ASSERT_FALSE(loss.capture.drops.empty());
  int overlapping = 0, complete = 0;
  for (const json& r : loss.requests) {
    if (!r["complete"].get<bool>()) continue;
    ++complete;
    const double start = r["start_ns"].get<double>();
    double end = start;
    for (const json& sc : r["syscalls"]) {
      const double dur =
          sc["dur_us"].is_number() ? sc["dur_us"].get<double>() : 0;
      end = std::max(end, start + 1000 * (sc["offset_us"].get<double>() + dur));
    }
    for (const collector::DropNotice& d : loss.capture.drops) {
      if (d.from_ns <= end && d.to_ns >= start) {
        ++overlapping;
        ADD_FAILURE() << "complete request overlaps drop window [" << d.from_ns
                      << ", " << d.to_ns << "] (" << d.count
                      << " lost): " << r.dump();
        break;
      }
    }
  }
  std::printf(
      "[ faults ] %zu drop notices; %d of %d complete requests overlap "
      "one\n",
      loss.capture.drops.size(), overlapping, complete);
  // Enough to check: 28 in an idle run here; a CPU-hog CI run once left 12
  // (1227 of 4943 events dropped), which still checks the contract.
  EXPECT_GE(complete, 5) << "too few complete requests to check";
}

// ---------------------------------------------------------------------------
// 3. Signals.

class FaultsSignalTest : public ::testing::TestWithParam<int> {};

// The test's own child process running reqcost, or -1.
pid_t ReqcostChild() {
  for (pid_t p : ChildPids(getpid())) {
    absl::StatusOr<std::string> comm =
        ReadFileToString(absl::StrCat("/proc/", p, "/comm"));
    if (comm.ok() && *comm == "reqcost\n") return p;
  }
  return -1;
}

// Ids of the BPF programs `pid` holds (from /proc/PID/fdinfo): exactly this
// reqcost's, whatever other reqcost runs on the machine.
std::set<uint32_t> ProgramIdsOf(pid_t pid) {
  std::set<uint32_t> ids;
  const std::string dir = absl::StrCat("/proc/", pid, "/fdinfo");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ids;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::istringstream in(ReadFileToString(dir + "/" + e->d_name).value_or(""));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("prog_id:", 0) == 0)
        ids.insert(std::stoul(line.substr(8)));
    }
  }
  closedir(d);
  return ids;
}

bool ProgramLoaded(uint32_t id) {
  return std::system(
             absl::StrCat("bpftool prog show id ", id, " >/dev/null 2>&1")
                 .c_str()) == 0;
}

// True once none of `ids` is loaded any more (bounded).
bool GoneWithin(const std::set<uint32_t>& ids, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (uint32_t id : ids) {
    while (ProgramLoaded(id)) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  return true;
}

TEST_P(FaultsSignalTest, SignalUnderLoadPrintsJsonWritesCaptureAndDetaches) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-faults"));
  FcgiBackendOptions bopts;
  bopts.workers = 2;
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, bopts));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  const std::string capture = dir.File("signal.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx.pid()),
                                    "-p", std::to_string(backend.pid()),
                                    "--format", "json", "-o", capture}));
  const std::set<uint32_t> programs = ProgramIdsOf(ReqcostChild());
  ASSERT_GE(programs.size(), kDefaultPrograms);
  for (uint32_t id : programs) ASSERT_TRUE(ProgramLoaded(id)) << id;
  BackgroundAb ab(Ab(nginx, "/fcgi/x?work_us=2000", 2000, 2));
  // While ab is still sending: 100 of its 2000 requests served.
  ASSERT_TRUE(WaitForLines(backend.request_log(), 100)) << backend.LogTail();
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(GetParam()));
  ASSERT_EQ(code, 0) << run.err();
  EXPECT_TRUE(GoneWithin(programs, absl::Seconds(5)))
      << "reqcost's programs still loaded after it exited";
  ASSERT_OK_AND_ASSIGN(ab_result, ab.Join());
  EXPECT_EQ(ab_result.complete, 2000);  // the stack ran on, undisturbed

  json live = json::parse(run.out());
  EXPECT_EQ(live["schema"], "reqcost.report/2");
  EXPECT_GT(live["requests"]["complete"].get<int>(), 20);
  EXPECT_LT(live["requests"]["count"].get<int>(), 2000)
      << "the signal came late";
  struct stat st {};
  ASSERT_EQ(stat(capture.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The capture is complete (end record) and replays to the same numbers.
  CommandResult replay =
      RunReqcost(dir, {"report", capture, "--format", "json"});
  ASSERT_EQ(replay.code, 0) << replay.err;
  json replayed = json::parse(replay.out);
  EXPECT_EQ(replayed, live) << "live:\n"
                            << live.dump(2) << "\nreplayed:\n"
                            << replayed.dump(2);
  absl::StatusOr<collector::Capture> cap = collector::ReadCapture(capture);
  ASSERT_TRUE(cap.ok()) << cap.status();
  EXPECT_TRUE(cap->complete);
}

INSTANTIATE_TEST_SUITE_P(IntAndTerm, FaultsSignalTest,
                         ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& info) {
                           return info.param == SIGINT ? "SIGINT" : "SIGTERM";
                         });

// SIGKILL cannot be caught: the kernel still unloads everything (the
// programs and links are held by reqcost's descriptors), and the capture,
// flushed every second, reads up to the last flush and is reported cut
// short (exit 6), never as a complete run.
TEST(FaultsTest, SigkillLeavesNothingLoadedAndACaptureReportedAsCutShort) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-faults"));
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, {}));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  const std::string capture = dir.File("killed.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(nginx.pid()),
                                    "-p", std::to_string(backend.pid()),
                                    "--format", "json", "-o", capture}));
  const std::set<uint32_t> programs = ProgramIdsOf(ReqcostChild());
  ASSERT_GE(programs.size(), kDefaultPrograms);
  ASSERT_OK_AND_ASSIGN(result,
                       RunAb(Ab(nginx, "/fcgi/x?work_us=1000", 200, 2)));
  // At least one flush after ab: the capture holds its events.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto flushed_events = [&] {
    absl::StatusOr<collector::Capture> c =
        collector::ReadCapture(capture, collector::ReadMode::kBestEffort);
    return c.ok() ? c->events.size() : size_t{0};
  };
  while (flushed_events() <= 1000u && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGKILL));
  EXPECT_EQ(code, 128 + SIGKILL);
  EXPECT_TRUE(GoneWithin(programs, absl::Seconds(5)));
  CommandResult r = RunReqcost(dir, {"report", capture, "--format", "json"});
  EXPECT_EQ(r.code, 6) << r.err;
  EXPECT_THAT(r.err, HasSubstr("no end record: capture was cut short at byte"));
  absl::StatusOr<collector::Capture> cap =
      collector::ReadCapture(capture, collector::ReadMode::kBestEffort);
  ASSERT_TRUE(cap.ok()) << cap.status();
  EXPECT_FALSE(cap->complete);
  EXPECT_GT(cap->events.size(), 1000u) << "the flushed events are readable";
}

// ---------------------------------------------------------------------------
// 4. Bad input.

// Offsets where each record starts (the first is the header's end), and the
// file size; parsed independently of the reader.
std::vector<uint64_t> RecordBoundaries(const std::string& bytes) {
  auto u32 = [&](size_t at) {
    return uint32_t(uint8_t(bytes[at])) |
           uint32_t(uint8_t(bytes[at + 1])) << 8 |
           uint32_t(uint8_t(bytes[at + 2])) << 16 |
           uint32_t(uint8_t(bytes[at + 3])) << 24;
  };
  std::vector<uint64_t> out;
  uint64_t at = u32(12);
  while (at + 8 <= bytes.size()) {
    out.push_back(at);
    at += 8 + u32(at + 4);
  }
  out.push_back(bytes.size());
  return out;
}

TEST(FaultsTest, BadCaptureFilesAreRefusedWithExitSixAndTheByteOffset) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-faults"));
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, {}));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  const std::string capture = dir.File("good.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"record", "-p", std::to_string(nginx.pid()),
                                    "-p", std::to_string(backend.pid()),
                                    "--duration", "1s", "-o", capture}));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(HttpGet(nginx.Url("/fcgi/x?work_us=100")).ok());
  }
  ASSERT_OK_AND_ASSIGN(code, run.Wait());
  ASSERT_EQ(code, 0) << run.err();
  ASSERT_OK_AND_ASSIGN(good, ReadFileToString(capture));
  CommandResult whole =
      RunReqcost(dir, {"report", capture, "--format", "json"});
  ASSERT_EQ(whole.code, 0) << whole.err;
  EXPECT_EQ(json::parse(whole.out)["requests"]["complete"], 3);

  // Cut at every record boundary, and in the middle of every record, of
  // the header, of the magic.
  std::vector<uint64_t> boundaries = RecordBoundaries(good);
  ASSERT_GT(boundaries.size(), 10u);
  ASSERT_EQ(boundaries.back(), good.size());
  std::vector<uint64_t> cuts = {1, 7, 8, 12, 16, 47, boundaries.front() - 1};
  for (size_t i = 0; i + 1 < boundaries.size(); ++i) {
    cuts.push_back(boundaries[i]);
    cuts.push_back(boundaries[i] + 4);  // inside the prefix
    cuts.push_back((boundaries[i] + boundaries[i + 1]) / 2 + 1);  // in the body
  }
  cuts.push_back(good.size() - 1);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  const std::regex names_offset("byte [0-9]+");
  int checked = 0;
  for (uint64_t cut : cuts) {
    SCOPED_TRACE(absl::StrCat("cut at ", cut, " of ", good.size()));
    const std::string path = dir.File("cut.cap");
    ASSERT_OK(WriteStringToFile(path, good.substr(0, cut)));
    CommandResult r = RunReqcost(dir, {"report", path, "--format", "json"});
    EXPECT_EQ(r.code, 6) << r.err;
    EXPECT_TRUE(r.out.empty()) << "printed a report from a cut file: " << r.out;
    EXPECT_THAT(r.err, HasSubstr("reqcost: " + path + ": "));
    EXPECT_TRUE(std::regex_search(r.err, names_offset)) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    ++checked;
  }
  std::printf("[ faults ] %zu-byte capture, %zu records: %d cuts refused\n",
              good.size(), boundaries.size() - 1, checked);

  struct Case {
    std::string name, bytes, says;
  };
  std::string wrong_magic = good;
  wrong_magic[0] = 'X';
  std::string future = good;
  // The version after this build's.
  const uint32_t next_version = collector::kCaptureFormatVersion + 1;
  future[8] = static_cast<char>(next_version);
  std::string corrupt_record = good;
  corrupt_record[boundaries[1]] = 0x77;  // unknown mandatory record type
  std::string random(4096, '\0');
  uint32_t x = 12345;
  for (char& ch : random) {
    x = x * 1103515245 + 12345;
    ch = static_cast<char>(x >> 24);
  }
  std::vector<Case> cases = {
      {"empty", "", "empty file, not a reqcost capture file"},
      {"random", random, "not a reqcost capture file (bad magic at byte 0)"},
      {"magic", wrong_magic, "bad magic at byte 0"},
      {"future", future,
       absl::StrCat("capture format version ", next_version,
                    " is newer than this reqcost")},
      {"record", corrupt_record,
       absl::StrCat("unknown record type 119 at byte ", boundaries[1])},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.File(c.name + ".cap");
    ASSERT_OK(WriteStringToFile(path, c.bytes));
    for (const char* format : {"text", "json"}) {
      CommandResult r = RunReqcost(dir, {"report", path, "--format", format});
      EXPECT_EQ(r.code, 6) << r.err;
      EXPECT_THAT(r.err, HasSubstr(c.says));
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
  }

  // A missing file is not a bad capture: exit 1 with the reason.
  CommandResult missing = RunReqcost(dir, {"report", dir.File("nope.cap")});
  EXPECT_EQ(missing.code, 1) << missing.err;
  EXPECT_THAT(missing.err, HasSubstr(dir.File("nope.cap")));
  EXPECT_THAT(missing.err, HasSubstr("No such file or directory"));
  // A directory is refused by name.
  CommandResult directory = RunReqcost(dir, {"report", dir.path()});
  EXPECT_EQ(directory.code, 6) << directory.err;
  EXPECT_THAT(directory.err,
              HasSubstr("is a directory, not a reqcost capture file"));
}

// ---------------------------------------------------------------------------
// 6. Privacy.

TEST(FaultsTest,
     DefaultAttachCapturesNoPayloadAndCaptureIsPrivateUnderUmaskZero) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-faults"));
  ASSERT_OK_AND_ASSIGN(backend, StartFcgiBackend(dir, {}));
  NginxOptions nopts;
  nopts.fcgi_upstream = backend.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));

  for (bool with_payload : {false, true}) {
    SCOPED_TRACE(with_payload ? "--payload 64" : "default");
    const std::string capture =
        dir.File(with_payload ? "payload.cap" : "default.cap");
    std::vector<std::string> args = {"attach",
                                     "-p",
                                     std::to_string(nginx.pid()),
                                     "-p",
                                     std::to_string(backend.pid()),
                                     "-o",
                                     capture};
    if (with_payload) {
      args.push_back("--payload");
      args.push_back("64");
    }
    const mode_t old_umask = umask(0);  // inherited by reqcost
    absl::StatusOr<ReqcostRun> run = ReqcostRun::Attach(dir, args);
    umask(old_umask);
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_OK_AND_ASSIGN(result,
                         RunAb(Ab(nginx, "/fcgi/secret?token=hunter2", 20, 1)));
    ASSERT_OK_AND_ASSIGN(code, run->StopWith(SIGINT));
    ASSERT_EQ(code, 0) << run->err();

    struct stat st {};
    ASSERT_EQ(stat(capture.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "umask 000 must not widen the mode";
    ASSERT_OK_AND_ASSIGN(bytes, ReadFileToString(capture));
    absl::StatusOr<collector::Capture> cap = collector::ReadCapture(capture);
    ASSERT_TRUE(cap.ok()) << cap.status();
    size_t with_bytes = 0, socket_io = 0;
    for (const SyscallEvent& e : cap->events) {
      if (IsRead(e.syscall) || IsWrite(e.syscall)) ++socket_io;
      // A unix connect's path is the socket's address, kept like a TCP
      // 4-tuple: never bytes the call moved.
      if ((e.flags & SyscallEvent::kPeerPath) != 0) {
        EXPECT_EQ(e.syscall, Syscall::kConnect);
        continue;
      }
      if (!e.payload.empty()) ++with_bytes;
    }
    EXPECT_GT(socket_io, 100u);
    if (with_payload) {
      EXPECT_EQ(cap->header.payload_capture_bytes, 64u);
      EXPECT_GT(with_bytes, 0u) << "control: --payload must capture bytes";
      EXPECT_NE(bytes.find("hunter2"), std::string::npos);
    } else {
      EXPECT_EQ(cap->header.payload_capture_bytes, 0u);
      EXPECT_EQ(with_bytes, 0u) << "default attach captured payload bytes";
      EXPECT_EQ(bytes.find("hunter2"), std::string::npos);
      EXPECT_EQ(bytes.find("GET /fcgi"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace reqcost::testing
