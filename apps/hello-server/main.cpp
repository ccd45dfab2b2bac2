// hello-server: reads its configuration, binds every endpoint, serves until SIGTERM/SIGINT.
#include <hello/config.hpp>
#include <hello/error.hpp>
#include <hello/logging.hpp>
#include <hello/server.hpp>
#include <hello/version.hpp>

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/system/system_error.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/resource.h>

extern char** environ;

namespace {

// Many clients means many descriptors: take the whole hard limit, as redis and nginx do.
void raise_descriptor_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
}

int serve(const hello::server_config& config) {
    boost::asio::io_context ctx(static_cast<int>(config.threads));
    hello::server server(ctx, config);

    // First signal: drain. Second signal: stop waiting for slow connections.
    boost::asio::signal_set signals(ctx, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        spdlog::info("received {}; shutting down", signo == SIGINT ? "SIGINT" : "SIGTERM");
        server.stop([&signals] { signals.cancel(); });
        signals.async_wait([&](const boost::system::error_code& ec2, int) {
            if (ec2) return;
            spdlog::warn("second signal: closing every connection now");
            server.abort();
        });
    });
    server.start();

    std::vector<std::jthread> workers;
    for (unsigned i = 1; i < config.threads; ++i) workers.emplace_back([&ctx] { ctx.run(); });
    ctx.run();
    workers.clear();

    const auto stats = server.stats();
    spdlog::info("stopped: served {} connections and {} requests", stats.connections, stats.requests);
    return 0;
}

// One line on stderr, then the exit code that goes with it.
int report(const hello::startup_error& e) {
    std::fprintf(stderr, "hello-server: %s\n", e.what());
    return hello::to_int(e.code());
}

}  // namespace

int main(int argc, char* argv[]) {
    std::signal(SIGPIPE, SIG_IGN);
    try {
        const auto inv = hello::parse_server_invocation(argc, argv, environ);
        using action = hello::server_invocation::action;
        switch (inv.what) {
            case action::help:
                std::cout << inv.help_text;
                return 0;
            case action::version:
                std::cout << "hello-server " << hello::version << "\n";
                return 0;
            case action::print_config:
                std::cout << hello::describe(inv);
                return 0;
            case action::check_config:
                return 0;
            case action::run:
                break;
        }
        hello::init_logging(inv.config.log_level);
        raise_descriptor_limit();
        return serve(inv.config);
    } catch (const hello::startup_error& e) {
        return report(e);
    } catch (const boost::system::system_error& e) {
        return report(hello::uncaught_system_error(e.code(), e.what()));
    } catch (const std::system_error& e) {
        return report(hello::uncaught_system_error(e.code(), e.what()));
    } catch (const std::exception& e) {
        return report({hello::exit_code::software, std::string("internal error: ") + e.what()});
    }
}
