#include "analyzers/phases.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "analyzers/exchanges.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

constexpr int64_t kEagain = -11;

SyscallRecord Rec(Syscall syscall, uint64_t enter_ns, uint64_t exit_ns,
                  int64_t ret) {
  SyscallRecord r;
  r.syscall = syscall;
  r.enter_ns = enter_ns;
  r.exit_ns = exit_ns;
  r.ret = ret;
  return r;
}

// A request read at [1000, 1100] and answered by a write at [5000, 11000]:
// T = 10000 without waits, accept or close.
struct Fixture {
  std::vector<SyscallRecord> syscalls = {
      Rec(Syscall::kRead, 1000, 1100, 100),
      Rec(Syscall::kWrite, 5000, 11000, 100)};
  std::vector<SyscallRecord> closes;

  PhaseInput Input() const {
    PhaseInput in;
    in.has_read = true;
    in.first_read_start = 1000;
    in.first_read_exit = 1100;
    in.first_write_start = 5000;
    in.last_write_exit = 11000;
    in.syscalls = syscalls;
    in.closes = closes;
    return in;
  }
};

// The phases of the fixture's request with the given |W| and backend.
RequestPhases PhasesWith(uint64_t exchange_ns, uint64_t backend_ns) {
  PhaseInput in = Fixture().Input();
  in.exchange_ns = exchange_ns;
  in.backend_ns = backend_ns;
  return ComputePhases(in);
}

TEST(ComputePhasesTest, ServerTransportAndBackendAddUpToTotal) {
  RequestPhases p = PhasesWith(6000, 4000);
  EXPECT_EQ(p.total_ns, 10000u);
  EXPECT_EQ(p.server_ns, 4000u);
  EXPECT_EQ(p.transport_ns, 2000u);
  EXPECT_EQ(p.backend_ns, 4000u);
  EXPECT_EQ(p.server_ns + p.transport_ns + p.backend_ns, p.total_ns);
  EXPECT_EQ(p.clamped, 0u);
}

TEST(ComputePhasesTest, WithoutExchangeAllIsServer) {
  RequestPhases p = PhasesWith(0, 0);
  EXPECT_EQ(p.total_ns, 10000u);
  EXPECT_EQ(p.server_ns, 10000u);
  EXPECT_EQ(p.transport_ns + p.backend_ns, 0u);
}

TEST(ComputePhasesTest, BackendLongerThanExchangeIsClampedAndCounted) {
  RequestPhases p = PhasesWith(6000, 7000);
  EXPECT_EQ(p.clamped, 1u);
  EXPECT_EQ(p.server_ns, 4000u);
  EXPECT_EQ(p.transport_ns, 0u);
  EXPECT_EQ(p.backend_ns, 6000u);
}

TEST(ComputePhasesTest, ExchangeLongerThanRequestIsClampedAndEachClampCounted) {
  RequestPhases p = PhasesWith(12000, 13000);
  EXPECT_EQ(p.clamped, 2u);
  EXPECT_EQ(p.total_ns, 10000u);
  EXPECT_EQ(p.server_ns + p.transport_ns, 0u);
  EXPECT_EQ(p.backend_ns, 10000u);
}

TEST(ComputePhasesTest, ClientWaitsAreSubtracted) {
  Fixture f;
  // An EAGAIN read exiting at 1300, then the rest of the request read at
  // 3300: the server waited 2000 for the client.
  f.syscalls = {Rec(Syscall::kRead, 1000, 1100, 100),
                Rec(Syscall::kRead, 1200, 1300, kEagain),
                Rec(Syscall::kRead, 3300, 3400, 50),
                Rec(Syscall::kWrite, 5000, 11000, 100)};
  RequestPhases p = ComputePhases(f.Input());
  EXPECT_EQ(p.client_wait_ns, 2000u);
  EXPECT_EQ(p.total_ns, 8000u);
  EXPECT_EQ(p.server_ns, 8000u);
}

TEST(ClientWaitNsTest, ReadsAfterTheFirstResponseWriteAreNotWaits) {
  std::vector<SyscallRecord> syscalls = {
      Rec(Syscall::kRead, 1000, 1100, 100),
      Rec(Syscall::kWrite, 5000, 6000, 100),
      Rec(Syscall::kRead, 6100, 6200, kEagain),
      Rec(Syscall::kRead, 9000, 9100, 0)};
  EXPECT_EQ(ClientWaitNs(syscalls, /*first_write_start=*/5000), 0u);
}

TEST(ClientWaitNsTest, OnlyTheReadRightAfterAnEagainEndsAWait) {
  std::vector<SyscallRecord> syscalls = {
      Rec(Syscall::kRead, 1000, 1100, kEagain),
      Rec(Syscall::kRead, 1500, 1600, 10), Rec(Syscall::kRead, 2500, 2600, 10)};
  EXPECT_EQ(ClientWaitNs(syscalls, /*first_write_start=*/5000), 400u);
}

TEST(ComputePhasesTest, OwnedAcceptAndClosesAreAdded) {
  Fixture f;
  SyscallRecord accept = Rec(Syscall::kAccept4, 500, 700, 5);
  f.closes = {Rec(Syscall::kShutdown, 11000, 11020, 0),
              Rec(Syscall::kClose, 11100, 11150, 0)};
  PhaseInput in = f.Input();
  in.accept = &accept;
  RequestPhases p = ComputePhases(in);
  EXPECT_EQ(p.total_ns, 10000u + 200u + 20u + 50u);
}

TEST(RequestStartNsTest, OwnedAcceptStartsTheRequest) {
  Fixture f;
  SyscallRecord accept = Rec(Syscall::kAccept4, 500, 700, 5);
  PhaseInput in = f.Input();
  in.accept = &accept;
  EXPECT_EQ(RequestStartNs(in), 500u);
}

TEST(RequestStartNsTest, ElseTheFirstDataReadStartsIt) {
  Fixture f;
  PhaseInput in = f.Input();
  EXPECT_EQ(RequestStartNs(in), 1000u);
  in.first_read_start = 1100;  // exit-only: the read's exit is its start
  EXPECT_EQ(RequestStartNs(in), 1100u);
}

TEST(RequestStartNsTest, WithoutReadTheFirstSyscallStartsIt) {
  std::vector<SyscallRecord> syscalls = {Rec(Syscall::kWrite, 5000, 6000, 100)};
  PhaseInput in;
  in.syscalls = syscalls;
  EXPECT_EQ(RequestStartNs(in), 5000u);
  EXPECT_EQ(RequestStartNs(PhaseInput{}), 0u);
}

// An exchange W = [2000, 9000] whose send exited at 2500 and whose first
// reply read entered at 8000.
Exchange Answered() {
  Exchange ex;
  ex.start_enter = 2000;
  ex.has_send = true;
  ex.last_send_exit = 2500;
  ex.send_exit_before_reply = 2500;
  ex.has_reply = true;
  ex.first_reply_start = 8000;
  ex.first_reply_exit = 8100;
  ex.last_reply_exit = 9000;
  return ex;
}

TEST(MeasureBackendTest, UntracedBackendIsInferredFromSendToReply) {
  BackendPhase b = MeasureBackend(Answered());
  EXPECT_TRUE(b.incomplete_reason.empty());
  EXPECT_EQ(b.timing, BackendTiming::kInferred);
  EXPECT_EQ(b.start_ns, 2500u);
  EXPECT_EQ(b.end_ns, 8000u);
  EXPECT_EQ(b.backend_ns, 5500u);
  EXPECT_EQ(b.exchange_ns, 7000u);
  EXPECT_FALSE(b.queue_ns.has_value());
}

TEST(MeasureBackendTest, BackendRequestIsMeasuredWithQueue) {
  Exchange ex = Answered();
  ex.backend_traced = true;
  ex.connect_exit = 2100;
  ex.backend_accept_exit = 2400;
  ex.work = std::make_shared<BackendWork>();
  ex.work->first_read_exit = 3000;
  ex.work->has_write = true;
  ex.work->last_write_exit = 7500;
  BackendPhase b = MeasureBackend(ex);
  EXPECT_TRUE(b.incomplete_reason.empty());
  EXPECT_EQ(b.timing, BackendTiming::kMeasured);
  EXPECT_EQ(b.start_ns, 3000u);
  EXPECT_EQ(b.end_ns, 7500u);
  EXPECT_EQ(b.backend_ns, 4500u);
  EXPECT_EQ(b.queue_ns, 300u);
}

TEST(MeasureBackendTest, SaysWhyAnExchangeHasNoBackendPhase) {
  Exchange partial = Answered();
  partial.partial = true;
  EXPECT_EQ(MeasureBackend(partial).incomplete_reason,
            "backend exchange incomplete");

  Exchange traced = Answered();
  traced.backend_traced = true;
  EXPECT_EQ(MeasureBackend(traced).incomplete_reason, "backend events missing");

  Exchange unanswered = Answered();
  unanswered.work = std::make_shared<BackendWork>();
  EXPECT_EQ(MeasureBackend(unanswered).incomplete_reason,
            "backend reply not seen");
  EXPECT_EQ(MeasureBackend(unanswered).timing, BackendTiming::kNone);
}

}  // namespace
}  // namespace reqcost::analyzers
