#pragma once

#include <hello/config.hpp>
#include <hello/endpoint.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace hello {

struct server_stats {
    std::uint64_t connections = 0;  // accepted since start
    std::uint64_t requests = 0;     // answered since start
    std::uint64_t open = 0;         // open right now
};

// The hello service: listeners on every configured endpoint, one coroutine per connection.
//
// Lifecycle: construct (binds every endpoint, or throws hello::error and leaves nothing
// behind), then run(), which serves on `config.threads` threads until the server has
// stopped. (Or start(), then run the io_context yourself: on exactly one thread when
// `config.threads` is 1, since connections then share no strand.) stop() drains:
// it stops accepting, removes socket files, lets each connection finish the request it
// has sent, closes idle ones and force-closes the rest after `drain_timeout`. Once the
// last connection is gone `on_stopped` runs and the io_context runs out of work.
class server {
public:
    server(boost::asio::io_context& ctx, server_config config);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Where the server listens, with ephemeral TCP ports resolved (for tcp:host:0).
    [[nodiscard]] const std::vector<endpoint>& endpoints() const noexcept;

    // Starts `config.threads` - 1 threads, then serves on them and the caller until stopped
    // and the io_context has no work left. Throws hello::error (nothing served) when the
    // system will not give every thread.
    void run();

    // Starts accepting; the caller runs the io_context.
    void start();

    // Thread-safe; calling it again while draining does nothing but remember the callback.
    void stop(std::function<void()> on_stopped = {});

    // Closes every connection now, without waiting (a second SIGTERM).
    void abort();

    [[nodiscard]] server_stats stats() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace hello
