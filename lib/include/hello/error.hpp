#pragma once

#include <boost/system/error_code.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace hello {

// Process exit codes, from BSD sysexits(3) so that supervisors and scripts can tell a
// typo on the command line from a broken config file from an endpoint somebody else owns.
enum class exit_code : int {
    ok = 0,
    usage = 64,         // EX_USAGE: unknown option, malformed value on the command line
    unavailable = 69,   // EX_UNAVAILABLE: endpoint in use, not a socket, permission denied
    software = 70,      // EX_SOFTWARE: an internal error that should never happen
    os_error = 71,      // EX_OSERR: the system refused a resource (descriptors, memory, threads)
    temp_failure = 75,  // EX_TEMPFAIL: the client timed out
    protocol = 76,      // EX_PROTOCOL: the client got an unexpected reply
    config = 78,        // EX_CONFIG: unreadable config, bad endpoint, path too long
};

// Thrown while starting up, when the process cannot go on. `what()` is the one line the
// user sees; `code()` is how the process exits.
class startup_error : public std::runtime_error {
public:
    startup_error(exit_code code, const std::string& message) : std::runtime_error(message), code_(code) {}

    [[nodiscard]] exit_code code() const noexcept { return code_; }

private:
    exit_code code_;
};

[[nodiscard]] inline int to_int(exit_code c) noexcept {
    return static_cast<int>(c);
}

// `text` safe to put in a one-line message: every byte outside printable ASCII (a NUL, a
// newline, a terminal escape) is written as \xNN, as are `\` and `'`.
[[nodiscard]] std::string printable(std::string_view text);
// The same between single quotes: how a message names a value it got from outside.
[[nodiscard]] std::string in_quotes(std::string_view text);

// Out of descriptors or memory: the machine's state at that moment, neither the
// configuration's fault nor the endpoint's.
[[nodiscard]] inline bool is_resource_exhaustion(const boost::system::error_code& ec) noexcept {
    namespace errc = boost::system::errc;
    return ec == errc::too_many_files_open || ec == errc::too_many_files_open_in_system ||
           ec == errc::no_buffer_space || ec == errc::not_enough_memory;
}

// What a program reports for a system error nothing caught (`what` is the exception's text):
// out of descriptors or memory, which even the event loop needs, is the machine's state and
// said plainly; anything else is a bug.
[[nodiscard]] inline startup_error uncaught_system_error(const boost::system::error_code& ec, const std::string& what) {
    if (is_resource_exhaustion(ec)) return {exit_code::os_error, "cannot run: " + ec.message()};
    return {exit_code::software, "internal error: " + what};
}

}  // namespace hello
