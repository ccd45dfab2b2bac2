#include <hello/framing.hpp>

#include <cstdint>

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

// Whether an unfinished request of `length` bytes, ending in `last`, can no longer become
// valid; one byte more is allowed in case it is the `\r` of a CRLF.
bool unfinished_too_long(std::size_t length, char last, std::size_t limit) noexcept {
    return length > limit && (length > limit + 1 || last != '\r');
}

// Counted in blocks small enough for a one-byte counter, which the compiler turns into 16
// comparisons an instruction; std::count's 64-bit sum vectorises far less well.
std::size_t count_newlines(std::string_view bytes) noexcept {
    std::size_t total = 0;
    while (!bytes.empty()) {
        const auto block = bytes.substr(0, 255);
        std::uint8_t in_block = 0;
        for (const char c : block) in_block = static_cast<std::uint8_t>(in_block + (c == '\n' ? 1 : 0));
        total += in_block;
        bytes.remove_prefix(block.size());
    }
    return total;
}

}  // namespace

framed line_framer::consume(std::string_view bytes) noexcept {
    framed out;
    if (bytes.empty()) return out;
    if (unfinished_ > 0) {
        // Only the new bytes are searched: the unfinished line is known to hold no newline.
        const auto newline = bytes.find('\n');
        if (newline == std::string_view::npos) {
            if (unfinished_too_long(unfinished_ + bytes.size(), bytes.back(), limit_)) return {0, true};
            unfinished_ += bytes.size();
            last_ = bytes.back();
            return out;
        }
        const char last = newline > 0 ? bytes[newline - 1] : last_;
        const auto length = unfinished_ + newline - (last == '\r' ? 1 : 0);
        if (length > limit_) return {0, true};
        out.replies = 1;
        unfinished_ = 0;
        bytes.remove_prefix(newline + 1);
    }
    const auto scan = scan_lines(bytes, limit_);
    out.replies += scan.complete;
    out.refuse = scan.too_long;
    if (!out.refuse) {
        const auto rest = bytes.substr(scan.consumed);
        unfinished_ = rest.size();
        if (!rest.empty()) last_ = rest.back();
    }
    return out;
}

line_scan scan_lines(std::string_view buffered, std::size_t max_request_bytes) noexcept {
    line_scan scan;
    if (buffered.size() <= max_request_bytes) {
        // No request in so few bytes can be over the limit: count newlines rather than search
        // for each line.
        scan.complete = count_newlines(buffered);
        if (scan.complete > 0) scan.consumed = buffered.rfind('\n') + 1;
        return scan;
    }
    for (;;) {
        const auto rest = buffered.substr(scan.consumed);
        const auto newline = rest.find('\n');
        if (newline == std::string_view::npos) {
            // An unfinished request already past the limit can never become valid; one more
            // byte is allowed in case it is the `\r` of a CRLF.
            scan.too_long = !rest.empty() && unfinished_too_long(rest.size(), rest.back(), max_request_bytes);
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
