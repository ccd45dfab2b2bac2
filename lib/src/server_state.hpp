#pragma once

#include "net.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/intrusive/list.hpp>

namespace hello::detail {

class session;

// A connection's place in the registry, kept in the session itself: registering one costs no
// allocation (a list node of its own cost 48 bytes per connection).
using registry_hook = boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>;

// What every connection of one server shares: the counters and the registry of open
// connections, through which a stop reaches each of them. Safe from any thread.
class server_state : public std::enable_shared_from_this<server_state> {
public:
    // `control` is the executor the stop runs on; `drained` lives there.
    explicit server_state(asio::any_io_executor control) : drained(std::move(control)) {}

    // Every session is added once, when it starts, and removed by its destructor.
    void add(session& s);
    // Once stopping, the last connection to go cancels `drained`'s wait.
    void remove(session& s);

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
    boost::intrusive::list<session, boost::intrusive::base_hook<registry_hook>> sessions_;
};

}  // namespace hello::detail
