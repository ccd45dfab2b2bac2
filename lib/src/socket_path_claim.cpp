#include "socket_path_claim.hpp"

#include <hello/error.hpp>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace hello::detail {
namespace {

std::string lock_path_for(const std::string& path) {
    return path + ".lock";
}

file_identity identity(const struct stat& st) noexcept {
    return {st.st_dev, st.st_ino};
}

// Removes `path` if it still names the file `expected` names; a file put there since is left.
void unlink_if_still(const std::string& path, const file_identity& expected) noexcept {
    if (identity_of(path) == expected) ::unlink(path.c_str());
}

// The lock file `fd` holds, by name, if that name still leads to it.
void unlink_lock_if_still(const std::string& path, int fd) noexcept {
    struct stat held {};
    if (::fstat(fd, &held) == 0) unlink_if_still(lock_path_for(path), identity(held));
}

boost::system::error_code system_error_code(int err) {
    return {err, boost::system::system_category()};
}

bool is_shortage(int err) {
    return is_resource_exhaustion(system_error_code(err));
}

// `code`: an errc, or the system error that stopped us.
[[noreturn]] void unavailable(const std::string& path, std::string_view why, boost::system::error_code code) {
    throw error(code, "cannot listen on unix:" + printable(path) + ": " + std::string(why));
}

// The pid the lock file names, as a number: anyone who can write the file could otherwise
// put any text, terminal escapes included, into our error line.
std::string read_pid(int fd) {
    char buf[32] = {};
    const auto n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string_view text(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    if (text.ends_with('\n')) text.remove_suffix(1);
    unsigned pid = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
    const bool number = !text.empty() && ec == std::errc{} && end == text.data() + text.size() && pid > 0;
    return number ? std::to_string(pid) : "unknown";
}

// A socket file is removed only when we know nobody listens on it; not knowing is no licence.
[[noreturn]] void cannot_tell(const std::string& path, int err) {
    unavailable(path, std::string("cannot tell whether a server listens on it: ") + std::strerror(err),
                system_error_code(err));
}

// True when /proc/net/unix lists a listening socket bound to `path`. Asked first because it
// disturbs nobody: a probe connection that closes at once kills a server as naive as the
// tutorial's (its sendall() to the vanished peer raises EPIPE).
bool listed_as_listening(const std::string& path) {
    std::ifstream table("/proc/net/unix");
    if (!table) {
        // Without /proc the probe still decides; out of descriptors, so would it, wrongly.
        const int err = errno;
        if (is_shortage(err)) cannot_tell(path, err);
        return false;
    }
    // The table shows each path as it was bound: the same file may be listed under another
    // spelling (through a symlinked directory, say), so a listed path that ends in the same
    // name is compared by where it leads.
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto absolute = fs::absolute(path, ec).lexically_normal().string();
    const auto name = fs::path(path).filename();
    std::optional<fs::path> canonical;
    const auto same_file = [&](const std::string& bound) {
        const fs::path listed(bound);
        if (!listed.is_absolute() || listed.filename() != name) return false;
        if (!canonical) canonical = fs::weakly_canonical(path, ec);
        const auto leads_to = fs::weakly_canonical(listed, ec);
        return !ec && leads_to == *canonical;
    };
    std::string line;
    std::getline(table, line);  // header
    while (std::getline(table, line)) {
        // Num RefCount Protocol Flags Type St Inode Path; the path is the rest of the line and
        // may hold blanks of its own.
        std::istringstream fields(line);
        std::string num, refs, protocol, flags, type, state, inode, bound;
        if (!(fields >> num >> refs >> protocol >> flags >> type >> state >> inode >> std::ws)) continue;
        std::getline(fields, bound);
        constexpr unsigned long accepting = 0x10000;  // __SO_ACCEPTCON
        const auto flag_bits = std::strtoul(flags.c_str(), nullptr, 16);
        if ((flag_bits & accepting) && (bound == path || bound == absolute || same_file(bound))) return true;
    }
    return false;
}

// True when something accepts connections on `path` right now. The connect probe catches
// what /proc cannot show: a listener in another network namespace sharing the directory.
// Only a refused connection proves the socket dead; any other failure refuses to start.
bool someone_listens(const std::string& path) {
    if (listed_as_listening(path)) return true;
    // Non-blocking: a blocking connect to a full backlog waits until the listener accepts,
    // which a stuck listener never does, and start-up would hang.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) cannot_tell(path, errno);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int err = errno;
    ::close(fd);
    // EAGAIN: a live server with a full backlog.
    if (rc == 0 || err == EAGAIN) return true;
    if (err == ECONNREFUSED || err == ENOENT) return false;  // ENOENT: gone meanwhile
    cannot_tell(path, err);
}

// Opens and locks PATH.lock; retries when the file it locked was unlinked meanwhile by a
// server shutting down, so that two servers never both believe they own the path.
struct held_lock {
    int fd;
    bool created;  // the lock file is ours to remove if we back off
};

held_lock lock_beside(const std::string& path) {
    const auto lock_path = lock_path_for(path);
    for (;;) {
        bool created = true;
        int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 && errno == EEXIST) {
            created = false;
            fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        }
        if (fd < 0) {
            const int err = errno;
            unavailable(path, "cannot open lock file " + in_quotes(lock_path) + ": " + std::strerror(err),
                        system_error_code(err));
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int err = errno;
            const auto pid = read_pid(fd);
            ::close(fd);
            if (err == EWOULDBLOCK)
                unavailable(path, "in use by a live server (pid " + pid + ")", errc::endpoint_in_use);
            unavailable(path, "cannot lock " + in_quotes(lock_path) + ": " + std::strerror(err),
                        system_error_code(err));
        }
        struct stat held {};
        struct stat named {};
        if (::fstat(fd, &held) != 0 || ::lstat(lock_path.c_str(), &named) != 0 || identity(held) != identity(named)) {
            ::close(fd);
            continue;
        }
        // Ours to write the pid into: a regular file of this user's with no other name. A hard
        // link to somebody else's file (O_NOFOLLOW stops only symlinks) would be truncated.
        if (!S_ISREG(held.st_mode) || held.st_uid != ::geteuid() || held.st_nlink != 1) {
            ::close(fd);
            unavailable(path,
                        "lock file " + in_quotes(lock_path) +
                            " is not a regular file of this user's with one name; not touching it",
                        errc::lock_not_ours);
        }
        return {fd, created};
    }
}

void remove_stale_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        const int err = errno;
        unavailable(path, std::strerror(err), system_error_code(err));
    }
    if (!S_ISSOCK(st.st_mode))
        unavailable(path, "the path exists and is not a socket; not touching it", errc::not_a_socket);
    if (someone_listens(path))
        unavailable(path, "in use by a live server that holds no lock file", errc::endpoint_in_use);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        const int err = errno;
        unavailable(path, std::string("cannot remove stale socket: ") + std::strerror(err), system_error_code(err));
    }
    spdlog::warn("removed stale socket {} left behind by a server that is gone", printable(path));
}

}  // namespace

std::optional<file_identity> identity_of(const std::string& path) noexcept {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
    return identity(st);
}

socket_path_claim::socket_path_claim(std::string path) : path_(std::move(path)) {
    const auto lock = lock_beside(path_);
    lock_fd_ = lock.fd;
    try {
        remove_stale_socket(path_);
    } catch (...) {
        // The socket is not ours: leave it alone, and leave no lock file of ours behind.
        if (lock.created) unlink_lock_if_still(path_, lock_fd_);
        ::close(lock_fd_);
        lock_fd_ = -1;
        throw;
    }
    const auto pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0)
        spdlog::warn("cannot write pid to {}: {}", lock_path_for(path_), std::strerror(errno));
}

socket_path_claim::socket_path_claim(socket_path_claim&& other) noexcept
    : path_(std::move(other.path_)),
      lock_fd_(std::exchange(other.lock_fd_, -1)),
      socket_(std::exchange(other.socket_, std::nullopt)) {}

socket_path_claim::~socket_path_claim() {
    release();
}

void socket_path_claim::release() noexcept {
    if (lock_fd_ < 0) return;
    // A socket never known to be ours (bind failed, or the file was swapped before it could be
    // checked) is left where it is.
    if (socket_) unlink_if_still(path_, *socket_);
    unlink_lock_if_still(path_, lock_fd_);
    ::close(lock_fd_);
    lock_fd_ = -1;
}

}  // namespace hello::detail
