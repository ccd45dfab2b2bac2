// One session over a connected socket pair: no listener, no file, just the connection.
#include "server_state.hpp"
#include "session.hpp"

#include "support/run_coro.hpp"

#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include <sys/socket.h>

namespace hello::detail {
namespace {

using asio::awaitable;
using asio::use_awaitable;
namespace local = asio::local;

class SessionTest : public ::testing::Test {
protected:
    // Starts a session on one end of a fresh pair; the test talks on the other end, `peer_`.
    void start(framing f, std::size_t max_request_bytes = 4096, int send_buffer = 0) {
        state_ = std::make_shared<server_state>(ctx_.get_executor());
        local::stream_protocol::socket server_end(ctx_);
        local::connect_pair(peer_, server_end);
        if (send_buffer > 0) server_end.set_option(asio::socket_base::send_buffer_size(send_buffer));
        connection_socket adopted(ctx_, protocol(AF_UNIX, 0), server_end.release());
        session::start(std::move(adopted), state_, 1, {f, max_request_bytes});
    }

    awaitable<std::string> read_exactly(std::size_t n) {
        std::string out(n, '\0');
        co_await asio::async_read(peer_, asio::buffer(out), use_awaitable);
        co_return out;
    }

    awaitable<bool> peer_sees_eof() {
        char byte = 0;
        auto [ec, n] = co_await peer_.async_read_some(asio::buffer(&byte, 1), asio::as_tuple(use_awaitable));
        co_return ec == asio::error::eof;
    }

    asio::io_context ctx_;
    local::stream_protocol::socket peer_{ctx_};
    std::shared_ptr<server_state> state_;
};

TEST_F(SessionTest, RawChunkGetsTheTutorialsReply) {
    start(framing::raw);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        for (int i = 0; i < 3; ++i) {
            co_await asio::async_write(peer_, asio::buffer(std::string_view("hello server")), use_awaitable);
            EXPECT_EQ(co_await read_exactly(12), "hello client");
        }
    }());
    EXPECT_EQ(state_->answered.load(), 3U);
}

TEST_F(SessionTest, PipelinedLinesGetOneReplyEachInOrder) {
    start(framing::line);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await asio::async_write(peer_, asio::buffer(std::string_view("a\nb\r\nc")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(26), "hello client\nhello client\n");
        co_await asio::async_write(peer_, asio::buffer(std::string_view("\n")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(13), "hello client\n");
    }());
}

// After its first request a line connection reads into a small inbox of its own, and takes
// whatever did not fit from the thread's buffer: batches on either side of that size.
TEST_F(SessionTest, BatchesOfAnySizeAfterTheFirstRequestAreAllAnswered) {
    start(framing::line);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await asio::async_write(peer_, asio::buffer(std::string_view("first\n")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(13), "hello client\n");
        for (const std::size_t lines : {1U, 19U, 20U, 21U, 64U, 1000U}) {
            std::string batch;
            for (std::size_t i = 0; i < lines; ++i) batch += i % 2 == 0 ? "hello server\n" : "hello server\r\n";
            co_await asio::async_write(peer_, asio::buffer(batch), use_awaitable);
            std::string expected;
            for (std::size_t i = 0; i < lines; ++i) expected += "hello client\n";
            EXPECT_EQ(co_await read_exactly(expected.size()), expected) << lines << " lines";
        }
    }());
    EXPECT_EQ(state_->answered.load(), 1U + 1U + 19U + 20U + 21U + 64U + 1000U);
}

// Replies are written at once; what a full socket buffer does not take waits for the peer.
TEST_F(SessionTest, RepliesBeyondAFullSocketBufferWaitForThePeer) {
    start(framing::line, 4096, 4096);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        std::string batch;
        for (int i = 0; i < 3000; ++i) batch += "hello server\n";
        co_await asio::async_write(peer_, asio::buffer(batch), use_awaitable);
        std::string expected;
        for (int i = 0; i < 3000; ++i) expected += "hello client\n";
        EXPECT_EQ(co_await read_exactly(expected.size()), expected);
        co_await asio::async_write(peer_, asio::buffer(std::string_view("again\n")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(13), "hello client\n");
    }());
    EXPECT_EQ(state_->answered.load(), 3001U);
}

// A request over the limit that starts in the inbox and ends in what did not fit.
TEST_F(SessionTest, LineOverTheLimitAcrossTheInboxIsRefused) {
    start(framing::line, 300);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await asio::async_write(peer_, asio::buffer(std::string_view("first\n")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(13), "hello client\n");
        const std::string batch = std::string(200, 'a') + "\n" + std::string(400, 'b') + "\n";
        co_await asio::async_write(peer_, asio::buffer(batch), use_awaitable);
        EXPECT_EQ(co_await read_exactly(13 + 24), "hello client\nerror: request too long\n");
        EXPECT_TRUE(co_await peer_sees_eof());
    }());
    EXPECT_EQ(state_->answered.load(), 2U);
}

TEST_F(SessionTest, OversizedLineIsRefusedAfterTheRepliesBeforeIt) {
    start(framing::line, 4);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await asio::async_write(peer_, asio::buffer(std::string_view("ok\ntoolong\n")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(13 + 24), "hello client\nerror: request too long\n");
        EXPECT_TRUE(co_await peer_sees_eof());
    }());
}

TEST_F(SessionTest, PeerLeavingEndsTheSessionAndEmptiesTheRegistry) {
    start(framing::raw);
    EXPECT_EQ(state_->open.load(), 1U);
    peer_.close();
    ctx_.run_for(std::chrono::seconds(10));  // returns as soon as the session is gone
    EXPECT_EQ(state_->open.load(), 0U);
    EXPECT_TRUE(state_->open_sessions().empty());
}

TEST_F(SessionTest, DrainClosesAnIdleConnection) {
    start(framing::line);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await asio::async_write(peer_, asio::buffer(std::string_view("x\n")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(13), "hello client\n");
        state_->stopping = true;
        for (auto& s : state_->open_sessions()) s->drain();
        EXPECT_TRUE(co_await peer_sees_eof());
    }());
}

TEST_F(SessionTest, DrainStillAnswersARequestAlreadySent) {
    start(framing::raw);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await asio::async_write(peer_, asio::buffer(std::string_view("hello server")), use_awaitable);
        // Asked to drain with the request sent, read or not yet: it answers, then closes.
        for (auto& s : state_->open_sessions()) s->drain();
        EXPECT_EQ(co_await read_exactly(12), "hello client");
        EXPECT_TRUE(co_await peer_sees_eof());
    }());
}

// The server ticks a few times per shortest timeout, so the longest one may take many ticks:
// with a 1 s write timeout it ticks every 250 ms, and a day of idleness is 345,600 of them.
TEST_F(SessionTest, IdleTimeoutOfADayIsKeptAtTheShortestTick) {
    using namespace std::chrono_literals;
    start(framing::raw);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await asio::async_write(peer_, asio::buffer(std::string_view("hello server")), use_awaitable);
        EXPECT_EQ(co_await read_exactly(12), "hello client");
        co_await asio::post(ctx_.get_executor(), use_awaitable);  // the session is waiting again
        const auto sessions = state_->open_sessions();
        EXPECT_EQ(sessions.size(), 1U);
        const auto period = 250ms;
        const auto idle = std::chrono::milliseconds(24h);
        // The first tick sees the request's progress; idleness counts from the second.
        const auto ticks = idle / period + 1;
        for (auto& s : sessions)
            for (std::int64_t i = 0; i < ticks - 1; ++i) s->tick(period, idle, 1s);
        EXPECT_EQ(state_->timed_out.load(), 0U);
        for (auto& s : sessions) s->tick(period, idle, 1s);
        EXPECT_EQ(state_->timed_out.load(), 1U);
        if (state_->timed_out.load() == 1U) {
            EXPECT_TRUE(co_await peer_sees_eof());
        }
    }());
}

// A connection's first tick comes anywhere up to a period after its accept: that part period is
// not a stalled one, or a peer that connects and says nothing would be closed early (0.82 s of
// a 1 s idle timeout, measured).
TEST_F(SessionTest, ASilentPeerIsGivenItsWholeIdleTimeout) {
    using namespace std::chrono_literals;
    start(framing::raw);
    test::run_coro(ctx_, [&]() -> awaitable<void> {
        co_await asio::post(ctx_.get_executor(), use_awaitable);  // the session waits for a request
        const auto sessions = state_->open_sessions();
        EXPECT_EQ(sessions.size(), 1U);
        const auto period = 250ms;
        const auto idle = 1s;
        for (int i = 0; i < 4; ++i)
            for (auto& s : sessions) s->tick(period, idle, 0ms);
        EXPECT_EQ(state_->timed_out.load(), 0U);
        for (auto& s : sessions) s->tick(period, idle, 0ms);
        EXPECT_EQ(state_->timed_out.load(), 1U);
        if (state_->timed_out.load() == 1U) {
            EXPECT_TRUE(co_await peer_sees_eof());
        }
    }());
}

}  // namespace
}  // namespace hello::detail
