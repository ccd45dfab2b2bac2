#pragma once

// The Boost.Asio vocabulary shared by the server and the client. <utility> and the
// co_spawn/detached headers come first: Asio's coroutine headers have used std::exchange
// and co_spawn without including them in some releases.
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <hello/endpoint.hpp>

namespace hello::detail {

namespace asio = boost::asio;
using boost::system::error_code;

// Every asynchronous call completes with its error_code as a value (`auto [ec, n] = co_await
// op(..., nothrow)`): a peer that goes away is an expected event, not an exception.
//
// The token is passed per call rather than made the sockets' default (as_default_on_t): a
// socket whose executor type differs from the coroutine's makes Asio track outstanding work
// on both for every operation, about a third more instructions per request.
using nothrow_token = asio::as_tuple_t<asio::use_awaitable_t<>>;
inline constexpr nothrow_token nothrow{};

// One socket type for UNIX and TCP alike: the endpoint decides the family at run time, and
// a socket inherited from a supervisor can be adopted whatever its family.
using protocol = asio::generic::stream_protocol;
using stream_socket = protocol::socket;
// A connection the server accepted, bound to the io_context of the event loop that serves it:
// its pending operations then hold that executor itself rather than a type-erased one, which
// makes them smaller and spares Asio's work counting a virtual call per operation.
using connection_socket = asio::basic_stream_socket<protocol, asio::io_context::executor_type>;
using acceptor = asio::basic_socket_acceptor<protocol>;
using timer = asio::steady_timer;

// The resolver's way of saying that a name has no address (as opposed to failing to ask).
[[nodiscard]] bool is_no_such_host(const error_code& ec) noexcept;

// The address family, asked in one place.
[[nodiscard]] bool is_unix(const protocol::endpoint& addr) noexcept;
[[nodiscard]] bool is_ip(const protocol::endpoint& addr) noexcept;
[[nodiscard]] bool is_ipv6(const protocol::endpoint& addr) noexcept;
template <typename Executor>
[[nodiscard]] bool is_unix(const asio::basic_stream_socket<protocol, Executor>& socket) noexcept {
    error_code ec;
    const auto local = socket.local_endpoint(ec);
    return !ec && is_unix(local);
}

// Sends each request or reply at once over TCP (no Nagle delay); nothing for UNIX sockets.
template <typename Executor>
void send_without_delay(asio::basic_stream_socket<protocol, Executor>& socket) noexcept {
    error_code ec;
    const auto local = socket.local_endpoint(ec);
    if (!ec && is_ip(local)) socket.set_option(asio::ip::tcp::no_delay(true), ec);
}

// The socket address of a UNIX endpoint, names of the full 107 bytes included.
protocol::endpoint unix_sockaddr(const unix_address& a);

// The socket addresses an endpoint names (one for UNIX, one per resolved address for TCP).
// Throws hello::error: errc::host_not_found, or the resolver's own failure.
std::vector<protocol::endpoint> resolve(const endpoint& ep, bool passive);

// The endpoint a socket address stands for, e.g. to report an ephemeral port.
endpoint to_endpoint(const protocol::endpoint& addr);

}  // namespace hello::detail
