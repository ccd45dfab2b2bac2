#pragma once

#include <boost/system/error_code.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace hello {

// What the library could not do, beyond what the system says (those come as system errors:
// address in use, permission denied, too many open files, ...).
enum class errc {
    bad_endpoint = 1,        // endpoint text that is not unix:/path, unix:@name or tcp:host:port
    name_too_long,           // a UNIX path or abstract name over endpoint::max_unix_name bytes
    host_not_found,          // a TCP host name that resolves to no address
    resolver_failed,         // the resolver itself failed (no answer, no memory, ...)
    endpoint_in_use,         // a live server owns the socket: ours (by its lock file) or another
    not_a_socket,            // the socket path exists and is something else: never touched
    socket_replaced,         // the socket file was swapped for another file while starting
    not_a_listening_socket,  // a descriptor passed down (socket activation) is no listening stream socket
    unexpected_reply,        // the client got something other than `hello client`
    closed_early,            // the server closed the connection before a whole reply came
    lock_not_ours,           // PATH.lock is not a regular file of ours with one name: never touched
};

[[nodiscard]] const boost::system::error_category& category() noexcept;
[[nodiscard]] boost::system::error_code make_error_code(errc e) noexcept;

// The one exception type the library throws, for a failure its caller is expected to report
// (a bad endpoint, a socket somebody else owns, a port in use): `code()` says which kind, as
// an errc or a system error; `what()` is one line naming what went wrong and where.
class error : public std::runtime_error {
public:
    error(boost::system::error_code code, const std::string& message) : std::runtime_error(message), code_(code) {}

    [[nodiscard]] const boost::system::error_code& code() const noexcept { return code_; }

private:
    boost::system::error_code code_;
};

// `text` safe to put in a one-line message: every byte outside printable ASCII (a NUL, a
// newline, a terminal escape) is written as \xNN, as is `\`.
[[nodiscard]] std::string printable(std::string_view text);
// The same between single quotes (a `'` inside written as \x27): how a message names a value
// it got from outside.
[[nodiscard]] std::string in_quotes(std::string_view text);

// Out of descriptors or memory: the machine's state at that moment, neither the
// configuration's fault nor the endpoint's.
[[nodiscard]] inline bool is_resource_exhaustion(const boost::system::error_code& ec) noexcept {
    namespace sys = boost::system::errc;
    return ec == sys::too_many_files_open || ec == sys::too_many_files_open_in_system || ec == sys::no_buffer_space ||
           ec == sys::not_enough_memory;
}

}  // namespace hello

template <>
struct boost::system::is_error_code_enum<hello::errc> : std::true_type {};
