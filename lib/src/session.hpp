#pragma once

#include "net.hpp"
#include "server_state.hpp"

#include <hello/framing.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace hello::detail {

// What a connection needs of the configuration, fixed when it is accepted: a reload applies
// to the connections that come after it.
struct session_settings {
    hello::framing framing = framing::raw;
    std::size_t max_request_bytes = 4096;
};

// One connection, from accept to close: reads requests, answers each with `hello client`.
//
// Two questions, answered once each. How to frame: a framer (raw_framer, line_framer) turns
// the bytes of each read into replies owed. Where to read: raw framing reads blind into the
// thread's buffer, since its replies do not depend on the bytes. Line framing must look at
// what it reads, so its reads need a buffer of their own: a line connection waits for
// readability until its first request, then reads into a small inbox of its own. Either way
// reads are speculative (async_read_some): one costs no epoll_ctl, where async_wait costs one
// per wait. Reading blind needs the session's executor to be run by one thread (server.cpp).
//
// The steps are plain completion handlers rather than a coroutine: an idle connection then
// holds one pending operation and nothing else, where a coroutine would keep its frames (about
// 1.8 KiB a connection with Asio's co_spawn, measured). Each step is one member function:
//
//   await_request -> on_read (or on_readable) -> received -> send_replies -> await_request
//   (send_replies -> write_rest -> on_sent -> send_replies when the socket's buffer is full)
//
// drain(), close() and tick() must run on the session's executor.
class session : public std::enable_shared_from_this<session>, public registry_hook {
public:
    session(connection_socket socket, std::shared_ptr<server_state> state, std::uint64_t id, session_settings settings);
    ~session();
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    // Registers the connection and waits for its first request on the socket's executor. A
    // session started once the server is stopping drains from the start.
    static void start(connection_socket socket, std::shared_ptr<server_state> state, std::uint64_t id,
                      session_settings settings);

    [[nodiscard]] connection_socket::executor_type executor() { return socket_.get_executor(); }

    // Finish the request already sent, if any, then close; an idle connection closes now.
    void drain();
    // Close now, whatever the connection is doing.
    void close();

    // Called every `period` by the server: a connection that has made no progress since
    // (no request read, no reply taken) is closed once it has waited for a request longer than
    // `idle_timeout`, or for its peer to take a reply longer than `write_timeout` (0: never).
    void tick(std::chrono::milliseconds period, std::chrono::milliseconds idle_timeout,
              std::chrono::milliseconds write_timeout);

private:
    enum class read_result { data, closed, look_again };

    void await_request();
    void on_readable(const error_code& ec);
    void on_read(const error_code& ec, std::size_t n);
    void received(const error_code& ec, std::size_t n, const char* at);
    void take(std::string_view bytes);
    void send_replies();
    [[nodiscard]] std::string_view next_output();
    void write_rest(std::string_view rest);
    void on_sent(const error_code& ec, std::size_t written);

    [[nodiscard]] bool request_may_follow();
    [[nodiscard]] bool reads_blind() const { return framing_ == framing::raw; }
    // Where a speculative read goes: the thread's buffer (raw) or the inbox (line, after the first).
    [[nodiscard]] asio::mutable_buffer read_buffer();
    [[nodiscard]] read_result classify(const error_code& ec, std::size_t n);
    bool written(const error_code& ec);
    [[nodiscard]] std::string describe_peer();

    connection_socket socket_;
    std::shared_ptr<server_state> state_;
    std::uint64_t id_;
    std::uint64_t requests_ = 0;
    line_framer framer_;  // line framing: the unfinished line
    // A line connection's reads, once it has sent a request. Enough for 19 pipelined
    // `hello server\n`; more is taken from the thread's buffer at once.
    using inbox = std::array<char, 256>;
    std::unique_ptr<inbox> inbox_;
    // Not written yet: at most one per byte of a read and of the read that empties a full
    // inbox (under 66,000), since every reply is written before the next read.
    std::uint32_t replies_owed_ = 0;
    // What the connection waits for, and whether it has done anything since the last tick: all
    // a tick needs, kept without a timer or a clock reading per request.
    std::uint32_t stalled_ticks_ = 0;  // a day at the shortest tick (250 ms) is 345,600
    enum class phase : std::uint8_t { working, awaiting_request, writing };
    phase phase_ = phase::working;
    // A read or a write since the last tick. A new connection counts as one: its first tick
    // comes anywhere up to a period after the accept, and counting that part as a whole stalled
    // period would close a silent peer before its idle timeout.
    bool progressed_ = true;
    bool draining_ = false;
    bool refuse_after_replies_ = false;
    bool closing_ = false;  // the refusal is on its way: the connection ends after it
    hello::framing framing_;
};

}  // namespace hello::detail
