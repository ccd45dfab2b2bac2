#include <hello/framing.hpp>

#include <gtest/gtest.h>

#include <string>

namespace hello {
namespace {

TEST(Framing, NamesRoundTrip) {
    EXPECT_EQ(parse_framing("raw"), framing::raw);
    EXPECT_EQ(parse_framing("line"), framing::line);
    EXPECT_EQ(parse_framing("Line"), std::nullopt);
    EXPECT_EQ(parse_framing(""), std::nullopt);
    EXPECT_EQ(to_string(framing::raw), "raw");
    EXPECT_EQ(to_string(framing::line), "line");
}

TEST(Framing, RepliesAreTheContract) {
    EXPECT_EQ(reply_for(framing::raw), "hello client");
    EXPECT_EQ(reply_for(framing::raw).size(), 12U);
    EXPECT_EQ(reply_for(framing::line), "hello client\n");
}

TEST(ScanLines, NothingBufferedNothingComplete) {
    const auto s = scan_lines("", 10);
    EXPECT_EQ(s.complete, 0U);
    EXPECT_EQ(s.consumed, 0U);
    EXPECT_FALSE(s.too_long);
}

TEST(ScanLines, OneLine) {
    const auto s = scan_lines("hello server\n", 4096);
    EXPECT_EQ(s.complete, 1U);
    EXPECT_EQ(s.consumed, 13U);
    EXPECT_FALSE(s.too_long);
}

TEST(ScanLines, PipelinedLinesAreAllCounted) {
    const auto s = scan_lines("a\nb\r\n\nccc\n", 4096);
    EXPECT_EQ(s.complete, 4U);  // an empty line is a request too
    EXPECT_EQ(s.consumed, 10U);
}

TEST(ScanLines, UnfinishedTailIsLeftForTheNextRead) {
    const auto s = scan_lines("one\ntw", 4096);
    EXPECT_EQ(s.complete, 1U);
    EXPECT_EQ(s.consumed, 4U);
    EXPECT_FALSE(s.too_long);
}

TEST(ScanLines, LineSplitAcrossReadsCompletesOnce) {
    std::string buffered = "hel";
    auto s = scan_lines(buffered, 4096);
    EXPECT_EQ(s.complete, 0U);
    buffered += "lo server";
    s = scan_lines(buffered, 4096);
    EXPECT_EQ(s.complete, 0U);
    buffered += "\nnext";
    s = scan_lines(buffered, 4096);
    EXPECT_EQ(s.complete, 1U);
    EXPECT_EQ(buffered.substr(s.consumed), "next");
}

TEST(ScanLines, LimitIsInclusive) {
    EXPECT_FALSE(scan_lines("12345\n", 5).too_long);
    EXPECT_EQ(scan_lines("12345\n", 5).complete, 1U);
    EXPECT_TRUE(scan_lines("123456\n", 5).too_long);
}

TEST(ScanLines, CarriageReturnDoesNotCountAgainstTheLimit) {
    EXPECT_EQ(scan_lines("12345\r\n", 5).complete, 1U);
    EXPECT_FALSE(scan_lines("12345\r", 5).too_long);  // the \n may still come
    EXPECT_TRUE(scan_lines("12345\rx", 5).too_long);
}

TEST(ScanLines, EndlessLineIsRefusedBeforeItsNewline) {
    EXPECT_FALSE(scan_lines(std::string(5, 'x'), 5).too_long);
    EXPECT_TRUE(scan_lines(std::string(6, 'x'), 5).too_long);
}

TEST(ScanLines, RequestsBeforeAnOversizedOneAreStillAnswered) {
    const auto s = scan_lines("ok\nok\n" + std::string(100, 'x') + "\nok\n", 10);
    EXPECT_TRUE(s.too_long);
    EXPECT_EQ(s.complete, 2U);
    EXPECT_EQ(s.consumed, 6U);
}

}  // namespace
}  // namespace hello
