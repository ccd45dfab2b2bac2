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
// Lifecycle: construct (binds every endpoint, or throws startup_error and leaves nothing
// behind), start(), then run the io_context on `config.threads` threads. stop() drains:
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
