// hello::endpoint::parse on any text: either it throws hello::error (bad_endpoint or
// name_too_long, with a one-line printable message), or the endpoint it returns is a valid
// one whose canonical text, to_string(), parses back to an equal endpoint and the same text.
// Anything else (another exception, a crash, a sanitizer report) aborts.

#include "check.hpp"

#include <hello/endpoint.hpp>
#include <hello/error.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <typeinfo>

namespace {

std::string shown(const std::string& text) {
    return hello::printable(text);
}

void check_round_trip(const hello::endpoint& ep) {
    if (ep.is_unix()) {
        const auto& u = ep.as_unix();
        FUZZ_CHECK(!u.name.empty() && u.name.size() <= hello::endpoint::max_unix_name,
                   "UNIX name of %zu bytes accepted", u.name.size());
        FUZZ_CHECK(u.name.find('\0') == std::string::npos, "UNIX name with a NUL byte accepted");
        FUZZ_CHECK(u.sun_path().size() == u.name.size() + (u.abstract ? 1 : 0), "sun_path() of %zu bytes for %zu",
                   u.sun_path().size(), u.name.size());
    } else {
        FUZZ_CHECK(!ep.as_tcp().host.empty(), "TCP endpoint with an empty host accepted");
    }
    const auto text = ep.to_string();
    try {
        const auto again = hello::endpoint::parse(text);
        FUZZ_CHECK(again == ep, "to_string() '%s' parses back to another endpoint, '%s'", shown(text).c_str(),
                   shown(again.to_string()).c_str());
        FUZZ_CHECK(again.to_string() == text, "to_string() '%s' reads back as '%s'", shown(text).c_str(),
                   shown(again.to_string()).c_str());
    } catch (const hello::error& e) {
        FUZZ_CHECK(false, "to_string() '%s' does not parse back: %s", shown(text).c_str(), e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        check_round_trip(hello::endpoint::parse(input));
    } catch (const hello::error& e) {
        const auto& code = e.code();
        FUZZ_CHECK(code == hello::errc::bad_endpoint || code == hello::errc::name_too_long,
                   "hello::error with code %s:%d (%s)", code.category().name(), code.value(), e.what());
        FUZZ_CHECK(hello::fuzz::printable_line(e.what()), "error message not one printable line: %s", e.what());
    } catch (const std::exception& e) {
        FUZZ_CHECK(false, "endpoint::parse threw %s, not hello::error: %s", typeid(e).name(), e.what());
    }
    return 0;
}
