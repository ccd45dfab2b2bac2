#pragma once

#include "net.hpp"

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

namespace hello::detail {

class session;

// What every connection of one server shares: the counters and the registry of open
// connections, through which a stop reaches each of them. Safe from any thread.
class server_state : public std::enable_shared_from_this<server_state> {
public:
    using handle = std::list<std::weak_ptr<session>>::iterator;

    // `control` is the executor the stop runs on; `drained` lives there.
    explicit server_state(asio::any_io_executor control) : drained(std::move(control)) {}

    handle add(const std::shared_ptr<session>& s);
    // Once stopping, the last connection to go cancels `drained`'s wait.
    void remove(handle h);

    // The connections open now, taken under the lock and handed out after it: the last
    // reference to a session may be one of these, and its destructor calls remove().
    [[nodiscard]] std::vector<std::shared_ptr<session>> open_sessions();

    std::atomic<bool> stopping{false};
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> answered{0};
    std::atomic<std::uint64_t> open{0};
    std::atomic<std::uint64_t> refused{0};
    std::atomic<std::uint64_t> denied{0};
    std::atomic<std::uint64_t> timed_out{0};
    // An event for the stop to wait on: waited on with a deadline, cancelled when the last
    // connection closes. Used on the control executor only.
    timer drained;

private:
    std::mutex mutex_;
    std::list<std::weak_ptr<session>> sessions_;
};

}  // namespace hello::detail
