// The async client against peers that do not behave like hello-server.
#include <hello/client.hpp>

#include "support/run_coro.hpp"

#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace hello {
namespace {

namespace asio = boost::asio;
namespace local = asio::local;
using asio::awaitable;
using asio::use_awaitable;
using namespace std::chrono_literals;

// A UNIX listener the test scripts by hand.
class ClientTest : public ::testing::Test {
protected:
    ClientTest() : path_(dir_.path("peer.sock")), acceptor_(ctx_, local::stream_protocol::endpoint(path_)) {}

    client make_client(framing f = framing::raw, std::chrono::milliseconds timeout = 2s) {
        return client(ctx_.get_executor(), {endpoint::parse("unix:" + path_), f, timeout});
    }

    // Accepts one connection, reads one request, answers `reply` (if any), keeps it open.
    awaitable<local::stream_protocol::socket> answer_once(std::string reply) {
        auto s = co_await acceptor_.async_accept(use_awaitable);
        char buf[256];
        co_await s.async_read_some(asio::buffer(buf), use_awaitable);
        if (!reply.empty()) co_await asio::async_write(s, asio::buffer(reply), use_awaitable);
        co_return s;
    }

    // Plays the server in the background: accepts, reads one request, answers `reply` and
    // keeps the connection open until the test ends.
    void answer_in_background(std::string reply) { asio::co_spawn(ctx_, play(std::move(reply)), asio::detached); }

    test::temp_dir dir_;
    std::string path_;
    asio::io_context ctx_;
    local::stream_protocol::acceptor acceptor_;
    local::stream_protocol::socket peer_{ctx_};

private:
    awaitable<void> play(std::string reply) { peer_ = co_await answer_once(std::move(reply)); }
};

TEST_F(ClientTest, RawReplyArrivingInPiecesIsReassembled) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client();
        EXPECT_FALSE(co_await c.connect());
        auto peer = [&]() -> awaitable<void> {
            auto s = co_await answer_once("hello");
            co_await asio::async_write(s, asio::buffer(std::string_view(" client")), use_awaitable);
            char buf[1];
            co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(use_awaitable));  // until the client leaves
        };
        asio::co_spawn(ctx_, peer(), asio::detached);
        std::string reply;
        EXPECT_FALSE(co_await c.request("hello server", reply));
        EXPECT_EQ(reply, "hello client");
        c.close();
    }());
}

TEST_F(ClientTest, WrongReplyIsUnexpected) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client();
        EXPECT_FALSE(co_await c.connect());
        answer_in_background("nope");
        std::string reply;
        EXPECT_EQ(co_await c.request("hello server", reply), errc::unexpected_reply);
        EXPECT_EQ(reply, "nope");
    }());
}

TEST_F(ClientTest, LineErrorReplyIsReportedAsReceived) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client(framing::line);
        EXPECT_FALSE(co_await c.connect());
        answer_in_background("error: request too long\n");
        std::string reply;
        EXPECT_EQ(co_await c.request("x", reply), errc::unexpected_reply);
        EXPECT_EQ(reply, "error: request too long");
    }());
}

TEST_F(ClientTest, EndlessLineReplyIsUnexpectedAndShownInPart) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client(framing::line);
        EXPECT_FALSE(co_await c.connect());
        answer_in_background(std::string(100'000, 'q'));
        std::string reply;
        EXPECT_EQ(co_await c.request("x", reply), errc::unexpected_reply);
        EXPECT_FALSE(reply.empty());
        EXPECT_LT(reply.size(), 100U);
        EXPECT_EQ(reply.find_first_not_of('q'), std::string::npos) << reply;
    }());
}

TEST_F(ClientTest, EmptyRawRequestIsRefusedAtOnce) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client(framing::raw, 5s);
        EXPECT_FALSE(co_await c.connect());
        std::string reply;
        // Nothing on the wire is no request: waiting would only end in a timeout.
        EXPECT_EQ(co_await c.request("", reply), asio::error::invalid_argument);
    }());
}

TEST_F(ClientTest, PeerClosingBeforeTheReplyIsClosedEarly) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client();
        EXPECT_FALSE(co_await c.connect());
        auto script = [&]() -> awaitable<void> { (void)co_await answer_once("hello"); };
        asio::co_spawn(ctx_, script(), asio::detached);
        std::string reply;
        EXPECT_EQ(co_await c.request("hello server", reply), errc::closed_early);
    }());
}

TEST_F(ClientTest, SilentPeerTimesOut) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client(framing::raw, 100ms);
        EXPECT_FALSE(co_await c.connect());
        answer_in_background("");
        std::string reply;
        const auto start = std::chrono::steady_clock::now();
        EXPECT_EQ(co_await c.request("hello server", reply), asio::error::timed_out);
        EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
    }());
}

TEST_F(ClientTest, NobodyListeningIsRefusedAtOnce) {
    acceptor_.close();
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client();
        EXPECT_EQ(co_await c.connect(), asio::error::connection_refused);
    }());
    ::unlink(path_.c_str());
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto c = make_client();
        EXPECT_EQ(co_await c.connect(), boost::system::errc::no_such_file_or_directory);
    }());
}

TEST(ClientWait, WaitsForAServerThatIsNotUpYet) {
    test::temp_dir dir;
    const auto path = dir.path("later.sock");
    asio::io_context ctx;
    local::stream_protocol::acceptor acceptor(ctx);
    test::run_coro(ctx, [&]() -> awaitable<void> {
        client_options options{endpoint::parse("unix:" + path), framing::raw, 5s};
        options.wait_for_server = true;
        client c(ctx.get_executor(), options);
        // The server appears only once the client has found nothing at least once: the
        // client's first connect() is made while it starts its first wait, before any handler
        // queued earlier runs, and this one is queued earlier.
        auto server_starts_late = [&]() -> awaitable<void> {
            co_await asio::post(ctx, use_awaitable);
            const local::stream_protocol::endpoint ep(path);
            acceptor.open(ep.protocol());
            acceptor.bind(ep);
            acceptor.listen();
            auto s = co_await acceptor.async_accept(use_awaitable);
            char buf[64];
            co_await s.async_read_some(asio::buffer(buf), use_awaitable);
            co_await asio::async_write(s, asio::buffer(std::string_view("hello client")), use_awaitable);
        };
        asio::co_spawn(ctx, server_starts_late(), asio::detached);
        EXPECT_FALSE(co_await c.connect());
        std::string reply;
        EXPECT_FALSE(co_await c.request("hello server", reply));
        EXPECT_EQ(reply, "hello client");
    }());
}

TEST(ClientWait, GivesUpWhenTheServerNeverComes) {
    test::temp_dir dir;
    asio::io_context ctx;
    test::run_coro(ctx, [&]() -> awaitable<void> {
        client_options options{endpoint::parse("unix:" + dir.path("never.sock")), framing::raw, 100ms};
        options.wait_for_server = true;
        client c(ctx.get_executor(), options);
        EXPECT_EQ(co_await c.connect(), asio::error::timed_out);
    }());
}

TEST(Client, UnresolvableHostIsReported) {
    asio::io_context ctx;
    test::run_coro(ctx, [&]() -> awaitable<void> {
        client c(ctx.get_executor(), {endpoint::parse("tcp:no-such-host.invalid:1"), framing::raw, 2s});
        EXPECT_EQ(co_await c.connect(), errc::host_not_found);
    }());
}

// Fills the listener's backlog with connections it never accepts.
std::vector<int> fill_backlog(const std::string& path) {
    std::vector<int> fds;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    for (int i = 0; i < 10000; ++i) {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            EXPECT_EQ(errno, EAGAIN);
            ::close(fd);
            return fds;
        }
        fds.push_back(fd);
    }
    ADD_FAILURE() << "backlog never filled";
    return fds;
}

class FullBacklog : public ::testing::Test {
protected:
    FullBacklog() : path_(dir_.path("full.sock")), acceptor_(ctx_) {
        const local::stream_protocol::endpoint ep(path_);
        acceptor_.open(ep.protocol());
        acceptor_.bind(ep);
        acceptor_.listen(1);
        held_ = fill_backlog(path_);
    }
    ~FullBacklog() override {
        for (int fd : held_) ::close(fd);
    }

    test::temp_dir dir_;
    std::string path_;
    asio::io_context ctx_;
    local::stream_protocol::acceptor acceptor_;
    std::vector<int> held_;
};

TEST_F(FullBacklog, ClientKeepsTryingUntilTheListenerCatchesUp) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        client c(ctx_.get_executor(), {endpoint::parse("unix:" + path_), framing::raw, 5s});
        // Queued connections stay queued when their clients close; they read as EOF once accepted.
        const auto queued = held_.size();
        for (int fd : std::exchange(held_, {})) ::close(fd);
        // The listener wakes up only after the client's first attempt has met the full backlog
        // (that connect() is made before the client first waits; see WaitsForAServerThatIsNotUpYet).
        auto listener = [&, queued]() -> awaitable<void> {
            co_await asio::post(ctx_, use_awaitable);
            for (std::size_t i = 0; i <= queued; ++i) {
                auto s = co_await acceptor_.async_accept(use_awaitable);
                char buf[64];
                auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(use_awaitable));
                if (!ec && n > 0) {
                    co_await asio::async_write(s, asio::buffer(std::string_view("hello client")), use_awaitable);
                    co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(use_awaitable));
                    co_return;
                }
            }
        };
        asio::co_spawn(ctx_, listener(), asio::detached);
        EXPECT_FALSE(co_await c.connect());
        std::string reply;
        EXPECT_FALSE(co_await c.request("hello server", reply));
        EXPECT_EQ(reply, "hello client");
    }());
}

TEST_F(FullBacklog, ListenerThatNeverCatchesUpIsATimeout) {
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        client c(ctx_.get_executor(), {endpoint::parse("unix:" + path_), framing::raw, 200ms});
        EXPECT_EQ(co_await c.connect(), asio::error::timed_out);
    }());
}

}  // namespace
}  // namespace hello
