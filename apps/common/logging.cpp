#include "logging.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

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

// systemd says so in JOURNAL_STREAM ("device:inode" of the stream it connected to stderr):
// when stderr is still that stream, lines go to the journal with their priority.
bool stderr_is_the_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    struct stat st {};
    if (!stream || ::fstat(STDERR_FILENO, &st) != 0) return false;
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
    return device == st.st_dev && inode == st.st_ino;
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
    std::shared_ptr<spdlog::logger> logger;
    if (stderr_is_the_journal()) {
        // The journal keeps its own time and takes the level as priority (journalctl -p err).
        logger = spdlog::systemd_logger_mt("hello", "hello-server");
    } else {
        // Unbuffered stderr, no colours: read by people and tests alike.
        logger = spdlog::stderr_logger_mt("hello");
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    }
    logger->set_level(to_spdlog(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

void set_log_level(log_level level) {
    spdlog::set_level(to_spdlog(level));
}

}  // namespace hello::app
