#pragma once

#include <hello/framing.hpp>

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace hello::app {

// Strict conversions for option values: the whole text must be the number, nothing more.
// (Stream and lexical_cast conversions accept "-1" for an unsigned, or trailing junk.)
template <typename Number>
[[nodiscard]] std::optional<Number> parse_number(std::string_view text, int base = 10) {
    Number value{};
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value, base);
    if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
    return value;
}

// Seconds with an optional fraction ("10", "0.25"), from 0 to one day, to the millisecond; a
// value above 0 that rounds to 0 ms is refused, as is a leading blank.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_seconds(std::string_view text);

// What makes `message` no single request in framing `f`, as a usage error says it; nullopt if
// nothing: a newline in line framing (two requests), nothing at all in raw framing (no request:
// the server would never answer), or more in raw framing than arrives in one piece.
[[nodiscard]] std::optional<std::string> message_problem(hello::framing f, std::string_view message);

// Milliseconds as the shortest seconds text that parse_seconds() reads back exactly.
[[nodiscard]] std::string format_seconds(std::chrono::milliseconds ms);

}  // namespace hello::app
