#include "analyzers/hpack.h"

#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using namespace std::string_literals;

// Bytes from a hex dump as RFC 7541 Appendix C prints them ("8286 8441").
std::string Hex(std::string_view dump) {
  std::string out;
  int high = -1;
  for (char c : dump) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) continue;
    int v = std::isdigit(static_cast<unsigned char>(c))
                ? c - '0'
                : std::tolower(c) - 'a' + 10;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>(high << 4 | v));
      high = -1;
    }
  }
  return out;
}

HeaderField F(std::string name, std::string value) {
  return HeaderField{std::move(name), std::move(value)};
}

std::vector<HeaderField> MustDecode(HpackDecoder& d, std::string_view dump) {
  absl::StatusOr<std::vector<HeaderField>> fields = d.Decode(Hex(dump));
  EXPECT_TRUE(fields.ok()) << fields.status();
  return fields.ok() ? *fields : std::vector<HeaderField>{};
}

// C.2: one representation of each kind.
TEST(HpackDecoderTest, C2_1LiteralWithIndexingEntersTheTable) {
  HpackDecoder d;
  EXPECT_THAT(MustDecode(d,
                         "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f "
                         "6d2d 6865 6164 6572"),
              ElementsAre(F("custom-key", "custom-header")));
  EXPECT_EQ(d.table_size(), 55u);
  EXPECT_THAT(d.dynamic_table(), ElementsAre(F("custom-key", "custom-header")));
}

TEST(HpackDecoderTest, C2_2LiteralWithoutIndexingLeavesTheTable) {
  HpackDecoder d;
  EXPECT_THAT(MustDecode(d, "040c 2f73 616d 706c 652f 7061 7468"),
              ElementsAre(F(":path", "/sample/path")));
  EXPECT_THAT(d.dynamic_table(), IsEmpty());
}

TEST(HpackDecoderTest, C2_3NeverIndexedLeavesTheTable) {
  HpackDecoder d;
  EXPECT_THAT(MustDecode(d, "1008 7061 7373 776f 7264 0673 6563 7265 74"),
              ElementsAre(F("password", "secret")));
  EXPECT_THAT(d.dynamic_table(), IsEmpty());
}

TEST(HpackDecoderTest, C2_4IndexedFromTheStaticTable) {
  HpackDecoder d;
  EXPECT_THAT(MustDecode(d, "82"), ElementsAre(F(":method", "GET")));
  EXPECT_THAT(d.dynamic_table(), IsEmpty());
}

// C.3 and C.4: three requests on one connection, the dynamic table carried
// from one to the next; the same fields, plain and Huffman-coded.
void ExpectRequests(const char* first, const char* second, const char* third) {
  HpackDecoder d;
  EXPECT_THAT(MustDecode(d, first),
              ElementsAre(F(":method", "GET"), F(":scheme", "http"),
                          F(":path", "/"), F(":authority", "www.example.com")));
  EXPECT_EQ(d.table_size(), 57u);
  EXPECT_THAT(MustDecode(d, second),
              ElementsAre(F(":method", "GET"), F(":scheme", "http"),
                          F(":path", "/"), F(":authority", "www.example.com"),
                          F("cache-control", "no-cache")));
  EXPECT_EQ(d.table_size(), 110u);
  EXPECT_THAT(
      MustDecode(d, third),
      ElementsAre(F(":method", "GET"), F(":scheme", "https"),
                  F(":path", "/index.html"), F(":authority", "www.example.com"),
                  F("custom-key", "custom-value")));
  EXPECT_EQ(d.table_size(), 164u);
  EXPECT_THAT(d.dynamic_table(),
              ElementsAre(F("custom-key", "custom-value"),
                          F("cache-control", "no-cache"),
                          F(":authority", "www.example.com")));
}

TEST(HpackDecoderTest, C3RequestsWithoutHuffman) {
  ExpectRequests("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                 "8286 84be 5808 6e6f 2d63 6163 6865",
                 "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f "
                 "6d2d 7661 6c75 65");
}

TEST(HpackDecoderTest, C4RequestsWithHuffman) {
  ExpectRequests("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                 "8286 84be 5886 a8eb 1064 9cbf",
                 "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf");
}

// C.5 and C.6: three responses with a 256-byte table, so that entries are
// evicted.
void ExpectResponses(const char* first, const char* second, const char* third) {
  HpackDecoder d(256);
  EXPECT_THAT(MustDecode(d, first),
              ElementsAre(F(":status", "302"), F("cache-control", "private"),
                          F("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                          F("location", "https://www.example.com")));
  EXPECT_EQ(d.table_size(), 222u);
  EXPECT_THAT(MustDecode(d, second),
              ElementsAre(F(":status", "307"), F("cache-control", "private"),
                          F("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                          F("location", "https://www.example.com")));
  EXPECT_EQ(d.table_size(), 222u);
  EXPECT_THAT(
      d.dynamic_table(),
      ElementsAre(F(":status", "307"), F("location", "https://www.example.com"),
                  F("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                  F("cache-control", "private")));
  EXPECT_THAT(
      MustDecode(d, third),
      ElementsAre(
          F(":status", "200"), F("cache-control", "private"),
          F("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
          F("location", "https://www.example.com"),
          F("content-encoding", "gzip"),
          F("set-cookie",
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")));
  EXPECT_EQ(d.table_size(), 215u);
  EXPECT_THAT(d.dynamic_table(),
              ElementsAre(F("set-cookie",
                            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; "
                            "version=1"),
                          F("content-encoding", "gzip"),
                          F("date", "Mon, 21 Oct 2013 20:13:22 GMT")));
}

TEST(HpackDecoderTest, C5ResponsesWithoutHuffman) {
  ExpectResponses(
      "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 "
      "3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 "
      "7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "4803 3330 37c1 c0bf",
      "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 "
      "3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a "
      "584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 "
      "3630 303b 2076 6572 7369 6f6e 3d31");
}

TEST(HpackDecoderTest, C6ResponsesWithHuffman) {
  ExpectResponses(
      "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 "
      "66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
      "4883 640e ffc1 c0bf",
      "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a "
      "839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 "
      "72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07");
}

// Codes of Appendix B's hex column, reached through the canonical code the
// decoder builds from the lengths: each symbol's code, left-aligned and
// padded with 1s, decodes to the symbol alone.
TEST(HpackHuffmanTest, AppendixBCodesDecodeToTheirSymbols) {
  struct Code {
    int sym;
    uint32_t code;
    int bits;
  };
  for (const Code& c : std::vector<Code>{
           {0, 0x1ff8, 13},
           {1, 0x7fffd8, 23},
           {9, 0xffffea, 24},
           {10, 0x3ffffffc, 30},
           {32, 0x14, 6},
           {48, 0x0, 5},
           {58, 0x5c, 7},
           {92, 0x7fff0, 19},
           {97, 0x3, 5},
           {127, 0xffffffc, 28},
           {128, 0xfffe6, 20},
           {153, 0x1fffdc, 21},
           {199, 0x1ffffec, 25},
           {203, 0x7ffffde, 27},
           {225, 0xfffff3, 24},
           {249, 0xffffffe, 28},
           {254, 0x7fffff0, 27},
           {255, 0x3ffffee, 26},
       }) {
    // Left-align in a 32-bit word, pad with 1s, keep whole bytes.
    uint64_t word = (uint64_t{c.code} << (40 - c.bits)) |
                    ((uint64_t{1} << (40 - c.bits)) - 1);
    int bytes = (c.bits + 7) / 8;
    std::string coded;
    for (int i = 0; i < bytes; ++i) {
      coded.push_back(static_cast<char>(word >> (32 - 8 * i)));
    }
    absl::StatusOr<std::string> out = HpackHuffmanDecode(coded);
    ASSERT_TRUE(out.ok()) << c.sym << ": " << out.status();
    EXPECT_EQ(*out, std::string(1, static_cast<char>(c.sym))) << c.sym;
  }
}

TEST(HpackHuffmanTest, BadPaddingAndEosAreErrors) {
  // "a" is 00011: padded with 000 instead of 111.
  EXPECT_FALSE(HpackHuffmanDecode(Hex("18")).ok());
  EXPECT_TRUE(HpackHuffmanDecode(Hex("1f")).ok());
  // A whole byte of padding (8 one bits after "a").
  EXPECT_FALSE(HpackHuffmanDecode(Hex("1fff")).ok());
  // EOS (30 one bits) coded inside the string.
  EXPECT_FALSE(HpackHuffmanDecode(Hex("ffff ffff")).ok());
  EXPECT_TRUE(HpackHuffmanDecode("").ok());
}

TEST(HpackDecoderTest, MalformedBlocksAreErrors) {
  for (const char* bad : {
           "1f",                   // integer: prefix full, no continuation byte
           "1fff",                 // integer: continuation never ends
           "1fff ffff ffff ff7f",  // integer: too large
           "80",                   // index 0
           "be",                   // index 62 with an empty dynamic table
           "ff80 80",              // index far past both tables (truncated too)
           "0003 61",              // name string shorter than its length
           "4085 1fff",            // Huffman name cut / bad padding
           "0081 18 00",           // Huffman name with 0 padding
           "3fe2 1f",  // size update to 4097, above the default limit
       }) {
    HpackDecoder d;
    EXPECT_FALSE(d.Decode(Hex(bad)).ok()) << bad;
  }
}

TEST(HpackDecoderTest, TableSizeUpdateAboveTheLimitIsAnError) {
  HpackDecoder d(256);
  // 001 11111 + 1 = 32 + ... : 0x3f 0xe1 0x01 = 31 + 97 + 128 = 256.
  EXPECT_TRUE(d.Decode(Hex("3fe1 01")).ok());
  EXPECT_EQ(d.table_capacity(), 256u);
  HpackDecoder e(256);
  absl::StatusOr<std::vector<HeaderField>> r = e.Decode(Hex("3fe2 01"));  // 257
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  // The decoder refuses everything after an error.
  EXPECT_EQ(e.Decode(Hex("82")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(HpackDecoderTest, TableSizeUpdateEvictsAndMustComeFirst) {
  HpackDecoder d;
  MustDecode(
      d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
  EXPECT_THAT(d.dynamic_table(), SizeIs(1));
  EXPECT_THAT(MustDecode(d, "20 82"), ElementsAre(F(":method", "GET")));
  EXPECT_THAT(d.dynamic_table(), IsEmpty());
  EXPECT_EQ(d.table_capacity(), 0u);
  HpackDecoder e;
  EXPECT_FALSE(e.Decode(Hex("82 20")).ok());
}

TEST(HpackDecoderTest, EntryLargerThanTheTableEmptiesIt) {
  HpackDecoder d(40);
  MustDecode(d, "4001 6101 62");  // a: b, 34 bytes
  EXPECT_THAT(d.dynamic_table(), ElementsAre(F("a", "b")));
  MustDecode(d, "4001 6305 6464 6464 64");  // c: ddddd, 38 bytes: evicts a
  EXPECT_THAT(d.dynamic_table(), ElementsAre(F("c", "ddddd")));
  MustDecode(d, "4001 650a 6666 6666 6666 6666 6666");  // 43 bytes > 40
  EXPECT_THAT(d.dynamic_table(), IsEmpty());
  EXPECT_EQ(d.table_size(), 0u);
}

TEST(HeadersFragmentTest, PaddingAndPriorityAreRemoved) {
  std::string payload = "\x03\x80\x00\x00\x01\x10\x82\x84XYZ"s;
  absl::StatusOr<std::string_view> f = HeadersFragment(payload, 0x8 | 0x20);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, "\x82\x84");
  EXPECT_EQ(*HeadersFragment("\x82", 0), "\x82");
  EXPECT_FALSE(HeadersFragment("\x05\x82", 0x8).ok());
  EXPECT_FALSE(HeadersFragment("", 0x8).ok());
  EXPECT_FALSE(HeadersFragment("\x82\x82", 0x20).ok());
}

}  // namespace
}  // namespace reqcost::analyzers
