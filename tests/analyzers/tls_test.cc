#include "analyzers/tls.h"

#include <cstdint>
#include <initializer_list>
#include <utility>

#include "gtest/gtest.h"

namespace reqcost::analyzers {
namespace {

// A read's record headers: {type, length} each.
TlsRecords Records(std::initializer_list<std::pair<uint8_t, uint16_t>> recs,
                   uint8_t extra_flags = 0) {
  TlsRecords t;
  t.flags = TlsRecords::kOn | extra_flags;
  for (const auto& [type, length] : recs) {
    t.type[t.count] = type;
    t.length[t.count] = length;
    ++t.count;
  }
  return t;
}

constexpr uint8_t kCcs = kTlsChangeCipherSpec;
constexpr uint8_t kAlert = kTlsAlert;
constexpr uint8_t kHs = kTlsHandshake;
constexpr uint8_t kApp = kTlsApplicationData;

TEST(TlsConnectionTest, Tls12HandshakeEndsWithTheHandshakeRecordAfterCcs) {
  TlsConnection c;
  TlsRead ch = c.OnRead(Records({{kHs, 183}}), 10);
  EXPECT_TRUE(ch.handshake);
  EXPECT_FALSE(ch.app_data);
  EXPECT_TRUE(c.WriteIsTls(false, 0));  // ServerHello..ServerHelloDone
  TlsRead fin = c.OnRead(Records({{kHs, 37}, {kCcs, 1}, {kHs, 40}}), 20);
  EXPECT_TRUE(fin.finished);
  EXPECT_FALSE(fin.app_data);
  EXPECT_EQ(c.version(), TlsConnection::Version::k12);
  EXPECT_TRUE(c.WriteIsTls(false, 0));  // ticket, CCS, Finished
  TlsRead req = c.OnRead(Records({{kApp, 116}}), 30);
  EXPECT_TRUE(req.app_data);
  EXPECT_FALSE(req.handshake);
  EXPECT_FALSE(c.WriteIsTls(true, 0));  // the response
}

TEST(TlsConnectionTest, Tls13FirstEncryptedRecordIsTheFinished) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 220}}), 10);
  TlsRead fin = c.OnRead(Records({{kCcs, 1}, {kApp, 69}}), 20);
  EXPECT_TRUE(fin.finished);
  EXPECT_TRUE(fin.handshake);
  EXPECT_FALSE(fin.app_data);
  EXPECT_EQ(c.version(), TlsConnection::Version::k13);
  // Two session tickets, then a read that finds nothing yet.
  EXPECT_TRUE(c.WriteIsTls(false, 0));
  EXPECT_TRUE(c.WriteIsTls(false, 0));
  c.OnEmptyRead();
  TlsRead req = c.OnRead(Records({{kApp, 109}}), 40);
  EXPECT_TRUE(req.app_data);
  EXPECT_FALSE(c.WriteIsTls(true, 0));
}

TEST(TlsConnectionTest, Tls13WithoutCompatCcsAlsoEndsAtFirstEncryptedRecord) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 220}}), 10);
  EXPECT_TRUE(c.OnRead(Records({{kApp, 53}}), 20).finished);
  EXPECT_EQ(c.version(), TlsConnection::Version::k13);
}

TEST(TlsConnectionTest, HelloRetryRequestKeepsTls13) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 220}}), 10);
  c.OnRead(Records({{kCcs, 1}, {kHs, 250}}), 20);  // second ClientHello
  EXPECT_FALSE(c.handshake_done());
  EXPECT_TRUE(c.OnRead(Records({{kApp, 53}}), 30).finished);
  EXPECT_EQ(c.version(), TlsConnection::Version::k13);
}

TEST(TlsConnectionTest, FinishedAndRequestInOneReadThenTicketsThenResponse) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 220}}), 10);
  TlsRead r = c.OnRead(Records({{kCcs, 1}, {kApp, 69}, {kApp, 105}}), 20);
  EXPECT_TRUE(r.finished);
  EXPECT_TRUE(r.app_data);
  // The tickets come before the server starts its backend exchange.
  EXPECT_TRUE(c.WriteIsTls(true, 5));
  EXPECT_TRUE(c.WriteIsTls(true, 5));
  // The exchange began at 25, after the Finished read: this is the response.
  EXPECT_FALSE(c.WriteIsTls(true, 25));
  EXPECT_FALSE(c.WriteIsTls(true, 25));
}

TEST(TlsConnectionTest, EncryptedCloseNotifyIsAnAlertNotARequest) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 220}}), 10);
  c.OnRead(Records({{kCcs, 1}, {kApp, 69}}), 20);
  c.OnRead(Records({{kApp, 105}}), 30);
  TlsRead close = c.OnRead(Records({{kApp, kMaxEncryptedAlert}}), 40);
  EXPECT_TRUE(close.alert);
  EXPECT_FALSE(close.app_data);
  EXPECT_TRUE(c.WriteIsTls(false, 0));  // the server's close_notify answer
  EXPECT_FALSE(c.ServerSpokeFirst());
}

TEST(TlsConnectionTest, Tls12AlertRecordIsAnAlert) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 183}}), 10);
  c.OnRead(Records({{kHs, 37}, {kCcs, 1}, {kHs, 40}}), 20);
  TlsRead close = c.OnRead(Records({{kAlert, 26}}), 30);
  EXPECT_TRUE(close.alert);
  EXPECT_FALSE(close.app_data);
}

TEST(TlsConnectionTest, SmallRecordIsDataInTls12) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 183}}), 10);
  c.OnRead(Records({{kHs, 37}, {kCcs, 1}, {kHs, 40}}), 20);
  EXPECT_TRUE(c.OnRead(Records({{kApp, 19}}), 30).app_data);
}

TEST(TlsConnectionTest, ReadWithoutHeaderContinuesTheLastRecord) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 183}}), 10);
  EXPECT_TRUE(c.OnRead(Records({}), 11).handshake);
  c.OnRead(Records({{kCcs, 1}, {kApp, 69}}), 20);
  c.OnRead(Records({{kApp, 9000}}), 30);
  TlsRead body = c.OnRead(Records({}), 31);
  EXPECT_TRUE(body.app_data);
  EXPECT_FALSE(body.handshake);
}

TEST(TlsConnectionTest, RecordsPastTheKeptHeadersAreRequestsAfterHandshake) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 220}}), 10);
  c.OnRead(Records({{kCcs, 1}, {kApp, 69}}), 20);
  TlsRead r = c.OnRead(Records({{kApp, 18}, {kApp, 18}, {kApp, 18}, {kApp, 18}},
                               TlsRecords::kMore),
                       30);
  EXPECT_TRUE(r.app_data);
}

TEST(TlsConnectionTest, LostBoundariesMakeEveryReadData) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 220}}), 10);
  TlsRead r = c.OnRead(Records({}, TlsRecords::kLost), 20);
  EXPECT_TRUE(r.app_data);
  EXPECT_TRUE(c.lost());
  EXPECT_TRUE(c.OnRead(Records({{kHs, 5}}), 30).app_data);
}

TEST(TlsConnectionTest, ServerWriteWithNoRequestAfterTicketsIsHttp2) {
  TlsConnection c;
  c.OnRead(Records({{kHs, 220}}), 10);
  c.OnRead(Records({{kCcs, 1}, {kApp, 69}}), 20);
  EXPECT_TRUE(c.WriteIsTls(false, 0));  // ticket
  EXPECT_FALSE(c.ServerSpokeFirst()) << "still the ticket flight";
  c.OnEmptyRead();
  EXPECT_FALSE(c.WriteIsTls(false, 0));  // SETTINGS
  EXPECT_TRUE(c.ServerSpokeFirst());
}

}  // namespace
}  // namespace reqcost::analyzers
