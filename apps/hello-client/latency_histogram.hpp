#pragma once

#include <boost/histogram.hpp>

#include <chrono>
#include <cstdint>
#include <vector>

namespace hello::bench {

// Latencies in a histogram with log-spaced bins, so that percentiles come from the whole
// distribution at a fixed relative precision, whatever the spread: 4096 bins from 100 ns
// to 100 s, each about 0.5 % wider than the one before (relative_error()). Latencies below
// the range land in the first bin; above it, in an overflow bin whose percentiles are the
// largest latency seen. Recording is a logarithm and an increment, cheap enough for the
// hot path of a benchmark, and histograms of several threads merge exactly.
class latency_histogram {
public:
    using duration = std::chrono::nanoseconds;

    latency_histogram();

    // `count` requests that took `latency` each (a pipelined batch answered by one read).
    void record(duration latency, std::uint64_t count = 1);
    void merge(const latency_histogram& other);

    [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
    [[nodiscard]] duration min() const noexcept { return count_ ? min_ : duration::zero(); }
    [[nodiscard]] duration max() const noexcept { return max_; }

    // The latency that `percent` % of the requests did not exceed (nearest rank, 0 < percent
    // <= 100): the upper edge of the bin holding that rank, capped at max() and at least
    // min(), so that it is never below the true value by more than a bin and percentiles
    // come out ordered. Zero when nothing was recorded.
    [[nodiscard]] duration percentile(double percent) const;

    // The widest a bin is, relative to its lower edge.
    [[nodiscard]] static double relative_error() noexcept;

private:
    using axis =
        boost::histogram::axis::regular<double, boost::histogram::axis::transform::log, boost::histogram::use_default,
                                        boost::histogram::axis::option::overflow_t>;
    using histogram = boost::histogram::histogram<std::tuple<axis>, boost::histogram::dense_storage<std::uint64_t>>;

    histogram bins_;
    std::uint64_t count_ = 0;
    duration min_ = duration::max();
    duration max_ = duration::zero();
};

}  // namespace hello::bench
