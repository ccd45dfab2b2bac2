#include "server_state.hpp"

#include "session.hpp"

namespace hello::detail {

void server_state::add(session& s) {
    std::lock_guard lock(mutex_);
    ++open;
    sessions_.push_back(s);
}

void server_state::remove(session& s) {
    std::uint64_t left = 0;
    {
        std::lock_guard lock(mutex_);
        sessions_.erase(sessions_.iterator_to(s));
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
    // A session whose last reference is gone may still be listed: its destructor waits for
    // the lock to remove it. It is skipped.
    for (auto& listed : sessions_)
        if (auto s = listed.weak_from_this().lock()) out.push_back(std::move(s));
    return out;
}

}  // namespace hello::detail
