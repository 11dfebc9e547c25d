// A long run. `reqcost attach` on nginx + php-fpm under sustained,
// bounded load (ab in rounds) for REQCOST_SOAK_SECONDS (default 600): its
// resident memory stays flat, it holds no more descriptors at the end than
// after warm-up, and every request ab made is accounted for (complete +
// incomplete == ab's total). Run with scripts/soak.sh; ctest label `soak`
// (also `bench`, so the default `ctest --label-exclude bench` skips it).
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

using ::nlohmann::json;

#define ASSERT_OK_AND_ASSIGN(lhs, expr)            \
  auto lhs##_or = (expr);                          \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

absl::Duration SoakDuration() {
  const char* v = std::getenv("REQCOST_SOAK_SECONDS");
  int64_t seconds = 600;
  if (v != nullptr && !absl::SimpleAtoi(v, &seconds)) seconds = 600;
  return absl::Seconds(std::max<int64_t>(seconds, 10));
}

// REQCOST_SOAK_RELOAD_SECONDS: reload nginx (SIGHUP to its master, what
// `nginx -s reload` does) this often, for process churn; unset or 0: never.
absl::Duration ReloadInterval() {
  const char* v = std::getenv("REQCOST_SOAK_RELOAD_SECONDS");
  int64_t seconds = 0;
  if (v == nullptr || !absl::SimpleAtoi(v, &seconds) || seconds <= 0) {
    return absl::InfiniteDuration();
  }
  return absl::Seconds(seconds);
}

// VmRSS of `pid` in KiB, or -1.
int64_t RssKiB(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kib = -1;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits += c;
      }
      return absl::SimpleAtoi(digits, &kib) ? kib : -1;
    }
  }
  return -1;
}

// Open descriptors of `pid`, or -1.
int OpenFds(pid_t pid) {
  DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

// The test's own child process whose comm is `comm`, or -1.
pid_t ChildNamed(const std::string& comm) {
  for (pid_t p : ChildPids(getpid())) {
    std::ifstream in(absl::StrCat("/proc/", p, "/comm"));
    std::string name;
    if (std::getline(in, name) && name == comm) return p;
  }
  return -1;
}

TEST(SoakTest, LongAttachUnderLoadKeepsMemoryAndDescriptorsFlatAndCountsAll) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  const absl::Duration duration = SoakDuration();
  const absl::Duration warmup = std::min(absl::Seconds(20), duration / 6);
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-soak"));
  ASSERT_OK_AND_ASSIGN(fpm, StartPhpFpm(dir, {}));
  NginxOptions nopts;
  nopts.upstream = fpm.address();
  ASSERT_OK_AND_ASSIGN(nginx, StartNginx(dir, nopts));
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(
               dir, {"attach", "-p", std::to_string(nginx.pid()), "-p",
                     std::to_string(fpm.pid()), "--format", "json"}));
  const pid_t reqcost = ChildNamed("reqcost");
  ASSERT_GT(reqcost, 0) << "no reqcost child process";

  // Bounded rounds: a mix of an instant and a 2 ms script, two clients;
  // between rounds a short pause so that the load is sustained, not maximal.
  const char* urls[] = {"/hello.php", "/sleep.php?us=2000"};
  int64_t total = 0, failed = 0, rounds = 0;
  int64_t rss_start = -1, rss_max = 0;
  int fds_start = -1;
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  const absl::Duration reload_every = ReloadInterval();
  absl::Time last_reload = start;
  int64_t reloads = 0;
  while (absl::Now() < end) {
    if (absl::Now() - last_reload >= reload_every) {
      ASSERT_EQ(kill(nginx.pid(), SIGHUP), 0);
      last_reload = absl::Now();
      ++reloads;
    }
    AbOptions ab;
    ab.url = nginx.Url(urls[rounds % 2]);
    ab.requests = 500;
    ab.concurrency = 2;
    ab.timeout = absl::Seconds(60);
    ab.work_dir = dir.path();
    ASSERT_OK_AND_ASSIGN(result, RunAb(ab));
    total += result.complete;
    failed += result.failed + result.non_2xx;
    ++rounds;
    if (rss_start < 0 && absl::Now() - start >= warmup) {
      rss_start = RssKiB(reqcost);
      fds_start = OpenFds(reqcost);
      std::printf(
          "[ soak ] after %.0f s warm-up (%lld requests): VmRSS %lld KiB, "
          "%d fds\n",
          absl::ToDoubleSeconds(absl::Now() - start),
          static_cast<long long>(total), static_cast<long long>(rss_start),
          fds_start);
      std::fflush(stdout);
    }
    rss_max = std::max(rss_max, RssKiB(reqcost));
    absl::SleepFor(absl::Milliseconds(100));
  }
  const int64_t rss_end = RssKiB(reqcost);
  const int fds_end = OpenFds(reqcost);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf(
      "[ soak ] after %.0f s (%lld rounds, %lld nginx reloads, %lld "
      "requests, %.0f/s): VmRSS "
      "%lld KiB (start %lld, max %lld, %+.1f%%), %d fds (start %d)\n",
      seconds, static_cast<long long>(rounds), static_cast<long long>(reloads),
      static_cast<long long>(total), total / seconds,
      static_cast<long long>(rss_end), static_cast<long long>(rss_start),
      static_cast<long long>(rss_max),
      100.0 * (rss_end - rss_start) / std::max<int64_t>(rss_start, 1), fds_end,
      fds_start);
  std::fflush(stdout);
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  ASSERT_GT(rss_start, 0);
  const int64_t growth = rss_end - rss_start;
  EXPECT_TRUE(growth < rss_start / 10 || growth < 5 * 1024)
      << "VmRSS grew from " << rss_start << " KiB to " << rss_end << " KiB";
  EXPECT_LE(fds_end, fds_start) << "descriptors grew";
  EXPECT_EQ(failed, 0);

  json report = json::parse(run.out());
  const int64_t complete = report["requests"]["complete"].get<int64_t>();
  const int64_t incomplete = report["requests"]["incomplete"].get<int64_t>();
  std::printf(
      "[ soak ] reqcost: %lld complete + %lld incomplete = %lld (ab: %lld), "
      "%llu events, %llu dropped\n",
      static_cast<long long>(complete), static_cast<long long>(incomplete),
      static_cast<long long>(complete + incomplete),
      static_cast<long long>(total),
      report["capture"]["events"].get<unsigned long long>(),
      report["capture"]["dropped_events"].get<unsigned long long>());
  EXPECT_EQ(complete + incomplete, total);
  EXPECT_EQ(report["capture"]["dropped_events"].get<uint64_t>(), 0u);
  EXPECT_EQ(incomplete, 0);
}

}  // namespace
}  // namespace reqcost::testing
