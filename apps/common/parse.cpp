#include "parse.hpp"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

namespace hello::app {

std::optional<std::chrono::milliseconds> parse_seconds(std::string_view text) {
    // Blanks are refused as the integer options refuse them (the stream would skip them).
    if (text.empty() || std::isspace(static_cast<unsigned char>(text.front()))) return std::nullopt;
    double seconds = 0;
    std::istringstream in{std::string(text)};
    in >> seconds;
    if (!in || !in.eof() || !std::isfinite(seconds) || seconds < 0 || seconds > 86400) return std::nullopt;
    const auto ms = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000)));
    // Under half a millisecond would round to 0, which turns a timeout off: not what was asked.
    if (ms.count() == 0 && seconds > 0) return std::nullopt;
    return ms;
}

std::optional<std::string> message_problem(hello::framing f, std::string_view message) {
    if (f == hello::framing::line && message.find('\n') != std::string_view::npos)
        return "--message cannot contain a newline in line framing";
    if (f == hello::framing::raw && message.empty()) return "--message cannot be empty in raw framing";
    if (f == hello::framing::raw && message.size() > hello::max_raw_message)
        return "--message over " + std::to_string(hello::max_raw_message) +
               " bytes in raw framing: the kernel may hand it over in pieces, and each piece gets a reply";
    return std::nullopt;
}

std::string format_seconds(std::chrono::milliseconds ms) {
    const auto count = ms.count();
    auto text = std::to_string(count / 1000);
    if (const auto fraction = count % 1000; fraction != 0) {
        auto digits = std::to_string(1000 + fraction).substr(1);
        while (digits.ends_with('0')) digits.pop_back();
        text += "." + digits;
    }
    return text;
}

}  // namespace hello::app
