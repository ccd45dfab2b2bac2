#pragma once

// A property the fuzz targets hold the code to. Unlike assert() it survives NDEBUG: a
// violation prints what was expected and aborts, and libFuzzer keeps the input as a crash.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, ...)                                                               \
    do {                                                                                         \
        if (!(condition)) {                                                                      \
            std::fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__, __LINE__, #condition); \
            std::fprintf(stderr, __VA_ARGS__);                                                   \
            std::fputc('\n', stderr);                                                            \
            std::abort();                                                                        \
        }                                                                                        \
    } while (false)

namespace hello::fuzz {

// One line of printable ASCII: what the project promises of every error message.
inline bool printable_line(const char* text) {
    for (const char* c = text; *c; ++c)
        if (static_cast<unsigned char>(*c) < 0x20 || static_cast<unsigned char>(*c) > 0x7e) return false;
    return true;
}

}  // namespace hello::fuzz
