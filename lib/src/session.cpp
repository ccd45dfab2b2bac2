#include "session.hpp"

#include "admission.hpp"

#include <hello/framing.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string_view>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

namespace hello::detail {
namespace {

// Raw framing reads blind into this buffer, one per thread: the bytes are never looked at, so
// every pending read of the thread may share it, and async_read_some's speculative read then
// saves the epoll_ctl per request that async_wait costs. Line framing uses it only for reads
// it looks at at once (never across a suspension). Per thread, so that servers embedded on
// different threads never write one buffer at once.
std::array<char, max_raw_request>& thread_buffer() {
    thread_local std::array<char, max_raw_request> buffer;
    return buffer;
}

// Asio recycles a finished operation's memory for the thread's next one whatever its size, so
// the read an idle connection waits in would sit in a block sized for a write (296 bytes where
// it needs 128). A session's operations get blocks of their own size instead, from a small cache
// per thread and size: malloc per operation cost 440 instructions per request (callgrind,
// lockstep), and Asio's cache for the writes alone missed on most writes (its two blocks cannot
// hold a burst of 50 replies).
template <std::size_t Size>
class block_cache {
public:
    block_cache() = default;
    block_cache(const block_cache&) = delete;
    block_cache& operator=(const block_cache&) = delete;
    ~block_cache() {
        for (std::size_t i = 0; i < count_; ++i) ::operator delete(blocks_[i]);
    }
    static block_cache& of_this_thread() {
        thread_local block_cache cache;
        return cache;
    }
    void* take() { return count_ > 0 ? blocks_[--count_] : ::operator new(Size); }
    void give_back(void* block) noexcept {
        if (count_ < blocks_.size())
            blocks_[count_++] = block;
        else
            ::operator delete(block);
    }

private:
    std::array<void*, 64> blocks_{};  // a burst of operations finishing at once
    std::size_t count_ = 0;
};

// The small operations (a wait, a read, a posted step) share one size, so that the block a line
// connection's first wait frees is the one its first read takes: freed to malloc instead, it
// stayed a hole beside the session (112 bytes per line connection, measured).
constexpr std::size_t block_size(std::size_t object_size) {
    return std::max<std::size_t>(object_size, 128);
}

template <typename T>
struct op_allocator {
    using value_type = T;
    op_allocator() noexcept = default;
    template <typename U>
    op_allocator(const op_allocator<U>&) noexcept {}  // NOLINT: rebinding is implicit
    T* allocate(std::size_t n) {
        if (n != 1) return static_cast<T*>(::operator new(n * sizeof(T)));
        return static_cast<T*>(block_cache<block_size(sizeof(T))>::of_this_thread().take());
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (n != 1) return ::operator delete(p);
        block_cache<block_size(sizeof(T))>::of_this_thread().give_back(p);
    }
    friend bool operator==(const op_allocator&, const op_allocator&) noexcept { return true; }
};

// A step of a session as a completion handler: it keeps the session alive and calls one member.
// Its memory comes from op_allocator, named here rather than with bind_allocator, whose copy of
// the (empty) allocator would add 8 bytes to every pending operation.
template <auto Step>
struct step {
    std::shared_ptr<session> self;
    using allocator_type = op_allocator<void>;
    [[nodiscard]] allocator_type get_allocator() const noexcept { return {}; }
    template <typename... Args>
    void operator()(const Args&... args) const {
        ((*self).*Step)(args...);
    }
};

// Replies back to back, so that any number of pipelined replies is a few writes from
// read-only memory shared by every session.
constexpr std::size_t batch_capacity = 512;
std::string_view reply_batch(framing f) {
    static const auto make = [](std::string_view reply) {
        std::string s;
        s.reserve(reply.size() * batch_capacity);
        for (std::size_t i = 0; i < batch_capacity; ++i) s += reply;
        return s;
    };
    static const std::string raw = make(raw_reply);
    static const std::string line = make(line_reply);
    return f == framing::raw ? raw : line;
}

bool is_quiet_disconnect(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::error::operation_aborted;
}

}  // namespace

session::session(connection_socket socket, std::shared_ptr<server_state> state, std::uint64_t id,
                 session_settings settings)
    : socket_(std::move(socket)),
      state_(std::move(state)),
      id_(id),
      framer_(settings.max_request_bytes),
      draining_(state_->stopping),
      framing_(settings.framing) {}

session::~session() {
    spdlog::debug("connection {} closed after {} requests", id_, requests_);
    state_->remove(*this);
}

void session::start(connection_socket socket, std::shared_ptr<server_state> state, std::uint64_t id,
                    session_settings settings) {
    auto s = std::make_shared<session>(std::move(socket), state, id, settings);
    state->add(*s);
    if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("connection {} opened: {}", id, s->describe_peer());
    error_code ec;
    // Reads and writes of our own (after a wait, to empty a full inbox, replies) must never block.
    s->socket_.non_blocking(true, ec);
    if (ec) return s->close();
    auto ex = s->executor();
    asio::dispatch(ex, step<&session::await_request>{std::move(s)});
}

// Idle: one pending read or wait, holding the session and nothing else.
void session::await_request() {
    // Closed while this step was queued (the stop's deadline), or stopping with nothing sent.
    if (!socket_.is_open() || !request_may_follow()) return close();
    phase_ = phase::awaiting_request;
    if (reads_blind() || inbox_) {
        socket_.async_read_some(read_buffer(), step<&session::on_read>{shared_from_this()});
    } else {
        socket_.async_wait(asio::socket_base::wait_read, step<&session::on_readable>{shared_from_this()});
    }
}

// A line connection's first request: read into the thread's buffer, and from then on into an
// inbox of its own, so that later reads may be speculative too.
void session::on_readable(const error_code& ec) {
    auto result = ec;
    std::size_t n = 0;
    if (!result) n = socket_.read_some(asio::buffer(thread_buffer()), result);
    if (!result && n > 0) {
        try {
            inbox_ = std::make_unique<inbox>();
        } catch (const std::bad_alloc&) {
            // Without an inbox the connection goes on waiting for readability.
        }
    }
    received(result, n, thread_buffer().data());
}

void session::on_read(const error_code& ec, std::size_t n) {
    received(ec, n, static_cast<const char*>(read_buffer().data()));
}

asio::mutable_buffer session::read_buffer() {
    return reads_blind() ? asio::buffer(thread_buffer()) : asio::buffer(*inbox_);
}

void session::received(const error_code& ec, std::size_t n, const char* at) {
    phase_ = phase::working;
    progressed_ = true;
    switch (classify(ec, n)) {
        case read_result::look_again:
            return await_request();
        case read_result::closed:
            return close();
        case read_result::data:
            break;
    }
    take(std::string_view(at, n));
    // A full inbox may have left more behind: take it now rather than a small read at a time.
    const bool inbox_full = inbox_ && at == inbox_->data() && n == inbox_->size();
    if (inbox_full && !refuse_after_replies_) {
        error_code more_ec;
        const auto more = socket_.read_some(asio::buffer(thread_buffer()), more_ec);
        if (!more_ec) take(std::string_view(thread_buffer().data(), more));
    }
    try {
        send_replies();
    } catch (const std::exception& e) {
        // Only the exceptional ends here (out of memory): it costs this connection alone.
        spdlog::error("connection {} failed: {}", id_, e.what());
        close();
    }
}

void session::take(std::string_view bytes) {
    if (bytes.empty()) return;  // the peer closed: the next read says so
    const auto owed = framing_ == framing::line ? framer_.consume(bytes) : raw_framer::consume(bytes);
    // Counted before the reply is written: once the peer can read a reply, it is counted.
    requests_ += owed.replies;
    state_->answered.fetch_add(owed.replies, std::memory_order_relaxed);
    replies_owed_ += static_cast<std::uint32_t>(owed.replies);
    refuse_after_replies_ = owed.refuse;
    if (owed.refuse) spdlog::warn("connection {}: request over {} bytes refused; closing", id_, framer_.limit());
}

// Replies go out a batch at a time from read-only memory every session shares, then the
// refusal, if one is owed, after which the connection closes; then the wait for the next request.
// A batch is written at once: the socket's buffer almost always takes it whole, and only what it
// does not take waits for writability. That saves an operation and a trip through the handler
// queue per reply.
void session::send_replies() {
    for (auto out = next_output(); !out.empty(); out = next_output()) {
        error_code ec;
        auto n = socket_.write_some(asio::buffer(out), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            n = 0;
        } else if (!written(ec)) {
            return close();
        }
        progressed_ = true;
        if (n < out.size()) return write_rest(out.substr(n));
    }
    if (closing_) return close();
    // The next read goes to the back of the queue, which keeps the loop fair to other
    // connections, and by the time it runs the peer has often answered, so the speculative read
    // finds its request instead of nothing.
    asio::post(socket_.get_executor(), step<&session::await_request>{shared_from_this()});
}

std::string_view session::next_output() {
    if (replies_owed_ > 0) {
        const auto batch = reply_batch(framing_);
        const auto now = std::min<std::size_t>(replies_owed_, batch_capacity);
        replies_owed_ -= static_cast<std::uint32_t>(now);
        return batch.substr(0, now * (batch.size() / batch_capacity));
    }
    if (refuse_after_replies_) {
        refuse_after_replies_ = false;
        closing_ = true;
        return too_long_reply;
    }
    return {};
}

void session::write_rest(std::string_view rest) {
    phase_ = phase::writing;
    asio::async_write(socket_, asio::buffer(rest), step<&session::on_sent>{shared_from_this()});
}

void session::on_sent(const error_code& ec, std::size_t /*written*/) {
    phase_ = phase::working;
    progressed_ = true;
    if (!written(ec)) return close();
    send_replies();
}

void session::drain() {
    draining_ = true;
    if (phase_ == phase::awaiting_request) socket_.cancel();
}

void session::tick(std::chrono::milliseconds period, std::chrono::milliseconds idle_timeout,
                   std::chrono::milliseconds write_timeout) {
    if (progressed_ || phase_ == phase::working) {
        progressed_ = false;
        stalled_ticks_ = 0;
        return;
    }
    if (stalled_ticks_ < UINT32_MAX) ++stalled_ticks_;
    const auto stalled = period * stalled_ticks_;
    if (phase_ == phase::awaiting_request && idle_timeout.count() > 0 && stalled >= idle_timeout) {
        spdlog::debug("connection {}: idle for {} ms; closing", id_, stalled.count());
    } else if (phase_ == phase::writing && write_timeout.count() > 0 && stalled >= write_timeout) {
        spdlog::warn("connection {}: its peer took no reply for {} ms; closing", id_, stalled.count());
    } else {
        return;
    }
    state_->timed_out.fetch_add(1, std::memory_order_relaxed);
    close();
}

// The descriptor is this session's alone, so closing it ends the connection for the peer; the
// step pending on it, if any, completes with operation_aborted and lets the session go.
void session::close() {
    error_code ec;
    socket_.close(ec);
}

bool session::request_may_follow() {
    if (!draining_) return true;
    // Stopping: a request the peer has already sent is still answered; an idle peer is let go.
    error_code ec;
    return socket_.is_open() && socket_.available(ec) > 0 && !ec;
}

session::read_result session::classify(const error_code& ec, std::size_t n) {
    if (!ec) return n > 0 ? read_result::data : read_result::closed;
    // Woken by a stop, or readable but already drained: look again.
    if ((ec == asio::error::operation_aborted && draining_) || ec == asio::error::would_block ||
        ec == asio::error::try_again)
        return read_result::look_again;
    if (!is_quiet_disconnect(ec)) spdlog::warn("connection {}: read failed: {}", id_, ec.message());
    return read_result::closed;
}

bool session::written(const error_code& ec) {
    if (ec && !is_quiet_disconnect(ec)) spdlog::warn("connection {}: write failed: {}", id_, ec.message());
    return !ec;
}

std::string session::describe_peer() {
    if (is_unix(socket_)) {
        const auto peer = peer_credentials(socket_);
        if (!peer) return "unix peer (credentials unknown)";
        return "unix peer pid=" + std::to_string(peer->pid) + " uid=" + std::to_string(peer->uid) +
               " gid=" + std::to_string(peer->gid);
    }
    error_code ec;
    const auto remote = socket_.remote_endpoint(ec);
    return ec ? std::string("tcp peer (address unknown)") : "tcp peer " + to_endpoint(remote).to_string();
}

}  // namespace hello::detail
