// hello-server: reads its configuration, binds every endpoint, serves until SIGTERM/SIGINT.
#include "exit_code.hpp"
#include "logging.hpp"
#include "server_options.hpp"

#include <hello/error.hpp>
#include <hello/server.hpp>
#include <hello/version.hpp>

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/system/system_error.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <string>
#include <system_error>

#include <sys/resource.h>

extern char** environ;

namespace {

using namespace hello::app;

// The one place where what went wrong in the library becomes how this program exits.
exit_code exit_code_for(const boost::system::error_code& ec) {
    if (ec.category() == hello::category()) {
        switch (static_cast<hello::errc>(ec.value())) {
            case hello::errc::bad_endpoint:
            case hello::errc::name_too_long:
            case hello::errc::host_not_found:
            case hello::errc::not_a_listening_socket:
                return exit_code::config;
            case hello::errc::endpoint_in_use:
            case hello::errc::not_a_socket:
            case hello::errc::socket_replaced:
            case hello::errc::resolver_failed:
                return exit_code::unavailable;
            case hello::errc::unexpected_reply:
            case hello::errc::closed_early:
                return exit_code::software;
        }
    }
    if (is_shortage(ec)) return exit_code::os_error;
    // A missing directory is the configuration's fault; the rest is about the endpoint.
    namespace sys = boost::system::errc;
    if (ec == sys::no_such_file_or_directory || ec == sys::not_a_directory) return exit_code::config;
    return exit_code::unavailable;
}

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

int serve(const hello::server_config& config) {
    boost::asio::io_context ctx(static_cast<int>(config.threads));
    hello::server server(ctx, config);
    boost::asio::signal_set signals(ctx, SIGINT, SIGTERM);
    for (int harmless : {SIGHUP, SIGUSR1, SIGUSR2}) signals.add(harmless);
    on_signal(signals, server, false);
    server.run();
    const auto stats = server.stats();
    spdlog::info("stopped: served {} connections and {} requests", stats.connections, stats.requests);
    return 0;
}

// One line on stderr, then the exit code that goes with it.
int report(const startup_error& e) {
    std::fprintf(stderr, "hello-server: %s\n", e.what());
    return to_int(e.code());
}

}  // namespace

int main(int argc, char* argv[]) {
    std::signal(SIGPIPE, SIG_IGN);
    try {
        const auto inv = parse_server_invocation(argc, argv, environ);
        using action = server_invocation::action;
        switch (inv.what) {
            case action::help:
                std::cout << inv.help_text;
                return 0;
            case action::version:
                std::cout << "hello-server " << hello::version << "\n";
                return 0;
            case action::print_config:
                std::cout << describe(inv);
                return 0;
            case action::check_config:
                return 0;
            case action::run:
                break;
        }
        init_logging(inv.log_level);
        raise_descriptor_limit();
        return serve(inv.config);
    } catch (const startup_error& e) {
        return report(e);
    } catch (const hello::error& e) {
        return report({exit_code_for(e.code()), e.what()});
    } catch (const boost::system::system_error& e) {
        return report(uncaught_system_error(e.code(), e.what()));
    } catch (const std::system_error& e) {
        return report(uncaught_system_error(e.code(), e.what()));
    } catch (const std::bad_alloc&) {
        return report({exit_code::os_error, "cannot run: out of memory"});
    } catch (const std::exception& e) {
        return report({exit_code::software, std::string("internal error: ") + e.what()});
    }
}
