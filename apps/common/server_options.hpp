#pragma once

#include "exit_code.hpp"
#include "logging.hpp"

#include <hello/config.hpp>

#include <map>
#include <string>
#include <string_view>

namespace hello::app {

// Where each setting's value came from, for --print-config.
enum class config_source { defaults, file, environment, command_line };
[[nodiscard]] std::string_view to_string(config_source s) noexcept;

// What the command line asked the server process to do.
struct server_invocation {
    enum class action { run, check_config, print_config, help, version };
    action what = action::run;
    server_config config;
    app::log_level log_level = log_level::info;
    std::map<std::string, config_source> sources;  // setting name -> origin of its value
    std::string help_text;
};

// Reads the command line, then HELLO_* environment variables, then the config file
// (`--config`, itself settable as HELLO_CONFIG), first source wins per setting.
// Throws startup_error: exit_code::usage for a bad command line or environment,
// exit_code::config for an unreadable or malformed file and for invalid values anywhere,
// exit_code::os_error when reading the file meets a shortage.
[[nodiscard]] server_invocation parse_server_invocation(int argc, const char* const argv[], const char* const* envp);

// The effective configuration as config-file lines, each with its origin as a comment.
[[nodiscard]] std::string describe(const server_invocation& inv);

}  // namespace hello::app
