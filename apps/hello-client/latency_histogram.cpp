#include "latency_histogram.hpp"

#include <algorithm>
#include <cmath>

namespace hello::bench {

namespace {

constexpr unsigned bin_count = 4096;
constexpr double lowest_ns = 100.0;
constexpr double highest_ns = 100e9;

}  // namespace

latency_histogram::latency_histogram() : bins_(std::make_tuple(axis(bin_count, lowest_ns, highest_ns))) {}

void latency_histogram::record(duration latency, std::uint64_t count) {
    if (count == 0) return;
    const auto ns = latency.count() < 0 ? std::int64_t{0} : latency.count();
    // Below the range counts in the first bin: no underflow bin to lose it in.
    const double value = std::max(static_cast<double>(ns), lowest_ns);
    const auto index = bins_.axis().index(value);
    bins_.at(index) += count;
    count_ += count;
    min_ = std::min(min_, duration(ns));
    max_ = std::max(max_, duration(ns));
}

void latency_histogram::merge(const latency_histogram& other) {
    bins_ += other.bins_;
    count_ += other.count_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
}

latency_histogram::duration latency_histogram::percentile(double percent) const {
    if (count_ == 0) return duration::zero();
    percent = std::clamp(percent, 0.0, 100.0);
    // Nearest rank: the smallest value that at least `percent` % of the samples do not exceed.
    const auto wanted = static_cast<double>(count_) * percent / 100.0;
    auto rank = static_cast<std::uint64_t>(std::ceil(wanted - 1e-9 * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    const auto& ax = bins_.axis();
    std::uint64_t seen = 0;
    for (int i = 0; i < ax.size(); ++i) {
        seen += bins_.at(i);
        if (seen >= rank) {
            const auto upper = duration(static_cast<std::int64_t>(std::ceil(ax.bin(i).upper())));
            return std::clamp(upper, min(), max_);
        }
    }
    return max_;  // in the overflow bin
}

double latency_histogram::relative_error() noexcept {
    return std::pow(highest_ns / lowest_ns, 1.0 / bin_count) - 1.0;
}

}  // namespace hello::bench
