#include "support/run_coro.hpp"

#include <boost/asio/co_spawn.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <exception>

#include <unistd.h>

namespace hello::test {

void run_coro(boost::asio::io_context& ctx, boost::asio::awaitable<void> op,
              std::chrono::steady_clock::duration limit) {
    bool done = false;
    std::exception_ptr failure;
    boost::asio::co_spawn(ctx, std::move(op), [&](std::exception_ptr e) {
        failure = e;
        done = true;
        ctx.stop();  // the server under test keeps the context busy forever
    });
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < give_up) {
        if (ctx.stopped()) ctx.restart();
        ctx.run_until(give_up);
        if (!done && ctx.stopped()) break;  // out of work without finishing: a lost wake-up
    }
    if (failure) std::rethrow_exception(failure);
    ASSERT_TRUE(done) << "coroutine did not finish in time";
}

temp_dir::temp_dir() {
    std::string pattern = "/tmp/hello-test.XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

std::string unique_abstract_name(const std::string& tag) {
    static std::atomic<int> counter{0};
    return "hello-test-" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(++counter);
}

}  // namespace hello::test

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hello::test {

countdown::countdown(boost::asio::any_io_executor ex, std::size_t count)
    : remaining_(count), wake_(std::move(ex), boost::asio::steady_timer::time_point::max()) {}

void countdown::done() {
    if (remaining_ > 0 && --remaining_ == 0) wake_.cancel();
}

boost::asio::awaitable<void> countdown::wait() {
    while (remaining_ > 0) co_await wake_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

}  // namespace hello::test
