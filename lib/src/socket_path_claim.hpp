#pragma once

#include <string>

namespace hello::detail {

// Exclusive use of a filesystem UNIX socket path, as a careful daemon takes it.
//
// A lock file beside the socket (`PATH.lock`, flock'ed, holding our pid) decides who may
// bind: a connect probe alone races with a server that is starting up. Holding the lock, a
// leftover socket nobody answers on is a crash's remains and is removed; one that answers
// belongs to a server that takes no lock (the tutorial's) and is left alone; a path that is
// not a socket is never touched. Throws hello::error: errc::endpoint_in_use, errc::not_a_socket,
// or the system error that stopped it.
class socket_path_claim {
public:
    explicit socket_path_claim(std::string path);
    ~socket_path_claim();
    socket_path_claim(socket_path_claim&& other) noexcept;
    socket_path_claim& operator=(socket_path_claim&&) = delete;
    socket_path_claim(const socket_path_claim&) = delete;
    socket_path_claim& operator=(const socket_path_claim&) = delete;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    // Removes the socket file, then the lock file, then lets go of the lock; idempotent.
    void release() noexcept;

private:
    std::string path_;
    int lock_fd_ = -1;
};

}  // namespace hello::detail
