#pragma once

#include "net.hpp"
#include "socket_path_claim.hpp"

#include <hello/config.hpp>

#include <optional>
#include <vector>

namespace hello::detail {

// A listening socket and what it owns: for a filesystem UNIX socket, the claim on its path.
struct listener {
    endpoint where;  // as reported, with an ephemeral port resolved
    acceptor socket;
    std::optional<socket_path_claim> claim;
    bool is_tcp = false;
};

// Binds and listens on every address `ep` names. Throws hello::error with the system's error
// (address in use, permission denied, no such directory, ...) or an errc.
std::vector<listener> open_listeners(asio::io_context& ctx, const endpoint& ep, const server_config& cfg);

}  // namespace hello::detail
