#include "load.hpp"

#include "parse.hpp"

#include <hello/error.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

// Why not Asio's sockets here, as everywhere else in the project: Boost 1.81's reactor tries
// every read before it waits for readiness, and only a read of 0 bytes stops it from trying
// the next one. In lockstep the reply is never there yet, so each request paid a read that
// failed with EAGAIN (two recv() per request, counted with perf), and against the same server
// the load cost 1.2 to 1.6 times the CPU per request of a plain epoll loop. A benchmark must
// cost less than what it measures, so each thread runs the loop below: one epoll instance,
// level-triggered, a state machine per connection, one read buffer per thread, no allocation
// per request. Per request that is one send(), one recv() and a share of one epoll_wait().

namespace hello::bench {

namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using protocol = asio::generic::stream_protocol;
using clock = std::chrono::steady_clock;

constexpr auto never = clock::time_point::max();

error_code errno_code(int err) {
    return {err, boost::system::system_category()};
}

// The bytes of one batch, built once: the request repeated `pipeline` times, and the replies
// expected for it, against which every byte read is compared.
struct wire {
    explicit wire(const scenario& s) {
        std::string request = s.message;
        if (s.framing == framing::line) request += '\n';
        const auto reply = reply_for(s.framing);
        request_size = request.size();
        reply_size = reply.size();
        for (unsigned i = 0; i < s.pipeline; ++i) {
            requests += request;
            replies += reply;
        }
    }
    std::string requests;
    std::string replies;
    std::size_t request_size = 0;
    std::size_t reply_size = 0;
};

// What every thread shares: read-only, but for the count of requests handed out.
struct plan {
    const scenario& s;
    const wire& bytes;
    protocol::endpoint address;
    std::atomic<std::uint64_t> issued{0};
    clock::time_point measure_from = never;
    clock::time_point stop_at = never;
};

bool is_tcp(const protocol::endpoint& address) {
    return address.protocol().family() == AF_INET || address.protocol().family() == AF_INET6;
}

// A socket of the address's family, non-blocking; with `no_delay`, Nagle off for TCP. (A
// connection that carries one batch, in one write, is never held back by Nagle: in connect
// mode the option would only cost a system call per request.)
int open_socket(const protocol::endpoint& address, bool no_delay) {
    const int fd = ::socket(address.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && no_delay && is_tcp(address)) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

// connect() on a fresh socket; 0 or the errno.
int start_connect(int fd, const protocol::endpoint& address) {
    return ::connect(fd, address.data(), static_cast<socklen_t>(address.size())) == 0 ? 0 : errno;
}

// A connect that returned EINPROGRESS, once the socket is writable: 0 or its errno.
int connect_result(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

// Whether `fd` became ready for `events` before `give_up`; errno-style failures count as
// ready, for the next system call on the socket to report.
bool wait_for(int fd, short events, clock::time_point give_up) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(give_up - clock::now()).count();
        if (left <= 0) return false;
        pollfd pfd{fd, events, 0};
        const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left, 1'000'000)));
        if (ready != 0 && !(ready < 0 && errno == EINTR)) return true;
    }
}

// A connected socket to `address` by `give_up`, or the error; a full UNIX backlog (EAGAIN) is
// waited out, each wait counted in `retries`. For setting up, where blocking is fine.
error_code connect_blocking(const protocol::endpoint& address, clock::time_point give_up, int& fd_out,
                            std::uint64_t& retries) {
    auto backoff = std::chrono::microseconds(100);
    for (;;) {
        const int fd = open_socket(address, true);
        if (fd < 0) return errno_code(errno);
        int err = start_connect(fd, address);
        if (err == EINPROGRESS) err = wait_for(fd, POLLOUT, give_up) ? connect_result(fd) : ETIMEDOUT;
        if (err == 0) {
            fd_out = fd;
            return {};
        }
        ::close(fd);
        if (err == ETIMEDOUT) return asio::error::timed_out;
        if (err != EAGAIN) return errno_code(err);
        ++retries;
        if (clock::now() + backoff >= give_up) return asio::error::timed_out;
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::microseconds(100'000));
    }
}

enum class error_kind { unexpected_reply, closed, timeout, connect };

class worker {
public:
    worker(plan& p, std::size_t connection_count)
        : plan_(p),
          epoll_(::epoll_create1(EPOLL_CLOEXEC)),
          connections_(connection_count),
          inbox_size_(std::max<std::size_t>(64 * 1024, 2 * p.bytes.replies.size())),
          inbox_(new char[inbox_size_]) {
        if (epoll_ < 0) throw setup_failure{errno_code(errno), std::string("cannot create an epoll instance")};
    }
    ~worker() {
        for (auto& c : connections_) close(c);
        ::close(epoll_);
    }
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // The persistent mode's connections, opened before the clock starts.
    error_code open_all() {
        for (auto& c : connections_) {
            int fd = -1;
            const auto ec = connect_blocking(plan_.address, clock::now() + plan_.s.timeout, fd, connect_retries_);
            if (ec) return ec;
            c.fd = fd;
            ++connects_;
        }
        return {};
    }

    // The load, until the run is over; on the worker's own thread.
    void run() {
        active_ = connections_.size();
        const auto now = clock::now();
        if (plan_.measure_from <= now) begin_measuring(plan_.measure_from);
        next_scan_ = now + scan_every();
        for (auto& c : connections_) start_batch(c, now);
        loop();
        for (auto& c : connections_) close(c);
    }

    [[nodiscard]] std::uint64_t live_requests() const noexcept {
        return live_requests_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint64_t live_errors() const noexcept { return live_errors_.load(std::memory_order_relaxed); }
    [[nodiscard]] clock::time_point measure_begin() const noexcept { return measure_begin_; }
    [[nodiscard]] clock::time_point measure_end() const noexcept { return measure_end_; }

    void add_to(result& r) const {
        r.requests += requests_;
        r.latency.merge(latency_);
        r.errors += errors_;
        r.connects += connects_;
        r.connect_retries += connect_retries_;
    }

private:
    enum class state {
        idle,        // between batches (only for an instant), or finished
        connecting,  // connect() in progress: waiting for writability
        sending,     // the batch did not fit the socket buffer: waiting for writability
        reading,     // waiting for replies
        resting,     // waiting until retry_at: after a failure, or a full backlog
    };

    struct connection {
        int fd = -1;
        state st = state::idle;
        std::uint32_t events = 0;           // registered with epoll; 0 when not registered
        unsigned batch = 0;                 // requests in the batch under way
        unsigned answered = 0;              // of those, answered correctly
        std::size_t sent = 0;               // bytes of the batch written
        std::size_t got = 0;                // bytes of its replies read
        clock::time_point started = never;  // when the batch began (its connect too): latency and timeout
        clock::time_point retry_at{};
        bool retry_connect = false;  // resting in a connect (backlog full), not after a failure
        std::chrono::microseconds backoff{};
    };

    [[nodiscard]] clock::duration scan_every() const {
        return std::clamp<clock::duration>(plan_.s.timeout / 8, std::chrono::milliseconds(1),
                                           std::chrono::milliseconds(250));
    }

    void loop() {
        constexpr int max_events = 256;
        epoll_event events[max_events];
        while (active_ > 0) {
            const int n = ::epoll_wait(epoll_, events, max_events, wait_ms());
            if (n < 0 && errno != EINTR) throw setup_failure{errno_code(errno), std::string("epoll_wait failed")};
            for (int i = 0; i < n; ++i) on_event(connections_[events[i].data.u32], events[i].events);
            housekeeping(clock::now());
        }
    }

    // Until the next thing the clock decides: the warm-up's end, the run's, a timeout scan, a retry.
    int wait_ms() const {
        auto next = stopping_ ? next_scan_ : std::min(next_scan_, plan_.stop_at);
        if (!measuring_ && !stopping_) next = std::min(next, plan_.measure_from);
        if (resting_ > 0) next = std::min(next, next_retry_);
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(next - clock::now()).count();
        return static_cast<int>(std::clamp<std::int64_t>(left, 0, 1000));
    }

    void housekeeping(clock::time_point now) {
        if (!measuring_ && !stopping_ && now >= plan_.measure_from) begin_measuring(plan_.measure_from);
        if (!stopping_ && now >= plan_.stop_at) stop(now);
        if (active_ == 0) return;
        if (resting_ > 0 && now >= next_retry_) wake_resting(now);
        if (now >= next_scan_) {
            for (auto& c : connections_) {
                if (c.started != never && now - c.started > plan_.s.timeout) fail(c, error_kind::timeout);
            }
            next_scan_ = now + scan_every();
        }
    }

    void wake_resting(clock::time_point now) {
        next_retry_ = never;
        for (auto& c : connections_) {
            if (c.st != state::resting) continue;
            if (c.retry_at > now) {
                next_retry_ = std::min(next_retry_, c.retry_at);
                continue;
            }
            --resting_;
            c.st = state::idle;
            if (c.retry_connect)
                begin_connect(c, now);
            else
                start_batch(c, now);
        }
    }

    void begin_measuring(clock::time_point at) {
        measuring_ = true;
        measure_begin_ = at;
    }

    // The measured time is over and no batch starts after it. The batches under way are still
    // owed their replies: they are waited for, up to the timeout, so that every request sent
    // ends answered or counted as an error (a server that stops answering is caught even when
    // the timeout is longer than the run). Replies that come now are not measured.
    void stop(clock::time_point now) {
        stopping_ = true;
        measuring_ = false;
        measure_end_ = now;
        for (auto& c : connections_) {
            // Resting: its batch failed already, or its connect waits for a full backlog with
            // nothing sent yet.
            if (c.st != state::resting) continue;
            --resting_;
            c.st = state::idle;
            finish(c);
        }
    }

    // Requests for the next batch: `pipeline`, fewer at the end of a counted run, none once
    // the run is over.
    unsigned take() {
        if (stopping_) return 0;
        const unsigned want = plan_.s.pipeline;
        if (!plan_.s.requests) return want;
        const auto limit = *plan_.s.requests;
        const auto before = plan_.issued.fetch_add(want, std::memory_order_relaxed);
        if (before >= limit) return 0;
        return static_cast<unsigned>(std::min<std::uint64_t>(want, limit - before));
    }

    void start_batch(connection& c, clock::time_point now) {
        const unsigned n = take();
        if (n == 0) {
            finish(c);
            return;
        }
        c.batch = n;
        c.answered = 0;
        c.sent = 0;
        c.got = 0;
        c.started = now;
        c.backoff = std::chrono::microseconds(100);
        if (c.fd < 0)
            begin_connect(c, now);
        else
            send(c);
    }

    void begin_connect(connection& c, clock::time_point now) {
        c.fd = open_socket(plan_.address, plan_.s.mode == mode::persistent);
        if (c.fd < 0) {
            // Out of descriptors or memory here says nothing of the server: the run stops.
            const auto ec = errno_code(errno);
            if (hello::is_resource_exhaustion(ec))
                throw setup_failure{ec, "cannot open a socket for the next connection: " + ec.message()};
            fail(c, error_kind::connect);
            return;
        }
        const int err = start_connect(c.fd, plan_.address);
        if (err == 0) {
            ++connects_;
            send(c);
        } else if (err == EINPROGRESS) {
            c.st = state::connecting;
            watch(c, EPOLLOUT);
        } else if (err == EAGAIN) {
            // The listener is alive but its backlog is full: try again shortly, same batch.
            ++connect_retries_;
            close(c);
            rest(c, now + c.backoff, true);
            c.backoff = std::min(c.backoff * 2, std::chrono::microseconds(10'000));
        } else {
            fail(c, error_kind::connect);
        }
    }

    // Writes what is left of the batch's requests; all of it at once in practice.
    void send(connection& c) {
        const auto& bytes = plan_.bytes;
        const std::size_t to_send = c.batch * bytes.request_size;
        while (c.sent < to_send) {
            const auto r = ::send(c.fd, bytes.requests.data() + c.sent, to_send - c.sent, MSG_NOSIGNAL);
            if (r >= 0) {
                c.sent += static_cast<std::size_t>(r);
                continue;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                c.st = state::sending;
                watch(c, EPOLLIN | EPOLLOUT);
                return;
            }
            fail(c, error_kind::closed);
            return;
        }
        c.st = state::reading;
        watch(c, EPOLLIN);
    }

    // What one read brought: checked byte for byte against the replies still owed.
    void receive(connection& c) {
        const auto& bytes = plan_.bytes;
        const std::size_t expected = c.batch * bytes.reply_size;
        const auto r = ::recv(c.fd, inbox_.get(), inbox_size_, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            fail(c, error_kind::closed);
            return;
        }
        if (r == 0) {
            fail(c, error_kind::closed);
            return;
        }
        const auto n = static_cast<std::size_t>(r);
        if (n > expected - c.got || std::memcmp(inbox_.get(), bytes.replies.data() + c.got, n) != 0) {
            fail(c, error_kind::unexpected_reply);
            return;
        }
        c.got += n;
        const auto complete = static_cast<unsigned>(c.got / bytes.reply_size);
        if (complete > c.answered) {
            const auto now = clock::now();
            answered(now, now - c.started, complete - c.answered);
            c.answered = complete;
        }
        if (c.got < expected) return;
        c.started = never;
        c.st = state::idle;
        if (plan_.s.mode == mode::connect) close(c);
        start_batch(c, clock::now());
    }

    void on_event(connection& c, std::uint32_t events) {
        switch (c.st) {
            case state::connecting: {
                if (const int err = connect_result(c.fd); err != 0) {
                    fail(c, error_kind::connect);
                    return;
                }
                ++connects_;
                send(c);
                return;
            }
            case state::sending:
                if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) send(c);
                if (c.st == state::reading && (events & EPOLLIN)) receive(c);
                return;
            case state::reading:
                receive(c);
                return;
            case state::idle:
            case state::resting:
                return;  // not watched: a stale event from before a close
        }
    }

    void answered(clock::time_point now, clock::duration latency, unsigned count) {
        last_answer_ = now;
        if (!measuring_) return;
        latency_.record(std::chrono::duration_cast<std::chrono::nanoseconds>(latency), count);
        requests_ += count;
        live_requests_.store(requests_, std::memory_order_relaxed);
    }

    // The batch under way ends without its replies: those still owed are errors of `kind`.
    // The connection rests a moment, so that a server refusing everything is not spun against.
    void fail(connection& c, error_kind kind) {
        const std::uint64_t count = c.batch - c.answered;
        switch (kind) {
            case error_kind::unexpected_reply:
                errors_.unexpected_reply += count;
                break;
            case error_kind::closed:
                errors_.closed += count;
                break;
            case error_kind::timeout:
                errors_.timeout += count;
                break;
            case error_kind::connect:
                errors_.connect += count;
                break;
        }
        live_errors_.store(errors_.total(), std::memory_order_relaxed);
        close(c);
        c.started = never;
        if (c.st == state::resting) --resting_;
        c.st = state::idle;
        if (stopping_) {
            finish(c);
            return;
        }
        rest(c, clock::now() + std::chrono::milliseconds(1), false);
    }

    void rest(connection& c, clock::time_point until, bool retry_connect) {
        c.st = state::resting;
        c.retry_at = until;
        c.retry_connect = retry_connect;
        ++resting_;
        next_retry_ = std::min(next_retry_, until);
    }

    // The connection has no batch any more, now or later: nothing for a timeout to fail.
    void finish(connection& c) {
        close(c);
        c.started = never;
        c.st = state::idle;
        if (--active_ == 0 && !stopping_) measure_end_ = last_answer_;
    }

    // Level-triggered: readable while replies are owed, writable only while a write waits.
    void watch(connection& c, std::uint32_t events) {
        if (c.events == events) return;
        epoll_event ev{};
        ev.events = events;
        ev.data.u32 = static_cast<std::uint32_t>(&c - connections_.data());
        if (::epoll_ctl(epoll_, c.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev) != 0) {
            fail(c, error_kind::closed);
            return;
        }
        c.events = events;
    }

    void close(connection& c) {
        if (c.fd >= 0) ::close(c.fd);  // also leaves the epoll set
        c.fd = -1;
        c.events = 0;
    }

    plan& plan_;
    int epoll_;
    std::vector<connection> connections_;
    std::size_t inbox_size_;
    std::unique_ptr<char[]> inbox_;  // every read of the thread lands here

    std::size_t active_ = 0;   // connections with batches still to run
    std::size_t resting_ = 0;  // connections waiting for retry_at
    clock::time_point next_retry_ = never;
    clock::time_point next_scan_ = never;
    bool measuring_ = false;
    bool stopping_ = false;
    clock::time_point measure_begin_{};
    clock::time_point measure_end_{};
    clock::time_point last_answer_{};

    latency_histogram latency_;
    error_counts errors_;
    std::uint64_t requests_ = 0;
    std::uint64_t connects_ = 0;
    std::uint64_t connect_retries_ = 0;
    // For the progress line, read by the main thread.
    alignas(64) std::atomic<std::uint64_t> live_requests_{0};
    std::atomic<std::uint64_t> live_errors_{0};
};

// Runs every worker on a thread of its own; the calling thread waits, calling `tick` once
// `first_tick` has come, and then whenever the time `tick` returned has come.
//
// It waits in steps of a millisecond, not in one sleep. On a CPU that other busy processes
// share, a load thread woken by a reply can sit runnable behind another process's time slice
// for milliseconds; a thread of ours waking every millisecond makes the scheduler look again,
// which bounds that wait. Measured here (2 vCPUs busy with other work, load pinned to one):
// 0.55 times the requests per second of an epoll load generator without it, the same with it
// (that generator's main thread sleeps a millisecond at a time too). On an idle CPU it changes
// nothing and costs a thousand short wake-ups a second.
void run_threads(std::vector<std::unique_ptr<worker>>& workers, clock::time_point first_tick,
                 const std::function<clock::time_point(clock::time_point)>& tick) {
    std::mutex m;
    std::condition_variable cv;
    std::size_t running = workers.size();
    std::exception_ptr failure;
    std::vector<std::thread> threads;
    threads.reserve(workers.size());
    for (auto& w : workers) {
        threads.emplace_back([&, wp = w.get()] {
            std::exception_ptr e;
            try {
                wp->run();
            } catch (...) {
                e = std::current_exception();
            }
            const std::lock_guard lock(m);
            if (e && !failure) failure = e;
            --running;
            cv.notify_all();
        });
    }
    {
        std::unique_lock lock(m);
        auto next = first_tick;
        while (running > 0) {
            const auto step = clock::now() + std::chrono::milliseconds(1);
            if (cv.wait_until(lock, std::min(step, next), [&] { return running == 0; })) break;
            const auto now = clock::now();
            if (now < next) continue;
            lock.unlock();
            next = tick(now);
            lock.lock();
        }
    }
    for (auto& t : threads) t.join();
    if (failure) std::rethrow_exception(failure);
}

struct cpu_times {
    double user = 0;
    double system = 0;
};

cpu_times cpu_now() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
    return {seconds(ru.ru_utime), seconds(ru.ru_stime)};
}

std::string describe(const hello::endpoint& ep, const error_code& ec) {
    return hello::printable(ep.to_string()) + ": " + ec.message();
}

// One request of the scenario's framing on a connected socket, and its reply, read until it
// is whole or cannot become the expected one; `got` is what came. A probe: it sends what a
// client sends, so even a server that reads once per connection (the tutorial's) is served a
// request, never a connection closed before it sent one.
error_code exchange_one(int fd, const scenario& s, clock::time_point give_up, std::string& got) {
    std::string request = s.message;
    if (s.framing == framing::line) request += '\n';
    std::size_t sent = 0;
    while (sent < request.size()) {
        const auto r = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (r >= 0) {
            sent += static_cast<std::size_t>(r);
        } else if (errno == EAGAIN) {
            if (!wait_for(fd, POLLOUT, give_up)) return asio::error::timed_out;
        } else if (errno != EINTR) {
            return errno_code(errno);
        }
    }
    const auto expected = reply_for(s.framing);
    while (got.size() < expected.size()) {
        char buffer[256];
        const auto r = ::recv(fd, buffer, sizeof buffer, 0);
        if (r > 0) {
            got.append(buffer, static_cast<std::size_t>(r));
            if (!expected.starts_with(got)) return hello::make_error_code(hello::errc::unexpected_reply);
        } else if (r == 0) {
            return hello::make_error_code(hello::errc::closed_early);
        } else if (errno == EAGAIN) {
            if (!wait_for(fd, POLLIN, give_up)) return asio::error::timed_out;
        } else if (errno != EINTR) {
            return errno_code(errno);
        }
    }
    return {};
}

std::string probe_failure(const hello::endpoint& ep, const scenario& s, const error_code& ec, std::string_view got) {
    constexpr std::size_t shown = 64;
    const auto what_came =
        got.empty() ? std::string()
                    : " (got " + hello::in_quotes(got.substr(0, shown)) + (got.size() > shown ? "...)" : ")");
    const auto where = hello::printable(ep.to_string());
    if (ec == asio::error::timed_out) {
        const auto other = s.framing == framing::raw ? "line" : "raw";
        return where + ": no whole reply to a first request within " + hello::app::format_seconds(s.timeout) + " s" +
               what_came + "; does the server use " + other + " framing?";
    }
    if (ec == hello::errc::unexpected_reply)
        return where + ": a first request got " + hello::in_quotes(got.substr(0, shown)) +
               (got.size() > shown ? "..." : "") + ", expected " + hello::in_quotes(reply_for(s.framing));
    if (ec == hello::errc::closed_early)
        return where + ": the server closed the connection before replying to a first request" + what_came;
    return where + ": a first request failed: " + ec.message();
}

}  // namespace

error_counts& error_counts::operator+=(const error_counts& o) noexcept {
    unexpected_reply += o.unexpected_reply;
    closed += o.closed;
    timeout += o.timeout;
    connect += o.connect;
    return *this;
}

std::vector<protocol::endpoint> addresses_of(const hello::endpoint& ep) {
    if (ep.is_unix()) {
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        const auto path = ep.as_unix().sun_path();
        std::memcpy(sa.sun_path, path.data(), path.size());
        // A path is NUL-terminated; an abstract name is exactly its bytes.
        const auto length = offsetof(sockaddr_un, sun_path) + path.size() + (ep.as_unix().abstract ? 0 : 1);
        return {protocol::endpoint(&sa, length)};
    }
    const auto& where = ep.as_tcp();
    asio::io_context ctx(1);
    asio::ip::tcp::resolver resolver(ctx);
    error_code ec;
    const auto results =
        resolver.resolve(where.host, std::to_string(where.port), asio::ip::tcp::resolver::numeric_service, ec);
    // Said as the client says it: "no such host", not the resolver's own words.
    if ((!ec && results.empty()) || ec == asio::error::host_not_found || ec == asio::error::no_data)
        ec = hello::make_error_code(hello::errc::host_not_found);
    if (ec) throw setup_failure{ec, "cannot resolve " + describe(ep, ec)};
    std::vector<protocol::endpoint> out;
    for (const auto& r : results) out.emplace_back(r.endpoint().data(), r.endpoint().size());
    return out;
}

protocol::endpoint probe(const hello::endpoint& ep, const scenario& s) {
    const auto give_up = clock::now() + s.timeout;
    error_code last;
    for (const auto& address : addresses_of(ep)) {
        int fd = -1;
        std::uint64_t retries = 0;
        last = connect_blocking(address, give_up, fd, retries);
        if (last) continue;
        std::string got;
        const auto ec = exchange_one(fd, s, give_up, got);
        ::close(fd);
        if (ec) throw setup_failure{ec, probe_failure(ep, s, ec, got)};
        return address;
    }
    throw setup_failure{last, "cannot connect to " + describe(ep, last)};
}

result run(const scenario& s, const protocol::endpoint& address, std::string name,
           const progress_callback& on_progress) {
    const wire bytes(s);
    plan p{s, bytes, address};

    const unsigned thread_count = std::max(1U, std::min(s.threads, s.connections));
    std::vector<std::unique_ptr<worker>> workers;
    for (unsigned t = 0; t < thread_count; ++t) {
        const std::size_t share = s.connections / thread_count + (t < s.connections % thread_count ? 1 : 0);
        workers.push_back(std::make_unique<worker>(p, share));
    }
    if (s.mode == mode::persistent) {
        for (auto& w : workers) {
            if (const auto ec = w->open_all())
                throw setup_failure{ec, "cannot open " + std::to_string(s.connections) + " connections to " + name +
                                            ": " + ec.message()};
        }
    }

    const auto start = clock::now();
    p.measure_from = start + s.warmup;
    if (s.duration) p.stop_at = p.measure_from + *s.duration;
    cpu_times cpu_from = cpu_now();
    cpu_times cpu_to{};
    bool cpu_sampled = s.warmup.count() == 0;
    bool cpu_stopped = false;
    auto next_progress = start + std::chrono::seconds(1);
    // The next time the waiting thread has something to do: count CPU time over the measured
    // time (from the end of the warm-up to the end of the duration, not over the wait for the
    // replies owed then), and show progress every second while measuring.
    const auto due = [&] {
        auto at = on_progress && !cpu_stopped ? next_progress : never;
        if (!cpu_sampled) at = std::min(at, p.measure_from);
        if (!cpu_stopped) at = std::min(at, p.stop_at);
        return at;
    };
    const auto tick = [&](clock::time_point now) {
        if (!cpu_sampled && now >= p.measure_from) {
            cpu_from = cpu_now();
            cpu_sampled = true;
        }
        if (!cpu_stopped && now >= p.stop_at) {
            cpu_to = cpu_now();
            cpu_stopped = true;
        }
        if (on_progress && !cpu_stopped && now >= next_progress) {
            progress pr;
            pr.measuring = now >= p.measure_from;
            pr.elapsed = next_progress - (pr.measuring ? p.measure_from : start);
            for (const auto& w : workers) {
                pr.requests += w->live_requests();
                pr.errors += w->live_errors();
            }
            // A whole-second warm-up ends on a tick: the warm-up line stays until a second
            // of measuring has something to say.
            if (!pr.measuring || pr.elapsed.count() > 0) on_progress(pr);
            next_progress += std::chrono::seconds(1);
        }
        return due();
    };
    run_threads(workers, due(), tick);
    if (!cpu_stopped) cpu_to = cpu_now();  // a counted run ends with its last reply

    result r;
    r.endpoint = std::move(name);
    auto begin = clock::time_point::max();
    auto end = clock::time_point::min();
    for (const auto& w : workers) {
        w->add_to(r);
        begin = std::min(begin, w->measure_begin());
        end = std::max(end, w->measure_end());
    }
    r.seconds = end > begin ? std::chrono::duration<double>(end - begin).count() : 0;
    r.cpu_user_seconds = cpu_to.user - cpu_from.user;
    r.cpu_system_seconds = cpu_to.system - cpu_from.system;
    return r;
}

}  // namespace hello::bench
