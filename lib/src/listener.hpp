#pragma once

#include "net.hpp"
#include "socket_path_claim.hpp"

#include <hello/config.hpp>
#include <hello/error.hpp>

#include <list>
#include <optional>
#include <string>
#include <vector>

namespace hello::detail {

// A listening socket and what it owns: for a filesystem UNIX socket the server bound, the
// claim on its path. A socket inherited from a supervisor (socket activation) owns nothing:
// the supervisor keeps it, so it is never unlinked, chmod-ed, locked or drained by us.
struct listener {
    endpoint where;                      // as reported, with an ephemeral port resolved
    std::optional<endpoint> configured;  // the configured endpoint it serves, if any
    acceptor socket;
    std::optional<socket_path_claim> claim;
    bool is_tcp = false;
    bool inherited = false;
    std::string name;  // an inherited socket's name from the supervisor (LISTEN_FDNAMES)

    // The endpoint as a log line names it: escaped, since a name may hold any byte.
    [[nodiscard]] std::string shown() const { return printable(where.to_string()); }
};

// Binds and listens on every address `ep` names, except those in `inherited`, which are
// taken from there. Throws hello::error with the system's error (address in use, permission
// denied, no such directory, ...) or an errc.
std::vector<listener> open_listeners(asio::io_context& ctx, const endpoint& ep, const server_config& cfg,
                                     std::list<listener>& inherited);

// Takes over a listening socket a supervisor passed down. Throws hello::error
// (errc::not_a_listening_socket) when `fd` is anything else.
listener adopt_listener(asio::io_context& ctx, int fd, std::string name);

// Gives a socket file the server bound the configured group and mode again, as after bind().
void reapply_socket_access(listener& l, const server_config& cfg);

}  // namespace hello::detail
