#include "session.hpp"

#include <hello/framing.hpp>

#include <spdlog/spdlog.h>

#include <array>
#include <exception>
#include <optional>
#include <string_view>

#include <sys/socket.h>

namespace hello::detail {

// ---- server_state -------------------------------------------------------------------------

server_state::handle server_state::add(const std::shared_ptr<session>& s) {
    std::lock_guard lock(mutex_);
    ++open;
    return sessions_.insert(sessions_.end(), s);
}

void server_state::remove(handle h) {
    {
        std::lock_guard lock(mutex_);
        sessions_.erase(h);
        --open;
    }
    // Only a stopping server waits for its last connection; the rest of the time a close costs no post.
    if (stopping && on_session_closed) on_session_closed();
}

void server_state::for_each(const std::function<void(const std::shared_ptr<session>&)>& fn) {
    // Called outside the lock: the last reference to a session may be one taken here, and
    // its destructor removes it from the registry, which takes the lock.
    std::vector<std::shared_ptr<session>> open_now;
    {
        std::lock_guard lock(mutex_);
        open_now.reserve(sessions_.size());
        for (const auto& weak : sessions_)
            if (auto s = weak.lock()) open_now.push_back(std::move(s));
    }
    for (const auto& s : open_now) fn(s);
}

// ---- session --------------------------------------------------------------------------------

namespace {

// Line framing (and raw framing on several threads) reads here, one buffer per thread: a session reads into it and is
// done with it before its next suspension, so idle connections cost no buffer.
std::array<char, 64 * 1024>& scratch() {
    thread_local std::array<char, 64 * 1024> buffer;
    return buffer;
}

// Raw framing never looks at what it reads, so on one thread every pending read of every
// session may share one buffer that nobody reads back. That lets raw sessions use
// async_read_some, whose speculative read costs no epoll_ctl per request as async_wait does,
// without a buffer each.
std::array<char, 64 * 1024>& discard_buffer() {
    static std::array<char, 64 * 1024> buffer;
    return buffer;
}

// `hello client\n` back to back, so that any number of pipelined line replies is one write
// from read-only memory shared by every session.
constexpr std::size_t batch_capacity = 512;
std::string_view reply_batch() {
    static const std::string batch = [] {
        std::string s;
        s.reserve(line_reply.size() * batch_capacity);
        for (std::size_t i = 0; i < batch_capacity; ++i) s += line_reply;
        return s;
    }();
    return batch;
}

bool is_quiet_disconnect(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::error::operation_aborted;
}

}  // namespace

session::session(stream_socket socket, std::shared_ptr<server_state> state, std::uint64_t id)
    : socket_(std::move(socket)), state_(std::move(state)), id_(id), draining_(state_->stopping) {}

session::~session() {
    spdlog::debug("connection {} closed after {} requests", id_, requests_);
    state_->remove(handle_);
}

void session::start(stream_socket socket, std::shared_ptr<server_state> state, std::uint64_t id) {
    auto s = std::make_shared<session>(std::move(socket), state, id);
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
    if (self->state_->config.framing == framing::line)
        co_await self->serve_line();
    else if (self->state_->config.threads > 1)
        co_await self->serve_raw_threaded();
    else
        co_await self->serve_raw_one_thread();
    error_code ec;
    self->socket_.shutdown(asio::socket_base::shutdown_both, ec);
    self->socket_.close(ec);
}

void session::drain() {
    draining_ = true;
    if (awaiting_request_) socket_.cancel();
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

std::optional<std::size_t> session::read_outcome(const error_code& ec, std::size_t n) {
    if (!ec) return n;
    // Woken by a stop, or readable but already drained: look again.
    if ((ec == asio::error::operation_aborted && draining_) || ec == asio::error::would_block ||
        ec == asio::error::try_again)
        return std::nullopt;
    if (!is_quiet_disconnect(ec)) spdlog::warn("connection {}: read failed: {}", id_, ec.message());
    return 0;
}

asio::awaitable<bool> session::wait_readable() {
    for (;;) {
        if (!request_may_follow()) co_return false;
        awaiting_request_ = true;
        auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, nothrow);
        awaiting_request_ = false;
        if (!ec) co_return true;
        if (ec != asio::error::operation_aborted || !draining_) co_return false;
    }
}

std::optional<std::string_view> session::read_available() {
    // Taken here, after the wait: a coroutine may resume on another thread than it left.
    auto& buf = scratch();
    error_code ec;
    const auto n = socket_.read_some(asio::buffer(buf), ec);
    const auto outcome = read_outcome(ec, n);
    if (!outcome) return std::nullopt;
    return std::string_view(buf.data(), *outcome);
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

// The hot loop of the default configuration, kept in one coroutine: a nested coroutine per
// read or write costs a frame and a resumption per request.
asio::awaitable<void> session::serve_raw_one_thread() {
    for (;;) {
        if (!request_may_follow()) co_return;
        awaiting_request_ = true;
        auto [read_ec, n] = co_await socket_.async_read_some(asio::buffer(discard_buffer()), nothrow);
        awaiting_request_ = false;
        const auto outcome = read_outcome(read_ec, n);
        if (!outcome) continue;
        if (*outcome == 0) co_return;
        count_answered(1);
        auto [write_ec, written_bytes] = co_await asio::async_write(socket_, asio::buffer(raw_reply), nothrow);
        if (!written(write_ec)) co_return;
    }
}

// Several threads may perform reads at once, so they cannot share the discard buffer.
asio::awaitable<void> session::serve_raw_threaded() {
    if (!make_reads_nonblocking()) co_return;
    for (;;) {
        if (!co_await wait_readable()) co_return;
        const auto chunk = read_available();
        if (!chunk) continue;
        if (chunk->empty()) co_return;
        count_answered(1);
        auto [write_ec, written_bytes] = co_await asio::async_write(socket_, asio::buffer(raw_reply), nothrow);
        if (!written(write_ec)) co_return;
    }
}

asio::awaitable<bool> session::send_replies(std::size_t count, bool then_refuse) {
    count_answered(count);
    const auto batch = reply_batch();
    while (count > batch_capacity) {
        auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(batch), nothrow);
        if (!written(ec)) co_return false;
        count -= batch_capacity;
    }
    const std::array<asio::const_buffer, 2> last{asio::buffer(batch.data(), count * line_reply.size()),
                                                 asio::buffer(then_refuse ? too_long_reply : std::string_view{})};
    auto [ec, n] = co_await asio::async_write(socket_, last, nothrow);
    co_return written(ec);
}

asio::awaitable<void> session::serve_line() {
    if (!make_reads_nonblocking()) co_return;
    line_framer framer(state_->config.max_request_bytes);
    for (;;) {
        if (!co_await wait_readable()) co_return;
        // `chunk` lives in this thread's scratch buffer: the framer copies what it keeps.
        const auto chunk = read_available();
        if (!chunk) continue;
        if (chunk->empty()) co_return;
        const auto f = framer.consume(*chunk);
        if (f.refuse) {
            spdlog::warn("connection {}: request over {} bytes refused; closing", id_,
                         state_->config.max_request_bytes);
            co_await send_replies(f.replies, true);
            co_return;
        }
        if (f.replies > 0 && !co_await send_replies(f.replies, false)) co_return;
    }
}

bool session::make_reads_nonblocking() {
    // read_available() reads once the socket is readable, and must never block.
    error_code ec;
    socket_.non_blocking(true, ec);
    return !ec;
}

std::string session::describe_peer() {
    const int fd = socket_.native_handle();
    error_code ec;
    const auto local = socket_.local_endpoint(ec);
    if (!ec && local.data()->sa_family == AF_UNIX) {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            return "unix peer pid=" + std::to_string(cred.pid) + " uid=" + std::to_string(cred.uid) +
                   " gid=" + std::to_string(cred.gid);
        return "unix peer (credentials unknown)";
    }
    const auto remote = socket_.remote_endpoint(ec);
    return ec ? std::string("tcp peer (address unknown)") : "tcp peer " + to_endpoint(remote).to_string();
}

}  // namespace hello::detail
