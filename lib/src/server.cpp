#include <hello/error.hpp>
#include <hello/server.hpp>

#include "listener.hpp"
#include "session.hpp"

#include <spdlog/spdlog.h>

namespace hello {

using namespace detail;

struct server::impl : std::enable_shared_from_this<server::impl> {
    impl(asio::io_context& c, server_config cfg)
        : ctx(c),
          control(asio::make_strand(c)),
          state(std::make_shared<server_state>(std::move(cfg))),
          drain_timer(control) {}

    // Connections get a strand each only when several threads could run them at once.
    asio::any_io_executor new_executor() {
        if (state->config.threads == 1) return ctx.get_executor();
        return asio::make_strand(ctx);
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<impl> self, listener& l);
    void serve(stream_socket socket, const listener& l);
    void accept_backlog(listener& l);
    void begin_stop();
    void close_all();
    void check_stopped();

    asio::io_context& ctx;
    asio::any_io_executor control;  // serialises listeners, stop and the drain timer
    std::shared_ptr<server_state> state;
    std::vector<listener> listeners;
    std::vector<endpoint> endpoints;
    timer drain_timer;
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
    if (l.is_tcp) {
        error_code ec;
        socket.set_option(asio::ip::tcp::no_delay(true), ec);
    }
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

void server::impl::begin_stop() {
    if (state->stopping.exchange(true)) return;
    for (auto& l : listeners) {
        accept_backlog(l);
        error_code ec;
        l.socket.close(ec);
        if (l.claim) l.claim->release();
    }
    spdlog::info("stopping: no longer accepting; draining {} open connections (up to {} ms)", state->open.load(),
                 state->config.drain_timeout.count());
    state->for_each([](const std::shared_ptr<session>& s) { asio::post(s->executor(), [s] { s->drain(); }); });
    drain_timer.expires_after(state->config.drain_timeout);
    drain_timer.async_wait([self = shared_from_this()](error_code ec) {
        if (ec) return;
        if (const auto left = self->state->open.load(); left > 0)
            spdlog::warn("drain timeout: closing {} connections still open", left);
        self->close_all();
    });
    check_stopped();
}

void server::impl::close_all() {
    state->for_each([](const std::shared_ptr<session>& s) { asio::post(s->executor(), [s] { s->close(); }); });
}

void server::impl::check_stopped() {
    if (!state->stopping || state->open.load() > 0) return;
    drain_timer.cancel();
    for (auto& fn : std::exchange(on_stopped, {}))
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
    std::weak_ptr<impl> weak = impl_;
    impl_->state->on_session_closed = [weak] {
        if (auto self = weak.lock()) asio::post(self->control, [self] { self->check_stopped(); });
    };
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

void server::stop(std::function<void()> on_stopped) {
    asio::post(impl_->control, [self = impl_, fn = std::move(on_stopped)]() mutable {
        self->on_stopped.push_back(std::move(fn));
        self->begin_stop();
        self->check_stopped();
    });
}

void server::abort() {
    asio::post(impl_->control, [self = impl_] {
        self->begin_stop();
        self->close_all();
    });
}

server_stats server::stats() const noexcept {
    const auto& s = *impl_->state;
    return {s.accepted.load(), s.answered.load(), s.open.load()};
}

}  // namespace hello
