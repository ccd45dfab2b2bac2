// hello::line_framer against a byte-at-a-time reference, however the input is split.
//
// Input: byte 0 sets max_request_bytes (mostly 0..63, sometimes up to 4032); byte 1 says how
// many of the following bytes (0..7) are chunk sizes (0..255, used in turn; an empty chunk is
// a read of nothing); the rest is what the peer sends, fed to the framer in those chunks.
//
// Checked after every chunk, with abort() on a violation:
//  - the replies owed so far equal the reference's count of complete requests so far;
//  - a refusal comes exactly at the chunk where the bytes so far make it certain (a complete
//    request over the limit, or an unfinished one that can no longer fit), never earlier,
//    never later, and the framer is not fed again (the session closes): refusal is final;
//  - until then unfinished() is the unfinished request's length, never more than the limit
//    plus one (its possible `\r`) plus the last chunk;
//  - the whole input as one read gives the same total, and scan_lines() agrees on it.

#include "check.hpp"

#include <hello/framing.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace {

// The definition, one byte at a time: a request is what comes before a `\n`, less one `\r`
// just before it, and may be at most `limit` bytes long.
struct reference {
    explicit reference(std::size_t max_request_bytes) : limit(max_request_bytes) {}

    void feed(char c) {
        if (refused) return;
        ++seen;
        if (c == '\n') {
            const std::size_t length = line - (line > 0 && last == '\r' ? 1 : 0);
            if (length > limit) {
                refused = true;
                return;
            }
            ++complete;
            consumed = seen;
            line = 0;
            last = 0;
            return;
        }
        ++line;
        last = c;
        // Certain from here on whatever follows: longer than the limit even if a `\n` came now.
        if (line > limit + 1 || (line == limit + 1 && c != '\r')) refused = true;
    }
    void feed(std::string_view bytes) {
        for (const char c : bytes) feed(c);
    }

    std::size_t limit;
    std::size_t complete = 0;  // requests answered
    std::size_t consumed = 0;  // bytes of those requests, newlines included
    std::size_t seen = 0;
    std::size_t line = 0;  // bytes of the unfinished request, a trailing `\r` included
    char last = 0;
    bool refused = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::size_t limit = data[0] < 192 ? data[0] % 64U : (data[0] - 192U) * 64U;
    const std::size_t sizes_count = data[1] % 8U;
    if (size < 2 + sizes_count) return 0;
    const std::vector<std::size_t> sizes(data + 2, data + 2 + sizes_count);
    const std::string_view input(reinterpret_cast<const char*>(data) + 2 + sizes_count, size - 2 - sizes_count);

    // The whole input at once: the library's scan and a framer given one read.
    reference whole(limit);
    whole.feed(input);
    const auto scan = hello::scan_lines(input, limit);
    FUZZ_CHECK(scan.complete == whole.complete, "scan_lines: %zu complete, reference %zu (limit %zu)", scan.complete,
               whole.complete, limit);
    FUZZ_CHECK(scan.too_long == whole.refused, "scan_lines: too_long %d, reference %d (limit %zu)", scan.too_long,
               whole.refused, limit);
    FUZZ_CHECK(scan.consumed == whole.consumed, "scan_lines: consumed %zu, reference %zu (limit %zu)", scan.consumed,
               whole.consumed, limit);
    {
        hello::line_framer framer(limit);
        const auto out = framer.consume(input);
        FUZZ_CHECK(out.replies == whole.complete && out.refuse == whole.refused,
                   "one read: %zu replies, refuse %d; reference %zu, %d (limit %zu)", out.replies, out.refuse,
                   whole.complete, whole.refused, limit);
    }

    // The same bytes split into reads.
    hello::line_framer framer(limit);
    reference ref(limit);
    std::size_t replies = 0;
    std::size_t offset = 0;
    bool refused = false;
    for (std::size_t i = 0; offset < input.size() || i == 0; ++i) {
        // Cycle through the sizes; with none (or only empty reads) the rest goes in one read.
        std::size_t n = input.size() - offset;
        if (!sizes.empty() && i < 4 * input.size() + sizes.size()) n = std::min(n, sizes[i % sizes.size()]);
        const auto chunk = input.substr(offset, n);
        offset += n;

        const auto raw = hello::raw_framer::consume(chunk);
        FUZZ_CHECK(raw.replies == (chunk.empty() ? 0U : 1U) && !raw.refuse, "raw framer: %zu replies for %zu bytes",
                   raw.replies, chunk.size());

        const auto before = ref.complete;
        ref.feed(chunk);
        const auto out = framer.consume(chunk);
        replies += out.replies;
        FUZZ_CHECK(out.replies == ref.complete - before,
                   "read %zu (%zu bytes at %zu): %zu replies, reference %zu (limit %zu)", i, chunk.size(), offset - n,
                   out.replies, ref.complete - before, limit);
        FUZZ_CHECK(out.refuse == ref.refused, "read %zu (%zu bytes at %zu): refuse %d, reference %d (limit %zu)", i,
                   chunk.size(), offset - n, out.refuse, ref.refused, limit);
        if (out.refuse) {
            refused = true;
            break;  // the connection closes: nothing more is read
        }
        FUZZ_CHECK(framer.unfinished() == ref.line, "read %zu: unfinished() %zu, unfinished request %zu (limit %zu)", i,
                   framer.unfinished(), ref.line, limit);
        FUZZ_CHECK(framer.unfinished() <= limit + 1 + chunk.size(),
                   "read %zu: unfinished() %zu over limit %zu + 1 + read %zu", i, framer.unfinished(), limit,
                   chunk.size());
        if (offset >= input.size()) break;
    }
    // However the bytes were split, the same requests are answered and the same refusal made.
    FUZZ_CHECK(replies == whole.complete, "split reads: %zu replies, whole input %zu (limit %zu)", replies,
               whole.complete, limit);
    FUZZ_CHECK(refused == whole.refused, "split reads: refuse %d, whole input %d (limit %zu)", refused, whole.refused,
               limit);
    return 0;
}
