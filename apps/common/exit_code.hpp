#pragma once

#include <boost/system/error_code.hpp>

#include <exception>
#include <stdexcept>
#include <string>

namespace hello::app {

// Process exit codes, from BSD sysexits(3), so that supervisors and scripts can tell a
// typo on the command line from a broken config file from an endpoint somebody else owns.
enum class exit_code : int {
    ok = 0,
    usage = 64,         // EX_USAGE: unknown option, malformed value on the command line
    unavailable = 69,   // EX_UNAVAILABLE: endpoint in use, not a socket, permission denied
    software = 70,      // EX_SOFTWARE: an internal error that should never happen
    os_error = 71,      // EX_OSERR: the system refused a resource (descriptors, memory, threads)
    io_error = 74,      // EX_IOERR: the output could not be written (a full disk)
    temp_failure = 75,  // EX_TEMPFAIL: the client timed out
    protocol = 76,      // EX_PROTOCOL: the client got an unexpected reply
    config = 78,        // EX_CONFIG: unreadable config, bad endpoint, path too long
};

[[nodiscard]] inline int to_int(exit_code c) noexcept {
    return static_cast<int>(c);
}

// Thrown while a program starts, when it cannot go on: `what()` is the one line the user
// sees, `code()` how the process exits.
class startup_error : public std::runtime_error {
public:
    startup_error(exit_code code, const std::string& message) : std::runtime_error(message), code_(code) {}

    [[nodiscard]] exit_code code() const noexcept { return code_; }

private:
    exit_code code_;
};

// Out of descriptors, memory or threads: the machine's state at that moment.
[[nodiscard]] bool is_shortage(const boost::system::error_code& ec) noexcept;

// What a program reports for a system error nothing caught (`what` is the exception's text):
// a shortage of what even the event loop needs is said plainly (71); anything else is a bug.
[[nodiscard]] startup_error uncaught_system_error(const boost::system::error_code& ec, const std::string& what);

// What a program reports for whatever else it did not catch (`failure` non-null): a system
// error as above, no memory as 71, anything else as an internal error, 70.
[[nodiscard]] startup_error uncaught(std::exception_ptr failure);

}  // namespace hello::app
