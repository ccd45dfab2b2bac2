#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace hello {

// A filesystem UNIX socket (`unix:/run/hello.sock`) or a Linux abstract one (`unix:@hello`).
struct unix_address {
    std::string name;  // the path, or the abstract name without its leading '@'
    bool abstract = false;

    // What goes into sun_path: the path, or a NUL byte followed by the abstract name.
    [[nodiscard]] std::string sun_path() const;
    friend bool operator==(const unix_address&, const unix_address&) = default;
};

// `tcp:HOST:PORT`; HOST is an IPv4 address, a bracketed IPv6 address or a host name.
struct tcp_address {
    std::string host;
    std::uint16_t port = 0;
    friend bool operator==(const tcp_address&, const tcp_address&) = default;
};

// One place to listen on or connect to, as written in config: `unix:/path`, `unix:@name`,
// `tcp:host:port`, `tcp:[v6]:port`; a bare `/path`, `./path` or `@name` means unix.
class endpoint {
public:
    // Longest sun_path payload Linux accepts: 108 bytes less the terminating NUL for a path,
    // less the leading NUL for an abstract name.
    static constexpr std::size_t max_unix_name = 107;

    using address = std::variant<unix_address, tcp_address>;

    explicit endpoint(address a) : address_(std::move(a)) {}

    // Throws hello::error (errc::bad_endpoint, errc::name_too_long) with one line naming the
    // text and the fault.
    [[nodiscard]] static endpoint parse(std::string_view text);

    [[nodiscard]] const address& get() const noexcept { return address_; }
    [[nodiscard]] bool is_unix() const noexcept { return std::holds_alternative<unix_address>(address_); }
    [[nodiscard]] const unix_address& as_unix() const { return std::get<unix_address>(address_); }
    [[nodiscard]] const tcp_address& as_tcp() const { return std::get<tcp_address>(address_); }

    // Canonical text, parseable again: `unix:/path`, `unix:@name`, `tcp:1.2.3.4:80`, `tcp:[::1]:80`.
    [[nodiscard]] std::string to_string() const;

    friend bool operator==(const endpoint&, const endpoint&) = default;

private:
    address address_;
};

}  // namespace hello
