#include "logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace hello::app {
namespace {

spdlog::level::level_enum to_spdlog(log_level l) {
    switch (l) {
        case log_level::trace:
            return spdlog::level::trace;
        case log_level::debug:
            return spdlog::level::debug;
        case log_level::info:
            return spdlog::level::info;
        case log_level::warn:
            return spdlog::level::warn;
        case log_level::error:
            return spdlog::level::err;
        case log_level::off:
            return spdlog::level::off;
    }
    return spdlog::level::info;
}

}  // namespace

std::string_view to_string(log_level l) noexcept {
    switch (l) {
        case log_level::trace:
            return "trace";
        case log_level::debug:
            return "debug";
        case log_level::info:
            return "info";
        case log_level::warn:
            return "warn";
        case log_level::error:
            return "error";
        case log_level::off:
            return "off";
    }
    return "?";
}

std::optional<log_level> parse_log_level(std::string_view text) noexcept {
    for (auto l :
         {log_level::trace, log_level::debug, log_level::info, log_level::warn, log_level::error, log_level::off})
        if (text == to_string(l)) return l;
    return std::nullopt;
}

void init_logging(log_level level) {
    spdlog::drop("hello");  // allow re-initialisation, as tests do
    // Unbuffered stderr, no colours: read by people, journald and tests alike.
    auto logger = spdlog::stderr_logger_mt("hello");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger->set_level(to_spdlog(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

}  // namespace hello::app
