#pragma once

#include <hello/endpoint.hpp>
#include <hello/framing.hpp>

#include <chrono>
#include <cstddef>
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
};

}  // namespace hello
