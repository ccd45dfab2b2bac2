#include "session.hpp"

#include <hello/framing.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <array>
#include <exception>
#include <string_view>

#include <sys/socket.h>

namespace hello::detail {
namespace {

// Every read lands here, one buffer per thread. A session that looks at what it read uses it
// up before its next suspension. Raw framing on one thread reads into it blind (the bytes are
// never looked at), so that every pending read of the thread may share it: async_read_some's
// speculative read then saves the epoll_ctl per request that async_wait costs. Per thread,
// so that servers embedded on different threads never write one buffer at once.
std::array<char, 64 * 1024>& thread_buffer() {
    thread_local std::array<char, 64 * 1024> buffer;
    return buffer;
}

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

session::session(stream_socket socket, std::shared_ptr<server_state> state, std::uint64_t id, session_settings settings)
    : socket_(std::move(socket)), state_(std::move(state)), id_(id), settings_(settings), draining_(state_->stopping) {}

session::~session() {
    spdlog::debug("connection {} closed after {} requests", id_, requests_);
    state_->remove(handle_);
}

void session::start(stream_socket socket, std::shared_ptr<server_state> state, std::uint64_t id,
                    session_settings settings) {
    auto s = std::make_shared<session>(std::move(socket), state, id, settings);
    s->handle_ = state->add(s);
    auto ex = s->executor();
    asio::co_spawn(ex, run(std::move(s)), [id](std::exception_ptr failure) {
        // Only the exceptional ends here (out of memory, a bug): it costs this connection alone.
        if (!failure) return;
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            spdlog::error("connection {} failed: {}", id, e.what());
        } catch (...) {
            spdlog::error("connection {} failed", id);
        }
    });
}

asio::awaitable<void> session::run(std::shared_ptr<session> self) {
    if (spdlog::should_log(spdlog::level::debug))
        spdlog::debug("connection {} opened: {}", self->id_, self->describe_peer());
    if (self->settings_.framing == framing::line)
        co_await self->serve(line_framer(self->settings_.max_request_bytes));
    else
        co_await self->serve(raw_framer{});
    error_code ec;
    self->socket_.shutdown(asio::socket_base::shutdown_both, ec);
    self->socket_.close(ec);
}

template <typename Framer>
asio::awaitable<void> session::serve(Framer framer) {
    // Blind reads share one buffer among all the thread's pending reads, so they need one
    // thread; the other way reads only once data is there, and must never block.
    const bool read_blind = std::is_same_v<Framer, raw_framer> && settings_.read_blind;
    error_code ec;
    if (!read_blind) socket_.non_blocking(true, ec);
    if (ec) co_return;
    const auto batch = reply_batch(settings_.framing);
    const auto reply_size = batch.size() / batch_capacity;
    for (;;) {
        if (!request_may_follow()) co_return;
        phase_ = phase::awaiting_request;
        std::size_t n = 0;
        if (read_blind) {
            auto [read_ec, read_n] = co_await socket_.async_read_some(asio::buffer(thread_buffer()), nothrow);
            ec = read_ec;
            n = read_n;
        } else {
            auto [wait_ec] = co_await socket_.async_wait(asio::socket_base::wait_read, nothrow);
            // The buffer is taken after the wait: a coroutine may resume on another thread.
            ec = wait_ec;
            if (!ec) n = socket_.read_some(asio::buffer(thread_buffer()), ec);
        }
        phase_ = phase::working;
        ++progress_;
        const auto result = classify(ec, n);
        if (result == read_result::look_again) continue;
        if (result == read_result::closed) co_return;

        const auto owed = framer.consume(std::string_view(thread_buffer().data(), n));
        count_answered(owed.replies);
        for (auto left = owed.replies; left > 0;) {
            const auto now = std::min(left, batch_capacity);
            phase_ = phase::writing;
            auto [write_ec, written_n] =
                co_await asio::async_write(socket_, asio::buffer(batch.data(), now * reply_size), nothrow);
            phase_ = phase::working;
            ++progress_;
            if (!written(write_ec)) co_return;
            left -= now;
        }
        if (owed.refuse) {
            spdlog::warn("connection {}: request over {} bytes refused; closing", id_, settings_.max_request_bytes);
            auto [write_ec, written_n] = co_await asio::async_write(socket_, asio::buffer(too_long_reply), nothrow);
            written(write_ec);
            co_return;
        }
    }
}

void session::drain() {
    draining_ = true;
    if (phase_ == phase::awaiting_request) socket_.cancel();
}

void session::tick(std::chrono::milliseconds period, std::chrono::milliseconds idle_timeout,
                   std::chrono::milliseconds write_timeout) {
    if (progress_ != progress_at_tick_ || phase_ == phase::working) {
        progress_at_tick_ = progress_;
        stalled_ticks_ = 0;
        return;
    }
    if (stalled_ticks_ < UINT16_MAX) ++stalled_ticks_;
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

void session::count_answered(std::size_t requests) {
    // Counted before the reply is written: once the peer can read a reply, it is counted.
    requests_ += requests;
    state_->answered.fetch_add(requests, std::memory_order_relaxed);
}

bool session::written(const error_code& ec) {
    if (ec && !is_quiet_disconnect(ec)) spdlog::warn("connection {}: write failed: {}", id_, ec.message());
    return !ec;
}

std::string session::describe_peer() {
    if (is_unix(socket_)) {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            return "unix peer pid=" + std::to_string(cred.pid) + " uid=" + std::to_string(cred.uid) +
                   " gid=" + std::to_string(cred.gid);
        return "unix peer (credentials unknown)";
    }
    error_code ec;
    const auto remote = socket_.remote_endpoint(ec);
    return ec ? std::string("tcp peer (address unknown)") : "tcp peer " + to_endpoint(remote).to_string();
}

}  // namespace hello::detail
