#include "net.hpp"

#include <hello/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include <sys/socket.h>
#include <sys/un.h>

namespace hello::detail {

bool is_no_such_host(const error_code& ec) noexcept {
    return ec == asio::error::host_not_found || ec == asio::error::no_data;
}

bool is_unix(const protocol::endpoint& addr) noexcept {
    return addr.data()->sa_family == AF_UNIX;
}

bool is_ip(const protocol::endpoint& addr) noexcept {
    return addr.data()->sa_family == AF_INET || addr.data()->sa_family == AF_INET6;
}

bool is_ipv6(const protocol::endpoint& addr) noexcept {
    return addr.data()->sa_family == AF_INET6;
}

protocol::endpoint unix_sockaddr(const unix_address& a) {
    // Built by hand: Asio's local endpoint counts an abstract name's leading NUL against the
    // 107 bytes it allows, so the longest names the kernel takes would not fit.
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const auto path = a.sun_path();
    static_assert(sizeof addr.sun_path == endpoint::max_unix_name + 1);
    if (path.size() > sizeof addr.sun_path) throw std::length_error("socket name too long: " + a.name);
    std::memcpy(addr.sun_path, path.data(), path.size());
    // A path is passed with its terminating NUL; an abstract name is exactly its bytes.
    const auto length = offsetof(sockaddr_un, sun_path) + path.size() + (a.abstract ? 0 : 1);
    return {&addr, std::min(length, sizeof addr), 0};
}

std::vector<protocol::endpoint> resolve(const endpoint& ep, bool passive) {
    if (ep.is_unix()) return {unix_sockaddr(ep.as_unix())};
    const auto& t = ep.as_tcp();
    asio::io_context ctx;
    asio::ip::tcp::resolver resolver(ctx);
    error_code ec;
    auto flags = asio::ip::tcp::resolver::numeric_service;
    if (passive) flags |= asio::ip::tcp::resolver::passive;
    const auto results = resolver.resolve(t.host, std::to_string(t.port), flags, ec);
    if (ec || results.empty()) {
        const auto code = !ec || is_no_such_host(ec) ? make_error_code(errc::host_not_found) : ec;
        throw error(code, "cannot resolve " + in_quotes(ep.to_string()) + ": " + (ec ? ec : code).message());
    }
    std::vector<protocol::endpoint> out;
    for (const auto& r : results) {
        const auto addr = r.endpoint();
        protocol::endpoint generic(addr.data(), addr.size());
        if (std::find(out.begin(), out.end(), generic) == out.end()) out.push_back(generic);
    }
    return out;
}

endpoint to_endpoint(const protocol::endpoint& addr) {
    if (is_ip(addr)) {
        asio::ip::tcp::endpoint tcp;
        std::memcpy(tcp.data(), addr.data(), addr.size());
        tcp.resize(addr.size());
        return endpoint{tcp_address{tcp.address().to_string(), tcp.port()}};
    }
    sockaddr_un local{};
    const auto size = std::min<std::size_t>(addr.size(), sizeof local);
    std::memcpy(&local, addr.data(), size);
    const auto offset = offsetof(sockaddr_un, sun_path);
    const std::string_view path(local.sun_path, size > offset ? size - offset : 0);
    if (!path.empty() && path.front() == '\0') return endpoint{unix_address{std::string(path.substr(1)), true}};
    return endpoint{unix_address{std::string(path.substr(0, path.find('\0'))), false}};
}

}  // namespace hello::detail
