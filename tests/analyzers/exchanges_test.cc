#include "analyzers/exchanges.h"

#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

// An exchange started at 200 that read its first reply data at 300.
Exchange Answered() {
  Exchange ex;
  ex.start_enter = 200;
  ex.has_reply = true;
  ex.first_reply_exit = 300;
  return ex;
}

TEST(CanAttributeTest,
     TakesExchangeStartedAfterLastReadAndAnsweredBeforeWrite) {
  EXPECT_TRUE(CanAttribute(Answered(), /*last_read_exit=*/150,
                           /*write_start=*/400));
}

TEST(CanAttributeTest, BoundariesAreInclusive) {
  EXPECT_TRUE(CanAttribute(Answered(), /*last_read_exit=*/200,
                           /*write_start=*/300));
}

TEST(CanAttributeTest, RejectsExchangeStartedBeforeTheRequestBytesArrived) {
  EXPECT_FALSE(CanAttribute(Answered(), /*last_read_exit=*/201,
                            /*write_start=*/400));
}

TEST(CanAttributeTest, RejectsExchangeAnsweredAfterTheResponseWrite) {
  EXPECT_FALSE(CanAttribute(Answered(), /*last_read_exit=*/150,
                            /*write_start=*/299));
}

TEST(CanAttributeTest, RejectsExchangeWithoutReplyData) {
  Exchange ex = Answered();
  ex.has_reply = false;
  EXPECT_FALSE(CanAttribute(ex, /*last_read_exit=*/150, /*write_start=*/400));
}

}  // namespace
}  // namespace reqcost::analyzers
