#pragma once

#include "net.hpp"

#include <hello/config.hpp>

#include <cstddef>
#include <optional>
#include <vector>

#include <sys/types.h>

namespace hello::detail {

// Who may stay once accepted: how many connections at once, and which UNIX peers.

// config.max_connections, or the descriptor limit less a reserve for everything else.
[[nodiscard]] std::size_t connection_limit(const server_config& cfg);

// A UNIX peer as the kernel vouches for it.
struct credentials {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;  // supplementary, when the kernel tells them (SO_PEERGROUPS)
};

[[nodiscard]] std::optional<credentials> peer_credentials(connection_socket& socket);

// The peer's uid is in allow_uids, or one of its groups in allow_gids.
[[nodiscard]] bool allowed(const credentials& peer, const server_config& cfg);

}  // namespace hello::detail
