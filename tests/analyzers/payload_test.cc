#include "analyzers/payload.h"

#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Field;
using ::testing::IsEmpty;
using ::testing::Optional;

std::string Header(uint8_t type, uint16_t id, uint16_t length,
                   uint8_t padding = 0, uint8_t version = 1) {
  std::string h(8, '\0');
  h[0] = static_cast<char>(version);
  h[1] = static_cast<char>(type);
  h[2] = static_cast<char>(id >> 8);
  h[3] = static_cast<char>(id & 0xff);
  h[4] = static_cast<char>(length >> 8);
  h[5] = static_cast<char>(length & 0xff);
  h[6] = static_cast<char>(padding);
  return h;
}

std::string Record(uint8_t type, uint16_t id, uint16_t length,
                   uint8_t padding = 0) {
  return Header(type, id, length, padding) + std::string(length + padding, 'x');
}

TEST(ParseHttpRequestLineTest, ReturnsMethodAndPathWithoutQuery) {
  EXPECT_THAT(ParseHttpRequestLine("GET /index.php?a=1 HTTP/1.1\r\nHost: x"),
              Optional(Eq("GET /index.php")));
  EXPECT_THAT(ParseHttpRequestLine("POST /form HTTP/1.0\r\n"),
              Optional(Eq("POST /form")));
}

TEST(ParseHttpRequestLineTest, KeepsAPathCutByTheEndOfThePrefix) {
  EXPECT_THAT(ParseHttpRequestLine("GET /very/lo"),
              Optional(Eq("GET /very/lo")));
}

TEST(ParseHttpRequestLineTest, RejectsShortOrGarbageInput) {
  EXPECT_EQ(ParseHttpRequestLine(""), std::nullopt);
  EXPECT_EQ(ParseHttpRequestLine("GET"), std::nullopt);
  EXPECT_EQ(ParseHttpRequestLine("GET "), std::nullopt);
  EXPECT_EQ(ParseHttpRequestLine("get /x HTTP/1.1"), std::nullopt);
  EXPECT_EQ(ParseHttpRequestLine("GET index HTTP/1.1"), std::nullopt);
  EXPECT_EQ(ParseHttpRequestLine(std::string("\x01\x01\x00\x01", 4)),
            std::nullopt);
  EXPECT_EQ(ParseHttpRequestLine(std::string("GET /a\x01b HTTP/1.1")),
            std::nullopt);
}

TEST(IsHttpFinalResponseHeadTest, AcceptsStatusLinesButNotInterimOnes) {
  EXPECT_TRUE(IsHttpFinalResponseHead("HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(IsHttpFinalResponseHead("HTTP/1.0 404"));
  EXPECT_TRUE(IsHttpFinalResponseHead("HTTP/1."));  // status not captured
  EXPECT_FALSE(IsHttpFinalResponseHead("HTTP/1.1 100 Continue\r\n"));
  EXPECT_TRUE(IsHttpFinalResponseHead("HTTP/1.1 101 Switching"));  // final
  EXPECT_TRUE(IsHttpFinalResponseHead("HTTP/1.1 1"));  // status cut short
  EXPECT_FALSE(IsHttpFinalResponseHead("HTTP/1"));
  EXPECT_FALSE(IsHttpFinalResponseHead(""));
  EXPECT_FALSE(IsHttpFinalResponseHead("<html>HTTP/1.1 200"));
  EXPECT_FALSE(IsHttpFinalResponseHead(std::string("\x17\x03\x03", 3)));
}

TEST(IsHttpInterimResponseHeadTest, Is1xxButNot101) {
  EXPECT_TRUE(IsHttpInterimResponseHead("HTTP/1.1 100 Continue\r\n"));
  EXPECT_TRUE(IsHttpInterimResponseHead("HTTP/1.1 103"));
  EXPECT_FALSE(IsHttpInterimResponseHead("HTTP/1.1 101 Switching Protocols"));
  EXPECT_FALSE(IsHttpInterimResponseHead("HTTP/1.1 200 OK"));
  EXPECT_FALSE(IsHttpInterimResponseHead("HTTP/1.1 10"));  // status cut short
  EXPECT_FALSE(IsHttpInterimResponseHead("GET / HTTP/1.1"));
}

TEST(ValidUtf8Test, KeepsWellFormedTextAndReplacesEveryBadByte) {
  EXPECT_EQ(ValidUtf8("php-fpm8.2"), "php-fpm8.2");
  EXPECT_EQ(ValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  const std::string bad = "\xEF\xBF\xBD";
  EXPECT_EQ(ValidUtf8("\xff"), bad);
  EXPECT_EQ(ValidUtf8("a\xc3"), "a" + bad);               // cut short
  EXPECT_EQ(ValidUtf8("\xc0\xaf"), bad + bad);            // overlong
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), bad + bad + bad);  // surrogate
  EXPECT_EQ(ValidUtf8("\xf4\x90\x80\x80"),
            bad + bad + bad + bad);  // > U+10FFFF
  EXPECT_EQ(ValidUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(ValidUtf8(""), "");
}

TEST(TerminalTextTest, EscapesEveryControlByte) {
  EXPECT_EQ(TerminalText("\n"), "\\n");
  EXPECT_EQ(TerminalText("\t"), "\\t");
  EXPECT_EQ(TerminalText("\r"), "\\r");
  EXPECT_EQ(TerminalText(std::string(1, '\0')), "\\x00");
  EXPECT_EQ(TerminalText("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(TerminalText("\x7f"), "\\x7f");
  for (int c = 0; c < 0x20; ++c) {
    std::string out = TerminalText(std::string(1, static_cast<char>(c)));
    ASSERT_GE(out.size(), 2u) << c;
    EXPECT_EQ(out[0], '\\') << c;
    for (char o : out) EXPECT_TRUE(o >= 0x20 && o < 0x7f) << c;
  }
  EXPECT_EQ(TerminalText("\xc2\x9b"), "\\xc2\\x9b");  // C1 CSI
  EXPECT_EQ(TerminalText("\xc2\x85"), "\\xc2\\x85");  // C1 NEL
}

TEST(TerminalTextTest, EscapesInvalidUtf8ByteByByte) {
  EXPECT_EQ(TerminalText("srv\xff\xfeu"), "srv\\xff\\xfeu");
  EXPECT_EQ(TerminalText("a\xc3"), "a\\xc3");                  // cut short
  EXPECT_EQ(TerminalText("\xe2\x82"), "\\xe2\\x82");           // cut short
  EXPECT_EQ(TerminalText("\xc0\xaf"), "\\xc0\\xaf");           // overlong
  EXPECT_EQ(TerminalText("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");  // overlong
  EXPECT_EQ(TerminalText("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(TerminalText("\x80"), "\\x80");                    // stray
}

TEST(TerminalTextTest, KeepsCleanTextByteForByte) {
  EXPECT_EQ(TerminalText("nginx: worker"), "nginx: worker");
  EXPECT_EQ(TerminalText("srv\"q"), "srv\"q");
  EXPECT_EQ(TerminalText("srv\\b"), "srv\\b");
  EXPECT_EQ(TerminalText("caf\xc3\xa9 \xc2\xa0"), "caf\xc3\xa9 \xc2\xa0");
  EXPECT_EQ(TerminalText("\xe2\x82\xac"), "\xe2\x82\xac");
  EXPECT_EQ(TerminalText("x\xf0\x9f\x98\x80y"),
            "x\xf0\x9f\x98\x80y");  // 4 bytes
  EXPECT_EQ(TerminalText(""), "");
}

TEST(LabelTextTest, ReplacesInvalidUtf8AndEscapesControlsButNewline) {
  const std::string bad = "\xEF\xBF\xBD";
  EXPECT_EQ(LabelText("srv\xff\xfeu"), "srv" + bad + bad + "u");
  EXPECT_EQ(LabelText("a\xc3"), "a" + bad);     // cut short
  EXPECT_EQ(LabelText("\xc0\xaf"), bad + bad);  // overlong
  EXPECT_EQ(LabelText("\xf4\x90\x80\x80"), bad + bad + bad + bad);
  EXPECT_EQ(LabelText("srv\x1b[2J"), "srv\\x1b[2J");
  EXPECT_EQ(LabelText("\x7f\r"), "\\x7f\\r");
  EXPECT_EQ(LabelText("\xc2\x9b"), "\\xc2\\x9b");
  EXPECT_EQ(LabelText("srv\nn\t"), "srv\nn\\t");
  EXPECT_EQ(LabelText("srv\"q\\"), "srv\"q\\");
  EXPECT_EQ(LabelText("x\xf0\x9f\x98\x80y"), "x\xf0\x9f\x98\x80y");  // 4 bytes
}

TEST(ParseFastCgiHeaderTest, DecodesAnExactHeaderBigEndian) {
  auto h = ParseFastCgiHeader(Header(kFcgiBeginRequest, 0x0102, 0x0304, 5));
  ASSERT_TRUE(h.has_value());
  EXPECT_THAT(h->version, Eq(1));
  EXPECT_THAT(h->type, Eq(kFcgiBeginRequest));
  EXPECT_THAT(h->request_id, Eq(0x0102));
  EXPECT_THAT(h->content_length, Eq(0x0304));
  EXPECT_THAT(h->padding_length, Eq(5));
}

TEST(ParseFastCgiHeaderTest, RejectsShortWrongVersionAndUnknownType) {
  EXPECT_EQ(ParseFastCgiHeader(Header(1, 1, 8).substr(0, 7)), std::nullopt);
  EXPECT_EQ(ParseFastCgiHeader(Header(1, 1, 8, 0, /*version=*/2)),
            std::nullopt);
  EXPECT_EQ(ParseFastCgiHeader(Header(0, 1, 8)), std::nullopt);
  EXPECT_EQ(ParseFastCgiHeader(Header(12, 1, 8)), std::nullopt);
  EXPECT_EQ(ParseFastCgiHeader("GET / HTTP/1.1"), std::nullopt);
}

TEST(FastCgiStreamTest, WalksRecordsWithinOneChunk) {
  FastCgiStream s(true);
  std::string bytes =
      Record(kFcgiBeginRequest, 1, 8) + Record(4, 1, 20, 4) + Record(5, 1, 0);
  auto headers = s.Feed(bytes, bytes.size(), false);
  EXPECT_THAT(headers, ElementsAre(Field(&FastCgiHeader::type, 1),
                                   Field(&FastCgiHeader::type, 4),
                                   Field(&FastCgiHeader::type, 5)));
  EXPECT_TRUE(s.synced());
}

TEST(FastCgiStreamTest, FollowsRecordsAcrossChunksAndSplitHeaders) {
  FastCgiStream s(true);
  std::string bytes = Record(6, 1, 100) + Record(kFcgiEndRequest, 1, 8);
  // Chunk 1 ends 3 bytes into the second header.
  std::string c1 = bytes.substr(0, 111);
  std::string c2 = bytes.substr(111);
  EXPECT_THAT(s.Feed(c1, c1.size(), false),
              ElementsAre(Field(&FastCgiHeader::type, 6)));
  EXPECT_THAT(s.Feed(c2, c2.size(), false),
              ElementsAre(Field(&FastCgiHeader::type, kFcgiEndRequest)));
  EXPECT_TRUE(s.synced());
}

TEST(FastCgiStreamTest, SkipsUncapturedContentWithoutLosingSync) {
  FastCgiStream s(true);
  std::string bytes = Record(6, 1, 1000) + Record(kFcgiEndRequest, 1, 8);
  // Only 16 bytes captured of the first chunk (1000 content bytes moved).
  EXPECT_THAT(s.Feed(bytes.substr(0, 16), 1008, false),
              ElementsAre(Field(&FastCgiHeader::type, 6)));
  std::string rest = bytes.substr(1008);
  EXPECT_THAT(s.Feed(rest, rest.size(), false),
              ElementsAre(Field(&FastCgiHeader::type, kFcgiEndRequest)));
}

TEST(FastCgiStreamTest, LosesSyncWhenAHeaderIsOutsideThePrefix) {
  FastCgiStream s(true);
  std::string bytes = Record(6, 1, 100) + Record(kFcgiEndRequest, 1, 8);
  EXPECT_THAT(s.Feed(bytes.substr(0, 16), bytes.size(), false),
              ElementsAre(Field(&FastCgiHeader::type, 6)));
  EXPECT_FALSE(s.synced());
  EXPECT_THAT(s.Feed(Record(6, 1, 4), 12, /*may_resync=*/false), IsEmpty());
  EXPECT_THAT(s.Feed(Record(kFcgiBeginRequest, 1, 8), 16, true),
              ElementsAre(Field(&FastCgiHeader::type, kFcgiBeginRequest)));
  EXPECT_TRUE(s.synced());
}

TEST(FastCgiStreamTest, NoPayloadMeansNoHeadersAndNoSync) {
  FastCgiStream s(true);
  EXPECT_THAT(s.Feed("", 500, true), IsEmpty());
  EXPECT_FALSE(s.synced());
}

TEST(FastCgiStreamTest, GarbageLosesSync) {
  FastCgiStream s(true);
  EXPECT_THAT(s.Feed("HTTP/1.1 200 OK\r\n", 17, false), IsEmpty());
  EXPECT_FALSE(s.synced());
}

}  // namespace
}  // namespace reqcost::analyzers
