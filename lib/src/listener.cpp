#include "listener.hpp"

#include <hello/error.hpp>

#include <cerrno>
#include <cstring>

#include <sys/stat.h>

namespace hello::detail {
namespace {

[[noreturn]] void cannot_listen(const endpoint& ep, const error_code& ec) {
    // A missing directory is the configuration's fault; the rest is about the endpoint, or
    // about what the system has left to give.
    auto code = exit_code::unavailable;
    if (ec == boost::system::errc::no_such_file_or_directory || ec == boost::system::errc::not_a_directory)
        code = exit_code::config;
    else if (is_resource_exhaustion(ec))
        code = exit_code::os_error;
    throw startup_error(code, "cannot listen on " + ep.to_string() + ": " + ec.message());
}

// open -> options -> bind -> (chmod) -> listen, so that no client ever sees the socket
// with the wrong permissions.
listener listen_on(asio::io_context& ctx, const endpoint& ep, const protocol::endpoint& addr,
                   const server_config& cfg) {
    listener l{ep, acceptor(ctx), std::nullopt, !ep.is_unix()};
    const bool filesystem_socket = ep.is_unix() && !ep.unix().abstract;
    if (filesystem_socket) l.claim.emplace(ep.unix().name);

    error_code ec;
    l.socket.open(addr.protocol(), ec);
    if (!ec && l.is_tcp) l.socket.set_option(asio::socket_base::reuse_address(true), ec);
    // An IPv6 listener serves IPv6 only, so that tcp:0.0.0.0:P and tcp:[::]:P can both be listed.
    if (!ec && addr.data()->sa_family == AF_INET6) l.socket.set_option(asio::ip::v6_only(true), ec);
    if (!ec) l.socket.bind(addr, ec);
    if (ec) cannot_listen(ep, ec);
    if (filesystem_socket && ::chmod(ep.unix().name.c_str(), cfg.socket_mode) != 0)
        cannot_listen(ep, error_code(errno, boost::system::system_category()));
    l.socket.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) cannot_listen(ep, ec);
    if (l.is_tcp) l.where = to_endpoint(l.socket.local_endpoint());
    return l;
}

}  // namespace

std::vector<listener> open_listeners(asio::io_context& ctx, const endpoint& ep, const server_config& cfg) {
    std::vector<listener> out;
    for (const auto& addr : resolve(ep, true)) out.push_back(listen_on(ctx, ep, addr, cfg));
    return out;
}

}  // namespace hello::detail
