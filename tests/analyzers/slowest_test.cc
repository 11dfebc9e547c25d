#include "analyzers/slowest.h"

#include <cstdint>
#include <vector>

#include "analyzers/request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Request Complete(uint64_t id, uint64_t total_ns) {
  Request r;
  r.id = id;
  r.complete = true;
  r.total_ns = total_ns;
  r.syscalls.resize(id % 3 + 1);  // kept with the request
  return r;
}

std::vector<uint64_t> Ids(const std::vector<Request>& requests) {
  std::vector<uint64_t> ids;
  for (const Request& r : requests) ids.push_back(r.id);
  return ids;
}

TEST(SlowestRequestsTest, KeepsTheNSlowestWithTheirSyscallsSlowestFirst) {
  SlowestRequests slowest(3);
  const uint64_t totals[] = {50, 900, 10, 400, 700, 20, 800, 30};
  for (uint64_t i = 0; i < 8; ++i) slowest.Add(Complete(i + 1, totals[i]));
  std::vector<Request> kept = slowest.Sorted();
  EXPECT_THAT(Ids(kept), ElementsAre(2, 7, 5));
  EXPECT_EQ(kept[0].syscalls.size(), 3u);  // request 2: 2 % 3 + 1
  EXPECT_EQ(slowest.offered(), 8u);
}

TEST(SlowestRequestsTest, EqualTotalsKeepTheEarlierRequest) {
  SlowestRequests slowest(2);
  for (uint64_t id = 1; id <= 5; ++id) slowest.Add(Complete(id, 100));
  EXPECT_THAT(Ids(slowest.Sorted()), ElementsAre(1, 2));
  slowest.Add(Complete(6, 101));
  EXPECT_THAT(Ids(slowest.Sorted()), ElementsAre(6, 1));
}

TEST(SlowestRequestsTest, IncompleteRequestsAreNotKeptNorCounted) {
  SlowestRequests slowest(2);
  Request incomplete;
  incomplete.id = 1;
  incomplete.incomplete_reason = "no response";
  slowest.Add(incomplete);
  slowest.Add(Complete(2, 5));
  EXPECT_THAT(Ids(slowest.Sorted()), ElementsAre(2));
  EXPECT_EQ(slowest.offered(), 1u);
}

TEST(SlowestRequestsTest, CapacityZeroKeepsNothingButCounts) {
  SlowestRequests slowest(0);
  slowest.Add(Complete(1, 5));
  EXPECT_THAT(slowest.Sorted(), IsEmpty());
  EXPECT_EQ(slowest.offered(), 1u);
}

}  // namespace
}  // namespace reqcost::analyzers
