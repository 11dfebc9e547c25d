// The request finalizer: the last stage. It turns a client request that
// ended (its connection moved on to the next request or closed, its process
// exited, the capture ended) into the Request as reported: its syscalls
// clipped to its span, the reason it is incomplete, else its phases
// (phases.h); adds it to the statistics and hands it to the callback. It
// keeps the windows in which the kernel dropped events (a request that
// overlaps one is incomplete). Internal to the profiler.
#ifndef REQCOST_ANALYZERS_REQUEST_FINALIZER_H_
#define REQCOST_ANALYZERS_REQUEST_FINALIZER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "analyzers/client_requests.h"
#include "analyzers/connections.h"
#include "analyzers/exchange_tracker.h"
#include "analyzers/exchanges.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/nested_requests.h"
#include "analyzers/process_table.h"
#include "analyzers/reorder_buffer.h"
#include "analyzers/report.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

class RequestFinalizer {
 public:
  // Reads late reply writes from `reorder`, process families from
  // `processes`, takes finalized requests off `exchanges`' waiting lists and
  // counts clamped phases in `anomalies`.
  RequestFinalizer(const ReorderBuffer* reorder, ProcessTable* processes,
                   ExchangeTracker* exchanges, Anomalies* anomalies)
      : reorder_(reorder),
        processes_(processes),
        exchanges_(exchanges),
        anomalies_(anomalies) {}

  // Called with every request as it is finalized.
  void SetCallback(std::function<void(const Request&)> callback) {
    callback_ = std::move(callback);
  }
  // Reports the open request of client connection `conn` (`client` is its
  // state) and closes it there: incomplete for `reason` when given, else
  // for the first reason found (profiler.h lists them), else complete.
  void Finalize(const Conn& conn, ClientConn* client,
                std::optional<IncompleteReason> reason = std::nullopt);
  // The same for `request`, one HTTP/2 stream's (or a request split from
  // decrypted bytes) of client connection `conn`.
  void FinalizeRequest(const Conn& conn, std::unique_ptr<OpenRequest> request,
                       std::optional<IncompleteReason> reason = std::nullopt);

  // Reports backend exchange `ex`, which no client request could take
  // because its process's front cannot be split, as a request of its own
  // seen from the backend link (RequestOrigin::kBackendLink): transport and
  // backend as for any exchange, server and total null (the client side
  // was not seen), its span the exchange W. Incomplete for `reason` when
  // given, else for the exchange's own reason (begun before attach, its
  // backend's side missing) or an overlapping drop window.
  void FinalizeBackendLink(const Exchange& ex,
                           std::optional<IncompleteReason> reason);

  // The kernel lost events between from_ns and to_ns. Windows that ended
  // before `oldest_ns` (no request still to be finalized started before
  // it) are forgotten.
  void AddDropWindow(uint64_t from_ns, uint64_t to_ns, uint64_t oldest_ns);
  // The start of the first drop window ever, if any.
  const std::optional<uint64_t>& first_drop_ns() const {
    return first_drop_ns_;
  }
  // The statistics of every request finalized so far (a request held for
  // pairing with a traced peer's, nested_requests.h, counts once it goes
  // on).
  const RequestStats& stats() const { return stats_; }
  // Hands on every request still held for pairing (the end of a capture).
  void FlushNested() { nested_.Flush(); }
  // Event time has reached `now_ns`: requests held too long for pairing go
  // on unpaired.
  void AdvanceNested(uint64_t now_ns) { nested_.AdvanceTo(now_ns); }

 private:
  // Makes complete request `out` one seen from the backend's side only: its
  // client connection carried FastCGI from a server that is not traced.
  static void AsBackendSide(const OpenRequest& r, Request* out);
  // A send seen at the socket layer is stamped when its call returns, which
  // can be after the peer read what it sent: a backend reply the server
  // already read may still wait in the reorder queue. Takes the writes of
  // `work`'s connection that wait there (up to kLateSendNs past what was
  // processed) into `work` now.
  void TakeQueuedReplyWrites(BackendWork* work);
  // Gives `out` the calls `work`'s thread made and, for a complete request
  // with a measured backend, its backend own time. Calls `work` could not
  // keep (kMaxCallsPerWork) are counted in unattributed_calls.
  void AddCalls(const BackendWork& work, Request* out);

  const ReorderBuffer* const reorder_;
  ProcessTable* const processes_;
  ExchangeTracker* const exchanges_;
  Anomalies* const anomalies_;

  std::function<void(const Request&)> callback_;
  RequestStats stats_;
  // Every request goes through it to the statistics and the callback.
  NestedRequests nested_{[this](Request& r) {
    stats_.Add(r);
    if (callback_) callback_(r);
  }};
  uint64_t next_request_id_ = 1;
  std::vector<std::pair<uint64_t, uint64_t>> drops_;
  // Start of the first drop window ever (drops_ forgets old windows): a
  // connection first seen after it may have had its accept dropped.
  std::optional<uint64_t> first_drop_ns_;
  // The merge buffer of SyscallRuns::SortByStart, kept between requests.
  std::vector<SyscallRecord> sort_scratch_;
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_REQUEST_FINALIZER_H_
