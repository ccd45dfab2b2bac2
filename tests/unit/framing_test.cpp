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

// ---- framers: bytes in, replies owed out, no socket ----------------------------------------

TEST(RawFramer, EveryNonEmptyChunkIsOneRequest) {
    EXPECT_EQ(raw_framer::consume("hello server"), (framed{1, false}));
    EXPECT_EQ(raw_framer::consume("a\nb\nc\n"), (framed{1, false}));
    EXPECT_EQ(raw_framer::consume(std::string(1, '\0')), (framed{1, false}));
    EXPECT_EQ(raw_framer::consume(""), (framed{0, false}));
}

TEST(LineFramer, PipelinedLinesInOneChunk) {
    line_framer f(10);
    EXPECT_EQ(f.consume("a\nb\r\nc\n"), (framed{3, false}));
    EXPECT_EQ(f.unfinished(), 0U);
}

TEST(LineFramer, LineSplitAcrossChunksIsOneRequest) {
    line_framer f(10);
    EXPECT_EQ(f.consume("hel"), (framed{0, false}));
    EXPECT_EQ(f.unfinished(), 3U);
    EXPECT_EQ(f.consume("lo"), (framed{0, false}));
    EXPECT_EQ(f.consume(" s\nnext"), (framed{1, false}));
    EXPECT_EQ(f.unfinished(), 4U);
    EXPECT_EQ(f.consume("\n"), (framed{1, false}));
    EXPECT_EQ(f.unfinished(), 0U);
}

TEST(LineFramer, NewlineAloneEndsTheKeptLine) {
    line_framer f(3);
    EXPECT_EQ(f.consume("abc"), (framed{0, false}));
    EXPECT_EQ(f.consume("\n\n"), (framed{2, false}));
}

TEST(LineFramer, CrlfSplitBetweenChunksDoesNotCountTheCarriageReturn) {
    line_framer f(3);
    EXPECT_EQ(f.consume("abc\r"), (framed{0, false}));
    EXPECT_EQ(f.consume("\n"), (framed{1, false}));
    EXPECT_EQ(f.consume("ab"), (framed{0, false}));
    EXPECT_EQ(f.consume("c\r"), (framed{0, false}));
    EXPECT_EQ(f.consume("\n"), (framed{1, false}));
}

TEST(LineFramer, LineOverTheLimitAcrossChunksIsRefused) {
    line_framer f(4);
    EXPECT_EQ(f.consume("ok\nabc"), (framed{1, false}));
    EXPECT_EQ(f.consume("de\n"), (framed{0, true}));
}

TEST(LineFramer, EndlessLineIsRefusedWithoutItsNewline) {
    line_framer f(4);
    EXPECT_EQ(f.consume("abc"), (framed{0, false}));
    EXPECT_EQ(f.consume("d\r"), (framed{0, false}));  // could still be "abcd\r\n"
    EXPECT_EQ(f.consume("x"), (framed{0, true}));
}

TEST(LineFramer, RepliesBeforeARefusalAreOwed) {
    line_framer f(2);
    EXPECT_EQ(f.consume("a"), (framed{0, false}));
    EXPECT_EQ(f.consume("\nb\ntoolong"), (framed{2, true}));
}

TEST(LineFramer, ALongLineIsCountedUntilItsNewline) {
    line_framer f(1 << 20);
    const std::string piece(2048, 'x');
    for (int i = 0; i < 256; ++i) ASSERT_EQ(f.consume(piece), (framed{0, false}));
    EXPECT_EQ(f.unfinished(), 256U * 2048U);
    EXPECT_EQ(f.consume("\n"), (framed{1, false}));
    EXPECT_EQ(f.unfinished(), 0U);
}

TEST(LineFramer, EveryWayOfSplittingGivesTheSameReplies) {
    const std::string input = "one\ntwo\r\n\nthree\nfour";
    for (std::size_t cut = 0; cut <= input.size(); ++cut) {
        line_framer f(5);
        const auto first = f.consume(std::string_view(input).substr(0, cut));
        const auto second = f.consume(std::string_view(input).substr(cut));
        EXPECT_EQ(first.replies + second.replies, 4U) << "cut at " << cut;
        EXPECT_FALSE(first.refuse || second.refuse) << "cut at " << cut;
        EXPECT_EQ(f.unfinished(), 4U) << "cut at " << cut;
    }
}

}  // namespace
}  // namespace hello
