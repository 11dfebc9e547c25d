// Nested requests: a backend's call to a peer that is itself traced (a PHP
// page calling another traced service over HTTP or FastCGI) is paired with
// the peer's request that served it, which stays a request of its own
// (docs/definitions.md, "Nested requests"). Internal to the profiler.
//
// The call's connection and the peer's accepted connection are paired by
// socket identity (ConnectionTable::PairCall). On that connection the call
// is served by the peer's request whose reads hold the call's first sent
// byte: by TCP sequence number where both ends carry it (kTcpSeq), else by
// byte offset when both ends were opened while tracing (their byte counts
// agree). A call and its request are finalized in either order (the peer's
// request on a kept connection ends only when its next one begins), so the
// first of the two to be finalized is held until the other comes, at most
// kNestWaitNs of event time (the latest end of a finalized request) and
// kMaxHeldRequests at once; then it goes on unpaired. The pairing writes
// into both: the call gets the nested request's id, peer time and
// transport (CallRecord), the nested request its caller (Request::nested_in).
#ifndef REQCOST_ANALYZERS_NESTED_REQUESTS_H_
#define REQCOST_ANALYZERS_NESTED_REQUESTS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>

#include "analyzers/request.h"

namespace reqcost::analyzers {

inline constexpr uint64_t kNestWaitNs = 10'000'000'000;
inline constexpr size_t kMaxHeldRequests = 4096;

// Where a finalized request's bytes lay on its client connection.
struct RequestPosition {
  uint64_t conn_uid = 0;
  // Its connection's other end is a traced backend's call connection.
  bool call_peer = false;
  // Byte offsets of its first read's first byte and past its last read
  // (set when its connection was opened while tracing).
  std::optional<uint64_t> first_offset;
  uint64_t end_offset = 0;
};

// Whether `call`'s first sent byte is among the bytes `request` read at
// `position`: by TCP sequence number when both carry one, else by offset
// when both offsets are valid.
bool CallServedBy(const CallRecord& call, const Request& request,
                  const RequestPosition& position);

// Links `call` (call number `index` of `caller`) with `nested`, the peer's
// request that served it: the call's nested fields, the request's
// nested_in. Peer time and transport only when `nested` is complete.
void LinkNested(const Request& caller, size_t index, CallRecord* call,
                Request* nested);

class NestedRequests {
 public:
  // `emit` takes each request when it goes on (paired, or not to be).
  explicit NestedRequests(std::function<void(Request&)> emit)
      : emit_(std::move(emit)) {}

  // A finalized request, at `position` on its client connection: emitted
  // now, or held until its calls' nested requests or its caller come.
  void Add(Request request, const RequestPosition& position);
  // Event time has reached `now_ns` (an idle stack finalizes nothing):
  // requests held longer than kNestWaitNs go on unpaired.
  void AdvanceTo(uint64_t now_ns);
  // Emits every request still held, in the order they were added.
  void Flush();
  // Requests held now.
  size_t held() const { return held_.size(); }

 private:
  struct Held {
    Request request;
    RequestPosition position;
    uint64_t since_ns = 0;
    size_t waiting = 0;      // its calls still waiting for their request
    bool for_call = false;   // waiting for the call it served
  };
  struct Want {
    uint64_t token = 0;  // the held caller
    size_t call = 0;
  };
  void Release(uint64_t token);
  void Expire();

  std::function<void(Request&)> emit_;
  uint64_t next_token_ = 1;
  uint64_t now_ns_ = 0;
  std::map<uint64_t, Held> held_;  // by token: the order added
  // Calls waiting for their nested request, by the peer's connection uid.
  std::multimap<uint64_t, Want> wants_;
  // Requests waiting for their call, by connection uid.
  std::multimap<uint64_t, uint64_t> served_;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_NESTED_REQUESTS_H_
