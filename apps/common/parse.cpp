#include "parse.hpp"

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

namespace hello::app {

std::optional<std::chrono::milliseconds> parse_seconds(std::string_view text) {
    double seconds = 0;
    std::istringstream in{std::string(text)};
    in >> seconds;
    if (!in || !in.eof() || !std::isfinite(seconds) || seconds < 0 || seconds > 86400) return std::nullopt;
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000)));
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
