#pragma once

#include "net.hpp"

#include <hello/config.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace hello::detail {

class session;

// What every connection shares: the settings, the counters, and the list of who is open,
// so that a stop can reach each connection. Safe to use from any thread.
class server_state {
public:
    using handle = std::list<std::weak_ptr<session>>::iterator;

    explicit server_state(server_config c) : config(std::move(c)) {}

    handle add(const std::shared_ptr<session>& s);
    void remove(handle h);

    // Calls `fn` with every open session; it runs under the lock, so it should only post.
    void for_each(const std::function<void(const std::shared_ptr<session>&)>& fn);

    const server_config config;
    // Once `stopping`, runs after each session has closed, on that session's executor.
    std::function<void()> on_session_closed;
    std::atomic<bool> stopping{false};
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> answered{0};
    std::atomic<std::uint64_t> open{0};

private:
    std::mutex mutex_;
    std::list<std::weak_ptr<session>> sessions_;
};

// One connection, from accept to close: reads requests, answers each with `hello client`.
//
// Idle connections hold no buffer: raw framing on one thread reads into a shared discard
// buffer; otherwise a session waits for readability and reads into a per-thread scratch
// buffer. Only an unfinished line is kept, by the line framer. drain() and close() must run on the session's executor.
class session : public std::enable_shared_from_this<session> {
public:
    session(stream_socket socket, std::shared_ptr<server_state> state, std::uint64_t id);
    ~session();
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    // Registers the connection and spawns its coroutine on the socket's executor.
    static void start(stream_socket socket, std::shared_ptr<server_state> state, std::uint64_t id);

    [[nodiscard]] asio::any_io_executor executor() { return socket_.get_executor(); }

    // Finish the request already sent, if any, then close; an idle connection closes now.
    void drain();
    // Close now, whatever the connection is doing.
    void close();

private:
    static asio::awaitable<void> run(std::shared_ptr<session> self);
    asio::awaitable<void> serve_raw_one_thread();
    asio::awaitable<void> serve_raw_threaded();
    asio::awaitable<void> serve_line();
    // Waits until request bytes can be read; false when the connection is over (peer gone,
    // error, or stopping with nothing more sent).
    asio::awaitable<bool> wait_readable();
    // What has arrived, in this thread's scratch buffer until the next suspension; empty when
    // the connection is over, nullopt when nothing is there after all.
    std::optional<std::string_view> read_available();
    bool make_reads_nonblocking();
    [[nodiscard]] bool request_may_follow();
    [[nodiscard]] std::optional<std::size_t> read_outcome(const error_code& ec, std::size_t n);
    void count_answered(std::size_t requests);
    bool written(const error_code& ec);
    asio::awaitable<bool> send_replies(std::size_t count, bool then_refuse);
    [[nodiscard]] std::string describe_peer();

    stream_socket socket_;
    std::shared_ptr<server_state> state_;
    server_state::handle handle_{};
    std::uint64_t id_;
    std::uint64_t requests_ = 0;
    bool awaiting_request_ = false;
    bool draining_ = false;
};

}  // namespace hello::detail
