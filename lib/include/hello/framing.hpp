#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hello {

// How requests are delimited on the wire.
//  raw:  every chunk the server reads is one request; the reply is `hello client` (the
//        tutorial's contract, so its Python scripts work unchanged).
//  line: every `\n`-terminated line is one request; the reply is `hello client\n`.
enum class framing : std::uint8_t { raw, line };

inline constexpr std::string_view raw_reply = "hello client";
inline constexpr std::string_view line_reply = "hello client\n";
inline constexpr std::string_view too_long_reply = "error: request too long\n";
// The most hello-server reads at once.
inline constexpr std::size_t max_raw_request = 64 * 1024;
// The longest raw message the clients send. A raw request is whatever one read returns, and the
// kernel hands a long write over in pieces (a UNIX socket from about 32 KiB, measured: some of
// 64 KiB messages got two replies), each answered; one page arrives whole.
inline constexpr std::size_t max_raw_message = 4096;

[[nodiscard]] std::string_view to_string(framing f) noexcept;
[[nodiscard]] std::optional<framing> parse_framing(std::string_view text) noexcept;
[[nodiscard]] inline std::string_view reply_for(framing f) noexcept {
    return f == framing::raw ? raw_reply : line_reply;
}

// What one look at buffered line-framed input found. Pure, so that splitting, pipelining
// and limits are tested without sockets.
struct line_scan {
    std::size_t complete = 0;  // requests fully received, in order
    std::size_t consumed = 0;  // bytes those requests occupy, newlines included
    bool too_long = false;     // the next request is over the limit: answer `complete`, then refuse
};

// Scans `buffered` for `\n`-terminated requests of at most `max_request_bytes` bytes each,
// not counting the `\n` nor a `\r` just before it (CRLF peers such as telnet are welcome).
// Stops at the first request over the limit, as soon as it is certain: a peer streaming an
// endless line is refused without waiting for its newline.
[[nodiscard]] line_scan scan_lines(std::string_view buffered, std::size_t max_request_bytes) noexcept;

// What a framer made of the bytes one read brought: that many replies are owed, in order,
// and then, if `refuse`, the refusal, after which the connection closes.
struct framed {
    std::size_t replies = 0;
    bool refuse = false;
    friend bool operator==(const framed&, const framed&) = default;
};

// Framers turn bytes read into replies owed. They hold no socket, so they are tested alone.

// Raw framing: every chunk read is one request, whatever it holds.
class raw_framer {
public:
    [[nodiscard]] static framed consume(std::string_view bytes) noexcept { return {bytes.empty() ? 0U : 1U, false}; }
};

// Line framing: remembers only how long the unfinished line is and how it ends, never its
// bytes (a reply does not depend on them), and looks at each byte once however the line is
// split: a long line costs time in proportion to its length and no memory at all.
class line_framer {
public:
    explicit line_framer(std::size_t max_request_bytes) noexcept : limit_(max_request_bytes) {}

    [[nodiscard]] framed consume(std::string_view bytes) noexcept;

    [[nodiscard]] std::size_t limit() const noexcept { return limit_; }
    // Length of the unfinished line seen so far (at most the limit plus one read).
    [[nodiscard]] std::size_t unfinished() const noexcept { return unfinished_; }

private:
    std::size_t limit_;
    std::size_t unfinished_ = 0;
    char last_ = 0;  // the unfinished line's last byte: a `\r` there may start a CRLF
};

}  // namespace hello
