#pragma once

#include <optional>
#include <string>

#include <sys/types.h>

namespace hello::detail {

// Which file a name stood for when we last looked: a file is ours to change or remove only
// while its name still leads to it.
struct file_identity {
    dev_t device = 0;
    ino_t inode = 0;
    friend bool operator==(const file_identity&, const file_identity&) = default;
};

// Exclusive use of a filesystem UNIX socket path, as a careful daemon takes it.
//
// A lock file beside the socket (`PATH.lock`, flock'ed, holding our pid) decides who may
// bind: a connect probe alone races with a server that is starting up. Holding the lock, a
// leftover socket nobody answers on is a crash's remains and is removed; one that answers
// belongs to a server that takes no lock (the tutorial's) and is left alone; a path that is
// not a socket is never touched, nor is a lock file that is not a regular file of ours with one
// name (a hard link to someone's file would be overwritten with our pid). Throws hello::error:
// errc::endpoint_in_use, errc::not_a_socket, errc::lock_not_ours, or the system error that
// stopped it.
//
// On release, the socket file and the lock file are removed only if their names still lead to
// the files this claim made: another server may have taken the path since (after somebody
// removed ours), and its files are not ours to remove.
class socket_path_claim {
public:
    explicit socket_path_claim(std::string path);
    ~socket_path_claim();
    socket_path_claim(socket_path_claim&& other) noexcept;
    socket_path_claim& operator=(socket_path_claim&&) = delete;
    socket_path_claim(const socket_path_claim&) = delete;
    socket_path_claim& operator=(const socket_path_claim&) = delete;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    // The socket file the server bound at the path, once it has checked that file is its own.
    void bound(file_identity socket) noexcept { socket_ = socket; }
    [[nodiscard]] const std::optional<file_identity>& socket() const noexcept { return socket_; }

    // Removes the socket file, then the lock file (each only if it is still ours), then lets go
    // of the lock; idempotent.
    void release() noexcept;

private:
    std::string path_;
    int lock_fd_ = -1;
    std::optional<file_identity> socket_;
};

// What `path` names now, without following a final symlink; nullopt if nothing (or lstat fails).
[[nodiscard]] std::optional<file_identity> identity_of(const std::string& path) noexcept;

}  // namespace hello::detail
