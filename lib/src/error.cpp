#include <hello/error.hpp>

namespace hello {

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7f && c != '\\' && c != '\'') {
            out += c;
            continue;
        }
        constexpr char digits[] = "0123456789abcdef";
        out += "\\x";
        out += digits[byte >> 4];
        out += digits[byte & 0xf];
    }
    return out;
}

std::string in_quotes(std::string_view text) {
    std::string out(1, '\'');
    out += printable(text);
    out += '\'';
    return out;
}

}  // namespace hello
