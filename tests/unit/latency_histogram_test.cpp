#include "latency_histogram.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>

using hello::bench::latency_histogram;
using namespace std::chrono_literals;
using ns = std::chrono::nanoseconds;

namespace {

// The nearest-rank percentile of 1, 2, ..., n microseconds, each recorded once.
ns exact_percentile_of_1_to_n_us(std::uint64_t n, double percent) {
    const auto rank = static_cast<std::int64_t>(std::ceil(static_cast<double>(n) * percent / 100.0));
    return std::chrono::microseconds(std::max<std::int64_t>(rank, 1));
}

}  // namespace

TEST(LatencyHistogram, EmptyReportsZero) {
    const latency_histogram h;
    EXPECT_EQ(h.count(), 0U);
    EXPECT_EQ(h.percentile(50), ns(0));
    EXPECT_EQ(h.percentile(100), ns(0));
    EXPECT_EQ(h.min(), ns(0));
    EXPECT_EQ(h.max(), ns(0));
}

TEST(LatencyHistogram, BinsAreNarrowerThanOnePercent) {
    EXPECT_GT(latency_histogram::relative_error(), 0.0);
    EXPECT_LT(latency_histogram::relative_error(), 0.01);
}

TEST(LatencyHistogram, OneValueIsEveryPercentile) {
    latency_histogram h;
    h.record(123'456ns);
    for (const double p : {0.1, 50.0, 90.0, 99.0, 99.9, 100.0}) EXPECT_EQ(h.percentile(p), 123'456ns) << p;
    EXPECT_EQ(h.min(), 123'456ns);
    EXPECT_EQ(h.max(), 123'456ns);
}

TEST(LatencyHistogram, PercentilesOfAUniformSpreadAreWithinOneBin) {
    latency_histogram h;
    constexpr std::uint64_t n = 100'000;
    for (std::uint64_t us = 1; us <= n; ++us) h.record(std::chrono::microseconds(us));
    ASSERT_EQ(h.count(), n);
    for (const double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
        const auto exact = exact_percentile_of_1_to_n_us(n, p);
        const auto got = h.percentile(p);
        // Never below the true value; above it by at most one bin's width.
        EXPECT_GE(got, exact) << p;
        EXPECT_LE(static_cast<double>(got.count()),
                  static_cast<double>(exact.count()) * (1 + latency_histogram::relative_error()) + 1)
            << p;
    }
    EXPECT_EQ(h.min(), 1us);
    EXPECT_EQ(h.max(), std::chrono::microseconds(n));
    EXPECT_EQ(h.percentile(100), std::chrono::microseconds(n));
}

TEST(LatencyHistogram, PercentilesComeFromTheDistributionNotTheMean) {
    // 98 fast requests and 2 very slow ones: the mean (about 2 ms) is nobody's latency.
    latency_histogram h;
    h.record(10us, 98);
    h.record(100ms, 2);
    EXPECT_LE(h.percentile(50), 11us);
    EXPECT_LE(h.percentile(98), 11us);
    EXPECT_GE(h.percentile(99), 100ms);
    EXPECT_EQ(h.percentile(99.9), 100ms);
    EXPECT_EQ(h.max(), 100ms);
}

TEST(LatencyHistogram, PercentilesAreOrdered) {
    latency_histogram h;
    // A long tail: most around 100 us, some up to a second.
    for (std::uint64_t i = 1; i <= 50'000; ++i) {
        const auto us = 100 + (i % 97) + (i % 1000 == 0 ? 1'000'000 / (i % 7 + 1) : 0);
        h.record(std::chrono::microseconds(us));
    }
    const auto p50 = h.percentile(50), p90 = h.percentile(90), p99 = h.percentile(99), p999 = h.percentile(99.9);
    EXPECT_LE(h.min(), p50);
    EXPECT_LE(p50, p90);
    EXPECT_LE(p90, p99);
    EXPECT_LE(p99, p999);
    EXPECT_LE(p999, h.max());
}

TEST(LatencyHistogram, ABatchCountsLikeItsRequestsOneByOne) {
    latency_histogram batched, single;
    batched.record(250us, 16);
    batched.record(0ns, 0);  // nothing
    for (int i = 0; i < 16; ++i) single.record(250us);
    EXPECT_EQ(batched.count(), 16U);
    for (const double p : {50.0, 99.0, 100.0}) EXPECT_EQ(batched.percentile(p), single.percentile(p)) << p;
}

TEST(LatencyHistogram, MergingThreadsEqualsRecordingInOne) {
    latency_histogram a, b, whole;
    for (std::uint64_t us = 1; us <= 5000; ++us) {
        (us % 2 ? a : b).record(std::chrono::microseconds(us * 3));
        whole.record(std::chrono::microseconds(us * 3));
    }
    a.merge(b);
    EXPECT_EQ(a.count(), whole.count());
    EXPECT_EQ(a.min(), whole.min());
    EXPECT_EQ(a.max(), whole.max());
    for (const double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(a.percentile(p), whole.percentile(p)) << p;
    latency_histogram empty;
    a.merge(empty);
    EXPECT_EQ(a.min(), whole.min());
}

TEST(LatencyHistogram, OutsideTheRangeIsKeptNotLost) {
    latency_histogram h;
    h.record(20ns);  // below the first bin
    h.record(200s);  // past the last
    h.record(-5ns);  // a clock that went backwards counts as 0
    EXPECT_EQ(h.count(), 3U);
    EXPECT_EQ(h.min(), 0ns);
    EXPECT_EQ(h.max(), 200s);
    EXPECT_EQ(h.percentile(100), 200s);
    EXPECT_LT(h.percentile(34), 1us);
}
