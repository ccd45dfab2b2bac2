#include "listener.hpp"

#include <hello/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hello::detail {
namespace {

[[noreturn]] void cannot_listen(const endpoint& ep, const error_code& ec) {
    throw error(ec, "cannot listen on " + printable(ep.to_string()) + ": " + ec.message());
}

// Gives the socket file the server bound its group and mode, and nothing else: whoever can
// write to the directory may have swapped the file for a symlink (to /etc/shadow, say) or a
// hard link since bind(), and chown() or chmod() by name would follow either; later, the path
// may even hold another server's socket. The file is opened without following links and
// changed through that descriptor only once it is a socket of ours with no other name and,
// after the first time, the very file the claim recorded then. It is recorded before it is
// changed, so that a change that fails still leaves the file the claim's to remove.
void set_socket_access(const endpoint& ep, unsigned mode, std::optional<unsigned> group, socket_path_claim& claim) {
    const auto& path = ep.as_unix().name;
    const int fd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) cannot_listen(ep, error_code(errno, boost::system::system_category()));
    struct stat st {};
    const bool ours = ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == ::geteuid() && st.st_nlink == 1 &&
                      (!claim.socket() || *claim.socket() == file_identity{st.st_dev, st.st_ino});
    if (ours) claim.bound({st.st_dev, st.st_ino});
    int rc = 0;
    // The group first: chown() may clear mode bits, chmod() never touches the owner.
    if (ours && group) rc = ::fchownat(fd, "", static_cast<uid_t>(-1), *group, AT_EMPTY_PATH);
    // An O_PATH descriptor takes no fchmod(); its /proc name reaches the very inode it holds.
    if (ours && rc == 0) rc = ::chmod(("/proc/self/fd/" + std::to_string(fd)).c_str(), mode);
    const int err = errno;
    ::close(fd);
    if (!ours)
        throw error(errc::socket_replaced, "cannot listen on " + printable(ep.to_string()) +
                                               ": the socket file is no longer the one the server bound; not "
                                               "changing the mode of what is there now");
    if (rc != 0) cannot_listen(ep, error_code(err, boost::system::system_category()));
}

// open -> options -> bind -> (chmod) -> listen, so that no client ever sees the socket
// with the wrong permissions.
listener listen_on(asio::io_context& ctx, const endpoint& ep, const protocol::endpoint& addr,
                   const server_config& cfg) {
    listener l{ep, ep, acceptor(ctx), std::nullopt, !ep.is_unix(), false, {}};
    const bool filesystem_socket = ep.is_unix() && !ep.as_unix().abstract;
    if (filesystem_socket) l.claim.emplace(ep.as_unix().name);

    error_code ec;
    l.socket.open(addr.protocol(), ec);
    if (!ec && l.is_tcp) l.socket.set_option(asio::socket_base::reuse_address(true), ec);
    // An IPv6 listener serves IPv6 only, so that tcp:0.0.0.0:P and tcp:[::]:P can both be listed.
    if (!ec && is_ipv6(addr)) l.socket.set_option(asio::ip::v6_only(true), ec);
    if (!ec) l.socket.bind(addr, ec);
    if (ec) cannot_listen(ep, ec);
    if (filesystem_socket) set_socket_access(ep, cfg.socket_mode, cfg.socket_group, *l.claim);
    l.socket.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) cannot_listen(ep, ec);
    if (l.is_tcp) l.where = to_endpoint(l.socket.local_endpoint());
    return l;
}

}  // namespace

std::vector<listener> open_listeners(asio::io_context& ctx, const endpoint& ep, const server_config& cfg,
                                     std::list<listener>& inherited) {
    std::vector<listener> out;
    for (const auto& addr : resolve(ep, true)) {
        const auto same = std::find_if(inherited.begin(), inherited.end(), [&](const listener& l) {
            error_code ec;
            return l.socket.local_endpoint(ec) == addr && !ec;
        });
        if (same == inherited.end()) {
            out.push_back(listen_on(ctx, ep, addr, cfg));
            continue;
        }
        same->configured = ep;
        out.push_back(std::move(*same));
        inherited.erase(same);
    }
    return out;
}

listener adopt_listener(asio::io_context& ctx, int fd, std::string name) {
    const auto what = "inherited descriptor " + std::to_string(fd) + (name.empty() ? "" : " (" + printable(name) + ")");
    int type = 0;
    int listening = 0;
    socklen_t size = sizeof type;
    const bool stream = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == SOCK_STREAM;
    size = sizeof listening;
    const bool accepting = stream && ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0 && listening;
    sockaddr_storage addr{};
    socklen_t addr_size = sizeof addr;
    const bool named = accepting && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_size) == 0 &&
                       (addr.ss_family == AF_UNIX || addr.ss_family == AF_INET || addr.ss_family == AF_INET6);
    if (!named) throw error(errc::not_a_listening_socket, what + " is not a listening UNIX or TCP stream socket");
    const protocol::endpoint local(&addr, addr_size, 0);
    listener l{to_endpoint(local), std::nullopt, acceptor(ctx), std::nullopt, is_ip(local), true, std::move(name)};
    error_code ec;
    l.socket.assign(protocol(addr.ss_family, 0), fd, ec);
    if (ec) throw error(ec, what + ": " + ec.message());
    return l;
}

void reapply_socket_access(listener& l, const server_config& cfg) {
    if (l.claim && l.configured) set_socket_access(*l.configured, cfg.socket_mode, cfg.socket_group, *l.claim);
}

}  // namespace hello::detail
