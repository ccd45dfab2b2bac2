// hello-server: reads its configuration, binds every endpoint, serves until SIGTERM/SIGINT.
#include <hello/config.hpp>
#include <hello/error.hpp>
#include <hello/logging.hpp>
#include <hello/server.hpp>
#include <hello/version.hpp>

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/system/system_error.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstring>
#include <string>
#include <cstdio>
#include <iostream>
#include <new>
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

// Signals an administrator may send a daemon by habit; the default action would kill the
// server and leave its socket file and lock file behind.
bool is_harmless(int signo) {
    return signo == SIGHUP || signo == SIGUSR1 || signo == SIGUSR2;
}

// SIGTERM or SIGINT drains; a second one stops waiting for slow connections. SIGHUP, SIGUSR1
// and SIGUSR2 are logged and ignored.
void on_signal(boost::asio::signal_set& signals, hello::server& server, bool stopping) {
    signals.async_wait([&signals, &server, stopping](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        const char* name = ::sigabbrev_np(signo);
        if (is_harmless(signo)) {
            spdlog::info("received SIG{}; it has no meaning here, carrying on", name ? name : "?");
        } else if (!stopping) {
            spdlog::info("received SIG{}; shutting down", name ? name : "?");
            server.stop([&signals] { signals.cancel(); });
        } else {
            spdlog::warn("second signal: closing every connection now");
            server.abort();
        }
        on_signal(signals, server, stopping || !is_harmless(signo));
    });
}

// The io_context's other threads, all started before anything is served: a system that
// cannot give them all is a start-up error (71), not a server running on fewer threads than
// its start-up line says.
std::vector<std::jthread> start_workers(boost::asio::io_context& ctx, unsigned count) {
    std::vector<std::jthread> workers;
    workers.reserve(count);
    try {
        for (unsigned i = 0; i < count; ++i) workers.emplace_back([&ctx] { ctx.run(); });
    } catch (const std::system_error& e) {
        ctx.stop();
        throw hello::startup_error(hello::exit_code::os_error,
                                   "cannot start thread " + std::to_string(workers.size() + 2) + " of " +
                                       std::to_string(count + 1) + ": " + e.code().message());
    }
    return workers;
}

int serve(const hello::server_config& config) {
    boost::asio::io_context ctx(static_cast<int>(config.threads));
    hello::server server(ctx, config);
    boost::asio::signal_set signals(ctx, SIGINT, SIGTERM);
    for (int harmless : {SIGHUP, SIGUSR1, SIGUSR2}) signals.add(harmless);
    on_signal(signals, server, false);

    auto idle = boost::asio::make_work_guard(ctx);  // the workers wait for work until start()
    auto workers = start_workers(ctx, config.threads - 1);
    server.start();
    idle.reset();
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
    } catch (const std::bad_alloc&) {
        return report({hello::exit_code::os_error, "cannot run: out of memory"});
    } catch (const std::exception& e) {
        return report({hello::exit_code::software, std::string("internal error: ") + e.what()});
    }
}
