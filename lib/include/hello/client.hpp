#pragma once

#include <hello/endpoint.hpp>
#include <hello/error.hpp>
#include <hello/framing.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace hello {

struct client_options {
    endpoint server = endpoint::parse("unix:/tmp/uds_socket");
    hello::framing framing = framing::raw;
    std::chrono::milliseconds timeout{std::chrono::seconds{5}};  // connect, and each reply
    // Keep trying while nothing listens yet (no socket file, connection refused), for scripts
    // that start a server and a client together. Off: such errors are reported at once.
    bool wait_for_server = false;
};

// The async client: one connection, requests in lockstep. Errors come back as values:
// boost::asio::error::timed_out when `timeout` passes; errc::unexpected_reply or
// errc::closed_early for a wrong reply; errc::host_not_found or errc::resolver_failed when
// a TCP host name does not resolve; otherwise the system's error (connection refused, ...).
class client {
public:
    client(boost::asio::any_io_executor ex, client_options options);
    ~client();
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;

    // Resolves the server's name and connects, all within the timeout, retrying while a UNIX
    // listener's backlog is full (and, with `wait_for_server`, while there is no listener yet).
    boost::asio::awaitable<boost::system::error_code> connect();

    // Sends `message` (a newline is added in line framing) and waits for the reply, which
    // lands in `reply` as received, without the line framing's newline. An empty message in
    // raw framing is invalid_argument: it would send nothing.
    boost::asio::awaitable<boost::system::error_code> request(std::string_view message, std::string& reply);

    void close();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace hello
