#include <gtest/gtest.h>

#include <sys/resource.h>

#include <csignal>

int main(int argc, char** argv) {
    // The concurrency tests hold thousands of sockets at once, both ends in this process.
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    std::signal(SIGPIPE, SIG_IGN);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
