#pragma once

#include <hello/endpoint.hpp>
#include <hello/framing.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace hello {

// Why a request did not get the reply it should have; the client's other failures are
// plain system errors (connection refused, timed out, ...).
enum class client_errc {
    unexpected_reply = 1,  // the server said something other than `hello client`
    closed_early,          // the server closed the connection before a whole reply came
};

const boost::system::error_category& client_category() noexcept;
boost::system::error_code make_error_code(client_errc e) noexcept;

struct client_options {
    endpoint server = endpoint::parse("unix:/tmp/uds_socket");
    hello::framing framing = framing::raw;
    std::chrono::milliseconds timeout{std::chrono::seconds{5}};  // connect, and each reply
    // Keep trying while nothing listens yet (no socket file, connection refused), for scripts
    // that start a server and a client together. Off: such errors are reported at once.
    bool wait_for_server = false;
};

// The async client: one connection, requests in lockstep. Errors come back as values:
// boost::asio::error::timed_out when `timeout` passes, client_errc for a wrong reply.
class client {
public:
    client(boost::asio::any_io_executor ex, client_options options);
    ~client();
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;

    // Connects, retrying within the timeout while a UNIX listener's backlog is full (and,
    // with `wait_for_server`, while there is no listener yet).
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

template <>
struct boost::system::is_error_code_enum<hello::client_errc> : std::true_type {};
