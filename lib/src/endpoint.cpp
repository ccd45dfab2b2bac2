#include <hello/endpoint.hpp>
#include <hello/error.hpp>

#include <charconv>

namespace hello {
namespace {

[[noreturn]] void bad_endpoint(std::string_view text, std::string_view why) {
    throw error(errc::bad_endpoint, "bad endpoint " + in_quotes(text) + ": " + std::string(why));
}

unix_address parse_unix(std::string_view text, std::string_view rest) {
    if (rest.empty()) bad_endpoint(text, "empty socket path");
    if (rest.find('\0') != std::string_view::npos) bad_endpoint(text, "NUL byte in socket path");
    const bool abstract = rest.front() == '@';
    unix_address a{std::string(abstract ? rest.substr(1) : rest), abstract};
    if (abstract && a.name.empty()) bad_endpoint(text, "empty abstract socket name");
    if (a.name.size() > endpoint::max_unix_name) {
        throw error(errc::name_too_long, std::string(abstract ? "abstract socket name " : "socket path ") +
                                             in_quotes(a.name) + " is " + std::to_string(a.name.size()) +
                                             " bytes long; the limit is " + std::to_string(endpoint::max_unix_name));
    }
    return a;
}

std::uint16_t parse_port(std::string_view text, std::string_view digits) {
    unsigned value = 0;
    const auto* end = digits.data() + digits.size();
    auto [ptr, ec] = std::from_chars(digits.data(), end, value);
    if (digits.empty() || ec != std::errc{} || ptr != end || value > 65535)
        bad_endpoint(text, "port must be a number from 0 to 65535");
    return static_cast<std::uint16_t>(value);
}

tcp_address parse_tcp(std::string_view text, std::string_view rest) {
    std::string_view host;
    std::string_view port;
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
            bad_endpoint(text, "expected tcp:[IPV6]:PORT");
        host = rest.substr(1, close - 1);
        port = rest.substr(close + 2);
    } else {
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos) bad_endpoint(text, "expected tcp:HOST:PORT");
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            bad_endpoint(text, "IPv6 addresses go in brackets, as in tcp:[::1]:7777");
    }
    if (host.empty()) bad_endpoint(text, "empty host");
    // Brackets only ever surround an IPv6 address: a host holding one would print as text
    // that reads back as another endpoint, or as none.
    if (host.find_first_of("[]") != std::string_view::npos) bad_endpoint(text, "brackets inside the host");
    return tcp_address{std::string(host), parse_port(text, port)};
}

}  // namespace

std::string unix_address::sun_path() const {
    return abstract ? std::string(1, '\0') + name : name;
}

endpoint endpoint::parse(std::string_view text) {
    constexpr std::string_view unix_prefix = "unix:";
    constexpr std::string_view tcp_prefix = "tcp:";
    if (text.starts_with(unix_prefix)) return endpoint{parse_unix(text, text.substr(unix_prefix.size()))};
    if (text.starts_with(tcp_prefix)) return endpoint{parse_tcp(text, text.substr(tcp_prefix.size()))};
    if (text.starts_with('/') || text.starts_with('.') || text.starts_with('@'))
        return endpoint{parse_unix(text, text)};
    bad_endpoint(text, "expected unix:/path, unix:@name or tcp:host:port");
}

std::string endpoint::to_string() const {
    if (const auto* u = std::get_if<unix_address>(&address_)) return (u->abstract ? "unix:@" : "unix:") + u->name;
    const auto& t = std::get<tcp_address>(address_);
    const bool v6 = t.host.find(':') != std::string::npos;
    return "tcp:" + (v6 ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
}

}  // namespace hello
