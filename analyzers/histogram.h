// Streaming summaries of non-negative durations: exact count, mean and max,
// percentiles from a log-linear histogram. Memory depends on the spread of
// the values (the octaves they span), never on their number.
#ifndef REQCOST_ANALYZERS_HISTOGRAM_H_
#define REQCOST_ANALYZERS_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace reqcost::analyzers {

// Log-linear histogram of uint64 values (nanoseconds). Values below 256 have
// a bucket each (exact). Above, each power-of-two range [2^k, 2^(k+1)) is cut
// into 128 equal buckets, so a bucket is at most 1/128 of its lower bound
// wide; a percentile is reported as the middle of its bucket (clamped to
// the exact min and max), so its relative error is at most 1/256 (< 0.4%),
// within the promised 1%. Counts are kept per octave (128 buckets, 1 KB),
// allocated when a value first falls in it.
class LogLinearHistogram {
 public:
  static constexpr int kSubBucketBits = 7;  // 128 sub-buckets per octave

  void Add(uint64_t value, uint64_t count = 1) {
    if (count == 0) return;
    const uint32_t bucket = BucketOf(value);
    const size_t octave = bucket >> kSubBucketBits;
    // Inline: called for every phase and syscall of every request.
    if (octave < octaves_.size() && !octaves_[octave].empty()) [[likely]] {
      octaves_[octave][bucket & (kSub - 1)] += count;
    } else {
      CountOf(bucket) += count;
    }
    count_ += count;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }
  void Merge(const LogLinearHistogram& other);

  uint64_t count() const { return count_; }
  uint64_t max() const { return count_ == 0 ? 0 : max_; }
  // Nearest-rank percentile (q in [0, 1]): the value of rank ceil(q * n),
  // approximated as above; 0 when empty.
  uint64_t Percentile(double q) const;

  // Bucket index of a value and the [low, high] range of a bucket; exposed
  // for tests.
  static uint32_t BucketOf(uint64_t value) {
    if (value < 2 * kSub) return static_cast<uint32_t>(value);
    const int shift = 63 - __builtin_clzll(value) - kSubBucketBits;  // >= 1
    const uint64_t sub = value >> shift;  // [128, 255]
    return static_cast<uint32_t>(2 * kSub + (shift - 1) * kSub + (sub - kSub));
  }
  static uint64_t BucketLow(uint32_t bucket);
  static uint64_t BucketHigh(uint32_t bucket);

 private:
  static constexpr uint64_t kSub = uint64_t{1} << kSubBucketBits;

  // The count of `bucket`, allocating its octave first if needed.
  uint64_t& CountOf(uint32_t bucket);

  // Bucket b's count is octaves_[b / 128][b % 128]; an octave with no value
  // yet is empty. (Below 256 the "octaves" are the exact values 0-127 and
  // 128-255.)
  std::vector<std::vector<uint64_t>> octaves_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

// count, exact sum / mean / max, the sample variance, and percentiles of
// durations in ns.
class Summary {
 public:
  void Add(uint64_t ns) {
    if (histogram_.count() == 0) shift_ = static_cast<double>(ns);
    const double d = static_cast<double>(ns) - shift_;
    shifted_sum_ += d;
    shifted_sum_sq_ += d * d;
    sum_ += ns;
    histogram_.Add(ns);
  }
  void Merge(const Summary& other);

  uint64_t count() const { return histogram_.count(); }
  uint64_t sum_ns() const { return sum_; }
  uint64_t max_ns() const { return histogram_.max(); }
  double mean_ns() const {
    return count() == 0 ? 0.0 : static_cast<double>(sum_) / count();
  }
  uint64_t Percentile(double q) const { return histogram_.Percentile(q); }
  // Sample variance (n - 1 in the denominator) in ns^2; 0 below two values.
  double variance_ns2() const;

 private:
  uint64_t sum_ = 0;
  // Sums of (value - shift_) and of its square, shift_ being the first value:
  // the variance from them does not lose its digits to the mean's square.
  double shift_ = 0;
  double shifted_sum_ = 0;
  double shifted_sum_sq_ = 0;
  LogLinearHistogram histogram_;  // count, exact max and the buckets
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_HISTOGRAM_H_
