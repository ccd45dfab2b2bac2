// Serves one abstract UNIX endpoint with hello::server and asks it once through hello::client,
// both on one io_context. Prints the reply; exits 0 only if it was `hello client`.
#include <hello/client.hpp>
#include <hello/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <unistd.h>

#include <exception>
#include <iostream>
#include <string>

int main() {
    // The library logs through spdlog's default logger (to stdout unless the program sets
    // another); the test looks for the reply's own line.
    const auto where = hello::endpoint::parse("unix:@hello-consumer-" + std::to_string(::getpid()));

    boost::asio::io_context ctx;
    hello::server_config config;
    config.listen = {where};
    hello::server server(ctx, config);  // binds, or throws hello::error
    server.start();

    std::string reply;
    boost::system::error_code ec;
    boost::asio::co_spawn(
        ctx,
        [&]() -> boost::asio::awaitable<void> {
            // Its own statement: g++ 12 destroys a temporary twice when it shares an expression with co_await.
            const auto executor = co_await boost::asio::this_coro::executor;
            hello::client client(executor, {.server = where});
            ec = co_await client.connect();
            if (!ec) ec = co_await client.request("hello server", reply);
            client.close();
        },
        [&](std::exception_ptr e) {
            server.stop();
            if (e) std::rethrow_exception(e);
        });
    ctx.run();

    if (ec) {
        std::cerr << "hello-consumer: " << where.to_string() << ": " << ec.message() << '\n';
        return 1;
    }
    std::cout << reply << '\n';
    return reply == "hello client" ? 0 : 1;
}
