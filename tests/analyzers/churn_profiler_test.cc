// Process churn: what the profiler keeps stays bounded however many
// processes come and go (reloads, recycled workers).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "analyzers/process_table.h"
#include "analyzers/profiler.h"
#include "analyzers/render/format.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/analyzers/stream_builder.h"

namespace reqcost::analyzers {
namespace {

using ::reqcost::analyzers::test_support::At;
using ::reqcost::analyzers::test_support::OneFastCgiRequest;
using ::reqcost::analyzers::test_support::OneRequestOptions;
using ::reqcost::analyzers::test_support::TcpSock;
using ::reqcost::analyzers::test_support::UnixSock;
using ::testing::HasSubstr;
using ::testing::Le;

constexpr int kLifetimes = 10'000;
constexpr double kLifetimeUs = 30'000;  // one request takes about 20.3 ms

ProcessEvent Proc(ProcessEvent::Op op, uint32_t tgid, uint32_t parent,
                  double at_us, std::string comm) {
  ProcessEvent p;
  p.op = op;
  p.tgid = tgid;
  p.parent_tgid = parent;
  p.ts_ns = At(at_us);
  p.comm = std::move(comm);
  return p;
}

// Lifetime `i`: a new nginx worker and a new php-fpm child are forked, serve
// one request together, and exit.
void RunLifetime(Profiler& profiler, int i) {
  const double base = i * kLifetimeUs;
  const uint64_t shift = At(base) - At(0);
  OneRequestOptions o;
  o.server = 10'000 + 2 * i;
  o.backend = 10'001 + 2 * i;
  o.client = TcpSock(80, static_cast<uint16_t>(20'000 + i));
  o.link = UnixSock(0x100000 + i, 0x200000 + i);
  o.side = UnixSock(0x200000 + i, 0x100000 + i);
  profiler.OnProcessEvent(
      Proc(ProcessEvent::Op::kFork, o.server, 2, base, "nginx"));
  profiler.OnProcessEvent(
      Proc(ProcessEvent::Op::kFork, o.backend, 3, base, "php-fpm8.2"));
  for (SyscallEvent e : OneFastCgiRequest(o).InExitOrder()) {
    if ((e.flags & SyscallEvent::kNoEnter) == 0) e.enter_ns += shift;
    e.exit_ns += shift;
    profiler.OnEvent(e);
  }
  profiler.OnProcessEvent(
      Proc(ProcessEvent::Op::kExit, o.backend, 3, base + 20'400, ""));
  profiler.OnProcessEvent(
      Proc(ProcessEvent::Op::kExit, o.server, 2, base + 20'400, ""));
}

TEST(ChurnTest, StateStaysBoundedOverTenThousandProcessLifetimes) {
  Profiler profiler;
  uint64_t complete = 0;
  profiler.SetRequestCallback(
      [&](const Request& r) { complete += r.complete; });
  size_t most_connection_entries = 0;
  size_t most_attribution_processes = 0;
  size_t most_processes = 0;
  for (int i = 0; i < kLifetimes; ++i) {
    RunLifetime(profiler, i);
    const Profiler::StateSize size = profiler.state_size();
    most_processes = std::max(most_processes, size.processes);
    most_connection_entries =
        std::max(most_connection_entries, size.connection_entries);
    most_attribution_processes =
        std::max(most_attribution_processes, size.attribution_processes);
  }
  profiler.Finish(At(kLifetimes * kLifetimeUs + 1'000'000));
  EXPECT_EQ(complete, kLifetimes);

  // Only the lifetimes still inside the reorder window (20 ms: one) hold
  // connections or attribution state.
  EXPECT_THAT(most_connection_entries, Le(30));
  EXPECT_THAT(most_attribution_processes, Le(4));
  const Profiler::StateSize end = profiler.state_size();
  EXPECT_EQ(end.connection_entries, 0);
  EXPECT_EQ(end.attribution_processes, 0);
  // The process list keeps the latest kMaxExitedProcesses exited processes
  // (and the ones inside the reorder window, not yet known to have exited).
  EXPECT_THAT(most_processes, Le(kMaxExitedProcesses + 4));

  // The per-process rows are bounded; the folded row counts the rest.
  const Report report = profiler.BuildReport({});
  ASSERT_EQ(report.by_process.size(), kMaxProcessRows + 1);
  uint64_t requests = 0;
  for (const ProcessSummary& p : report.by_process) requests += p.requests;
  EXPECT_EQ(requests, kLifetimes);
  const ProcessSummary& other = report.by_process.back();
  EXPECT_TRUE(other.other);
  EXPECT_EQ(other.folded, kLifetimes - kMaxProcessRows);
  EXPECT_EQ(other.requests, kLifetimes - kMaxProcessRows);
  // The rows kept are the most recently active processes.
  EXPECT_EQ(report.by_process.front().pid,
            10'000 + 2 * (kLifetimes - kMaxProcessRows));
  EXPECT_THAT(FormatText(report),
              HasSubstr("  other processes (9936 folded): 9936 complete, "
                        "0 incomplete\n"));
  // Every process exited: the list holds the latest to exit and counts the
  // others.
  EXPECT_EQ(report.processes.size(), kMaxExitedProcesses);
  EXPECT_EQ(report.processes_not_listed,
            2 * kLifetimes - kMaxExitedProcesses);
  EXPECT_THAT(FormatText(report),
              HasSubstr("(19744 earlier exited processes not listed)"));
}

TEST(ChurnTest, FewerProcessesThanTheBoundHaveNoFoldedRow) {
  Profiler profiler;
  for (int i = 0; i < static_cast<int>(kMaxProcessRows); ++i) {
    RunLifetime(profiler, i);
  }
  profiler.Finish(At(kMaxProcessRows * kLifetimeUs + 1'000'000));
  const Report report = profiler.BuildReport({});
  ASSERT_EQ(report.by_process.size(), kMaxProcessRows);
  for (const ProcessSummary& p : report.by_process) {
    EXPECT_FALSE(p.other);
    EXPECT_EQ(p.requests, 1);
  }
  EXPECT_THAT(FormatText(report), ::testing::Not(HasSubstr("other processes")));
}

TEST(ChurnTest, MergedStatsStayBounded) {
  RequestStats a, b;
  Request r;
  r.complete = true;
  r.start_ns = At(0);
  r.end_ns = At(100);
  r.total_ns = 100'000;
  for (uint32_t pid = 1; pid <= 50; ++pid) {
    r.pid = pid;
    a.Add(r);
    r.pid = 1000 + pid;
    b.Add(r);
  }
  a.Merge(b);
  Report report;
  a.Fill(&report);
  ASSERT_EQ(report.by_process.size(), kMaxProcessRows + 1);
  uint64_t requests = 0;
  for (const ProcessSummary& p : report.by_process) requests += p.requests;
  EXPECT_EQ(requests, 100);
  EXPECT_EQ(report.by_process.back().folded, 100 - kMaxProcessRows);
}

}  // namespace
}  // namespace reqcost::analyzers
