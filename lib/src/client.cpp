#include <hello/client.hpp>
#include <hello/error.hpp>

#include "net.hpp"

#include <boost/asio/read_until.hpp>

#include <algorithm>

namespace hello {

using namespace detail;

namespace {

// A full UNIX backlog: the listener is alive and will take us shortly. Boost 1.80+ maps
// connect()'s EAGAIN to in_progress, after which the connect "succeeds" on a socket that is
// not connected; older releases said no_buffer_space. All of them are worth another try.
bool is_transient(const error_code& ec) {
    return ec == asio::error::not_connected || ec == asio::error::no_buffer_space || ec == asio::error::try_again ||
           ec == asio::error::would_block || ec == asio::error::in_progress;
}

bool is_not_listening(const error_code& ec) {
    return ec == asio::error::connection_refused || ec == boost::system::errc::no_such_file_or_directory;
}

constexpr std::size_t max_reply_line = 64 * 1024;

}  // namespace

struct client::impl {
    impl(asio::any_io_executor e, client_options o)
        : ex(std::move(e)), options(std::move(o)), socket(ex), resolver(ex), deadline(ex) {}

    // Watchdog: when the deadline passes, pending I/O (a name lookup included) is cancelled
    // and reported as a timeout.
    void arm(std::chrono::steady_clock::duration after) {
        timed_out = false;
        deadline.expires_after(after);
        deadline.async_wait([this, generation = ++armed](error_code ec) {
            if (ec || generation != armed) return;
            timed_out = true;
            error_code ignored;
            socket.cancel(ignored);
            resolver.cancel();
        });
    }
    void disarm() {
        ++armed;
        deadline.cancel();
    }
    error_code outcome(const error_code& ec) const { return timed_out ? asio::error::timed_out : ec; }

    asio::awaitable<error_code> resolve_server(std::vector<protocol::endpoint>& out,
                                               std::chrono::steady_clock::time_point give_up);
    asio::awaitable<error_code> connect_once(const protocol::endpoint& addr,
                                             std::chrono::steady_clock::time_point give_up);
    asio::awaitable<error_code> read_raw_reply(std::string& reply);
    // What the server sent before it closed, if anything is still there to read.
    bool said_before_closing(std::string& reply) {
        error_code ec;
        const auto pending = socket.available(ec);
        if (ec || pending == 0) return false;
        reply.resize(std::min<std::size_t>(pending, max_reply_line));
        reply.resize(socket.read_some(asio::buffer(reply), ec));
        while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
        return !reply.empty();
    }
    asio::awaitable<error_code> read_line_reply(std::string& reply);

    asio::any_io_executor ex;
    client_options options;
    stream_socket socket;
    asio::ip::tcp::resolver resolver;
    asio::steady_timer deadline;
    std::uint64_t armed = 0;
    bool timed_out = false;
    std::string inbox;  // bytes received past the last reply
};

client::client(asio::any_io_executor ex, client_options options)
    : impl_(std::make_unique<impl>(std::move(ex), std::move(options))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

// The addresses to try, looked up without blocking the caller's thread.
asio::awaitable<error_code> client::impl::resolve_server(std::vector<protocol::endpoint>& out,
                                                         std::chrono::steady_clock::time_point give_up) {
    if (options.server.is_unix()) {
        out = {unix_sockaddr(options.server.as_unix())};
        co_return error_code{};
    }
    const auto& where = options.server.as_tcp();
    arm(give_up - std::chrono::steady_clock::now());
    auto [ec, results] = co_await resolver.async_resolve(where.host, std::to_string(where.port),
                                                         asio::ip::tcp::resolver::numeric_service, nothrow);
    disarm();
    if (timed_out) co_return asio::error::timed_out;
    if (ec || results.empty())
        co_return make_error_code(!ec || is_no_such_host(ec) ? errc::host_not_found : errc::resolver_failed);
    for (const auto& r : results) out.emplace_back(r.endpoint().data(), r.endpoint().size());
    co_return error_code{};
}

asio::awaitable<error_code> client::impl::connect_once(const protocol::endpoint& addr,
                                                       std::chrono::steady_clock::time_point give_up) {
    error_code ec;
    socket.close(ec);
    socket.open(addr.protocol(), ec);
    if (ec) co_return ec;
    arm(give_up - std::chrono::steady_clock::now());
    auto [connect_ec] = co_await socket.async_connect(addr, nothrow);
    disarm();
    if (connect_ec) co_return outcome(connect_ec);
    // See is_transient(): only a peer address proves the connection exists.
    socket.remote_endpoint(ec);
    if (ec) co_return ec;
    send_without_delay(socket);
    co_return error_code{};
}

asio::awaitable<error_code> client::connect() {
    auto& self = *impl_;
    const auto give_up = std::chrono::steady_clock::now() + self.options.timeout;
    std::vector<protocol::endpoint> addrs;
    if (auto ec = co_await self.resolve_server(addrs, give_up)) co_return ec;
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
        error_code ec;
        bool retry = false;
        for (const auto& addr : addrs) {
            ec = co_await self.connect_once(addr, give_up);
            if (!ec) co_return ec;
            if (ec == asio::error::timed_out) co_return ec;
            retry = retry || is_transient(ec) || (self.options.wait_for_server && is_not_listening(ec));
        }
        if (!retry) co_return ec;
        if (std::chrono::steady_clock::now() + backoff >= give_up) co_return asio::error::timed_out;
        timer pause(self.ex, backoff);
        co_await pause.async_wait(nothrow);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
    }
}

asio::awaitable<error_code> client::impl::read_raw_reply(std::string& reply) {
    // Raw replies have no delimiter: read until a whole `hello client` is in, or until what
    // came in can no longer be one.
    reply = std::exchange(inbox, {});
    char buf[1024];
    while (reply.size() < raw_reply.size() && raw_reply.starts_with(reply)) {
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), nothrow);
        if (ec == asio::error::eof) co_return make_error_code(errc::closed_early);
        if (ec) co_return outcome(ec);
        reply.append(buf, n);
    }
    co_return reply == raw_reply ? error_code{} : make_error_code(errc::unexpected_reply);
}

asio::awaitable<error_code> client::impl::read_line_reply(std::string& reply) {
    auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(inbox, max_reply_line), '\n', nothrow);
    if (ec == asio::error::eof) {
        reply = std::exchange(inbox, {});
        co_return make_error_code(errc::closed_early);
    }
    if (ec == asio::error::not_found) {
        // max_reply_line bytes and no newline: no reply of ours looks like that.
        reply.assign(inbox, 0, line_reply.size() * 2);
        inbox.clear();
        co_return make_error_code(errc::unexpected_reply);
    }
    if (ec) co_return outcome(ec);
    if (inbox.size() > n) {
        // More than the one line owed to the one request in flight: a second reply, or bytes
        // of nothing asked, which would otherwise pass for the next request's reply.
        reply.assign(inbox, 0, std::min(inbox.size(), 2 * line_reply.size()));
        inbox.clear();
        co_return make_error_code(errc::unexpected_reply);
    }
    reply.assign(inbox, 0, n - 1);
    inbox.clear();
    if (reply.ends_with('\r')) reply.pop_back();
    co_return reply + "\n" == line_reply ? error_code{} : make_error_code(errc::unexpected_reply);
}

asio::awaitable<error_code> client::request(std::string_view message, std::string& reply) {
    auto& self = *impl_;
    // An empty raw request puts nothing on the wire, so no reply could ever come.
    if (self.options.framing == framing::raw && message.empty()) co_return asio::error::invalid_argument;
    std::string wire(message);
    if (self.options.framing == framing::line) wire += '\n';  // one write per request: no Nagle stall
    self.arm(self.options.timeout);
    auto [ec, n] = co_await asio::async_write(self.socket, asio::buffer(wire), nothrow);
    if (ec) {
        self.disarm();
        // A server that turns a client away (too many connections, not allowed) says why in a
        // line and closes, possibly before the request is written: show that line.
        if ((ec == asio::error::broken_pipe || ec == asio::error::connection_reset) && self.said_before_closing(reply))
            co_return make_error_code(errc::unexpected_reply);
        co_return self.outcome(ec);
    }
    error_code result;
    if (self.options.framing == framing::raw)
        result = co_await self.read_raw_reply(reply);
    else
        result = co_await self.read_line_reply(reply);
    self.disarm();
    co_return result;
}

void client::close() {
    error_code ec;
    impl_->socket.shutdown(asio::socket_base::shutdown_both, ec);
    impl_->socket.close(ec);
}

}  // namespace hello
