// hello-client: connects, sends a message N times in lockstep, prints every reply.
#include "bench.hpp"
#include "exit_code.hpp"
#include "option_error.hpp"
#include "output.hpp"
#include "parse.hpp"

#include <hello/client.hpp>
#include <hello/error.hpp>
#include <hello/version.hpp>

#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <optional>
#include <string_view>
#include <system_error>

namespace po = boost::program_options;
namespace asio = boost::asio;

namespace {

using namespace hello::app;

struct invocation {
    hello::client_options options;
    std::string message = "hello server";
    std::uint64_t count = 1;
    bool json = false;
};

[[noreturn]] void usage_error(const std::string& what) {
    throw startup_error(exit_code::usage, what);
}

std::optional<invocation> parse(int argc, char* argv[]) {
    po::options_description d("Options");
    // One option per stanza: the formatter would run the chain together.
    // clang-format off
    d.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("connect,c", po::value<std::string>()->value_name("ENDPOINT"),
         "server endpoint: unix:/path, unix:@name, tcp:host:port (default unix:/tmp/uds_socket)")
        ("message,m", po::value<std::string>()->value_name("TEXT"), "request to send (default 'hello server')")
        ("count,n", po::value<std::string>()->value_name("N"), "requests to send, one after another (default 1)")
        ("framing", po::value<std::string>()->value_name("raw|line"), "wire framing (default raw)")
        ("timeout", po::value<std::string>()->value_name("SECONDS"), "limit for connecting and for each reply (default 5)")
        ("wait", "keep trying to connect until the server is up or --timeout passes")
        ("json", "print one JSON object per reply, with its latency");
    // clang-format on
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(d).positional({}).run(), vm);
    } catch (const po::error& e) {
        usage_error(option_error_text(e));
    }
    if (vm.count("help")) {
        std::cout << "Usage: hello-client [OPTIONS]\nSends requests to hello-server and prints the replies.\n\n"
                  << d
                  << "\nExit codes: 0 ok, 64 usage, 69 cannot connect, 71 out of system resources, 74 cannot\n"
                     "write the replies, 75 timeout, 76 unexpected reply\n"
                     "\nhello-client bench [OPTIONS] measures the server instead: see hello-client bench --help.\n";
        return std::nullopt;
    }
    if (vm.count("version")) {
        std::cout << "hello-client " << hello::version << "\n";
        return std::nullopt;
    }
    invocation inv;
    try {
        if (vm.count("connect")) inv.options.server = hello::endpoint::parse(vm["connect"].as<std::string>());
    } catch (const hello::error& e) {
        usage_error(e.what());
    }
    if (vm.count("message")) inv.message = vm["message"].as<std::string>();
    if (vm.count("count")) {
        const auto text = vm["count"].as<std::string>();
        const auto n = parse_number<std::uint64_t>(text);
        if (!n || *n < 1 || *n > 1'000'000'000) usage_error("invalid value " + hello::in_quotes(text) + " for --count");
        inv.count = *n;
    }
    if (vm.count("framing")) {
        auto f = hello::parse_framing(vm["framing"].as<std::string>());
        if (!f)
            usage_error("invalid value " + hello::in_quotes(vm["framing"].as<std::string>()) +
                        " for --framing: expected raw or line");
        inv.options.framing = *f;
    }
    if (vm.count("timeout")) {
        const auto text = vm["timeout"].as<std::string>();
        const auto timeout = parse_seconds(text);
        if (!timeout || timeout->count() == 0)
            usage_error("invalid value " + hello::in_quotes(text) +
                        " for --timeout: expected seconds from 0.001 to 86400, to the millisecond");
        inv.options.timeout = *timeout;
    }
    inv.json = vm.count("json") > 0;
    inv.options.wait_for_server = vm.count("wait") > 0;
    if (const auto problem = message_problem(inv.options.framing, inv.message)) usage_error(*problem);
    return inv;
}

// A reply printed is always the one expected; escaped all the same, so that the line is JSON
// whatever the framing lets through.
std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

void print_reply(const invocation& inv, std::uint64_t seq, const std::string& reply,
                 std::chrono::steady_clock::duration latency) {
    if (!inv.json) {
        // Each reply as it comes, also into a pipe: a reader sees the replies a client that
        // then fails or is killed did get.
        std::cout << reply << "\n";
        flush_output();
        return;
    }
    const double us = std::chrono::duration<double, std::micro>(latency).count();
    std::printf("{\"request\":%llu,\"reply\":%s,\"latency_us\":%.1f}\n", static_cast<unsigned long long>(seq),
                json_string(reply).c_str(), us);
    flush_output();
}

enum class stage { connecting, requesting };

// The one place where what went wrong in the library becomes how this program exits.
exit_code exit_code_for(const boost::system::error_code& ec, stage when) {
    if (ec == asio::error::timed_out) return exit_code::temp_failure;
    if (is_shortage(ec)) return exit_code::os_error;
    // Connected, whatever goes wrong is the server not keeping to the protocol.
    return when == stage::connecting ? exit_code::unavailable : exit_code::protocol;
}

// The whole conversation; returns the process's exit code.
asio::awaitable<int> converse(const invocation& inv) {
    const auto where = hello::printable(inv.options.server.to_string());
    // Bound first: g++ 12 mishandles temporaries that share an expression with co_await.
    const auto ex = co_await asio::this_coro::executor;
    hello::client client(ex, inv.options);
    if (auto ec = co_await client.connect()) {
        std::fprintf(stderr, "hello-client: cannot connect to %s: %s\n", where.c_str(), ec.message().c_str());
        co_return to_int(exit_code_for(ec, stage::connecting));
    }
    std::string reply;
    for (std::uint64_t seq = 1; seq <= inv.count; ++seq) {
        const auto sent = std::chrono::steady_clock::now();
        const auto ec = co_await client.request(inv.message, reply);
        if (ec == asio::error::timed_out) {
            std::fprintf(stderr, "hello-client: no reply from %s within the timeout (request %llu)\n", where.c_str(),
                         static_cast<unsigned long long>(seq));
            co_return to_int(exit_code_for(ec, stage::requesting));
        }
        if (ec) {
            constexpr std::size_t shown = 64;
            std::fprintf(stderr, "hello-client: request %llu to %s: %s (got %s%s)\n",
                         static_cast<unsigned long long>(seq), where.c_str(), ec.message().c_str(),
                         hello::in_quotes(std::string_view(reply).substr(0, shown)).c_str(),
                         reply.size() > shown ? "..." : "");
            co_return to_int(exit_code_for(ec, stage::requesting));
        }
        print_reply(inv, seq, reply, std::chrono::steady_clock::now() - sent);
    }
    client.close();
    co_return 0;
}

// One line on stderr, then the exit code that goes with it.
int report(const startup_error& e) {
    std::fprintf(stderr, "hello-client: %s\n", e.what());
    return to_int(e.code());
}

}  // namespace

int main(int argc, char* argv[]) {
    // `hello-client bench ...` is the benchmark; anything else is the client as it always was.
    if (argc > 1 && std::string_view(argv[1]) == "bench") return hello::bench::main(argc - 1, argv + 1);
    try {
        const auto inv = parse(argc, argv);
        if (!inv) return 0;
        asio::io_context ctx(1);
        int status = to_int(exit_code::software);
        asio::co_spawn(ctx, converse(*inv), [&](std::exception_ptr e, int rc) {
            if (e) std::rethrow_exception(e);
            status = rc;
        });
        ctx.run();
        if (const int err = output_error(); err != 0) {
            std::fprintf(stderr, "hello-client: cannot write the replies: %s\n", std::strerror(err));
            if (status == 0) status = to_int(exit_code::io_error);
        }
        return status;
    } catch (const startup_error& e) {
        return report(e);
    } catch (...) {
        return report(uncaught(std::current_exception()));
    }
}
