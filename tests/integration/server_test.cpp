// The server over real sockets: UNIX paths, abstract names and loopback TCP, in process.
#include <hello/client.hpp>
#include <hello/error.hpp>
#include <hello/server.hpp>

#include "support/run_coro.hpp"

#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <fstream>
#include <thread>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace hello {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using namespace std::chrono_literals;
constexpr auto nothrow = asio::as_tuple(use_awaitable);
using generic_socket = asio::generic::stream_protocol::socket;

// A plain socket connected to `ep`, for speaking the wire protocol byte by byte.
awaitable<generic_socket> connect_plain(const endpoint& ep) {
    auto ex = co_await asio::this_coro::executor;
    if (ep.is_unix()) {
        asio::local::stream_protocol::socket s(ex);
        co_await s.async_connect(asio::local::stream_protocol::endpoint(ep.as_unix().sun_path()), use_awaitable);
        co_return generic_socket(ex, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), s.release());
    }
    asio::ip::tcp::socket s(ex);
    co_await s.async_connect({asio::ip::make_address(ep.as_tcp().host), ep.as_tcp().port}, use_awaitable);
    const auto family = s.local_endpoint().protocol().family();
    co_return generic_socket(ex, asio::generic::stream_protocol(family, SOCK_STREAM), s.release());
}

// Everything the peer sends until it closes.
awaitable<std::string> read_to_eof(generic_socket& s) {
    std::string all;
    char buf[4096];
    for (;;) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), nothrow);
        all.append(buf, n);
        if (ec) co_return all;
    }
}

awaitable<std::string> read_exactly(generic_socket& s, std::size_t n) {
    std::string data(n, '\0');
    co_await asio::async_read(s, asio::buffer(data), use_awaitable);
    co_return data;
}

server_config config_for(std::vector<endpoint> listen, framing f = framing::raw) {
    server_config c;
    c.listen = std::move(listen);
    c.framing = f;
    c.drain_timeout = 5s;
    return c;
}

class ServerTest : public ::testing::Test {
protected:
    endpoint unix_ep(const std::string& name = "s.sock") const { return endpoint::parse("unix:" + dir_.path(name)); }
    static endpoint abstract_ep() { return endpoint::parse("unix:@" + test::unique_abstract_name("server")); }
    static endpoint tcp_ep() { return endpoint::parse("tcp:127.0.0.1:0"); }

    test::temp_dir dir_;
    asio::io_context ctx_;
};

// ---- concurrency, on every kind of endpoint -------------------------------------------------

class ManyClients : public ServerTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(ManyClients, ThousandConcurrentClientsAreAllAnswered) {
    const std::string kind = GetParam();
    const auto ep = kind == "unix" ? unix_ep() : kind == "abstract" ? abstract_ep() : tcp_ep();
    server srv(ctx_, config_for({ep}));
    srv.start();
    const auto where = srv.endpoints().at(0);

    constexpr int clients = 1000;
    constexpr int requests_each = 3;
    int answered = 0;
    test::countdown finished(ctx_.get_executor(), clients);
    std::vector<std::string> failures;
    auto one_client = [&]() -> awaitable<void> {
        // g++ 12 destroys temporaries twice when they share an expression with co_await.
        const auto ex = co_await asio::this_coro::executor;
        client c(ex, {where, framing::raw, 20s});
        if (auto ec = co_await c.connect()) {
            failures.push_back("connect: " + ec.message());
        } else {
            std::string reply;
            for (int i = 0; i < requests_each; ++i) {
                if (auto rec = co_await c.request("hello server", reply)) {
                    failures.push_back("request: " + rec.message());
                    break;
                }
                answered += reply == "hello client";
            }
        }
        finished.done();
    };
    test::run_coro(
        ctx_,
        [&]() -> awaitable<void> {
            for (int i = 0; i < clients; ++i) asio::co_spawn(ctx_, one_client(), asio::detached);
            co_await finished.wait();
        }(),
        60s);

    EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();
    EXPECT_EQ(answered, clients * requests_each);
    EXPECT_EQ(srv.stats().connections, static_cast<std::uint64_t>(clients));
    EXPECT_EQ(srv.stats().requests, static_cast<std::uint64_t>(clients * requests_each));
}

INSTANTIATE_TEST_SUITE_P(Endpoints, ManyClients, ::testing::Values("unix", "abstract", "tcp"));

TEST_F(ServerTest, SeveralEndpointsAtOnce) {
    server srv(ctx_, config_for({unix_ep(), abstract_ep(), tcp_ep()}));
    ASSERT_EQ(srv.endpoints().size(), 3U);
    EXPECT_NE(srv.endpoints()[2].as_tcp().port, 0) << "ephemeral port is reported";
    srv.start();
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        for (const auto& ep : srv.endpoints()) {
            auto s = co_await connect_plain(ep);
            co_await asio::async_write(s, asio::buffer(std::string_view("hello server")), use_awaitable);
            EXPECT_EQ(co_await read_exactly(s, 12), "hello client") << ep.to_string();
        }
    }());
}

class ThreadedServer : public ServerTest, public ::testing::WithParamInterface<framing> {};

TEST_P(ThreadedServer, AnswersClientsFromAnotherContext) {
    const framing f = GetParam();
    auto cfg = config_for({unix_ep()}, f);
    cfg.threads = 2;
    server srv(ctx_, cfg);
    std::jthread runner([&] { srv.run(); });  // on its own two threads

    asio::io_context clients_ctx;
    int answered = 0;
    auto one_client = [&](test::countdown& finished) -> awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        client c(ex, {srv.endpoints()[0], f, 20s});
        std::string reply;
        if (!co_await c.connect())
            for (int r = 0; r < 20; ++r)
                if (!co_await c.request("hi", reply)) ++answered;
        finished.done();
    };
    test::run_coro(
        clients_ctx,
        [&]() -> awaitable<void> {
            test::countdown finished(clients_ctx.get_executor(), 200);
            for (int i = 0; i < 200; ++i) asio::co_spawn(clients_ctx, one_client(finished), asio::detached);
            co_await finished.wait();
        }(),
        60s);
    // run() returns once the stop has drained every connection and the work is done.
    srv.stop();
    runner.join();
    EXPECT_EQ(answered, 200 * 20);
    EXPECT_EQ(srv.stats().requests, 200U * 20U);
}

INSTANTIATE_TEST_SUITE_P(Framings, ThreadedServer, ::testing::Values(framing::raw, framing::line));

// The watchdog's probe: answered once every event loop has run it, and not while one is held up
// (here the caller's io_context, which nobody runs until the probe has gone to every loop).
TEST_F(ServerTest, LoopProbeWaitsForEveryLoop) {
    auto cfg = config_for({unix_ep()});
    cfg.threads = 3;
    server srv(ctx_, cfg);
    srv.start();  // the server's own two loops run from here
    std::promise<void> answered;
    auto probe_answered = answered.get_future();
    std::atomic<int> calls{0};
    srv.probe_loops([&] {
        if (calls.fetch_add(1) == 0) answered.set_value();
    });
    EXPECT_EQ(probe_answered.wait_for(300ms), std::future_status::timeout) << "answered with a loop held up";
    ctx_.poll();  // the held loop runs what it was sent
    ASSERT_EQ(probe_answered.wait_for(20s), std::future_status::ready);
    srv.stop();
    ctx_.run();
    EXPECT_EQ(calls.load(), 1);
}

// ---- line framing -----------------------------------------------------------------------------

TEST_F(ServerTest, LineFramingAnswersEveryPipelinedRequestInOrder) {
    server srv(ctx_, config_for({unix_ep()}, framing::line));
    srv.start();
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto s = co_await connect_plain(srv.endpoints()[0]);
        // More than one batch of replies, and a CRLF and an empty line among them.
        std::string requests;
        for (int i = 0; i < 1500; ++i) requests += i % 3 == 0 ? "hello\r\n" : i % 3 == 1 ? "\n" : "x\n";
        co_await asio::async_write(s, asio::buffer(requests), use_awaitable);
        s.shutdown(asio::socket_base::shutdown_send);
        std::string expected;
        for (int i = 0; i < 1500; ++i) expected += "hello client\n";
        EXPECT_EQ(co_await read_to_eof(s), expected);
    }());
    EXPECT_EQ(srv.stats().requests, 1500U);
}

TEST_F(ServerTest, LineSplitAcrossWritesIsOneRequest) {
    server srv(ctx_, config_for({tcp_ep()}, framing::line));
    srv.start();
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto s = co_await connect_plain(srv.endpoints()[0]);
        for (std::string_view piece : {"hel", "lo ser", "ver\nsec", "ond\n"})
            co_await asio::async_write(s, asio::buffer(piece), use_awaitable);
        s.shutdown(asio::socket_base::shutdown_send);
        EXPECT_EQ(co_await read_to_eof(s), "hello client\nhello client\n");
    }());
}

TEST_F(ServerTest, OversizedLineGetsAnErrorAndTheServerCarriesOn) {
    auto cfg = config_for({unix_ep()}, framing::line);
    cfg.max_request_bytes = 16;
    server srv(ctx_, cfg);
    srv.start();
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto bad = co_await connect_plain(srv.endpoints()[0]);
        const std::string requests = "fine\n" + std::string(100, 'x') + "\nnever answered\n";
        co_await asio::async_write(bad, asio::buffer(requests), use_awaitable);
        EXPECT_EQ(co_await read_to_eof(bad), "hello client\nerror: request too long\n");

        auto endless = co_await connect_plain(srv.endpoints()[0]);
        co_await asio::async_write(endless, asio::buffer(std::string(64, 'y')), use_awaitable);
        EXPECT_EQ(co_await read_to_eof(endless), "error: request too long\n");

        auto good = co_await connect_plain(srv.endpoints()[0]);
        co_await asio::async_write(good, asio::buffer(std::string_view("after\n")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(good, 13), "hello client\n");
    }());
}

// ---- peers that misbehave ---------------------------------------------------------------------

TEST_F(ServerTest, PeerThatVanishesMidRequestDoesNotDisturbOthers) {
    server srv(ctx_, config_for({unix_ep()}, framing::line));
    srv.start();
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        for (int i = 0; i < 50; ++i) {
            auto gone = co_await connect_plain(srv.endpoints()[0]);
            co_await asio::async_write(gone, asio::buffer(std::string_view("half a requ")), use_awaitable);
            gone.close();
        }
        auto s = co_await connect_plain(srv.endpoints()[0]);
        co_await asio::async_write(s, asio::buffer(std::string_view("whole\n")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(s, 13), "hello client\n");
    }());
    EXPECT_EQ(srv.stats().connections, 51U);
}

// ---- graceful stop ----------------------------------------------------------------------------

TEST_F(ServerTest, StopAnswersSentRequestsClosesIdleOnesAndRemovesTheSocket) {
    const auto ep = unix_ep();
    server srv(ctx_, config_for({ep}));
    srv.start();
    test::countdown stopped(ctx_.get_executor(), 1);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto idle = co_await connect_plain(srv.endpoints()[0]);
        auto busy = co_await connect_plain(srv.endpoints()[0]);
        // Make sure the server has both connections before stopping it.
        co_await asio::async_write(idle, asio::buffer(std::string_view("warm")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(idle, 12), "hello client");
        co_await asio::async_write(busy, asio::buffer(std::string_view("in flight")), use_awaitable);
        srv.stop([&] { stopped.done(); });
        EXPECT_EQ(co_await read_to_eof(busy), "hello client");
        EXPECT_EQ(co_await read_to_eof(idle), "");
        co_await stopped.wait();
    }());
    EXPECT_EQ(stopped.remaining(), 0U);
    EXPECT_FALSE(std::filesystem::exists(ep.as_unix().name));
    EXPECT_FALSE(std::filesystem::exists(ep.as_unix().name + ".lock"));
    EXPECT_EQ(srv.stats().open, 0U);
}

TEST_F(ServerTest, DrainTimeoutClosesAConnectionThatNeverFinishesItsRequest) {
    auto cfg = config_for({unix_ep()}, framing::line);
    cfg.drain_timeout = 50ms;
    server srv(ctx_, cfg);
    srv.start();
    test::countdown stopped(ctx_.get_executor(), 1);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto slow = co_await connect_plain(srv.endpoints()[0]);
        co_await asio::async_write(slow, asio::buffer(std::string_view("ok\nand then noth")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(slow, 13), "hello client\n");
        srv.stop([&] { stopped.done(); });
        EXPECT_EQ(co_await read_to_eof(slow), "");
        co_await stopped.wait();
    }());
    EXPECT_EQ(stopped.remaining(), 0U);
}

TEST_F(ServerTest, StoppedServerRefusesNewConnections) {
    server srv(ctx_, config_for({tcp_ep()}));
    srv.start();
    const auto where = srv.endpoints()[0];
    test::countdown stopped(ctx_.get_executor(), 1);
    srv.stop([&] { stopped.done(); });
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await stopped.wait();
        client c(ctx_.get_executor(), {where, framing::raw, 1s});
        EXPECT_EQ(co_await c.connect(), asio::error::connection_refused);
    }());
}

// ---- owning the socket path -------------------------------------------------------------------

boost::system::error_code startup_failure(asio::io_context& ctx, const server_config& cfg,
                                          std::string* message = nullptr) {
    try {
        server s(ctx, cfg);
    } catch (const error& e) {
        if (message) *message = e.what();
        return e.code();
    }
    ADD_FAILURE() << "server started";
    return {};
}

// A socket file nobody listens on, as a crashed server leaves behind.
void make_stale_socket(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
    ASSERT_TRUE(std::filesystem::is_socket(path));
}

TEST_F(ServerTest, StaleSocketIsReclaimed) {
    const auto ep = unix_ep();
    make_stale_socket(ep.as_unix().name);
    server srv(ctx_, config_for({ep}));
    srv.start();
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto s = co_await connect_plain(ep);
        co_await asio::async_write(s, asio::buffer(std::string_view("x")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(s, 12), "hello client");
    }());
}

TEST_F(ServerTest, LiveServerIsNeverStolenFrom) {
    const auto ep = unix_ep();
    server first(ctx_, config_for({ep}));
    first.start();
    std::string message;
    EXPECT_EQ(startup_failure(ctx_, config_for({ep}), &message), errc::endpoint_in_use);
    EXPECT_NE(message.find(ep.as_unix().name), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(::getpid())), std::string::npos) << "names the owner: " << message;
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        auto s = co_await connect_plain(ep);
        co_await asio::async_write(s, asio::buffer(std::string_view("still there?")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(s, 12), "hello client");
    }());
}

TEST_F(ServerTest, ForeignListenerWithoutLockIsNotStolen) {
    const auto ep = unix_ep();
    asio::local::stream_protocol::acceptor foreign(ctx_, asio::local::stream_protocol::endpoint(ep.as_unix().name));
    EXPECT_EQ(startup_failure(ctx_, config_for({ep})), errc::endpoint_in_use);
    EXPECT_TRUE(std::filesystem::is_socket(ep.as_unix().name));
    EXPECT_FALSE(std::filesystem::exists(ep.as_unix().name + ".lock")) << "no lock file left behind";
}

TEST_F(ServerTest, PathThatIsNotASocketIsNeverDeleted) {
    const auto ep = unix_ep();
    { std::ofstream(ep.as_unix().name) << "precious"; }
    EXPECT_EQ(startup_failure(ctx_, config_for({ep})), errc::not_a_socket);
    EXPECT_TRUE(std::filesystem::is_regular_file(ep.as_unix().name));
}

TEST_F(ServerTest, AbstractNameInUseIsUnavailable) {
    const auto ep = abstract_ep();
    server first(ctx_, config_for({ep}));
    EXPECT_EQ(startup_failure(ctx_, config_for({ep})), boost::system::errc::address_in_use);
}

TEST_F(ServerTest, TcpPortInUseIsUnavailable) {
    server first(ctx_, config_for({tcp_ep()}));
    EXPECT_EQ(startup_failure(ctx_, config_for({first.endpoints()[0]})), boost::system::errc::address_in_use);
}

TEST_F(ServerTest, FailedEndpointReleasesTheOnesAlreadyBound) {
    const auto ep = unix_ep();
    EXPECT_EQ(startup_failure(ctx_, config_for({ep, endpoint::parse("tcp:192.0.2.1:1")})),
              boost::system::errc::address_not_available);
    EXPECT_FALSE(std::filesystem::exists(ep.as_unix().name));
    EXPECT_FALSE(std::filesystem::exists(ep.as_unix().name + ".lock"));
}

TEST_F(ServerTest, SocketFileGetsTheConfiguredMode) {
    const auto ep = unix_ep();
    auto cfg = config_for({ep});
    cfg.socket_mode = 0600;
    server srv(ctx_, cfg);
    struct stat st {};
    ASSERT_EQ(::stat(ep.as_unix().name.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600U);
}

}  // namespace
}  // namespace hello
