#include "net.hpp"

#include <hello/error.hpp>

#include <algorithm>
#include <cstring>

#include <sys/socket.h>

namespace hello::detail {

std::vector<protocol::endpoint> resolve(const endpoint& ep, bool passive) {
    if (ep.is_unix()) {
        const asio::local::stream_protocol::endpoint local(ep.unix().sun_path());
        return {protocol::endpoint(local.data(), local.size())};
    }
    const auto& t = ep.tcp();
    asio::io_context ctx;
    asio::ip::tcp::resolver resolver(ctx);
    error_code ec;
    auto flags = asio::ip::tcp::resolver::numeric_service;
    if (passive) flags |= asio::ip::tcp::resolver::passive;
    const auto results = resolver.resolve(t.host, std::to_string(t.port), flags, ec);
    if (ec || results.empty())
        throw startup_error(exit_code::config, "cannot resolve '" + ep.to_string() + "': " + ec.message());
    std::vector<protocol::endpoint> out;
    for (const auto& r : results) {
        const auto addr = r.endpoint();
        protocol::endpoint generic(addr.data(), addr.size());
        if (std::find(out.begin(), out.end(), generic) == out.end()) out.push_back(generic);
    }
    return out;
}

endpoint to_endpoint(const protocol::endpoint& addr) {
    const int family = addr.data()->sa_family;
    if (family == AF_INET || family == AF_INET6) {
        asio::ip::tcp::endpoint tcp;
        std::memcpy(tcp.data(), addr.data(), addr.size());
        tcp.resize(addr.size());
        return endpoint{tcp_address{tcp.address().to_string(), tcp.port()}};
    }
    asio::local::stream_protocol::endpoint local;
    std::memcpy(local.data(), addr.data(), addr.size());
    local.resize(addr.size());
    const auto path = local.path();
    if (!path.empty() && path.front() == '\0') return endpoint{unix_address{path.substr(1), true}};
    return endpoint{unix_address{path, false}};
}

}  // namespace hello::detail
