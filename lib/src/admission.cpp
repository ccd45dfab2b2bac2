#include "admission.hpp"

#include <algorithm>

#include <sys/resource.h>
#include <sys/socket.h>

namespace hello::detail {
namespace {

// Descriptors kept back from connections: listeners, the event loop, logging, a config file
// read on reload, and room for accept() to fail cleanly rather than at random elsewhere.
constexpr std::size_t descriptor_reserve = 64;
// And each event loop's own (its epoll, its wake-up eventfd, its timerfd), with one to spare.
constexpr std::size_t descriptors_per_loop = 4;

}  // namespace

std::size_t connection_limit(const server_config& cfg) {
    if (cfg.max_connections > 0) return cfg.max_connections;
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1'000'000;
    // Past the limit a client is told so; short of descriptors it would wait unanswered in the
    // backlog, so the limit must come before the descriptors run out.
    const std::size_t loops = descriptors_per_loop * cfg.threads;
    const std::size_t left = limit.rlim_cur > loops ? limit.rlim_cur - loops : 2;
    return left > 2 * descriptor_reserve ? left - descriptor_reserve : left / 2;
}

std::optional<credentials> peer_credentials(connection_socket& socket) {
    const int fd = socket.native_handle();
    ucred cred{};
    socklen_t size = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return std::nullopt;
    credentials out{cred.pid, cred.uid, cred.gid, {}};
    std::vector<gid_t> groups(64);
    size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
        groups.resize(size / sizeof(gid_t));
        out.groups = std::move(groups);
    }
    return out;
}

bool allowed(const credentials& peer, const server_config& cfg) {
    const auto listed = [](const std::vector<unsigned>& list, unsigned id) {
        return std::find(list.begin(), list.end(), id) != list.end();
    };
    if (listed(cfg.allow_uids, peer.uid) || listed(cfg.allow_gids, peer.gid)) return true;
    return std::any_of(peer.groups.begin(), peer.groups.end(), [&](gid_t g) { return listed(cfg.allow_gids, g); });
}

}  // namespace hello::detail
