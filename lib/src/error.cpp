#include <hello/error.hpp>

namespace hello {
namespace {

class category_impl : public boost::system::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "hello"; }
    [[nodiscard]] std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::bad_endpoint:
                return "bad endpoint";
            case errc::name_too_long:
                return "socket name too long";
            case errc::host_not_found:
                return "no such host";
            case errc::resolver_failed:
                return "host name resolution failed";
            case errc::endpoint_in_use:
                return "in use by a live server";
            case errc::not_a_socket:
                return "the path exists and is not a socket";
            case errc::socket_replaced:
                return "the socket file was replaced while starting";
            case errc::not_a_listening_socket:
                return "not a listening stream socket";
            case errc::unexpected_reply:
                return "unexpected reply";
            case errc::closed_early:
                return "connection closed before the reply was complete";
            case errc::lock_not_ours:
                return "the lock file is not one of ours";
        }
        return "unknown hello error";
    }
};

}  // namespace

const boost::system::error_category& category() noexcept {
    static const category_impl instance;
    return instance;
}

boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), category()};
}

namespace {

// Bytes outside printable ASCII, a backslash and whatever `also` names become \xNN.
std::string escaped(std::string_view text, char also) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7f && c != '\\' && c != also) {
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

}  // namespace

std::string printable(std::string_view text) {
    return escaped(text, '\\');
}

std::string in_quotes(std::string_view text) {
    std::string out(1, '\'');
    out += escaped(text, '\'');
    out += '\'';
    return out;
}

}  // namespace hello
