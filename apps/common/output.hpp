#pragma once

namespace hello::app {

// Flushes standard output (std::cout and stdio alike), remembering why the first failed flush
// failed. A program's report flushes through here, so that output_error() can say why.
void flush_output() noexcept;

// Whether everything written to standard output got there: a report that went to a full disk
// must not end in exit 0. Flushes first; 0, or the errno of the first failure (EIO when the
// system's reason was not seen).
[[nodiscard]] int output_error() noexcept;

}  // namespace hello::app
