// A backend call connection's state (the BackendCall role of a connection,
// connections.h): the call in progress and what the connection is to.
// Internal to the profiler; CallTracker (call_tracker.h) keeps it.
#ifndef REQCOST_ANALYZERS_CALL_CONN_H_
#define REQCOST_ANALYZERS_CALL_CONN_H_

#include <memory>
#include <string>

#include "analyzers/call_protocols.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

struct CallConn {
  // The call in progress (its reply may still come), or null before the
  // first call and after its connection's process finished with it.
  std::shared_ptr<CallRecord> call;
  // The current call has read reply data: the next send begins a new one.
  bool replied = false;
  // The protocol, once recognised from bytes (then it no longer changes) or
  // from the port or path (bytes may still correct it).
  CallProtocol protocol = CallProtocol::kUnknown;
  bool protocol_from_bytes = false;
  bool sent = false;  // a send was seen on it (so a read is no greeting)
  std::string address;  // BackendAddress of the connection
  std::string peer;     // the peer's name (CallRecord::peer)
  // The peer's accepted connection (its uid) when the peer is traced and
  // that end was seen (0: not), and whether both ends were opened while
  // tracing (then byte offsets on the two ends agree).
  uint64_t peer_uid = 0;
  bool peer_offsets = false;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_CALL_CONN_H_
