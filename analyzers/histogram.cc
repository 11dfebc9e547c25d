#include "analyzers/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace reqcost::analyzers {
uint64_t LogLinearHistogram::BucketLow(uint32_t bucket) {
  if (bucket < 2 * kSub) return bucket;
  uint64_t shift = (bucket - 2 * kSub) / kSub + 1;
  uint64_t sub = (bucket - 2 * kSub) % kSub + kSub;
  return sub << shift;
}

uint64_t LogLinearHistogram::BucketHigh(uint32_t bucket) {
  if (bucket < 2 * kSub) return bucket;
  uint64_t shift = (bucket - 2 * kSub) / kSub + 1;
  uint64_t low = BucketLow(bucket);
  return low + ((uint64_t{1} << shift) - 1);
}

uint64_t& LogLinearHistogram::CountOf(uint32_t bucket) {
  const size_t octave = bucket / kSub;
  if (octave >= octaves_.size()) octaves_.resize(octave + 1);
  if (octaves_[octave].empty()) octaves_[octave].resize(kSub);
  return octaves_[octave][bucket % kSub];
}

void LogLinearHistogram::Merge(const LogLinearHistogram& other) {
  for (size_t octave = 0; octave < other.octaves_.size(); ++octave) {
    const std::vector<uint64_t>& counts = other.octaves_[octave];
    for (size_t i = 0; i < counts.size(); ++i) {
      if (counts[i] != 0) CountOf(octave * kSub + i) += counts[i];
    }
  }
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t LogLinearHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * count_));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  if (rank == count_) return max_;  // the top rank is the exact max
  uint64_t seen = 0;
  for (size_t octave = 0; octave < octaves_.size(); ++octave) {
    const std::vector<uint64_t>& counts = octaves_[octave];
    for (size_t i = 0; i < counts.size(); ++i) {
      seen += counts[i];
      if (seen >= rank) {
        const auto bucket = static_cast<uint32_t>(octave * kSub + i);
        uint64_t low = BucketLow(bucket);
        uint64_t mid = low + (BucketHigh(bucket) - low) / 2;
        return std::clamp(mid, min_, max_);
      }
    }
  }
  return max_;
}

void Summary::Merge(const Summary& other) {
  if (other.count() == 0) return;
  if (count() == 0) {
    *this = other;
    return;
  }
  // Re-center the other's sums on this shift: x - s = (x - s') + (s' - s).
  const double d = other.shift_ - shift_;
  const double n = static_cast<double>(other.count());
  shifted_sum_sq_ +=
      other.shifted_sum_sq_ + 2 * d * other.shifted_sum_ + n * d * d;
  shifted_sum_ += other.shifted_sum_ + n * d;
  sum_ += other.sum_;
  histogram_.Merge(other.histogram_);
}

double Summary::variance_ns2() const {
  const double n = static_cast<double>(count());
  if (n < 2) return 0;
  const double var =
      (shifted_sum_sq_ - shifted_sum_ * shifted_sum_ / n) / (n - 1);
  return var > 0 ? var : 0;
}

}  // namespace reqcost::analyzers
