#pragma once

#include <hello/endpoint.hpp>
#include <hello/framing.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <vector>

namespace hello {

// Everything a server needs to run. The programs read it from the command line, the
// environment and a file; an embedder fills it in.
struct server_config {
    std::vector<endpoint> listen{endpoint::parse("unix:/tmp/uds_socket")};
    hello::framing framing = framing::raw;
    unsigned threads = 1;  // server::run() starts them; see server.hpp
    unsigned socket_mode = 0660;
    std::size_t max_request_bytes = 4096;  // line framing: the longest request
    std::chrono::milliseconds drain_timeout{std::chrono::seconds{10}};

    // Limits: what one peer or many can hold. Zero turns a limit off.
    std::size_t max_connections = 0;            // 0: the descriptor limit less a reserve (server::max_connections())
    std::chrono::milliseconds idle_timeout{0};  // no request for that long: closed (0: never)
    std::chrono::milliseconds write_timeout{std::chrono::seconds{30}};  // a reply not taken that long: closed

    // Access to UNIX endpoints. The group is given to socket files with their mode. A peer is
    // let in when its uid is in allow_uids or one of its groups in allow_gids; both empty:
    // everyone the socket file's mode lets connect. An abstract socket has no mode: the lists
    // are all there is.
    std::optional<unsigned> socket_group;
    std::vector<unsigned> allow_uids;
    std::vector<unsigned> allow_gids;
};

}  // namespace hello
