#include <hello/endpoint.hpp>
#include <hello/error.hpp>

#include <gtest/gtest.h>

namespace hello {
namespace {

boost::system::error_code parse_failure(std::string_view text, std::string* message = nullptr) {
    try {
        (void)endpoint::parse(text);
    } catch (const error& e) {
        if (message) *message = e.what();
        return e.code();
    }
    ADD_FAILURE() << "'" << text << "' was accepted";
    return {};
}

TEST(Endpoint, UnixPath) {
    const auto ep = endpoint::parse("unix:/run/hello/hello.sock");
    ASSERT_TRUE(ep.is_unix());
    EXPECT_EQ(ep.as_unix().name, "/run/hello/hello.sock");
    EXPECT_FALSE(ep.as_unix().abstract);
    EXPECT_EQ(ep.as_unix().sun_path(), "/run/hello/hello.sock");
    EXPECT_EQ(ep.to_string(), "unix:/run/hello/hello.sock");
}

TEST(Endpoint, RelativeUnixPath) {
    EXPECT_EQ(endpoint::parse("unix:hello.sock").as_unix().name, "hello.sock");
    EXPECT_EQ(endpoint::parse("./hello.sock").as_unix().name, "./hello.sock");
}

TEST(Endpoint, BarePathAndAtMeanUnix) {
    EXPECT_EQ(endpoint::parse("/tmp/uds_socket"), endpoint::parse("unix:/tmp/uds_socket"));
    EXPECT_EQ(endpoint::parse("@hello"), endpoint::parse("unix:@hello"));
}

TEST(Endpoint, AbstractNameHasExactLengthAndLeadingNul) {
    const auto ep = endpoint::parse("unix:@hello");
    ASSERT_TRUE(ep.is_unix());
    EXPECT_TRUE(ep.as_unix().abstract);
    EXPECT_EQ(ep.as_unix().name, "hello");
    EXPECT_EQ(ep.as_unix().sun_path(), std::string("\0hello", 6));
    EXPECT_EQ(ep.to_string(), "unix:@hello");
}

TEST(Endpoint, TcpIpv4AndHostName) {
    const auto ep = endpoint::parse("tcp:127.0.0.1:7777");
    ASSERT_FALSE(ep.is_unix());
    EXPECT_EQ(ep.as_tcp().host, "127.0.0.1");
    EXPECT_EQ(ep.as_tcp().port, 7777);
    EXPECT_EQ(endpoint::parse("tcp:localhost:0").as_tcp().host, "localhost");
    EXPECT_EQ(endpoint::parse("tcp:localhost:65535").as_tcp().port, 65535);
}

TEST(Endpoint, TcpIpv6InBrackets) {
    const auto ep = endpoint::parse("tcp:[::1]:8080");
    EXPECT_EQ(ep.as_tcp().host, "::1");
    EXPECT_EQ(ep.as_tcp().port, 8080);
    EXPECT_EQ(ep.to_string(), "tcp:[::1]:8080");
}

TEST(Endpoint, CanonicalTextParsesBack) {
    for (const char* text : {"unix:/a/b", "unix:@x", "tcp:10.0.0.1:1", "tcp:[fe80::1]:2", "tcp:example:3"})
        EXPECT_EQ(endpoint::parse(endpoint::parse(text).to_string()), endpoint::parse(text)) << text;
}

TEST(Endpoint, MalformedIsABadEndpoint) {
    for (const char* text : {"", "bogus", "udp:1.2.3.4:5", "unix:", "unix:@", "tcp:", "tcp:host", "tcp::80",
                             "tcp:host:", "tcp:host:http", "tcp:host:65536", "tcp:host:-1", "tcp:::1:80", "tcp:[::1]80",
                             "tcp:[::1", "tcp:host:80x", "tcp:[[x]:1", "tcp:a]b:1", "tcp:[x[]:1"})
        EXPECT_EQ(parse_failure(text), errc::bad_endpoint) << "'" << text << "'";
}

TEST(Endpoint, NulByteInPathIsRejected) {
    EXPECT_EQ(parse_failure(std::string_view("unix:/tmp/a\0b", 13)), errc::bad_endpoint);
}

TEST(Endpoint, PathOfExactly107BytesIsAccepted) {
    const std::string path = "/" + std::string(106, 'p');
    EXPECT_EQ(endpoint::parse("unix:" + path).as_unix().name.size(), 107U);
    EXPECT_EQ(endpoint::parse("unix:@" + std::string(107, 'a')).as_unix().name.size(), 107U);
}

TEST(Endpoint, TooLongPathNamesPathLengthAndLimit) {
    const std::string path = "/" + std::string(107, 'p');
    std::string message;
    EXPECT_EQ(parse_failure("unix:" + path, &message), errc::name_too_long);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("108 bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("limit is 107"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
}

TEST(Endpoint, TooLongAbstractNameIsRejected) {
    EXPECT_EQ(parse_failure("unix:@" + std::string(108, 'a')), errc::name_too_long);
}

}  // namespace
}  // namespace hello
