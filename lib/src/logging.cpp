#include <hello/logging.hpp>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace hello {

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

void init_logging(log_level level) {
    spdlog::drop("hello");  // allow re-initialisation, as tests do
    // Unbuffered stderr, no colours: read by people, journald and tests alike.
    auto logger = spdlog::stderr_logger_mt("hello");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger->set_level(to_spdlog(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

}  // namespace hello
