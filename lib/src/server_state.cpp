#include "server_state.hpp"

namespace hello::detail {

server_state::handle server_state::add(const std::shared_ptr<session>& s) {
    std::lock_guard lock(mutex_);
    ++open;
    return sessions_.insert(sessions_.end(), s);
}

void server_state::remove(handle h) {
    std::uint64_t left = 0;
    {
        std::lock_guard lock(mutex_);
        sessions_.erase(h);
        left = --open;
    }
    // Only a stopping server waits for its last connection; the rest of the time a close
    // costs no post.
    if (left == 0 && stopping)
        asio::post(drained.get_executor(), [self = shared_from_this()] { self->drained.cancel(); });
}

std::vector<std::shared_ptr<session>> server_state::open_sessions() {
    std::vector<std::shared_ptr<session>> out;
    std::lock_guard lock(mutex_);
    out.reserve(sessions_.size());
    for (const auto& weak : sessions_)
        if (auto s = weak.lock()) out.push_back(std::move(s));
    return out;
}

}  // namespace hello::detail
