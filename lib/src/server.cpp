#include <hello/error.hpp>
#include <hello/server.hpp>

#include "admission.hpp"
#include "listener.hpp"
#include "session.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <list>
#include <optional>
#include <string_view>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include <sys/socket.h>

namespace hello {

using namespace detail;

struct server::impl : std::enable_shared_from_this<server::impl> {
    impl(asio::io_context& c, server_config cfg)
        : ctx(c),
          control(asio::make_strand(c)),
          config(std::make_shared<const server_config>(std::move(cfg))),
          state(std::make_shared<server_state>(control)),
          connection_limit(detail::connection_limit(*config)) {
        for (unsigned i = 1; i < config->threads; ++i) loops.push_back(std::make_unique<event_loop>());
    }

    // Several threads: one event loop each, the caller's io_context and threads - 1 of the
    // server's own, and connections dealt out to them in turn. A connection stays on its loop,
    // which one thread runs: no strand, no lock and no shared queue between two requests, and
    // raw framing may read blind into its thread's buffer on every loop. (One io_context run
    // by every thread would share one epoll, one handler queue and its mutex, and need a
    // strand per connection.) On `control`, the one place connections are accepted.
    asio::io_context& next_loop() {
        const auto turn = next_turn++ % (loops.size() + 1);
        return turn == 0 ? ctx : loops[turn - 1]->ctx;
    }
    void start_loops();
    void join_loops();

    static asio::awaitable<void> accept_loop(std::shared_ptr<impl> self, std::shared_ptr<listener> l);
    static asio::awaitable<void> stop_sequence(std::shared_ptr<impl> self);
    template <typename Listeners>
    void add_listeners(Listeners opened);
    void serve(connection_socket socket, const listener& l);
    bool accept_backlog(listener& l);
    void shut(listener& l);
    void close_listener(listener& l);
    asio::awaitable<void> take_queued_within(std::vector<std::shared_ptr<listener>> queued,
                                             std::chrono::steady_clock::time_point deadline);
    void for_each_session(void (session::*action)());
    asio::awaitable<void> all_closed_within(std::chrono::steady_clock::duration limit);
    std::vector<std::string> apply(server_config next);
    void note_endpoints();
    bool admit(connection_socket& socket, const listener& l);
    void keep_ticking();

    struct event_loop {
        asio::io_context ctx{1};  // one thread runs it
        asio::executor_work_guard<asio::io_context::executor_type> busy = asio::make_work_guard(ctx);
    };

    asio::io_context& ctx;
    std::vector<std::unique_ptr<event_loop>> loops;  // threads - 1
    std::vector<std::jthread> loop_threads;
    std::size_t next_turn = 0;
    asio::any_io_executor control;                // serialises the configuration, the listeners and the stop
    std::shared_ptr<const server_config> config;  // on `control`; new connections take theirs here
    std::shared_ptr<server_state> state;
    std::vector<std::shared_ptr<listener>> listeners;
    std::size_t connection_limit;
    timer ticker{control};  // idle and write timeouts
    std::chrono::milliseconds tick_period{0};
    bool started = false;
    bool stop_started = false;
    bool hurry = false;                                           // a second stop request: stop waiting for the drain
    std::chrono::steady_clock::time_point last_denial_warning{};  // on `control`, as admit() runs
    std::uint64_t denials_unlogged = 0;
    std::vector<std::function<void()>> on_stopped;

    mutable std::mutex endpoints_mutex;  // endpoints() is asked from any thread
    std::vector<endpoint> endpoints;
};

asio::awaitable<void> server::impl::accept_loop(std::shared_ptr<impl> self, std::shared_ptr<listener> listening) {
    auto& l = *listening;
    constexpr auto retry_after = std::chrono::milliseconds(100);
    std::uint64_t exhausted_attempts = 0;  // in the current spell of descriptor or memory shortage
    for (;;) {
        auto [ec, socket] = co_await l.socket.async_accept(self->next_loop(), nothrow);
        // Accepted as the stop began: that client's request is owed a reply all the same.
        if (!ec) self->serve(std::move(socket), l);
        if (self->state->stopping || ec == asio::error::operation_aborted) co_return;
        if (ec && is_resource_exhaustion(ec)) {
            // Linux takes the descriptor before it looks at the queue, so this fails even with
            // nobody waiting: say it once per spell, not ten times a second. Accepting again at
            // once would spin; the connections already open keep being served meanwhile.
            if (exhausted_attempts++ == 0)
                spdlog::error("accept on {} failed: {}; retrying every {} ms", l.shown(), ec.message(),
                              retry_after.count());
            timer pause(self->control, retry_after);
            co_await pause.async_wait(nothrow);
            continue;
        }
        if (exhausted_attempts > 0) {
            spdlog::warn("accept on {} works again after {} failed attempts", l.shown(), exhausted_attempts);
            exhausted_attempts = 0;
        }
        if (ec) spdlog::error("accept on {} failed: {}", l.shown(), ec.message());
    }
}

void server::impl::serve(connection_socket socket, const listener& l) {
    if (!admit(socket, l)) return;
    if (l.is_tcp) send_without_delay(socket);
    const auto id = state->accepted.fetch_add(1, std::memory_order_relaxed) + 1;
    session::start(std::move(socket), state, id, {config->framing, config->max_request_bytes});
}

// Whether a connection just accepted may stay: within the connection limit, and from a peer
// the allowlists admit (UNIX only: a TCP peer has no credentials to check). A refused line-
// framing peer is told why in one line; a raw one, whose protocol has no errors, is closed.
bool server::impl::admit(connection_socket& socket, const listener& l) {
    const auto turn_away = [&](std::string_view why) {
        if (config->framing == framing::line)
            (void)::send(socket.native_handle(), why.data(), why.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        error_code ec;
        socket.close(ec);
    };
    if (state->open.load() >= connection_limit) {
        // The first refusal is a warning; a flood of them would drown the log, so the rest are
        // counted (in the summary and STATUS=) and shown at debug level.
        if (state->refused.fetch_add(1, std::memory_order_relaxed) == 0)
            spdlog::warn(
                "connection on {} refused: {} connections open is the limit (max-connections); further "
                "refusals are counted",
                l.shown(), connection_limit);
        else
            spdlog::debug("connection on {} refused: {} connections open", l.shown(), connection_limit);
        turn_away("error: too many connections\n");
        return false;
    }
    if (l.is_tcp || (config->allow_uids.empty() && config->allow_gids.empty())) return true;
    const auto peer = peer_credentials(socket);
    if (peer && allowed(*peer, *config)) return true;
    state->denied.fetch_add(1, std::memory_order_relaxed);
    // Who knocked matters, so denials are warnings; but any local user can knock thousands of
    // times a second, so at most one a second is, naming how many went unlogged before it.
    const auto now = std::chrono::steady_clock::now();
    const bool warn = now - last_denial_warning >= std::chrono::seconds(1);
    const auto level = warn ? spdlog::level::warn : spdlog::level::debug;
    const auto also = warn && denials_unlogged > 0
                          ? fmt::format(" ({} more denied since the last warning)", denials_unlogged)
                          : std::string();
    if (warn) {
        last_denial_warning = now;
        denials_unlogged = 0;
    } else {
        ++denials_unlogged;
    }
    if (peer)
        spdlog::log(level, "connection on {} denied: peer pid={} uid={} gid={} is not allowed{}", l.shown(), peer->pid,
                    peer->uid, peer->gid, also);
    else
        spdlog::log(level, "connection on {} denied: the peer's credentials cannot be read{}", l.shown(), also);
    turn_away("error: not allowed\n");
    return false;
}

void server::impl::keep_ticking() {
    // A few ticks per shortest timeout: a connection is closed between one and 1.25 times its
    // timeout after it stalled, for one post per connection per tick and nothing per request.
    std::chrono::milliseconds shortest{0};
    for (const auto t : {config->idle_timeout, config->write_timeout})
        if (t.count() > 0 && (shortest.count() == 0 || t < shortest)) shortest = t;
    const auto period = shortest.count() == 0
                            ? shortest
                            : std::clamp(shortest / 4, std::chrono::milliseconds(50), std::chrono::milliseconds(5000));
    if (period == tick_period) return;
    tick_period = period;
    ticker.cancel();
    if (period.count() == 0 || !started || stop_started) return;
    ticker.expires_after(period);
    ticker.async_wait([self = shared_from_this(), period](error_code ec) {
        if (ec || self->stop_started) return;
        const auto idle = self->config->idle_timeout;
        const auto write = self->config->write_timeout;
        for (auto& s : self->state->open_sessions())
            asio::post(s->executor(), [s, period, idle, write] { s->tick(period, idle, write); });
        self->tick_period = {};
        self->keep_ticking();
    });
}

// A client whose connect() succeeded may be waiting in the backlog with its request sent;
// closing the listener would reset it. Take what is queued now, without waiting for more.
// False when descriptors (or memory) ran out first: clients may still be queued.
bool server::impl::accept_backlog(listener& l) {
    error_code ec;
    l.socket.non_blocking(true, ec);
    while (!ec) {
        auto socket = l.socket.accept(next_loop(), ec);
        if (!ec) serve(std::move(socket), l);
    }
    if (is_resource_exhaustion(ec)) return false;
    if (ec != asio::error::would_block && ec != asio::error::try_again)
        spdlog::warn("accept on {} while stopping failed: {}", l.shown(), ec.message());
    return true;
}

void server::impl::shut(listener& l) {
    error_code ec;
    l.socket.close(ec);
    if (l.claim) l.claim->release();
}

// A socket file goes at once, so that a replacement server can start while this one drains.
// An inherited socket stays with its supervisor, clients queued on it included: they wait
// for the next start rather than being taken now.
void server::impl::close_listener(listener& l) {
    if (!l.inherited && !accept_backlog(l))
        spdlog::warn("accept on {} while closing it failed: out of descriptors; clients still queued are reset",
                     l.shown());
    shut(l);
}

// Stopping while descriptors ran out: the clients still queued are taken as the drain closes
// connections and frees descriptors, until the queues are empty or `deadline`; whoever is
// queued then is reset, with nothing left to serve it.
asio::awaitable<void> server::impl::take_queued_within(std::vector<std::shared_ptr<listener>> queued,
                                                       std::chrono::steady_clock::time_point deadline) {
    constexpr auto again = std::chrono::milliseconds(10);
    while (!queued.empty() && !hurry && std::chrono::steady_clock::now() < deadline) {
        timer pause(control, again);
        co_await pause.async_wait(nothrow);
        std::erase_if(queued, [&](const std::shared_ptr<listener>& l) {
            if (!accept_backlog(*l)) return false;
            shut(*l);
            return true;
        });
    }
    if (!queued.empty()) spdlog::warn("stopped taking clients queued while out of descriptors; they are reset");
    for (const auto& l : queued) shut(*l);
}

template <typename Listeners>
void server::impl::add_listeners(Listeners opened) {
    for (auto& l : opened) {
        auto shared = std::make_shared<listener>(std::move(l));
        listeners.push_back(shared);
        if (started) asio::co_spawn(control, accept_loop(shared_from_this(), std::move(shared)), asio::detached);
    }
    note_endpoints();
}

void server::impl::note_endpoints() {
    std::vector<endpoint> now;
    for (const auto& l : listeners) now.push_back(l->where);
    std::lock_guard lock(endpoints_mutex);
    endpoints = std::move(now);
}

void server::impl::for_each_session(void (session::*action)()) {
    for (auto& s : state->open_sessions()) asio::post(s->executor(), [s, action] { (*s.*action)(); });
}

// Returns once no connection is open, a second stop request hurries, or `limit` passes. The
// last connection to close cancels the wait at once; the wait also looks again every 100 ms,
// so that no interleaving of that cancel with the wait's start can leave a stop waiting for
// the whole limit.
asio::awaitable<void> server::impl::all_closed_within(std::chrono::steady_clock::duration limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    constexpr auto slice = std::chrono::milliseconds(100);
    while (state->open.load() > 0 && !hurry) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) co_return;
        state->drained.expires_after(std::min<std::chrono::steady_clock::duration>(deadline - now, slice));
        co_await state->drained.async_wait(nothrow);
    }
}

// The whole stop, in order: stop accepting and release socket files; ask every connection
// to drain; wait for them within the drain timeout; close what is left; done.
asio::awaitable<void> server::impl::stop_sequence(std::shared_ptr<impl> self) {
    auto& state = *self->state;
    state.stopping = true;
    self->ticker.cancel();
    // Out of descriptors, a listener keeps its queue (its socket file goes all the same).
    std::vector<std::shared_ptr<listener>> still_queued;
    for (auto& l : self->listeners) {
        if (l->inherited || self->accept_backlog(*l)) {
            self->shut(*l);
            continue;
        }
        if (l->claim) l->claim->release();
        still_queued.push_back(l);
    }
    const auto drain_timeout = self->config->drain_timeout;
    const auto deadline = std::chrono::steady_clock::now() + drain_timeout;
    spdlog::info("stopping: no longer accepting; draining {} open connections (up to {} ms)", state.open.load(),
                 drain_timeout.count());
    if (!still_queued.empty())
        spdlog::warn("out of descriptors: clients still queued on {} endpoints are taken as connections close",
                     still_queued.size());
    self->for_each_session(&session::drain);
    co_await self->take_queued_within(std::move(still_queued), deadline);
    co_await self->all_closed_within(deadline - std::chrono::steady_clock::now());
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

server::server(asio::io_context& ctx, server_config config, std::vector<inherited_socket> inherited)
    : impl_(std::make_shared<impl>(ctx, std::move(config))) {
    // Bind everything before serving anything: a configuration that is half usable fails whole.
    std::list<listener> passed_down;
    for (auto& s : inherited) passed_down.push_back(adopt_listener(ctx, s.fd, std::move(s.name)));
    for (const auto& ep : impl_->config->listen)
        impl_->add_listeners(open_listeners(ctx, ep, *impl_->config, passed_down));
    // What the supervisor passed down is served even when no configured endpoint names it.
    for (const auto& l : passed_down)
        spdlog::info("serving inherited socket {}{} that no configured endpoint names", l.shown(),
                     l.name.empty() ? "" : " (" + printable(l.name) + ")");
    impl_->add_listeners(std::move(passed_down));
}

server::~server() {
    impl_->join_loops();
    for (auto& l : impl_->listeners)
        if (l->claim) l->claim->release();
}

std::vector<endpoint> server::endpoints() const {
    std::lock_guard lock(impl_->endpoints_mutex);
    return impl_->endpoints;
}

void server::start() {
    impl_->start_loops();
    std::string where;
    for (const auto& ep : endpoints()) where += (where.empty() ? "" : ", ") + printable(ep.to_string());
    const auto& cfg = *impl_->config;
    spdlog::info("hello-server listening on {} (framing {}, {} thread{})", where, to_string(cfg.framing), cfg.threads,
                 cfg.threads == 1 ? "" : "s");
    const auto seconds = [](std::chrono::milliseconds t) {
        return t.count() == 0 ? std::string("off") : std::to_string(t.count()) + " ms";
    };
    spdlog::info("limits: {} connections at once; idle timeout {}; write timeout {}", impl_->connection_limit,
                 seconds(cfg.idle_timeout), seconds(cfg.write_timeout));
    asio::post(impl_->control, [self = impl_] {
        self->started = true;
        for (auto& l : self->listeners) asio::co_spawn(self->control, impl::accept_loop(self, l), asio::detached);
        self->keep_ticking();
    });
}

// On `control`. What cannot be applied is said, and the rest still applies.
std::vector<std::string> server::impl::apply(server_config next) {
    std::vector<std::string> problems;
    if (stop_started) return {"stopping: the new configuration is not applied"};
    if (next.threads != config->threads) {
        problems.push_back("threads stays " + std::to_string(config->threads) + ": a change takes a restart");
        next.threads = config->threads;
    }
    const auto listed = [&](const std::optional<endpoint>& ep) {
        return ep && std::find(next.listen.begin(), next.listen.end(), *ep) != next.listen.end();
    };
    std::erase_if(listeners, [&](const std::shared_ptr<listener>& l) {
        // An inherited socket stays: its supervisor keeps it listening whatever we do.
        if (l->inherited || listed(l->configured)) return false;
        spdlog::info("no longer listening on {}", l->shown());
        close_listener(*l);
        return true;
    });
    for (const auto& ep : next.listen) {
        const bool open = std::any_of(listeners.begin(), listeners.end(),
                                      [&](const std::shared_ptr<listener>& l) { return l->configured == ep; });
        if (open) continue;
        try {
            std::list<listener> none_passed_down;
            auto opened = open_listeners(ctx, ep, next, none_passed_down);
            for (const auto& l : opened) spdlog::info("now listening on {}", l.shown());
            add_listeners(std::move(opened));
        } catch (const error& e) {
            problems.push_back(e.what());
        }
    }
    if (next.socket_mode != config->socket_mode || next.socket_group != config->socket_group) {
        for (const auto& l : listeners) {
            try {
                reapply_socket_access(*l, next);
            } catch (const error& e) {
                problems.push_back(e.what());
            }
        }
    }
    note_endpoints();
    config = std::make_shared<const server_config>(std::move(next));
    connection_limit = detail::connection_limit(*config);
    keep_ticking();
    return problems;
}

void server::reload(server_config config, std::function<void(std::vector<std::string>)> done) {
    asio::post(impl_->control, [self = impl_, config = std::move(config), done = std::move(done)]() mutable {
        auto problems = self->apply(std::move(config));
        if (done) done(std::move(problems));
    });
}

// Every thread is started before anything is served: a system that cannot give them all
// is a start-up error, not a server running on fewer threads than it says.
void server::impl::start_loops() {
    if (!loop_threads.empty()) return;
    loop_threads.reserve(loops.size());
    try {
        for (auto& loop : loops) loop_threads.emplace_back([&ctx = loop->ctx] { ctx.run(); });
    } catch (const std::system_error& e) {
        const auto running = loop_threads.size();
        join_loops();
        throw error(e.code(), "cannot start thread " + std::to_string(running + 2) + " of " +
                                  std::to_string(loops.size() + 1) + ": " + e.code().message());
    }
}

// Once stopped, the loops have nothing left but their guards; an abandoned server's loops
// are stopped with whatever they still hold.
void server::impl::join_loops() {
    for (auto& loop : loops) {
        loop->busy.reset();
        if (!stop_started || state->open.load() > 0) loop->ctx.stop();
    }
    loop_threads.clear();  // joins
}

void server::run(std::function<void()> serving) {
    start();
    if (serving) asio::post(impl_->control, std::move(serving));  // after start()'s own post
    impl_->ctx.run();
    impl_->join_loops();
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

void server::probe_loops(std::function<void()> done) {
    struct probe {
        probe(std::size_t loops, std::function<void()> fn) : left(loops), done(std::move(fn)) {}
        std::atomic<std::size_t> left;
        std::function<void()> done;
    };
    auto p = std::make_shared<probe>(impl_->loops.size() + 1, std::move(done));
    const auto answer = [p] {
        if (p->left.fetch_sub(1) == 1 && p->done) p->done();
    };
    asio::post(impl_->ctx, answer);
    for (auto& loop : impl_->loops) asio::post(loop->ctx, answer);
}

std::size_t server::max_connections() const noexcept {
    return impl_->connection_limit;
}

server_stats server::stats() const noexcept {
    const auto& s = *impl_->state;
    return {s.accepted.load(), s.answered.load(), s.open.load(), s.refused.load(), s.denied.load(), s.timed_out.load()};
}

}  // namespace hello
