#pragma once

// The load generator behind `hello-client bench`: connections spread over threads, each
// thread with an event loop of its own, each connection sending a batch of requests, reading
// the replies, checking them byte for byte and recording the latency, then the next batch.

#include "latency_histogram.hpp"

#include <hello/endpoint.hpp>
#include <hello/framing.hpp>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hello::bench {

enum class mode {
    connect,     // connect, send, read the replies, close: every request on a new connection
    persistent,  // connections opened once; each sends its next batch when the last is answered
};

struct scenario {
    bench::mode mode = mode::persistent;
    hello::framing framing = framing::raw;
    std::string message = "hello server";
    unsigned connections = 50;
    unsigned threads = 1;
    unsigned pipeline = 1;  // requests sent together in one write, then answered before the next batch
    std::optional<std::chrono::milliseconds> duration;           // measure for this long...
    std::optional<std::uint64_t> requests;                       // ...or until this many requests are done
    std::chrono::milliseconds warmup{0};                         // load before measuring (with a duration)
    std::chrono::milliseconds timeout{std::chrono::seconds(5)};  // for a connect, and for each batch's replies
};

// Requests that did not get their right reply, by what happened. Every request issued is
// either answered correctly (counted in `requests`) or counted here once.
struct error_counts {
    std::uint64_t unexpected_reply = 0;  // a byte differing from the expected reply, or one too many
    std::uint64_t closed = 0;            // the server closed or reset the connection before replying
    std::uint64_t timeout = 0;           // no complete reply within the timeout
    std::uint64_t connect = 0;           // connect mode: the connection could not be made

    [[nodiscard]] std::uint64_t total() const noexcept { return unexpected_reply + closed + timeout + connect; }
    error_counts& operator+=(const error_counts& o) noexcept;
};

struct result {
    std::string endpoint;
    std::uint64_t requests = 0;         // answered correctly while measuring
    double seconds = 0;                 // the measured interval
    latency_histogram latency;          // one sample per request answered while measuring
    error_counts errors;                // while measuring
    std::uint64_t connects = 0;         // connections made (all phases)
    std::uint64_t connect_retries = 0;  // connects retried because the listener's backlog was full
    double cpu_user_seconds = 0;        // this process, over the measured interval
    double cpu_system_seconds = 0;

    [[nodiscard]] double requests_per_second() const noexcept { return seconds > 0 ? requests / seconds : 0; }
};

// A failure before any load runs: the endpoint does not resolve, nothing answers, no
// descriptor is left for the connections.
struct setup_failure {
    boost::system::error_code ec;
    std::string what;  // one line
};

// What the progress display sees once a second: totals so far in the measured interval.
struct progress {
    bool measuring = false;
    std::chrono::steady_clock::duration elapsed{};  // since measuring began (or since the start)
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
};
using progress_callback = std::function<void(const progress&)>;

// The socket addresses an endpoint names: one for UNIX, those it resolves to for TCP.
// Throws setup_failure.
std::vector<boost::asio::generic::stream_protocol::endpoint> addresses_of(const hello::endpoint& ep);

// Connects to the first address that answers and sends it one request of the scenario, all
// within its timeout (retrying while a UNIX backlog is full); returns that address once the
// reply is right. Throws setup_failure: a connect that fails, or a reply that is wrong
// (hello::errc::unexpected_reply, closed_early) or does not come (timed_out).
boost::asio::generic::stream_protocol::endpoint probe(const hello::endpoint& ep, const scenario& s);

// Runs the scenario against `address` (as probe() returned it; `name` is how results call it).
// With a duration, the batches under way when it ends are waited for (up to the timeout) and
// their failures counted, but not their answers. `on_progress`, if set, is called from this
// thread about once a second. Throws setup_failure when the persistent connections cannot all
// be opened, or this process runs out of descriptors or memory for a connection.
result run(const scenario& s, const boost::asio::generic::stream_protocol::endpoint& address, std::string name,
           const progress_callback& on_progress);

}  // namespace hello::bench
