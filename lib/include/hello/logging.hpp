#pragma once

#include <hello/config.hpp>

namespace hello {

// Sends the process's log to stderr, one line per event, at `level` and above. The library
// logs through spdlog's default logger, so an application may install any other sink.
void init_logging(log_level level);

}  // namespace hello
