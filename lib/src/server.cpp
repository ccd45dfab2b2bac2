#include <hello/error.hpp>
#include <hello/server.hpp>

#include "listener.hpp"
#include "session.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <spdlog/spdlog.h>

#include <string>
#include <system_error>
#include <thread>

namespace hello {

using namespace detail;

struct server::impl : std::enable_shared_from_this<server::impl> {
    impl(asio::io_context& c, server_config cfg)
        : ctx(c), control(asio::make_strand(c)), state(std::make_shared<server_state>(std::move(cfg), control)) {}

    // Connections get a strand each only when several threads could run them at once.
    asio::any_io_executor new_executor() {
        if (state->config.threads == 1) return ctx.get_executor();
        return asio::make_strand(ctx);
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<impl> self, listener& l);
    static asio::awaitable<void> stop_sequence(std::shared_ptr<impl> self);
    void serve(stream_socket socket, const listener& l);
    void accept_backlog(listener& l);
    void close_listeners();
    void for_each_session(void (session::*action)());
    asio::awaitable<void> all_closed_within(std::chrono::steady_clock::duration limit);

    asio::io_context& ctx;
    asio::any_io_executor control;  // serialises listeners and the stop
    std::shared_ptr<server_state> state;
    std::vector<listener> listeners;
    std::vector<endpoint> endpoints;
    bool stop_started = false;
    bool hurry = false;  // a second stop request: stop waiting for the drain
    std::vector<std::function<void()>> on_stopped;
};

asio::awaitable<void> server::impl::accept_loop(std::shared_ptr<impl> self, listener& l) {
    constexpr auto retry_after = std::chrono::milliseconds(100);
    std::uint64_t exhausted_attempts = 0;  // in the current spell of descriptor or memory shortage
    for (;;) {
        auto [ec, socket] = co_await l.socket.async_accept(self->new_executor(), nothrow);
        // Accepted as the stop began: that client's request is owed a reply all the same.
        if (!ec) self->serve(std::move(socket), l);
        if (self->state->stopping || ec == asio::error::operation_aborted) co_return;
        if (ec && is_resource_exhaustion(ec)) {
            // Linux takes the descriptor before it looks at the queue, so this fails even with
            // nobody waiting: say it once per spell, not ten times a second. Accepting again at
            // once would spin; the connections already open keep being served meanwhile.
            if (exhausted_attempts++ == 0)
                spdlog::error("accept on {} failed: {}; retrying every {} ms", l.where.to_string(), ec.message(),
                              retry_after.count());
            timer pause(self->control, retry_after);
            co_await pause.async_wait(nothrow);
            continue;
        }
        if (exhausted_attempts > 0) {
            spdlog::warn("accept on {} works again after {} failed attempts", l.where.to_string(), exhausted_attempts);
            exhausted_attempts = 0;
        }
        if (ec) spdlog::error("accept on {} failed: {}", l.where.to_string(), ec.message());
    }
}

void server::impl::serve(stream_socket socket, const listener& l) {
    if (l.is_tcp) send_without_delay(socket);
    const auto id = state->accepted.fetch_add(1, std::memory_order_relaxed) + 1;
    session::start(std::move(socket), state, id);
}

// A client whose connect() succeeded may be waiting in the backlog with its request sent;
// closing the listener would reset it. Take what is queued now, without waiting for more.
void server::impl::accept_backlog(listener& l) {
    error_code ec;
    l.socket.non_blocking(true, ec);
    while (!ec) {
        auto socket = l.socket.accept(new_executor(), ec);
        if (!ec) serve(std::move(socket), l);
    }
    if (ec != asio::error::would_block && ec != asio::error::try_again)
        spdlog::warn("accept on {} while stopping failed: {}", l.where.to_string(), ec.message());
}

// Socket files go at once, so that a replacement server can start while this one drains.
void server::impl::close_listeners() {
    for (auto& l : listeners) {
        accept_backlog(l);
        error_code ec;
        l.socket.close(ec);
        if (l.claim) l.claim->release();
    }
}

void server::impl::for_each_session(void (session::*action)()) {
    for (auto& s : state->open_sessions()) asio::post(s->executor(), [s, action] { (*s.*action)(); });
}

// Returns once no connection is open, a second stop request hurries, or `limit` passes.
asio::awaitable<void> server::impl::all_closed_within(std::chrono::steady_clock::duration limit) {
    state->drained.expires_after(limit);
    while (state->open.load() > 0 && !hurry) {
        auto [ec] = co_await state->drained.async_wait(nothrow);
        if (!ec) co_return;  // the time is up; a cancel means "look again"
    }
}

// The whole stop, in order: stop accepting and release socket files; ask every connection
// to drain; wait for them within the drain timeout; close what is left; done.
asio::awaitable<void> server::impl::stop_sequence(std::shared_ptr<impl> self) {
    auto& state = *self->state;
    state.stopping = true;
    self->close_listeners();
    spdlog::info("stopping: no longer accepting; draining {} open connections (up to {} ms)", state.open.load(),
                 state.config.drain_timeout.count());
    self->for_each_session(&session::drain);
    co_await self->all_closed_within(state.config.drain_timeout);
    if (const auto left = state.open.load(); left > 0) {
        if (self->hurry)
            spdlog::warn("closing {} connections now", left);
        else
            spdlog::warn("drain timeout: closing {} connections still open", left);
        self->for_each_session(&session::close);
        while (state.open.load() > 0) {
            self->hurry = false;  // closing is all a second request could ask for
            co_await self->all_closed_within(std::chrono::hours(24));
        }
    }
    for (auto& fn : std::exchange(self->on_stopped, {}))
        if (fn) fn();
}

server::server(asio::io_context& ctx, server_config config) : impl_(std::make_shared<impl>(ctx, std::move(config))) {
    // Bind everything before serving anything: a configuration that is half usable fails whole.
    for (const auto& ep : impl_->state->config.listen) {
        for (auto& l : open_listeners(ctx, ep, impl_->state->config)) {
            impl_->endpoints.push_back(l.where);
            impl_->listeners.push_back(std::move(l));
        }
    }
}

server::~server() {
    for (auto& l : impl_->listeners)
        if (l.claim) l.claim->release();
}

const std::vector<endpoint>& server::endpoints() const noexcept {
    return impl_->endpoints;
}

void server::start() {
    std::string where;
    for (const auto& ep : impl_->endpoints) where += (where.empty() ? "" : ", ") + ep.to_string();
    spdlog::info("hello-server listening on {} (framing {}, {} thread{})", where,
                 to_string(impl_->state->config.framing), impl_->state->config.threads,
                 impl_->state->config.threads == 1 ? "" : "s");
    for (auto& l : impl_->listeners) asio::co_spawn(impl_->control, impl::accept_loop(impl_, l), asio::detached);
}

void server::run() {
    // Every thread is started before anything is served: a system that cannot give them all
    // is a start-up error, not a server running on fewer threads than it says.
    auto idle = asio::make_work_guard(impl_->ctx);
    std::vector<std::jthread> workers;
    const auto extra = impl_->state->config.threads - 1;
    workers.reserve(extra);
    try {
        for (unsigned i = 0; i < extra; ++i) workers.emplace_back([this] { impl_->ctx.run(); });
    } catch (const std::system_error& e) {
        impl_->ctx.stop();
        throw error(e.code(), "cannot start thread " + std::to_string(workers.size() + 2) + " of " +
                                  std::to_string(extra + 1) + ": " + e.code().message());
    }
    start();
    idle.reset();
    impl_->ctx.run();
}

void server::stop(std::function<void()> on_stopped) {
    asio::post(impl_->control, [self = impl_, fn = std::move(on_stopped)]() mutable {
        self->on_stopped.push_back(std::move(fn));
        if (std::exchange(self->stop_started, true)) return;
        asio::co_spawn(self->control, impl::stop_sequence(self), asio::detached);
    });
}

void server::abort() {
    asio::post(impl_->control, [self = impl_] {
        self->hurry = true;
        if (std::exchange(self->stop_started, true)) {
            self->state->drained.cancel();
            return;
        }
        asio::co_spawn(self->control, impl::stop_sequence(self), asio::detached);
    });
}

server_stats server::stats() const noexcept {
    const auto& s = *impl_->state;
    return {s.accepted.load(), s.answered.load(), s.open.load()};
}

}  // namespace hello
