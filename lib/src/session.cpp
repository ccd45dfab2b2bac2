#include "session.hpp"

#include "admission.hpp"

#include <hello/framing.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <array>
#include <exception>

#include <boost/asio/dispatch.hpp>
#include <string_view>

#include <sys/socket.h>

namespace hello::detail {
namespace {

// Every read lands here, one buffer per thread. A session that looks at what it read uses it
// up before its next suspension. Raw framing reads into it blind (the bytes are never looked
// at), so that every pending read of the thread may share it: async_read_some's
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

session::session(connection_socket socket, std::shared_ptr<server_state> state, std::uint64_t id,
                 session_settings settings)
    : socket_(std::move(socket)),
      state_(std::move(state)),
      id_(id),
      settings_(settings),
      framer_(settings.max_request_bytes),
      draining_(state_->stopping) {}

session::~session() {
    spdlog::debug("connection {} closed after {} requests", id_, requests_);
    state_->remove(handle_);
}

void session::start(connection_socket socket, std::shared_ptr<server_state> state, std::uint64_t id,
                    session_settings settings) {
    auto s = std::make_shared<session>(std::move(socket), state, id, settings);
    s->handle_ = state->add(s);
    if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("connection {} opened: {}", id, s->describe_peer());
    error_code ec;
    // Reads happen only once data is there (or blind, by the reactor): they must never block.
    if (!s->reads_blind()) s->socket_.non_blocking(true, ec);
    if (ec) return s->finish();
    auto ex = s->executor();
    asio::dispatch(ex, [s = std::move(s)] { s->await_request(); });
}

// Idle: one pending read (blind) or wait, holding the session and nothing else.
void session::await_request() {
    if (!request_may_follow()) return finish();
    phase_ = phase::awaiting_request;
    if (reads_blind()) {
        socket_.async_read_some(
            asio::buffer(thread_buffer()),
            [self = shared_from_this()](const error_code& ec, std::size_t n) { self->on_readable(ec, n); });
    } else {
        socket_.async_wait(asio::socket_base::wait_read,
                           [self = shared_from_this()](const error_code& ec) { self->on_readable(ec, 0); });
    }
}

void session::on_readable(const error_code& ec, std::size_t read_blind) {
    phase_ = phase::working;
    ++progress_;
    auto result = ec;
    auto n = read_blind;
    // The buffer is this thread's: read into it now, and use it up before the next suspension.
    if (!result && !reads_blind()) n = socket_.read_some(asio::buffer(thread_buffer()), result);
    switch (classify(result, n)) {
        case read_result::look_again:
            return await_request();
        case read_result::closed:
            return finish();
        case read_result::data:
            break;
    }
    try {
        answer(std::string_view(thread_buffer().data(), n));
    } catch (const std::exception& e) {
        // Only the exceptional ends here (out of memory): it costs this connection alone.
        spdlog::error("connection {} failed: {}", id_, e.what());
        finish();
    }
}

void session::answer(std::string_view bytes) {
    const auto owed = settings_.framing == framing::line ? framer_.consume(bytes) : raw_framer::consume(bytes);
    // Counted before the reply is written: once the peer can read a reply, it is counted.
    requests_ += owed.replies;
    state_->answered.fetch_add(owed.replies, std::memory_order_relaxed);
    replies_owed_ = owed.replies;
    refuse_after_replies_ = owed.refuse;
    if (owed.refuse)
        spdlog::warn("connection {}: request over {} bytes refused; closing", id_, settings_.max_request_bytes);
    send_replies();
}

// Replies go out a batch at a time from read-only memory every session shares; then the
// refusal, if one is owed, after which the connection closes; else the wait for the next request.
void session::send_replies() {
    std::string_view out;
    if (replies_owed_ > 0) {
        const auto batch = reply_batch(settings_.framing);
        const auto now = std::min(replies_owed_, batch_capacity);
        replies_owed_ -= now;
        out = batch.substr(0, now * (batch.size() / batch_capacity));
    } else if (refuse_after_replies_) {
        refuse_after_replies_ = false;
        closing_ = true;
        out = too_long_reply;
    } else {
        return await_request();
    }
    phase_ = phase::writing;
    asio::async_write(socket_, asio::buffer(out),
                      [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_sent(ec); });
}

void session::on_sent(const error_code& ec) {
    phase_ = phase::working;
    ++progress_;
    if (!written(ec) || closing_) return finish();
    send_replies();
}

// The descriptor is this session's alone, so close() alone ends the connection for the peer.
void session::finish() {
    error_code ec;
    socket_.close(ec);
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
