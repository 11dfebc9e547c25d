#include "analyzers/histogram.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

using ::testing::DoubleNear;
using ::testing::Eq;

TEST(LogLinearHistogramTest, BucketsCoverValuesContiguously) {
  for (uint64_t v : std::vector<uint64_t>{0, 1, 255, 256, 257, 1000, 123456789,
                                          UINT64_MAX / 3}) {
    uint32_t b = LogLinearHistogram::BucketOf(v);
    EXPECT_LE(LogLinearHistogram::BucketLow(b), v) << v;
    EXPECT_GE(LogLinearHistogram::BucketHigh(b), v) << v;
    EXPECT_EQ(LogLinearHistogram::BucketHigh(b) + 1,
              LogLinearHistogram::BucketLow(b + 1))
        << v;
  }
}

TEST(LogLinearHistogramTest, BucketWidthIsAtMostOneOver128OfItsValue) {
  for (uint64_t v = 256; v < (uint64_t{1} << 40); v = v * 3 + 7) {
    uint32_t b = LogLinearHistogram::BucketOf(v);
    uint64_t low = LogLinearHistogram::BucketLow(b);
    uint64_t width = LogLinearHistogram::BucketHigh(b) - low + 1;
    EXPECT_LE(width * 128, low) << v;
  }
}

TEST(LogLinearHistogramTest, SmallValuesAreExact) {
  LogLinearHistogram h;
  for (uint64_t v = 1; v <= 200; ++v) h.Add(v);
  EXPECT_THAT(h.Percentile(0.5), Eq(100u));
  EXPECT_THAT(h.Percentile(0.9), Eq(180u));
  EXPECT_THAT(h.Percentile(0.99), Eq(198u));
  EXPECT_THAT(h.Percentile(1.0), Eq(200u));
}

TEST(LogLinearHistogramTest, ValuesOctavesApartKeepTheirOrder) {
  // The smallest and the largest bucket, and one in between.
  LogLinearHistogram h;
  h.Add(UINT64_MAX);
  h.Add(1'000'000'000);
  h.Add(0);
  uint32_t b = LogLinearHistogram::BucketOf(1'000'000'000);
  uint64_t low = LogLinearHistogram::BucketLow(b);
  EXPECT_THAT(h.Percentile(0.1), Eq(0u));
  EXPECT_THAT(h.Percentile(0.5),
              Eq(low + (LogLinearHistogram::BucketHigh(b) - low) / 2));
  EXPECT_THAT(h.Percentile(1.0), Eq(UINT64_MAX));
}

TEST(LogLinearHistogramTest, EmptyHistogramReportsZero) {
  LogLinearHistogram h;
  EXPECT_THAT(h.Percentile(0.5), Eq(0u));
}

TEST(SummaryTest, PercentilesOfKnownValuesWithinOnePercent) {
  // 1..10000 microseconds: nearest-rank p50 = 5000 us, p90 = 9000 us,
  // p99 = 9900 us; mean 5000.5 us exactly, max 10000 us exactly.
  Summary s;
  for (uint64_t us = 10000; us >= 1; --us) s.Add(us * 1000);
  EXPECT_THAT(s.count(), Eq(10000u));
  EXPECT_THAT(s.mean_ns(), Eq(5000.5 * 1000));
  EXPECT_THAT(s.max_ns(), Eq(10000u * 1000));
  EXPECT_THAT(static_cast<double>(s.Percentile(0.50)),
              DoubleNear(5000e3, 5000e3 * 0.01));
  EXPECT_THAT(static_cast<double>(s.Percentile(0.90)),
              DoubleNear(9000e3, 9000e3 * 0.01));
  EXPECT_THAT(static_cast<double>(s.Percentile(0.99)),
              DoubleNear(9900e3, 9900e3 * 0.01));
  EXPECT_THAT(s.Percentile(1.0), Eq(10000u * 1000));
}

TEST(SummaryTest, SkewedDistributionTailIsFound) {
  // 98 fast requests (1 ms) and 2 slow ones (50 ms): p99 is slow, p90 fast.
  Summary s;
  for (int i = 0; i < 98; ++i) s.Add(1'000'000);
  s.Add(50'000'000);
  s.Add(50'000'000);
  EXPECT_THAT(static_cast<double>(s.Percentile(0.90)),
              DoubleNear(1e6, 1e6 * 0.01));
  EXPECT_THAT(static_cast<double>(s.Percentile(0.99)),
              DoubleNear(50e6, 50e6 * 0.01));
}

TEST(SummaryTest, MergeEqualsAddingEverything) {
  Summary a, b, all;
  for (uint64_t v = 1; v < 5000; v += 7) {
    (v % 2 ? a : b).Add(v * 1000);
    all.Add(v * 1000);
  }
  a.Merge(b);
  EXPECT_THAT(a.count(), Eq(all.count()));
  EXPECT_THAT(a.sum_ns(), Eq(all.sum_ns()));
  EXPECT_THAT(a.Percentile(0.9), Eq(all.Percentile(0.9)));
  EXPECT_THAT(a.variance_ns2(),
              DoubleNear(all.variance_ns2(), all.variance_ns2() * 1e-9));
}

TEST(SummaryTest, VarianceOfKnownValues) {
  Summary s;
  EXPECT_THAT(s.variance_ns2(), Eq(0.0));
  s.Add(7);
  EXPECT_THAT(s.variance_ns2(), Eq(0.0));  // one value: no spread to tell
  // 2, 4, 4, 4, 5, 5, 7, 9 around 5: sum of squares 32, over n - 1 = 7.
  Summary t;
  for (uint64_t v : {2, 4, 4, 4, 5, 5, 7, 9}) t.Add(v);
  EXPECT_THAT(t.variance_ns2(), DoubleNear(32.0 / 7, 1e-12));
}

TEST(SummaryTest, VarianceKeepsItsDigitsFarFromZero) {
  // 10 s +- 1 ns: the squares of the values are 1e20, their spread 1.
  Summary s;
  for (int i = 0; i < 1000; ++i) s.Add(10'000'000'000 + (i % 2 ? 1 : -1));
  EXPECT_THAT(s.variance_ns2(), DoubleNear(1000.0 / 999, 1e-9));
}

}  // namespace
}  // namespace reqcost::analyzers
