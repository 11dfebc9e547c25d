// Why a request is incomplete: one name per reason, used as the
// `reqcost_incomplete_requests_total{reason}` label, the JSON
// `incomplete_reason` and the text report's line (their texts are part of
// the stable output).
#ifndef REQCOST_ANALYZERS_INCOMPLETE_REASON_H_
#define REQCOST_ANALYZERS_INCOMPLETE_REASON_H_

#include <cstdint>
#include <string_view>

namespace reqcost::analyzers {

enum class IncompleteReason : uint8_t {
  // Its connection was first seen on a read, write or close.
  kOpenedBeforeAttach,
  // The same, on a connection first seen after events were dropped.
  kOpenedBeforeAttachOrDropped,
  // Its first data read's enter was not seen.
  kStartNotSeen,
  // Its connection carries HTTP/2 (see tls.h).
  kHttp2,
  kNoResponse,
  // A drop window overlaps it.
  kEventsDropped,
  // A client connection of a backend process (or a sibling) once events were
  // dropped: the connect that would have paired it may be among them.
  kUnpairedWhileDropped,
  kExchangeIncomplete,
  kBackendReplyNotSeen,
  kBackendEventsMissing,
  kProcessExited,
  // Its connection's fd was reused and its own close never came.
  kCloseNotSeen,
  kStillOpenAtEnd,
  // An HTTP/2 stream whose backend exchange could not be told from the
  // other streams' of the same read (definitions.md, "HTTP/2 streams").
  kStreamUnpaired,
  // An HTTP/2 stream reset (RST_STREAM) before its response ended.
  kStreamReset,
  // The HTTP/2 frame boundaries of its connection were lost.
  kHttp2FramesLost,
};

// The reason's text, as the outputs show it.
constexpr std::string_view Name(IncompleteReason reason) {
  switch (reason) {
    case IncompleteReason::kOpenedBeforeAttach:
      return "connection opened before attach";
    case IncompleteReason::kOpenedBeforeAttachOrDropped:
      return "connection opened before attach or while events were dropped";
    case IncompleteReason::kStartNotSeen:
      return "request start not seen";
    case IncompleteReason::kHttp2:
      return "HTTP/2 connection: requests not split";
    case IncompleteReason::kNoResponse:
      return "no response";
    case IncompleteReason::kEventsDropped:
      return "events dropped";
    case IncompleteReason::kUnpairedWhileDropped:
      return "connection unpaired while events were dropped";
    case IncompleteReason::kExchangeIncomplete:
      return "backend exchange incomplete";
    case IncompleteReason::kBackendReplyNotSeen:
      return "backend reply not seen";
    case IncompleteReason::kBackendEventsMissing:
      return "backend events missing";
    case IncompleteReason::kProcessExited:
      return "process exited";
    case IncompleteReason::kCloseNotSeen:
      return "close not seen";
    case IncompleteReason::kStillOpenAtEnd:
      return "still open at end";
    case IncompleteReason::kStreamUnpaired:
      return "HTTP/2 stream: backend exchange not paired";
    case IncompleteReason::kStreamReset:
      return "HTTP/2 stream reset";
    case IncompleteReason::kHttp2FramesLost:
      return "HTTP/2 frames lost";
  }
  return "unknown";
}

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_INCOMPLETE_REASON_H_
