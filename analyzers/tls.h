// What the TLS record layer of a client connection says about its reads and
// writes: which reads carry application data (HTTP requests), which are the
// handshake or alerts, and which writes belong to TLS rather than to a
// response. Fed the record headers the kernel saw (collector TlsRecords):
// no payload, no decryption.
//
// Definitions:
//
// The client's handshake ends with its Finished. In TLS 1.2 that is the
// handshake record that follows its ChangeCipherSpec (at most
// kMaxTls12Finished bytes: 16 bytes of Finished, encrypted; a longer one is
// the second ClientHello after a TLS 1.3 HelloRetryRequest); in TLS 1.3 it is
// the client's first encrypted record (outer type application_data), because
// 1.3 encrypts everything after the ServerHello. Client records before it
// are the handshake; application_data records after it are requests, except
// that in TLS 1.3 an encrypted record of at most kMaxEncryptedAlert bytes is
// an alert (close_notify: 2 bytes of alert, its content type and a 16-byte
// tag), which no HTTP request fits in. Alert records (type 21) are alerts.
//
// Server writes on the connection that belong to TLS, not to a response:
// every write before the handshake ended (its flights), and in TLS 1.3 the
// session-ticket flight: the writes that follow the read carrying the
// client's Finished before the connection's next read, unless the server
// process began a backend exchange in between (then the write is the
// response of a request that came in the same read).
//
// The handshake's cost is the server's own time in it: from the start of
// each run of handshake reads to the end of the handshake writes that answer
// it, the client's round trips excluded. It is the `tls` part of the server
// time of the connection's first request.
//
// HTTP/2 multiplexes requests on one connection, and its signs show in the
// records: the server sends its settings before any request, so a server
// write of application data on a connection that has no request open, after
// the handshake and its ticket flight, marks the connection as HTTP/2 (or
// another protocol where the server speaks first); and the client sends
// frames too short for any HTTP/1.x request (a SETTINGS acknowledgement, a
// WINDOW_UPDATE, a PING), so a read that would begin a request with only
// application_data records shorter than kMinRequestRecord marks it too
// (that covers a client whose preface came with its Finished, before the
// server's settings). Its requests are not split.
#ifndef REQCOST_ANALYZERS_TLS_H_
#define REQCOST_ANALYZERS_TLS_H_

#include <cstdint>

#include "collector/event.h"

namespace reqcost::analyzers {

// The largest record that is taken for a TLS 1.2 encrypted Finished (CBC
// with a SHA-384 MAC needs 96 bytes).
inline constexpr uint16_t kMaxTls12Finished = 128;
// The shortest application_data record that can begin an HTTP/1.x request:
// "GET / HTTP/1.0\r\n\r\n" is 18 bytes, and a record adds at least 16
// (TLS 1.3: content type and a 16-byte tag, less than any TLS 1.2 AEAD).
inline constexpr uint16_t kMinRequestRecord = 18 + 16;
// The largest TLS 1.3 record that is taken for an encrypted alert.
inline constexpr uint16_t kMaxEncryptedAlert = 19;

// What one read on a TLS connection carried.
struct TlsRead {
  bool app_data = false;   // (part of) a request
  bool handshake = false;  // handshake or change_cipher_spec records
  bool alert = false;      // close_notify or another alert
  bool finished = false;   // the client's Finished was in it
  // Its application data was only records shorter than kMinRequestRecord:
  // HTTP/2 frames if it would begin a request.
  bool short_data = false;
};

// One client connection's TLS record layer.
class TlsConnection {
 public:
  enum class Version : uint8_t { kUnknown, k12, k13 };

  // Classifies a read that returned data, given its record headers. A read
  // whose records began in an earlier read continues the last record's kind.
  TlsRead OnRead(const TlsRecords& tls, uint64_t exit_ns);
  // A read that returned no data (EAGAIN, EOF): it ends a ticket flight.
  void OnEmptyRead() { after_finished_ = false; }
  // Whether a server write at `start_ns` belongs to TLS (handshake flight or
  // session tickets) rather than to a response. `request_open`: a request
  // read since the last response; `exchange_started_ns`: the latest start
  // of a backend exchange of the server process (0: none).
  bool WriteIsTls(bool request_open, uint64_t exchange_started_ns);
  // Whether a server write made with no request since the last response
  // was finalized, outside the handshake and its ticket flight, shows that
  // the server speaks first (HTTP/2). Ask it only for such a write.
  bool ServerSpokeFirst() const;

  bool handshake_done() const { return done_; }
  Version version() const { return version_; }
  // Record boundaries were lost: reads are taken as plain data from then on.
  bool lost() const { return lost_; }

 private:
  enum class Kind : uint8_t { kNone, kHandshake, kAppData, kAlert };
  // Classifies one record header into *out; returns its kind.
  Kind OnRecord(uint8_t type, uint16_t length, TlsRead* out);

  bool done_ = false;
  bool client_ccs_ = false;  // the client sent ChangeCipherSpec
  bool lost_ = false;
  bool alert_read_ = false;  // the client sent an alert: writes answer it
  Version version_ = Version::kUnknown;
  Kind last_kind_ = Kind::kNone;  // of the last record begun
  // The latest read carried the client's Finished, and no read came since:
  // writes now are the session-ticket flight (TLS 1.3).
  bool after_finished_ = false;
  uint64_t finished_exit_ns_ = 0;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_TLS_H_
