#pragma once

#include <hello/endpoint.hpp>
#include <hello/framing.hpp>

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace hello {

enum class log_level { trace, debug, info, warn, error, off };

[[nodiscard]] std::string_view to_string(log_level l) noexcept;

// Everything the server needs to run, already validated.
struct server_config {
    std::vector<endpoint> listen{endpoint::parse("unix:/tmp/uds_socket")};
    hello::framing framing = framing::raw;
    unsigned threads = 1;
    hello::log_level log_level = log_level::info;
    unsigned socket_mode = 0660;
    std::size_t max_request_bytes = 4096;
    std::chrono::milliseconds drain_timeout{std::chrono::seconds{10}};
};

// Where each setting's value came from, for --print-config.
enum class config_source { defaults, file, environment, command_line };
[[nodiscard]] std::string_view to_string(config_source s) noexcept;

// What the command line asked the server process to do.
struct server_invocation {
    enum class action { run, check_config, print_config, help, version };
    action what = action::run;
    server_config config;
    std::map<std::string, config_source> sources;  // option name -> origin of its value
    std::string help_text;
};

// Reads the command line, then HELLO_* environment variables, then the config file
// (`--config`, itself settable as HELLO_CONFIG), first source wins per option.
// Throws startup_error: exit_code::usage for a bad command line or environment,
// exit_code::config for an unreadable or malformed file and for invalid values anywhere.
[[nodiscard]] server_invocation parse_server_invocation(int argc, const char* const argv[], const char* const* envp);

// The effective configuration as config-file lines, each with its origin as a comment.
[[nodiscard]] std::string describe(const server_invocation& inv);

}  // namespace hello
