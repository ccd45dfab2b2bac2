#include <hello/framing.hpp>

namespace hello {

std::string_view to_string(framing f) noexcept {
    return f == framing::raw ? "raw" : "line";
}

std::optional<framing> parse_framing(std::string_view text) noexcept {
    if (text == "raw") return framing::raw;
    if (text == "line") return framing::line;
    return std::nullopt;
}

namespace {

// Length of a request as the limit sees it: without the trailing `\r` of a CRLF line.
std::size_t request_length(std::string_view line) noexcept {
    return line.ends_with('\r') ? line.size() - 1 : line.size();
}

}  // namespace

line_scan scan_lines(std::string_view buffered, std::size_t max_request_bytes) noexcept {
    line_scan scan;
    for (;;) {
        const auto rest = buffered.substr(scan.consumed);
        const auto newline = rest.find('\n');
        if (newline == std::string_view::npos) {
            // An unfinished request already past the limit can never become valid; one more
            // byte is allowed in case it is the `\r` of a CRLF.
            scan.too_long =
                rest.size() > max_request_bytes && (rest.size() > max_request_bytes + 1 || !rest.ends_with('\r'));
            return scan;
        }
        if (request_length(rest.substr(0, newline)) > max_request_bytes) {
            scan.too_long = true;
            return scan;
        }
        ++scan.complete;
        scan.consumed += newline + 1;
    }
}

}  // namespace hello
