#include "analyzers/tls.h"

#include <cstdint>

#include "collector/event.h"

namespace reqcost::analyzers {

TlsConnection::Kind TlsConnection::OnRecord(uint8_t type, uint16_t length,
                                            TlsRead* out) {
  switch (type) {
    case kTlsChangeCipherSpec:
      if (!done_) client_ccs_ = true;
      out->handshake = true;
      return Kind::kHandshake;
    case kTlsAlert:
      out->alert = true;
      return Kind::kAlert;
    case kTlsHandshake:
      out->handshake = true;
      if (!done_ && client_ccs_ && length <= kMaxTls12Finished) {
        // TLS 1.2: the encrypted Finished
        done_ = true;
        version_ = Version::k12;
        out->finished = true;
      }
      return Kind::kHandshake;
    case kTlsApplicationData:
      if (!done_) {  // TLS 1.3: the first encrypted record is the Finished
        done_ = true;
        version_ = Version::k13;
        out->finished = true;
        out->handshake = true;
        return Kind::kHandshake;
      }
      if (version_ == Version::k13 && length <= kMaxEncryptedAlert) {
        out->alert = true;
        return Kind::kAlert;
      }
      if (!out->app_data) out->short_data = true;
      if (length >= kMinRequestRecord) out->short_data = false;
      out->app_data = true;
      return Kind::kAppData;
    default:  // heartbeat, or a type no server sends
      return Kind::kNone;
  }
}

TlsRead TlsConnection::OnRead(const TlsRecords& tls, uint64_t exit_ns) {
  TlsRead out;
  after_finished_ = false;
  if (lost_ || (tls.flags & TlsRecords::kLost) != 0) {
    lost_ = true;
    out.app_data = true;
    return out;
  }
  if (tls.count == 0) {
    // The body of a record whose header came in an earlier read.
    out.handshake = last_kind_ == Kind::kHandshake;
    out.app_data = last_kind_ == Kind::kAppData;
    out.alert = last_kind_ == Kind::kAlert;
  }
  for (int i = 0; i < tls.count && i < TlsRecords::kMax; ++i) {
    last_kind_ = OnRecord(tls.type[i], tls.length[i], &out);
  }
  if ((tls.flags & TlsRecords::kMore) != 0 && done_) {
    // Records past the kept headers, after the handshake: requests.
    out.app_data = true;
    out.short_data = false;
    last_kind_ = Kind::kAppData;
  }
  if (out.alert) alert_read_ = true;
  if (out.finished) {
    after_finished_ = true;
    finished_exit_ns_ = exit_ns;
  }
  return out;
}

bool TlsConnection::WriteIsTls(bool request_open,
                               uint64_t exchange_started_ns) {
  if (!done_ || alert_read_) return true;
  if (!after_finished_) return false;
  if (request_open && exchange_started_ns > finished_exit_ns_) {
    after_finished_ = false;  // a response: the ticket flight is over
    return false;
  }
  return true;
}

bool TlsConnection::ServerSpokeFirst() const {
  return done_ && !after_finished_ && !alert_read_;
}

}  // namespace reqcost::analyzers
