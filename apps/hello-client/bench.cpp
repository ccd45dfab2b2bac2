// hello-client bench: requests per second and latency percentiles against one endpoint, or
// the same scenario against several in turn (--compare), as a table or as JSON.
#include "bench.hpp"

#include "descriptors.hpp"
#include "exit_code.hpp"
#include "load.hpp"
#include "option_error.hpp"
#include "output.hpp"
#include "parse.hpp"

#include <hello/error.hpp>
#include <hello/version.hpp>

#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <boost/system/system_error.hpp>

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace po = boost::program_options;

namespace hello::bench {

namespace {

using namespace hello::app;

struct invocation {
    scenario s;
    std::vector<hello::endpoint> targets;
    bool compare = false;
    bool json = false;
};

constexpr const char* program = "hello-client bench";

[[noreturn]] void usage_error(const std::string& what) {
    throw startup_error(exit_code::usage, what);
}

template <typename Number>
Number in_range(const po::variables_map& vm, const char* name, Number low, Number high) {
    const auto text = vm[name].as<std::string>();
    const auto n = parse_number<Number>(text);
    if (!n || *n < low || *n > high)
        usage_error("invalid value " + hello::in_quotes(text) + " for --" + name + ": expected " + std::to_string(low) +
                    " to " + std::to_string(high));
    return *n;
}

std::chrono::milliseconds seconds_option(const po::variables_map& vm, const char* name, bool zero_ok) {
    const auto text = vm[name].as<std::string>();
    const auto value = parse_seconds(text);
    if (!value || (!zero_ok && value->count() == 0))
        usage_error("invalid value " + hello::in_quotes(text) + " for --" + name + ": expected seconds from " +
                    (zero_ok ? "0" : "0.001") + " to 86400, to the millisecond");
    return *value;
}

hello::endpoint endpoint_option(const std::string& text) {
    try {
        return hello::endpoint::parse(text);
    } catch (const hello::error& e) {
        usage_error(e.what());
    }
}

std::optional<invocation> parse(int argc, char* argv[]) {
    po::options_description d("Options");
    // clang-format off
    d.add_options()
        ("help,h", "print this help and exit")
        ("connect,c", po::value<std::string>()->value_name("ENDPOINT"),
         "server endpoint: unix:/path, unix:@name, tcp:host:port (default unix:/tmp/uds_socket)")
        ("compare", po::value<std::vector<std::string>>()->multitoken()->value_name("ENDPOINT..."),
         "run the same scenario against each endpoint in turn; ratios are against the first")
        ("mode", po::value<std::string>()->value_name("connect|persistent"),
         "persistent: connections opened once; connect: a new connection for every request (default persistent)")
        ("connections", po::value<std::string>()->value_name("C"), "concurrent connections (default 50)")
        ("pipeline", po::value<std::string>()->value_name("P"),
         "requests sent in one write on each connection, answered before the next batch; line framing only (default 1)")
        ("duration", po::value<std::string>()->value_name("SECONDS"), "measure for this long (default 5)")
        ("requests", po::value<std::string>()->value_name("N"), "measure until N requests are answered, instead")
        ("warmup", po::value<std::string>()->value_name("SECONDS"), "load before measuring, with --duration (default 0)")
        ("threads", po::value<std::string>()->value_name("T"),
         "threads, each with its own event loop; connections are spread over them (default 1)")
        ("framing", po::value<std::string>()->value_name("raw|line"), "wire framing (default raw)")
        ("message,m", po::value<std::string>()->value_name("TEXT"), "request to send (default 'hello server')")
        ("timeout", po::value<std::string>()->value_name("SECONDS"),
         "limit for connecting, and for each batch's replies (default 5)")
        ("json", "print the results as one JSON object instead of a table");
    // clang-format on
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(d).positional({}).run(), vm);
    } catch (const po::error& e) {
        usage_error(option_error_text(e));
    }
    if (vm.count("help")) {
        std::cout << "Usage: hello-client bench [OPTIONS]\n"
                     "Loads hello-server and reports requests per second and latency percentiles.\n\n"
                  << d
                  << "\nExit codes: 0 every request answered, 64 usage, 69 cannot connect (or connections failed\n"
                     "during the run), 71 out of system resources, 74 cannot write the results, 75 no connection\n"
                     "or reply in time (or nothing answered in the measured time), 76 unexpected replies (or\n"
                     "connections closed by the server)\n";
        return std::nullopt;
    }
    invocation inv;
    auto& s = inv.s;
    if (vm.count("connect") && vm.count("compare")) usage_error("--connect and --compare exclude each other");
    if (vm.count("compare")) {
        const auto& list = vm["compare"].as<std::vector<std::string>>();
        if (list.size() < 2) usage_error("--compare needs at least two endpoints");
        for (const auto& text : list) inv.targets.push_back(endpoint_option(text));
        inv.compare = true;
    } else {
        inv.targets.push_back(
            endpoint_option(vm.count("connect") ? vm["connect"].as<std::string>() : "unix:/tmp/uds_socket"));
    }
    if (vm.count("mode")) {
        const auto text = vm["mode"].as<std::string>();
        if (text == "persistent")
            s.mode = mode::persistent;
        else if (text == "connect")
            s.mode = mode::connect;
        else
            usage_error("invalid value " + hello::in_quotes(text) + " for --mode: expected connect or persistent");
    }
    if (vm.count("framing")) {
        const auto text = vm["framing"].as<std::string>();
        const auto f = hello::parse_framing(text);
        if (!f) usage_error("invalid value " + hello::in_quotes(text) + " for --framing: expected raw or line");
        s.framing = *f;
    }
    if (vm.count("connections")) s.connections = in_range<unsigned>(vm, "connections", 1, 1'000'000);
    if (vm.count("pipeline")) s.pipeline = in_range<unsigned>(vm, "pipeline", 1, 4096);
    if (vm.count("threads")) s.threads = in_range<unsigned>(vm, "threads", 1, 1024);
    if (vm.count("requests")) s.requests = in_range<std::uint64_t>(vm, "requests", 1, 1'000'000'000'000);
    if (vm.count("duration")) s.duration = seconds_option(vm, "duration", false);
    if (vm.count("warmup")) s.warmup = seconds_option(vm, "warmup", true);
    if (vm.count("timeout")) s.timeout = seconds_option(vm, "timeout", false);
    if (vm.count("message")) s.message = vm["message"].as<std::string>();
    inv.json = vm.count("json") > 0;

    if (s.requests && s.duration) usage_error("--duration and --requests exclude each other");
    if (s.requests && s.warmup.count() > 0)
        usage_error("--warmup needs --duration: a counted run measures from the start");
    if (!s.requests && !s.duration) s.duration = std::chrono::seconds(5);
    // Raw framing has no delimiter: requests written back to back arrive as one chunk, which
    // the server answers once.
    if (s.pipeline > 1 && s.framing == framing::raw)
        usage_error("--pipeline needs --framing line: raw framing cannot tell pipelined requests apart");
    if (const auto problem = message_problem(s.framing, s.message)) usage_error(*problem);
    return inv;
}

// ---- presentation ---------------------------------------------------------------------------

// 1234567 as "1,234,567".
std::string grouped(std::uint64_t n) {
    const auto digits = std::to_string(n);
    std::string out;
    out.reserve(digits.size() + digits.size() / 3);
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

double us(std::chrono::nanoseconds d) {
    return static_cast<double>(d.count()) / 1000.0;
}

double cpu_us_per_request(const result& r) {
    return r.requests ? (r.cpu_user_seconds + r.cpu_system_seconds) * 1e6 / static_cast<double>(r.requests) : 0;
}

std::string describe(const scenario& s) {
    std::string text = s.mode == mode::persistent ? "persistent" : "connect per request";
    text += ", " + std::to_string(s.connections) + (s.connections == 1 ? " connection" : " connections");
    const auto threads = std::min(s.threads, s.connections);
    text += ", " + std::to_string(threads) + (threads == 1 ? " thread" : " threads");
    text += ", " + std::string(to_string(s.framing)) + " framing";
    if (s.pipeline > 1) text += ", pipeline " + std::to_string(s.pipeline);
    if (s.requests)
        text += ", " + grouped(*s.requests) + " requests";
    else
        text += ", " + format_seconds(*s.duration) + " s";
    if (s.warmup.count() > 0) text += " after " + format_seconds(s.warmup) + " s of warm-up";
    return text;
}

void print_table(const invocation& inv, const std::vector<result>& results) {
    std::size_t width = 8;
    for (const auto& r : results) width = std::max(width, r.endpoint.size());
    const int w = static_cast<int>(width);
    std::printf("hello-client bench: %s\n\n", describe(inv.s).c_str());
    std::printf("%-*s %13s %8s %11s", w, "endpoint", "requests", "seconds", "req/s");
    if (inv.compare) std::printf(" %7s", "ratio");
    std::printf(" %9s %9s %9s %9s %9s %8s %8s %9s\n", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "errors",
                "retries", "cpu us/req");
    const double first = results.front().requests_per_second();
    for (const auto& r : results) {
        const auto& h = r.latency;
        std::printf("%-*s %13s %8.3f %11s", w, r.endpoint.c_str(), grouped(r.requests).c_str(), r.seconds,
                    grouped(static_cast<std::uint64_t>(r.requests_per_second() + 0.5)).c_str());
        if (inv.compare) {
            if (first > 0)
                std::printf(" %6.2fx", r.requests_per_second() / first);
            else
                std::printf(" %7s", "-");
        }
        std::printf(" %9.1f %9.1f %9.1f %9.1f %9.1f %8s %8s %9.2f\n", us(h.percentile(50)), us(h.percentile(90)),
                    us(h.percentile(99)), us(h.percentile(99.9)), us(h.max()), grouped(r.errors.total()).c_str(),
                    grouped(r.connect_retries).c_str(), cpu_us_per_request(r));
    }
    // What the errors were, for the endpoints that had any.
    bool first_line = true;
    for (const auto& r : results) {
        const auto& e = r.errors;
        if (e.total() == 0) continue;
        std::string kinds;
        const auto add = [&](std::uint64_t n, const char* what) {
            if (n == 0) return;
            kinds += (kinds.empty() ? "" : ", ") + grouped(n) + " " + what;
        };
        add(e.unexpected_reply, "with an unexpected reply");
        add(e.closed, "cut off by the server closing or resetting the connection");
        add(e.timeout, "unanswered within the timeout");
        add(e.connect, "on connections that could not be made");
        std::printf("%s%s: errors: %s\n", first_line ? "\n" : "", r.endpoint.c_str(), kinds.c_str());
        first_line = false;
    }
    flush_output();
}

// Boost.JSON 1.81 writes every double in exponent form (5E0); numbers here are written in
// their shortest exact decimal form instead (5, 0.25, 123041.25), the rest as Boost.JSON does.
void write_json(std::string& out, const boost::json::value& v) {
    switch (v.kind()) {
        case boost::json::kind::double_: {
            char buf[64];
            const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.get_double());
            out.append(buf, ec == std::errc{} ? end : buf);
            return;
        }
        case boost::json::kind::object: {
            out += '{';
            bool first = true;
            for (const auto& [key, member] : v.get_object()) {
                if (!first) out += ',';
                first = false;
                out += boost::json::serialize(boost::json::string_view(key));
                out += ':';
                write_json(out, member);
            }
            out += '}';
            return;
        }
        case boost::json::kind::array: {
            out += '[';
            bool first = true;
            for (const auto& element : v.get_array()) {
                if (!first) out += ',';
                first = false;
                write_json(out, element);
            }
            out += ']';
            return;
        }
        default:
            out += boost::json::serialize(v);
    }
}

void print_json(const invocation& inv, const std::vector<result>& results) {
    namespace json = boost::json;
    const auto& s = inv.s;
    json::object scenario{
        {"mode", s.mode == mode::persistent ? "persistent" : "connect"},
        {"framing", to_string(s.framing)},
        {"message", s.message},
        {"connections", s.connections},
        {"threads", std::min(s.threads, s.connections)},
        {"pipeline", s.pipeline},
        {"warmup_s", static_cast<double>(s.warmup.count()) / 1000.0},
        {"timeout_s", static_cast<double>(s.timeout.count()) / 1000.0},
    };
    if (s.duration)
        scenario["duration_s"] = static_cast<double>(s.duration->count()) / 1000.0;
    else
        scenario["duration_s"] = nullptr;
    if (s.requests)
        scenario["requests"] = *s.requests;
    else
        scenario["requests"] = nullptr;
    json::array rows;
    const double first = results.front().requests_per_second();
    for (const auto& r : results) {
        const auto& h = r.latency;
        json::object row{
            {"endpoint", r.endpoint},
            {"requests", r.requests},
            {"seconds", r.seconds},
            {"requests_per_second", r.requests_per_second()},
            {"latency_us",
             {{"min", us(h.min())},
              {"p50", us(h.percentile(50))},
              {"p90", us(h.percentile(90))},
              {"p99", us(h.percentile(99))},
              {"p99_9", us(h.percentile(99.9))},
              {"max", us(h.max())}}},
            {"errors",
             {{"total", r.errors.total()},
              {"unexpected_reply", r.errors.unexpected_reply},
              {"closed", r.errors.closed},
              {"timeout", r.errors.timeout},
              {"connect", r.errors.connect}}},
            {"connects", r.connects},
            {"connect_retries", r.connect_retries},
            {"cpu",
             {{"user_s", r.cpu_user_seconds},
              {"system_s", r.cpu_system_seconds},
              {"us_per_request", cpu_us_per_request(r)}}},
        };
        if (first > 0)
            row["ratio"] = r.requests_per_second() / first;
        else
            row["ratio"] = nullptr;
        rows.push_back(std::move(row));
    }
    const json::object doc{{"scenario", std::move(scenario)}, {"results", std::move(rows)}};
    std::string text;
    write_json(text, doc);
    std::cout << text << '\n';
    flush_output();
}

// The live line on a terminal: rewritten in place every second, erased at the end.
class progress_line {
public:
    explicit progress_line(bool enabled) : enabled_(enabled) {}

    progress_callback for_endpoint(const std::string& name) {
        if (!enabled_) return {};
        last_requests_ = 0;
        last_elapsed_ = {};
        return [this, name](const progress& p) {
            const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(p.elapsed).count();
            if (!p.measuring) {
                std::printf("\r%s: warming up, %llds\033[K", name.c_str(), static_cast<long long>(seconds));
            } else {
                // Requests per second since the last line (or since measuring began).
                const auto interval = std::chrono::duration<double>(p.elapsed - last_elapsed_).count();
                const auto rate = interval > 0 ? static_cast<double>(p.requests - last_requests_) / interval : 0.0;
                last_requests_ = p.requests;
                last_elapsed_ = p.elapsed;
                std::printf("\r%s: %llds, %s requests, %s req/s, %s errors\033[K", name.c_str(),
                            static_cast<long long>(seconds), grouped(p.requests).c_str(),
                            grouped(static_cast<std::uint64_t>(rate + 0.5)).c_str(), grouped(p.errors).c_str());
            }
            flush_output();
            shown_ = true;
        };
    }

    void clear() {
        if (!shown_) return;
        std::printf("\r\033[K");
        flush_output();
        shown_ = false;
    }

private:
    bool enabled_;
    bool shown_ = false;
    std::uint64_t last_requests_ = 0;
    std::chrono::steady_clock::duration last_elapsed_{};
};

// Failed requests make a failed run; the worst kind decides the code. A run in which nothing
// was answered measured nothing, even without an error (every reply came after the end).
exit_code exit_code_for(const std::vector<result>& results) {
    error_counts all;
    bool nothing_answered = false;
    for (const auto& r : results) {
        all += r.errors;
        nothing_answered = nothing_answered || r.requests == 0;
    }
    if (all.unexpected_reply > 0 || all.closed > 0) return exit_code::protocol;
    if (all.timeout > 0 || nothing_answered) return exit_code::temp_failure;
    if (all.connect > 0) return exit_code::unavailable;
    return exit_code::ok;
}

exit_code exit_code_for(const boost::system::error_code& ec) {
    if (ec == boost::asio::error::timed_out) return exit_code::temp_failure;
    if (ec == hello::errc::unexpected_reply || ec == hello::errc::closed_early) return exit_code::protocol;
    if (is_shortage(ec)) return exit_code::os_error;
    return exit_code::unavailable;
}

int run(const invocation& inv) {
    raise_descriptor_limit();
    // A descriptor per connection, and a few for the process itself: found short now, not as
    // connections failing in the middle of a run as if the server had refused them.
    const unsigned long long reserved = 16 + inv.s.threads;  // and an epoll instance per thread
    if (const auto limit = descriptor_limit(); inv.s.connections + reserved > limit)
        throw startup_error(exit_code::os_error, "--connections " + std::to_string(inv.s.connections) +
                                                     " needs as many descriptors, and this process may open " +
                                                     std::to_string(limit) + " (ulimit -n)");
    // Every endpoint answers a request before any is measured: a typo, a silent server or the
    // other framing fails at once, not after a run.
    std::vector<boost::asio::generic::stream_protocol::endpoint> addresses;
    for (const auto& target : inv.targets) addresses.push_back(probe(target, inv.s));

    progress_line line(!inv.json && ::isatty(STDOUT_FILENO) == 1);
    std::vector<result> results;
    for (std::size_t i = 0; i < inv.targets.size(); ++i) {
        const auto name = hello::printable(inv.targets[i].to_string());
        auto r = bench::run(inv.s, addresses[i], name, line.for_endpoint(name));
        line.clear();
        results.push_back(std::move(r));
    }
    if (inv.json)
        print_json(inv, results);
    else
        print_table(inv, results);
    if (const int err = output_error(); err != 0) {
        std::fprintf(stderr, "%s: cannot write the results: %s\n", program, std::strerror(err));
        return to_int(exit_code::io_error);
    }
    for (const auto& r : results)
        if (r.requests == 0 && r.errors.total() == 0)  // errors are listed with the results
            std::fprintf(stderr, "%s: %s: no request was answered in the measured time\n", program, r.endpoint.c_str());
    return to_int(exit_code_for(results));
}

int report(const startup_error& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return to_int(e.code());
}

}  // namespace

int main(int argc, char* argv[]) {
    try {
        const auto inv = parse(argc, argv);
        if (!inv) return 0;
        return run(*inv);
    } catch (const startup_error& e) {
        return report(e);
    } catch (const setup_failure& e) {
        return report({exit_code_for(e.ec), e.what});
    } catch (...) {
        return report(uncaught(std::current_exception()));
    }
}

}  // namespace hello::bench
