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
#include "analyzers/socketpair_ends.h"
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

// php-fpm's master wakes its event loop through a socket pair it made
// before attach: on every signal (a SIGCHLD for each recycled child) its
// handler writes a byte to one end and the loop reads it from the other.
// Before the pair was told apart, its two ends were taken for a backend link
// and its backend side whose exchange and work never ended: the master's
// connections kept every one of those calls, a record each, forever.
constexpr uint32_t kFpmMaster = 3;
constexpr uint64_t kSignalRead = 0x900000;   // sp[0]: the loop reads it
constexpr uint64_t kSignalWrite = 0x900001;  // sp[1]: the handler writes it

void SignalWakeup(Profiler& profiler, double at_us) {
  SyscallEvent w;
  w.syscall = Syscall::kWrite;
  w.flags = SyscallEvent::kExitOnly;
  w.tgid = w.tid = kFpmMaster;
  w.fd = 6;
  w.ret = 1;
  w.exit_ns = At(at_us);
  w.sock = UnixSock(kSignalWrite, kSignalRead);
  profiler.OnEvent(w);
  SyscallEvent r = w;
  r.syscall = Syscall::kRead;
  r.fd = 5;
  r.exit_ns = At(at_us + 5);
  r.sock = UnixSock(kSignalRead, kSignalWrite);
  profiler.OnEvent(r);
}

TEST(ChurnTest, SignalSocketPairOfTheBackendMasterKeepsNothing) {
  Profiler profiler;
  uint64_t complete = 0;
  profiler.SetRequestCallback(
      [&](const Request& r) { complete += r.complete; });
  size_t most_held = 0, most_entries = 0;
  for (int i = 0; i < kLifetimes; ++i) {
    RunLifetime(profiler, i);
    SignalWakeup(profiler, i * kLifetimeUs + 20'500);
    const Profiler::StateSize size = profiler.state_size();
    most_held = std::max(most_held, size.held_records);
    most_entries = std::max(most_entries, size.connection_entries);
  }
  profiler.Finish(At(kLifetimes * kLifetimeUs + 1'000'000));
  EXPECT_EQ(complete, kLifetimes);
  // Only the request in flight holds records (one lifetime's: 12 calls).
  EXPECT_THAT(most_held, Le(16));
  EXPECT_THAT(most_entries, Le(30));
  const Profiler::StateSize end = profiler.state_size();
  EXPECT_EQ(end.held_records, 0);
  EXPECT_EQ(end.connection_entries, 0);
  EXPECT_EQ(end.socketpair_ends, 2);
  const Report report = profiler.BuildReport({});
  // Every call on the pair but the first (which made its first end a
  // connection until the second end showed whose pair it is).
  EXPECT_EQ(report.socketpair_calls, 2 * kLifetimes - 1);
  const Anomalies& a = report.anomalies;
  EXPECT_EQ(a.unattributed_exchanges + a.unmatched_backend_work +
                a.reclassified_connections + a.stray_events +
                a.side_calls_outside_requests + a.unattributed_calls +
                a.ignored_connections,
            0);
}

// nginx's master makes a socket pair for each worker it starts (a reload
// starts new ones), forks the worker, and talks to it over the pair: the
// worker inherits the other end. Their calls are no connection's.
TEST(ChurnTest, MasterWorkerChannelsAreNoConnections) {
  Profiler profiler;
  uint64_t complete = 0;
  profiler.SetRequestCallback(
      [&](const Request& r) { complete += r.complete; });
  constexpr uint32_t kMaster = 2;
  size_t most_ends = 0;
  for (int i = 0; i < kLifetimes; ++i) {
    const double base = i * kLifetimeUs;
    const uint64_t master_end = 0xC00000 + 2 * i, worker_end = master_end + 1;
    SyscallEvent sp;
    sp.syscall = Syscall::kSocketpair;
    sp.tgid = sp.tid = kMaster;
    sp.fd = 7;
    sp.ret = 8;
    sp.enter_ns = At(base - 10);
    sp.exit_ns = At(base - 5);
    sp.sock = UnixSock(master_end, worker_end);
    profiler.OnEvent(sp);
    RunLifetime(profiler, i);  // its worker, forked by the master
    const uint32_t worker = 10'000 + 2 * i;
    SyscallEvent msg;  // the master tells the worker to quit
    msg.syscall = Syscall::kSendmsg;
    msg.tgid = msg.tid = kMaster;
    msg.fd = 7;
    msg.ret = 32;
    msg.enter_ns = At(base + 20'350);
    msg.exit_ns = At(base + 20'352);
    msg.sock = UnixSock(master_end, worker_end);
    profiler.OnEvent(msg);
    SyscallEvent got = msg;
    got.syscall = Syscall::kRecvmsg;
    got.tgid = got.tid = worker;
    got.fd = 8;
    got.enter_ns = At(base + 20'353);
    got.exit_ns = At(base + 20'355);
    got.sock = UnixSock(worker_end, master_end);
    profiler.OnEvent(got);
    most_ends = std::max(most_ends, profiler.state_size().socketpair_ends);
  }
  profiler.Finish(At(kLifetimes * kLifetimeUs + 1'000'000));
  EXPECT_EQ(complete, kLifetimes);
  // Bounded: the oldest pairs are forgotten first.
  EXPECT_THAT(most_ends, Le(SocketpairEnds::kMaxEnds));
  const Report report = profiler.BuildReport({});
  EXPECT_EQ(report.socketpair_calls, 2 * kLifetimes);
  // Each lifetime's pair is two ends; all but the newest kMaxEnds went.
  EXPECT_EQ(report.socketpair_ends_forgotten,
            2 * kLifetimes - SocketpairEnds::kMaxEnds);
  const Anomalies& a = report.anomalies;
  EXPECT_EQ(a.unattributed_exchanges, 0);
  EXPECT_EQ(a.unattributed_calls, 0);
  EXPECT_EQ(a.reclassified_connections, 0);
  EXPECT_EQ(a.stray_events, 0);
  EXPECT_EQ(a.side_calls_outside_requests, 0);
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
