#include "analyzers/http2_frames.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using namespace std::string_literals;

constexpr uint8_t kData = 0, kHeaders = 1, kRst = 3, kSettings = 4, kPing = 6,
                  kGoaway = 7, kWindowUpdate = 8, kContinuation = 9;

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream,
                  std::string payload = "") {
  return EncodeHttp2Frame(type, flags, stream, payload);
}

// A client's first bytes: preface, SETTINGS, two requests.
std::string ClientStart() {
  return std::string(kHttp2ClientPreface) +
         Frame(kSettings, 0, 0, "\0\x3\0\0\0\x64"s) +
         Frame(kHeaders, kHttp2EndHeaders | kHttp2EndStream, 1, "\x82\x84") +
         Frame(kHeaders, kHttp2EndHeaders | kHttp2EndStream, 3, "\x82\x85");
}

Http2FrameParser ServerReads() {
  Http2FrameParser::Options o;
  o.client_preface = true;
  return Http2FrameParser(o);
}

TEST(Http2FrameTest, HeaderDecodesLengthTypeFlagsAndStreamWithoutReservedBit) {
  std::string h = "\x01\x02\x03\x01\x25\xff\xff\xff\xff";
  Http2Frame f = DecodeHttp2FrameHeader(h);
  EXPECT_EQ(f.length, 0x010203u);
  EXPECT_EQ(f.type, 1);
  EXPECT_EQ(f.flags, 0x25);
  EXPECT_EQ(f.stream_id, 0x7fffffffu);
}

TEST(Http2FrameParserTest, WholeChunkYieldsFramesAfterThePreface) {
  Http2FrameParser p = ServerReads();
  std::vector<Http2Frame> frames;
  ASSERT_TRUE(p.Feed(ClientStart(), &frames).ok());
  ASSERT_THAT(frames, SizeIs(3));
  EXPECT_EQ(frames[0].type, kSettings);
  EXPECT_EQ(frames[0].length, 6u);
  EXPECT_EQ(frames[1].type, kHeaders);
  EXPECT_EQ(frames[1].stream_id, 1u);
  EXPECT_EQ(frames[1].payload, "\x82\x84");
  EXPECT_EQ(frames[2].stream_id, 3u);
  EXPECT_TRUE(p.at_boundary());
  EXPECT_EQ(p.offset(), ClientStart().size());
}

TEST(Http2FrameParserTest, EveryCutGivesTheSameFrames) {
  const std::string all = ClientStart();
  std::vector<Http2Frame> whole;
  ASSERT_TRUE(ServerReads().Feed(all, &whole).ok());
  // Two chunks cut at every position (inside the preface, a header, a
  // payload), then one byte at a time.
  for (size_t cut = 0; cut <= all.size(); ++cut) {
    Http2FrameParser p = ServerReads();
    std::vector<Http2Frame> frames;
    ASSERT_TRUE(p.Feed(std::string_view(all).substr(0, cut), &frames).ok());
    ASSERT_TRUE(p.Feed(std::string_view(all).substr(cut), &frames).ok());
    EXPECT_EQ(frames, whole) << "cut at " << cut;
  }
  Http2FrameParser p = ServerReads();
  std::vector<Http2Frame> frames;
  for (char c : all) ASSERT_TRUE(p.Feed(std::string(1, c), &frames).ok());
  EXPECT_EQ(frames, whole);
}

TEST(Http2FrameParserTest, FrameIsYieldedInTheChunkWhereItsLastByteIs) {
  Http2FrameParser p;
  std::string data = Frame(kData, kHttp2EndStream, 5, std::string(100, 'x'));
  std::vector<Http2Frame> frames;
  ASSERT_TRUE(p.Feed(data.substr(0, 50), &frames).ok());
  EXPECT_THAT(frames, IsEmpty());
  ASSERT_TRUE(p.Feed(data.substr(50), &frames).ok());
  ASSERT_THAT(frames, SizeIs(1));
  EXPECT_EQ(frames[0].flags, kHttp2EndStream);
  EXPECT_EQ(frames[0].payload, std::string(100, 'x'));
}

TEST(Http2FrameParserTest, UnseenPayloadIsSkippedAndTheNextHeaderFound) {
  // A write of 2 frames of which only the first 12 bytes were captured;
  // the next chunk starts at a frame header.
  Http2FrameParser p;
  std::string two = Frame(kHeaders, kHttp2EndHeaders, 1, "abcdef") +
                    Frame(kData, kHttp2EndStream, 1, "");
  std::vector<Http2Frame> frames;
  ASSERT_TRUE(p.Feed(std::string_view(two).substr(0, 12), 15, &frames).ok());
  ASSERT_TRUE(p.Feed(std::string_view(two).substr(15), &frames).ok());
  ASSERT_THAT(frames, SizeIs(2));
  EXPECT_EQ(frames[0].payload, "abc");
  EXPECT_FALSE(frames[0].payload_complete());
  EXPECT_EQ(frames[1].flags, kHttp2EndStream);
}

TEST(Http2FrameParserTest, HeaderInTheUnseenPartIsDataLoss) {
  Http2FrameParser p;
  std::string two =
      Frame(kPing, 0, 0, "12345678") + Frame(kPing, 1, 0, "12345678");
  std::vector<Http2Frame> frames;
  absl::Status s =
      p.Feed(std::string_view(two).substr(0, 20), two.size(), &frames);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(frames, SizeIs(1));
  // Sticky: nothing more is parsed.
  EXPECT_EQ(p.Feed(Frame(kPing, 0, 0, "12345678"), &frames).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_THAT(frames, SizeIs(1));
}

TEST(Http2FrameParserTest, HeadersOnlyWhenPayloadIsNotKept) {
  Http2FrameParser::Options o;
  o.keep_payload = false;
  Http2FrameParser p(o);
  std::vector<Http2Frame> frames;
  ASSERT_TRUE(p.Feed(Frame(kData, 0, 1, "hello"), &frames).ok());
  ASSERT_THAT(frames, SizeIs(1));
  EXPECT_EQ(frames[0].length, 5u);
  EXPECT_THAT(frames[0].payload, IsEmpty());
}

TEST(Http2FrameParserTest, BadPrefaceIsAnError) {
  Http2FrameParser p = ServerReads();
  std::vector<Http2Frame> frames;
  EXPECT_TRUE(p.Feed("PRI * HTTP/2", &frames).ok());
  absl::Status s = p.Feed(".1\r\n", &frames);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("preface"));
  Http2FrameParser q = ServerReads();
  EXPECT_FALSE(q.Feed("GET / HTTP/1.1\r\n\r\n", &frames).ok());
  EXPECT_THAT(frames, IsEmpty());
}

TEST(Http2FrameParserTest, FrameAboveTheSizeLimitIsAnError) {
  Http2FrameParser::Options o;
  o.max_frame_size = kHttp2DefaultMaxFrameSize;
  Http2FrameParser p(o);
  std::vector<Http2Frame> frames;
  std::string big = "\x00\x40\x01\x00\x00\x00\x00\x00\x01"s;  // 16385 bytes
  absl::Status s = p.Feed(big, &frames);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("16385"));
  // The largest length the field holds passes the default limit.
  Http2FrameParser q;
  std::string max = "\xff\xff\xff\x00\x00\x00\x00\x00\x01"s;
  EXPECT_TRUE(q.Feed(max, &frames).ok());
  EXPECT_FALSE(q.at_boundary());
}

TEST(Http2FrameParserTest, FramingRuleBreaksAreErrors) {
  std::vector<Http2Frame> frames;
  for (const std::string& bad : {
           Frame(kSettings, 0, 1, ""),  // connection frame on a stream
           Frame(kHeaders, kHttp2EndHeaders, 0, "\x82"),  // stream frame on 0
           Frame(kRst, 0, 1, "\0\0\0"s),         // RST_STREAM of 3 bytes
           Frame(kWindowUpdate, 0, 0, "\0\0"s),  // WINDOW_UPDATE of 2
           Frame(kPing, 0, 0, "1234"),           // PING of 4
           Frame(kSettings, kHttp2Ack, 0, "\0\x3\0\0\0\x64"s),  // ACK with body
           Frame(kSettings, 0, 0, "\0\x3\0"s),  // not a multiple of 6
           Frame(kGoaway, 0, 0, "\0\0\0\0"s),   // GOAWAY under 8
           Frame(kContinuation, kHttp2EndHeaders, 1, "\x82"),  // no block open
           Frame(kHeaders, 0, 1, "\x82") +
               Frame(kData, 0, 1, "x"),  // interrupted
           Frame(kHeaders, 0, 1, "\x82") + Frame(kContinuation, 4, 3, "x"),
       }) {
    Http2FrameParser p;
    EXPECT_EQ(p.Feed(bad, &frames).code(), absl::StatusCode::kInvalidArgument)
        << testing::PrintToString(bad);
  }
}

TEST(Http2FrameParserTest, ContinuationCompletesAHeaderBlock) {
  Http2FrameParser p;
  std::vector<Http2Frame> frames;
  ASSERT_TRUE(p.Feed(Frame(kHeaders, 0, 1, "\x82") +
                         Frame(kContinuation, 0, 1, "\x84") +
                         Frame(kContinuation, kHttp2EndHeaders, 1, "\x86") +
                         Frame(kData, kHttp2EndStream, 1, "x") +
                         Frame(0xfa, 0, 7, "unknown types are ignored"),
                     &frames)
                  .ok());
  EXPECT_THAT(frames, SizeIs(5));
}

TEST(Http2FrameParserTest, ChunkShorterThanItsPrefixIsRefused) {
  Http2FrameParser p;
  std::vector<Http2Frame> frames;
  EXPECT_EQ(p.Feed("abc", 2, &frames).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Http2StreamTrackerTest,
     RequestsStartAtClientHeadersAndEndAtServerEndStream) {
  Http2StreamTracker t;
  auto client = [&](uint8_t type, uint8_t flags, uint32_t stream) {
    return t.OnFrame(DecodeHttp2FrameHeader(Frame(type, flags, stream)), true);
  };
  auto server = [&](uint8_t type, uint8_t flags, uint32_t stream) {
    return t.OnFrame(DecodeHttp2FrameHeader(Frame(type, flags, stream)), false);
  };
  EXPECT_EQ(client(kSettings, 0, 0), Http2StreamEvent::kNone);
  EXPECT_EQ(client(kHeaders, 5, 1), Http2StreamEvent::kRequestStart);
  EXPECT_EQ(client(kHeaders, 4, 3), Http2StreamEvent::kRequestStart);
  EXPECT_EQ(client(kData, 1, 3), Http2StreamEvent::kNone);
  EXPECT_EQ(client(kHeaders, 5, 3), Http2StreamEvent::kNone);  // trailers
  EXPECT_EQ(t.open_streams(), 2u);
  EXPECT_EQ(server(kHeaders, 4, 1), Http2StreamEvent::kNone);
  EXPECT_EQ(server(kData, 0, 1), Http2StreamEvent::kNone);
  EXPECT_EQ(server(kData, 1, 1), Http2StreamEvent::kResponseEnd);
  EXPECT_EQ(server(kHeaders, 5, 3), Http2StreamEvent::kResponseEnd);
  EXPECT_EQ(server(kData, 1, 9), Http2StreamEvent::kNone);  // never opened
  EXPECT_EQ(client(kHeaders, 5, 5), Http2StreamEvent::kRequestStart);
  EXPECT_EQ(client(kRst, 0, 5), Http2StreamEvent::kReset);
  EXPECT_EQ(server(kData, 1, 5), Http2StreamEvent::kNone);
  EXPECT_EQ(t.open_streams(), 0u);
  uint32_t last = 99;
  EXPECT_EQ(t.OnFrame(DecodeHttp2FrameHeader(
                          Frame(kGoaway, 0, 0, "\0\0\0\x07\0\0\0\0"s)),
                      false, &last),
            Http2StreamEvent::kGoaway);
  Http2Frame goaway;
  goaway.type = kGoaway;
  goaway.payload = "\x80\0\0\x07\0\0\0\0"s;
  EXPECT_EQ(t.OnFrame(goaway, false, &last), Http2StreamEvent::kGoaway);
  EXPECT_EQ(last, 7u);
}

}  // namespace
}  // namespace reqcost::analyzers
