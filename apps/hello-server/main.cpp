// hello-server: reads its configuration, binds every endpoint, serves until SIGTERM/SIGINT.
#include "descriptors.hpp"
#include "exit_code.hpp"
#include "logging.hpp"
#include "server_options.hpp"
#include "systemd.hpp"

#include <hello/error.hpp>
#include <hello/server.hpp>
#include <hello/version.hpp>

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <pthread.h>
#include <signal.h>
#include <cstdlib>
#include <functional>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <string>
#include <system_error>

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
            case hello::errc::lock_not_ours:
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

// The signals the daemon steers by. Blocked from the first line of main() until their handlers
// are in place: binding many endpoints (or resolving a slow host name) takes a while, and a
// SIGTERM then would otherwise kill the process with its socket and lock files left behind.
// Pending meanwhile, the signal is taken as soon as the daemon listens for it.
sigset_t steering_signals() {
    sigset_t set;
    ::sigemptyset(&set);
    for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) ::sigaddset(&set, signo);
    return set;
}

// The running daemon: the server, the signals that steer it, and what systemd is told.
class server_daemon {
public:
    // `reread` reads the configuration again as at start (command line, environment, file).
    server_daemon(server_invocation first, std::function<server_invocation()> reread)
        : invocation_(std::move(first)),
          reread_(std::move(reread)),
          ctx_(1),  // run by this thread; the server runs its other threads' loops
          steer_(boost::asio::make_strand(ctx_)),
          server_(ctx_, invocation_.config, systemd::take_inherited_sockets()),
          signals_(steer_, SIGINT, SIGTERM),
          status_timer_(steer_),
          watchdog_timer_(steer_) {
        for (int more : {SIGHUP, SIGUSR1, SIGUSR2}) signals_.add(more);
        const auto steering = steering_signals();
        ::pthread_sigmask(SIG_UNBLOCK, &steering, nullptr);
    }

    int run() {
        wait_for_signal();
        keep_watchdog();
        server_.run([this] {
            boost::asio::post(steer_, [this] {
                systemd::notify("READY=1\n" + status_line());
                keep_status();
            });
        });
        const auto stats = server_.stats();
        spdlog::info("stopped: served {} connections and {} requests", stats.connections, stats.requests);
        if (stats.refused + stats.denied + stats.timed_out > 0)
            spdlog::info("turned away {} connections over max-connections and {} not allowed; closed {} on a timeout",
                         stats.refused, stats.denied, stats.timed_out);
        return 0;
    }

private:
    // SIGTERM or SIGINT drains; a second one stops waiting for slow connections. SIGHUP
    // reloads the configuration; SIGUSR1 and SIGUSR2 are logged and ignored: their default
    // action would kill the server and leave its socket file and lock file behind.
    //
    // Once the server has stopped, nothing waits for a signal any more: a signal caught just
    // before (two at once, as `timeout` sends them) must not re-arm the wait, which would keep
    // the loop, and the process, alive with nothing left to serve.
    void wait_for_signal() {
        signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
            if (ec || stopped_) return;
            const char* name = ::sigabbrev_np(signo);
            if (signo == SIGHUP && !stopping_) {
                reload();
            } else if (signo == SIGUSR1 || signo == SIGUSR2 || signo == SIGHUP) {
                spdlog::info("received SIG{}; it has no meaning here, carrying on", name ? name : "?");
            } else if (!stopping_) {
                spdlog::info("received SIG{}; shutting down", name ? name : "?");
                begin_stop();
            } else {
                spdlog::warn("second signal: closing every connection now");
                server_.abort();
            }
            wait_for_signal();  // the stop, once complete, cancels this wait
        });
    }

    void begin_stop() {
        stopping_ = true;
        // The drain may take the whole drain timeout: tell systemd not to kill us before.
        const auto allowance = std::chrono::duration_cast<std::chrono::microseconds>(invocation_.config.drain_timeout +
                                                                                     std::chrono::seconds(5));
        systemd::notify("STOPPING=1\nEXTEND_TIMEOUT_USEC=" + std::to_string(allowance.count()) +
                        "\nSTATUS=stopping: draining " + std::to_string(server_.stats().open) + " connections");
        server_.stop([this] {
            boost::asio::post(steer_, [this] {
                stopped_ = true;
                signals_.cancel();
                status_timer_.cancel();
                watchdog_timer_.cancel();
            });
        });
    }

    // Like sshd and nginx: a file that does not read or validate changes nothing.
    void reload() {
        spdlog::info("received SIGHUP; reloading the configuration");
        systemd::notify_reloading();
        server_invocation next;
        try {
            next = reread_();
        } catch (const startup_error& e) {
            spdlog::error("reload failed, keeping the running configuration: {}", e.what());
            systemd::notify("READY=1\nSTATUS=reload failed, running the previous configuration: " +
                            std::string(e.what()));
            return;
        }
        set_log_level(next.log_level);
        invocation_.log_level = next.log_level;
        server_.reload(next.config, [this, next](std::vector<std::string> problems) {
            boost::asio::post(steer_, [this, next, problems = std::move(problems)] {
                for (const auto& p : problems) spdlog::error("reload: {}", p);
                const auto threads = invocation_.config.threads;  // a change takes a restart
                invocation_.config = next.config;
                invocation_.config.threads = threads;
                const auto how = problems.empty() ? "reloaded" : "reloaded in part";
                spdlog::info("{}; listening on {}", how, endpoints_text());
                systemd::notify("READY=1\n" + status_line());
            });
        });
    }

    std::string endpoints_text() const {
        std::string where;
        for (const auto& ep : server_.endpoints())
            where += (where.empty() ? "" : ", ") + hello::printable(ep.to_string());
        return where;
    }

    std::string status_line() const {
        const auto stats = server_.stats();
        auto line = "STATUS=listening on " + endpoints_text() + "; " + std::to_string(stats.open) +
                    " connections open, " + std::to_string(stats.requests) + " requests served";
        if (stats.refused + stats.denied > 0)
            line += "; " + std::to_string(stats.refused) + " refused over the limit, " + std::to_string(stats.denied) +
                    " not allowed";
        return line;
    }

    // STATUS= every few seconds, for `systemctl status`; nothing outside systemd.
    void keep_status() {
        if (!std::getenv("NOTIFY_SOCKET") || stopping_) return;
        status_timer_.expires_after(std::chrono::seconds(5));
        status_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping_) return;
            systemd::notify(status_line());
            keep_status();
        });
    }

    // Pings from the event loop itself, at half the interval: a loop that is stuck stops
    // pinging, and systemd restarts the service.
    void keep_watchdog() {
        const auto interval = systemd::watchdog_interval();
        if (!interval || stopped_) return;
        watchdog_timer_.expires_after(*interval / 2);
        watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            // Alive means every event loop answers, not just this one: a thread stuck in any
            // of them stops the pings, and systemd restarts the server.
            server_.probe_loops([this] {
                boost::asio::post(steer_, [this] {
                    systemd::notify("WATCHDOG=1");
                    keep_watchdog();
                });
            });
        });
    }

    server_invocation invocation_;
    std::function<server_invocation()> reread_;
    boost::asio::io_context ctx_;
    boost::asio::any_io_executor steer_;  // signals, timers and reloads, one at a time
    hello::server server_;
    boost::asio::signal_set signals_;
    boost::asio::steady_timer status_timer_;
    boost::asio::steady_timer watchdog_timer_;
    bool stopping_ = false;
    bool stopped_ = false;  // on steer_: the server has stopped; nothing may wait any more
};

// One line on stderr, then the exit code that goes with it.
int report(const startup_error& e) {
    std::fprintf(stderr, "hello-server: %s\n", e.what());
    return to_int(e.code());
}

}  // namespace

int main(int argc, char* argv[]) {
    std::signal(SIGPIPE, SIG_IGN);
    const auto steering = steering_signals();
    ::pthread_sigmask(SIG_BLOCK, &steering, nullptr);
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
        server_daemon daemon(inv, [argc, argv] { return parse_server_invocation(argc, argv, environ); });
        return daemon.run();
    } catch (const startup_error& e) {
        return report(e);
    } catch (const hello::error& e) {
        return report({exit_code_for(e.code()), e.what()});
    } catch (...) {
        return report(uncaught(std::current_exception()));
    }
}
