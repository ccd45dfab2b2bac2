#include "parse.hpp"
#include "server_options.hpp"

#include <hello/config.hpp>
#include <hello/error.hpp>

#include "support/run_coro.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace hello::app {
namespace {

// argv and envp as the process would get them.
struct invocation_args {
    invocation_args(std::initializer_list<std::string> args, std::initializer_list<std::string> env = {})
        : args_(args), env_(env) {
        args_.insert(args_.begin(), "hello-server");
        for (auto& a : args_) argv.push_back(a.c_str());
        for (auto& e : env_) envp.push_back(e.c_str());
        envp.push_back(nullptr);
    }
    server_invocation parse() const {
        return parse_server_invocation(static_cast<int>(argv.size()), argv.data(), envp.data());
    }

    std::vector<std::string> args_, env_;
    std::vector<const char*> argv, envp;
};

exit_code failure_of(const invocation_args& args, std::string* message = nullptr) {
    try {
        (void)args.parse();
    } catch (const startup_error& e) {
        if (message) *message = e.what();
        return e.code();
    }
    ADD_FAILURE() << "accepted";
    return exit_code::ok;
}

class ConfigFile : public ::testing::Test {
protected:
    std::string write(const std::string& text) {
        const auto path = dir_.path("hello.conf");
        std::ofstream(path) << text;
        return path;
    }
    hello::test::temp_dir dir_;
};

TEST(Config, DefaultsAreTheTutorials) {
    const auto inv = invocation_args({}).parse();
    EXPECT_EQ(inv.what, server_invocation::action::run);
    ASSERT_EQ(inv.config.listen.size(), 1U);
    EXPECT_EQ(inv.config.listen[0].to_string(), "unix:/tmp/uds_socket");
    EXPECT_EQ(inv.config.framing, framing::raw);
    EXPECT_EQ(inv.config.threads, 1U);
    EXPECT_EQ(inv.log_level, log_level::info);
    EXPECT_EQ(inv.config.socket_mode, 0660U);
    EXPECT_EQ(inv.config.max_request_bytes, 4096U);
    EXPECT_EQ(inv.config.drain_timeout, std::chrono::seconds(10));
    EXPECT_TRUE(inv.sources.empty());
}

TEST(Config, CommandLineValues) {
    const auto inv = invocation_args({"-l", "unix:@a", "--listen", "tcp:127.0.0.1:0", "--framing", "line", "--threads",
                                      "4", "--log-level", "debug", "--socket-mode", "600", "--max-request-bytes", "10",
                                      "--drain-timeout", "0.25"})
                         .parse();
    ASSERT_EQ(inv.config.listen.size(), 2U);
    EXPECT_EQ(inv.config.listen[0].to_string(), "unix:@a");
    EXPECT_EQ(inv.config.listen[1].to_string(), "tcp:127.0.0.1:0");
    EXPECT_EQ(inv.config.framing, framing::line);
    EXPECT_EQ(inv.config.threads, 4U);
    EXPECT_EQ(inv.log_level, log_level::debug);
    EXPECT_EQ(inv.config.socket_mode, 0600U);
    EXPECT_EQ(inv.config.max_request_bytes, 10U);
    EXPECT_EQ(inv.config.drain_timeout, std::chrono::milliseconds(250));
    EXPECT_EQ(inv.sources.at("threads"), config_source::command_line);
}

TEST(Config, EnvironmentUsesUpperSnakeNamesAndCommaLists) {
    const auto inv = invocation_args({}, {"HELLO_LISTEN=unix:@x,tcp:127.0.0.1:0", "HELLO_LOG_LEVEL=warn",
                                          "HELLO_MAX_REQUEST_BYTES=77", "HELLO_UNRELATED=1", "PATH=/bin"})
                         .parse();
    ASSERT_EQ(inv.config.listen.size(), 2U);
    EXPECT_EQ(inv.config.listen[1].to_string(), "tcp:127.0.0.1:0");
    EXPECT_EQ(inv.log_level, log_level::warn);
    EXPECT_EQ(inv.config.max_request_bytes, 77U);
    EXPECT_EQ(inv.sources.at("log-level"), config_source::environment);
}

TEST(Config, EnvironmentListMayHaveBlanksAfterCommas) {
    const auto inv = invocation_args({}, {"HELLO_LISTEN=unix:@x, unix:@y ,\ttcp:127.0.0.1:0"}).parse();
    ASSERT_EQ(inv.config.listen.size(), 3U);
    EXPECT_EQ(inv.config.listen[1].to_string(), "unix:@y");
    EXPECT_EQ(inv.config.listen[2].to_string(), "tcp:127.0.0.1:0");
}

TEST(Config, EnvironmentNamesAreUpperCaseOnly) {
    const auto inv = invocation_args({}, {"HELLO_log_level=debug", "hello_threads=3"}).parse();
    EXPECT_EQ(inv.log_level, log_level::info);
    EXPECT_EQ(inv.config.threads, 1U);
    EXPECT_TRUE(inv.sources.empty());
}

TEST(Config, AnEmptyListOfEndpointsIsRefused) {
    for (const auto* env : {"HELLO_LISTEN=", "HELLO_LISTEN=,", "HELLO_LISTEN= , "}) {
        std::string message;
        EXPECT_EQ(failure_of(invocation_args({}, {env}), &message), exit_code::config) << env;
        EXPECT_NE(message.find("no endpoint"), std::string::npos) << message;
        EXPECT_NE(message.find("environment"), std::string::npos) << message;
    }
}

TEST(Config, AnEndpointListedTwiceIsRefused) {
    std::string message;
    EXPECT_EQ(failure_of(invocation_args({"-l", "unix:@dup", "-l", "unix:@dup"}), &message), exit_code::config);
    EXPECT_NE(message.find("'unix:@dup' is listed twice"), std::string::npos) << message;
    // The same file reached by two spellings is the same socket.
    EXPECT_EQ(failure_of(invocation_args({"-l", "unix:/tmp/dup.sock", "-l", "/tmp/./dup.sock"}), &message),
              exit_code::config);
    EXPECT_NE(message.find("listed twice"), std::string::npos) << message;
    EXPECT_EQ(failure_of(invocation_args({"-l", "tcp:127.0.0.1:7777", "-l", "tcp:127.0.0.1:7777"})), exit_code::config);
    // Port 0 asks for a fresh port each time it is listed.
    EXPECT_EQ(invocation_args({"-l", "tcp:127.0.0.1:0", "-l", "tcp:127.0.0.1:0"}).parse().config.listen.size(), 2U);
}

TEST_F(ConfigFile, PrecedenceIsCommandLineThenEnvironmentThenFile) {
    const auto file = write("# comment\nthreads = 2\nframing = line\nlog-level = error\nlisten = unix:@from-file\n");
    const auto inv =
        invocation_args({"--config", file, "--threads", "4"}, {"HELLO_THREADS=3", "HELLO_LOG_LEVEL=debug"}).parse();
    EXPECT_EQ(inv.config.threads, 4U);
    EXPECT_EQ(inv.log_level, log_level::debug);
    EXPECT_EQ(inv.config.framing, framing::line);
    ASSERT_EQ(inv.config.listen.size(), 1U);
    EXPECT_EQ(inv.config.listen[0].to_string(), "unix:@from-file");
    EXPECT_EQ(inv.sources.at("threads"), config_source::command_line);
    EXPECT_EQ(inv.sources.at("log-level"), config_source::environment);
    EXPECT_EQ(inv.sources.at("framing"), config_source::file);

    const auto text = describe(inv);
    EXPECT_NE(text.find("threads = 4  # command line"), std::string::npos) << text;
    EXPECT_NE(text.find("log-level = debug  # environment"), std::string::npos) << text;
    EXPECT_NE(text.find("framing = line  # config file"), std::string::npos) << text;
    EXPECT_NE(text.find("socket-mode = 0660  # default"), std::string::npos) << text;
}

TEST_F(ConfigFile, CommandLineListReplacesTheFilesInsteadOfAddingToIt) {
    const auto file = write("listen = unix:@one\nlisten = unix:@two\n");
    const auto from_file = invocation_args({"--config", file}).parse();
    EXPECT_EQ(from_file.config.listen.size(), 2U);
    const auto inv = invocation_args({"--config", file, "-l", "unix:@three"}).parse();
    ASSERT_EQ(inv.config.listen.size(), 1U);
    EXPECT_EQ(inv.config.listen[0].to_string(), "unix:@three");
}

TEST_F(ConfigFile, ConfigFileNamedByEnvironment) {
    const auto file = write("framing = line\n");
    EXPECT_EQ(invocation_args({}, {"HELLO_CONFIG=" + file}).parse().config.framing, framing::line);
}

TEST_F(ConfigFile, PrintedConfigurationIsAValidConfigFile) {
    const auto inv =
        invocation_args({"-l", "unix:@p", "-l", "tcp:[::1]:0", "--framing", "line", "--drain-timeout", "1.5"}).parse();
    const auto again = invocation_args({"--config", write(describe(inv))}).parse();
    EXPECT_EQ(again.config.listen, inv.config.listen);
    EXPECT_EQ(again.config.framing, framing::line);
    EXPECT_EQ(again.config.drain_timeout, std::chrono::milliseconds(1500));
}

TEST_F(ConfigFile, EndpointWithAHashIsPrintedCommentedOutNotMangled) {
    const auto inv = invocation_args({"-l", "unix:/tmp/a#b.sock", "-l", "unix:@p"}).parse();
    const auto text = describe(inv);
    EXPECT_NE(text.find("# listen = unix:/tmp/a#b.sock"), std::string::npos) << text;
    const auto again = invocation_args({"--config", write(text)}).parse();
    ASSERT_EQ(again.config.listen.size(), 1U) << text;
    EXPECT_EQ(again.config.listen[0].to_string(), "unix:@p");
}

TEST_F(ConfigFile, PrintedDrainTimeoutIsExactToTheMillisecond) {
    for (const auto* seconds : {"0", "0.001", "0.25", "10", "1234.567", "86400"}) {
        const auto inv = invocation_args({"--drain-timeout", seconds}).parse();
        const auto text = describe(inv);
        EXPECT_NE(text.find("drain-timeout = " + std::string(seconds) + "  #"), std::string::npos) << text;
        EXPECT_EQ(invocation_args({"--config", write(text)}).parse().config.drain_timeout, inv.config.drain_timeout);
    }
}

TEST_F(ConfigFile, FileErrorsAreConfigErrors) {
    EXPECT_EQ(failure_of(invocation_args({"--config", dir_.path("missing.conf")})), exit_code::config);
    EXPECT_EQ(failure_of(invocation_args({"--config", write("threads = abc\n")})), exit_code::config);
    EXPECT_EQ(failure_of(invocation_args({"--config", write("no-such-setting = 1\n")})), exit_code::config);
    EXPECT_EQ(failure_of(invocation_args({"--config", write("listen = tcp:nope\n")})), exit_code::config);
    std::string message;
    EXPECT_EQ(failure_of(invocation_args({"--config", dir_.path("")}), &message), exit_code::config);
    EXPECT_NE(message.find("is a directory"), std::string::npos) << message;
}

TEST(Config, CommandLineMistakesAreUsageErrors) {
    EXPECT_EQ(failure_of(invocation_args({"--bogus"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"positional"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--threads"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--threads", "abc"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--threads", "-1"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--threads", "0"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--framing", "json"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--log-level", "loud"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--socket-mode", "999"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--max-request-bytes", "0"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--drain-timeout", "-1"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({"--drain-timeout", "nan"})), exit_code::usage);
    EXPECT_EQ(failure_of(invocation_args({}, {"HELLO_THREADS=many"})), exit_code::usage);
}

TEST(Config, BadEndpointsAreConfigErrorsWhereverTheyComeFrom) {
    EXPECT_EQ(failure_of(invocation_args({"--listen", "bogus"})), exit_code::config);
    EXPECT_EQ(failure_of(invocation_args({"--listen", "unix:/" + std::string(120, 'x')})), exit_code::config);
    std::string message;
    EXPECT_EQ(failure_of(invocation_args({"--listen", "unix:/nonexistent-dir/x.sock"}), &message), exit_code::config);
    EXPECT_NE(message.find("/nonexistent-dir"), std::string::npos) << message;
}

TEST(Config, ErrorMessageSaysWhatAndWhere) {
    std::string message;
    (void)failure_of(invocation_args({}, {"HELLO_FRAMING=json"}), &message);
    EXPECT_NE(message.find("json"), std::string::npos) << message;
    EXPECT_NE(message.find("framing"), std::string::npos) << message;
    EXPECT_NE(message.find("environment"), std::string::npos) << message;
}

TEST(Config, Commands) {
    EXPECT_EQ(invocation_args({"--help"}).parse().what, server_invocation::action::help);
    EXPECT_EQ(invocation_args({"--version"}).parse().what, server_invocation::action::version);
    EXPECT_EQ(invocation_args({"--check-config"}).parse().what, server_invocation::action::check_config);
    EXPECT_EQ(invocation_args({"--print-config"}).parse().what, server_invocation::action::print_config);
    EXPECT_NE(invocation_args({"--help"}).parse().help_text.find("--listen"), std::string::npos);
}

}  // namespace
}  // namespace hello::app

namespace hello::app {
namespace {

TEST(Parse, NumbersMustBeWholeAndInRange) {
    EXPECT_EQ(parse_number<unsigned>("42"), 42U);
    EXPECT_EQ(parse_number<unsigned>("660", 8), 0660U);
    EXPECT_EQ(parse_number<unsigned>(""), std::nullopt);
    EXPECT_EQ(parse_number<unsigned>("-1"), std::nullopt);
    EXPECT_EQ(parse_number<unsigned>("12x"), std::nullopt);
    EXPECT_EQ(parse_number<unsigned>(" 1"), std::nullopt);
    EXPECT_EQ(parse_number<unsigned>("99999999999"), std::nullopt);
    EXPECT_EQ(parse_number<unsigned>("8", 8), std::nullopt);
}

TEST(Parse, SecondsToTheMillisecond) {
    EXPECT_EQ(parse_seconds("10"), std::chrono::seconds(10));
    EXPECT_EQ(parse_seconds("0.25"), std::chrono::milliseconds(250));
    EXPECT_EQ(parse_seconds("0"), std::chrono::milliseconds(0));
    EXPECT_EQ(parse_seconds("86400"), std::chrono::hours(24));
    EXPECT_EQ(parse_seconds("86401"), std::nullopt);
    EXPECT_EQ(parse_seconds("-1"), std::nullopt);
    EXPECT_EQ(parse_seconds("inf"), std::nullopt);
    EXPECT_EQ(parse_seconds("1s"), std::nullopt);
    EXPECT_EQ(parse_seconds(""), std::nullopt);
    // A timeout asked for must not round to 0, which means "off"; blanks as the integers.
    EXPECT_EQ(parse_seconds("0.0004"), std::nullopt);
    EXPECT_EQ(parse_seconds("1e-9"), std::nullopt);
    EXPECT_EQ(parse_seconds("0.0005"), std::chrono::milliseconds(1));
    EXPECT_EQ(parse_seconds("0.000"), std::chrono::milliseconds(0));
    EXPECT_EQ(parse_seconds(" 5"), std::nullopt);
    EXPECT_EQ(parse_seconds("5 "), std::nullopt);
}

}  // namespace
}  // namespace hello::app
