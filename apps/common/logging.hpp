#pragma once

#include <optional>
#include <string_view>

namespace hello::app {

enum class log_level { trace, debug, info, warn, error, off };

[[nodiscard]] std::string_view to_string(log_level l) noexcept;
[[nodiscard]] std::optional<log_level> parse_log_level(std::string_view text) noexcept;

// Sends the process's log to stderr, one line per event, at `level` and above. The library
// logs through spdlog's default logger and leaves it alone; this is the programs' choice.
void init_logging(log_level level);

// Changes the level of what init_logging() set up (a reload).
void set_log_level(log_level level);

}  // namespace hello::app
