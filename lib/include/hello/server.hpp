#pragma once

#include <hello/config.hpp>
#include <hello/endpoint.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hello {

// A listening socket a supervisor passed down (systemd's socket activation): the descriptor,
// and its name if the supervisor gave one (LISTEN_FDNAMES).
struct inherited_socket {
    int fd = -1;
    std::string name;
};

struct server_stats {
    std::uint64_t connections = 0;  // accepted since start
    std::uint64_t requests = 0;     // answered since start
    std::uint64_t open = 0;         // open right now
    std::uint64_t refused = 0;      // turned away at max_connections
    std::uint64_t denied = 0;       // turned away by allow_uids / allow_gids
    std::uint64_t timed_out = 0;    // closed by idle_timeout or write_timeout
};

// The hello service: listeners on every configured endpoint, one session per connection.
//
// Lifecycle: construct (binds every endpoint, or throws hello::error and leaves nothing
// behind), then run(), which serves on `config.threads` threads until the server has
// stopped. (Or start(), then run the io_context yourself, on exactly one thread: with
// `config.threads` > 1 the server runs the other event loops on threads of its own, and
// connections dealt to the io_context share no strand.) stop() drains:
// it stops accepting, removes socket files, lets each connection finish the request it
// has sent, closes idle ones and force-closes the rest after `drain_timeout`. Once the
// last connection is gone `on_stopped` runs and the io_context runs out of work.
class server {
public:
    // A configured endpoint whose address one of `inherited` has is served through that socket
    // rather than bound; inherited sockets no endpoint names are served too. The server takes
    // the descriptors, and never unlinks, chmods, locks or drains what they are bound to.
    // Throws hello::error: errc::not_a_listening_socket for an inherited descriptor that is no
    // listening stream socket, or whatever binding an endpoint met.
    server(boost::asio::io_context& ctx, server_config config, std::vector<inherited_socket> inherited = {});
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Where the server listens, with ephemeral TCP ports resolved (for tcp:host:0).
    // Thread-safe: a reload may change them.
    [[nodiscard]] std::vector<endpoint> endpoints() const;

    // Starts `config.threads` - 1 threads, each with an event loop of its own, then serves on
    // them and the caller until stopped and the io_context has no work left; connections are
    // dealt to the loops in turn. Throws hello::error (nothing served) when the system will
    // not give every thread.
    // `serving`, if given, is posted once every listener accepts (to say READY=1, say).
    void run(std::function<void()> serving = {});

    // Starts the server's threads (as run() does, and may throw as it does), then accepting;
    // the caller runs the io_context on one thread.
    void start();

    // Applies `config` from now on: framing and limits to new connections, socket mode to the
    // socket files, listeners opened and closed to match `listen` (inherited ones stay).
    // `threads` cannot change. `done` gets what could not be applied, one line each (an
    // endpoint that would not bind, say); the rest applies all the same. Thread-safe.
    void reload(server_config config, std::function<void(std::vector<std::string> problems)> done = {});

    // Thread-safe; calling it again while draining does nothing but remember the callback.
    void stop(std::function<void()> on_stopped = {});

    // Closes every connection now, without waiting (a second SIGTERM).
    void abort();

    // Calls `done`, on one of the server's threads, once every event loop of the server has run
    // a handler: a liveness probe for a watchdog, which a hung loop never answers.
    void probe_loops(std::function<void()> done);

    [[nodiscard]] server_stats stats() const noexcept;

    // How many connections may be open at once: config.max_connections, or the descriptor
    // limit less a reserve.
    [[nodiscard]] std::size_t max_connections() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace hello
