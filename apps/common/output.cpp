#include "output.hpp"

#include <cerrno>
#include <cstdio>
#include <iostream>

namespace hello::app {

namespace {
int first_failure = 0;  // the programs write their output from one thread
}

void flush_output() noexcept {
    // std::cout writes through stdio (sync_with_stdio is left on): its flush is stdio's, and
    // may be the one that fails.
    errno = 0;
    std::cout.flush();
    const int stream_errno = std::cout.good() ? 0 : errno;
    errno = 0;
    const int stdio_errno = std::fflush(stdout) != 0 ? errno : 0;
    if (first_failure == 0 && (!std::cout.good() || std::ferror(stdout)))
        first_failure = stream_errno != 0 ? stream_errno : stdio_errno != 0 ? stdio_errno : EIO;
}

int output_error() noexcept {
    flush_output();
    return first_failure;
}

}  // namespace hello::app
