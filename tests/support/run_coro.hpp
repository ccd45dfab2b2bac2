#pragma once

#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <string>

namespace hello::test {

// Runs `op` on `ctx` until it finishes, rethrowing what it throws; fails the test instead
// of hanging when it is not done within `limit`.
void run_coro(boost::asio::io_context& ctx, boost::asio::awaitable<void> op,
              std::chrono::steady_clock::duration limit = std::chrono::seconds(30));

// A fresh directory under /tmp (short, for UNIX socket paths), removed with the object.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] std::string path(const std::string& name) const { return (dir_ / name).string(); }

private:
    std::filesystem::path dir_;
};

// An abstract socket name no other test process uses.
std::string unique_abstract_name(const std::string& tag);

}  // namespace hello::test

#include <boost/asio/steady_timer.hpp>

namespace hello::test {

// Lets a coroutine wait until `count` events have happened (clients finished, a stop
// completed), woken by the last one rather than polling.
class countdown {
public:
    countdown(boost::asio::any_io_executor ex, std::size_t count);
    void done();
    [[nodiscard]] std::size_t remaining() const noexcept { return remaining_; }
    boost::asio::awaitable<void> wait();

private:
    std::size_t remaining_;
    boost::asio::steady_timer wake_;
};

}  // namespace hello::test
