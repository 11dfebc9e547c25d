// The exchange tracker: backend exchanges on backend links, backend requests
// on backend sides, the binding of one to the other, and the attribution of
// exchanges to the client requests waiting for their response (the
// definitions: exchanges.h, and "Phases" in phases.h). Internal to the
// profiler.
#ifndef REQCOST_ANALYZERS_EXCHANGE_TRACKER_H_
#define REQCOST_ANALYZERS_EXCHANGE_TRACKER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analyzers/client_requests.h"
#include "analyzers/connection_table.h"
#include "analyzers/connections.h"
#include "analyzers/exchanges.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/report.h"
#include "collector/event.h"

namespace reqcost::analyzers {

class ExchangeTracker {
 public:
  // Reads pairing from `connections`, counts unmatched work and
  // unattributed exchanges in `anomalies`, and trusts byte counts only while
  // `*first_drop_ns` is unset (no event was ever dropped).
  ExchangeTracker(ConnectionTable* connections, Anomalies* anomalies,
                  const std::optional<uint64_t>* first_drop_ns)
      : connections_(connections),
        anomalies_(anomalies),
        first_drop_ns_(first_drop_ns) {}

  // A connect that opened backend link `conn`: its first exchange begins.
  void OnConnect(Conn* conn, BackendLink* link, const SyscallEvent& e);
  // A second connect on `conn`'s socket (an EINPROGRESS retry): true when it
  // belongs to the exchange the first one began (then it is taken).
  bool OnConnectRetry(const Conn& conn, BackendLink* link,
                      const SyscallEvent& e);
  // A read, write or close on backend link `conn`.
  void OnLinkEvent(Conn* conn, BackendLink* link, const SyscallEvent& e);
  // A read, write or close on backend side `conn`.
  void OnBackendSideEvent(Conn* conn, BackendSide* side, const SyscallEvent& e);
  // Link `conn` was paired with `side`: its exchange's backend is traced.
  void OnPaired(const Conn& conn, BackendLink* link, const Conn& side);
  // `conn` closes: the exchange it carries (or carried as a link) is done.
  void OnClose(const Conn& conn);

  // `request` (its first data read seen) waits for its response.
  void Await(OpenRequest* request);
  // `request` waits no longer (it wrote its response, or is dropped or
  // finalized); exchanges no waiting request can take any more are dropped.
  void StopWaiting(OpenRequest* request);
  // At `request`'s first response write, starting at `write_start`: it
  // takes the exchange it caused, if any (exchanges.h).
  void Attribute(OpenRequest* request, uint64_t write_start);
  // `request` waits again after a write that was no response (the 101 of an
  // `Upgrade: h2c`): the exchanges held since it stopped waiting that it
  // could take (begun after its last read) become candidates again.
  void Reclaim(OpenRequest* request);
  // The request process `tgid` is serving at `at_ns` on thread `tid` (a
  // side call's owner), or null.
  OpenRequest* Serving(uint32_t tgid, uint32_t tid, uint64_t at_ns) const;
  // The backend request thread `tid` of backend process `tgid` is serving
  // (its latest one not ended, read by that thread; else the process's
  // latest not ended), or null: the owner of a call that thread makes.
  BackendWork* WorkServing(uint32_t tgid, uint32_t tid);
  // The start of `tgid`'s latest exchange (0: none).
  uint64_t last_exchange_start_ns(uint32_t tgid);
  // `tgid` exited: its unattributed exchanges are forgotten, and with no
  // request of it waiting, everything kept for it.
  void ForgetProcess(uint32_t tgid);
  // How many processes have attribution state (bounded by the live ones).
  size_t tracked_processes() const { return queues_.size(); }

  // Exchanges whose front cannot be split. An exchange no request took is
  // held until it is done (its END_REQUEST read, its link closed or moved
  // on); then, when it read a reply and overlapped in time a client
  // connection of its process that cannot be split into requests (marked
  // with MarkUnsplitFront), it is handed to the callback to become a request
  // of its own seen from the backend link; otherwise it is counted in
  // `unattributed_exchanges` as before. The callback's reason is set when
  // the exchange was handed over before it was done (process exit, end).
  using BackendLinkCallback =
      std::function<void(const Exchange&, std::optional<IncompleteReason>)>;
  void SetBackendLinkCallback(BackendLinkCallback callback) {
    backend_link_callback_ = std::move(callback);
  }
  // Client connection `conn` carries requests reqcost cannot split (an
  // HTTP/2 connection it cannot read the frames of); `at_ns` is the time of
  // its latest event. Called on each of its events.
  void MarkUnsplitFront(const Conn& conn, uint64_t at_ns);
  // An exchange a request took but cannot keep (that request was on a
  // connection that cannot be split): held like one no request took.
  void Release(std::shared_ptr<Exchange> ex);
  // The end of the events: every held exchange is decided now, one not
  // done with `reason`.
  void Flush(IncompleteReason reason);
  // `tgid` exits, before its connections are closed: its held exchanges are
  // decided now (one not done is incomplete, "process exited"), while its
  // client connections still say what they carried.
  void OnProcessExit(uint32_t tgid);
  // HTTP/2 streams (definitions.md, "HTTP/2 streams"): thread `tid` of
  // `tgid` read on client connection `conn_uid`, in one TLS call or read
  // ending at `read_exit`, the end of the requests of `streams` (in stream
  // order). While the thread's turn on that connection has begun no
  // exchange yet (the server is still in its read loop), the streams join
  // it; otherwise the previous turn ends and a new one begins. The
  // exchanges the thread begins from now until the turn ends (ClientIo,
  // ReplyRead) are the turn's streams', in order.
  void StreamsRead(uint32_t tgid, uint32_t tid, uint64_t conn_uid,
                   uint64_t read_exit, std::vector<OpenRequest*> streams);
  // Thread `tid` of `tgid` read (`is_read`) or wrote client connection
  // `conn_uid`: its turn ends, unless this is a read of the turn's own
  // connection before the turn began any exchange (the same read loop).
  void ClientIo(uint32_t tgid, uint32_t tid, uint64_t conn_uid, bool is_read);
  // Thread `tid` of `tgid` read a reply of `ex`: its turn ends, unless the
  // turn has begun no exchange yet and `ex` is an earlier stream's on the
  // turn's own connection (lighttpd serves a connection's older streams,
  // reading their replies, before it begins the new streams' exchanges in
  // the same pass).
  void ReplyRead(uint32_t tgid, uint32_t tid, const Exchange& ex);
  // Ends thread `tid`'s turn: its streams take their exchanges (or are
  // marked unpaired).
  void EndTurn(uint32_t tgid, uint32_t tid);
  // `request` (a stream's) is finalized: no turn may give it an exchange.
  void ForgetStream(const OpenRequest* request);
  // `conn` was no backend link (a socket pair's end): its exchanges and
  // queued backend work are dropped, neither attributed nor counted.
  void Discard(const Conn& conn, BackendLink* link);

 private:
  // What attribution keeps per process.
  struct ProcessQueues {
    uint64_t last_exchange_start_ns = 0;  // of its latest backend exchange
    std::vector<OpenRequest*> waiting;    // no response write yet, oldest first
    std::deque<std::shared_ptr<Exchange>> candidates;  // unattributed
    // No request took them: held until done (SetBackendLinkCallback).
    std::vector<std::shared_ptr<Exchange>> held;
    // Its client connections that cannot be split: [open_ns, last_ns]
    // (open_ns 0 when opened before attach; last_ns unbounded while open).
    // By connection uid (looked up on each of their events).
    struct UnsplitFront {
      uint64_t open_ns = 0;
      uint64_t last_ns = 0;
      bool closed = false;
    };
    std::map<uint64_t, UnsplitFront> unsplit;
  };

  // The streams whose requests one read of thread `tid` ended, and the
  // exchanges that thread began since.
  struct StreamTurn {
    uint64_t conn_uid = 0;  // the client connection its streams are on
    uint64_t read_exit = 0;
    std::vector<OpenRequest*> streams;
    std::vector<std::shared_ptr<Exchange>> exchanges;
  };
  void PairTurn(StreamTurn* turn);

  std::shared_ptr<Exchange> Begin(Conn* conn, BackendLink* link, uint32_t tid,
                                  uint64_t start_enter, bool partial);
  bool ContinuesWork(const Conn& side, const BackendWork& work, uint64_t len);
  void StartWorkAt(BackendWork* work, uint64_t first_read_exit);
  bool ReadBytesOf(const Conn& link, const BackendWork& work,
                   const Exchange& ex);
  void Bind(const Conn& conn, BackendLink* link);
  void PruneCandidates(uint32_t tgid);
  // Decides the held exchanges of `tgid` that are done (all of them when
  // `reason` is set; those not done are handed over with it).
  void ReleaseHeld(uint32_t tgid, std::optional<IncompleteReason> reason);
  // Whether `ex` overlapped a client connection of its process that cannot
  // be split.
  bool BehindUnsplitFront(const ProcessQueues& proc, const Exchange& ex) const;

  ConnectionTable* const connections_;
  Anomalies* const anomalies_;
  const std::optional<uint64_t>* const first_drop_ns_;
  uint64_t next_exchange_seq_ = 1;
  std::map<uint32_t, ProcessQueues> queues_;  // by tgid
  BackendLinkCallback backend_link_callback_;
  // Each backend process's latest backend requests (at most kMaxServing), by
  // tgid: whom a call belongs to.
  static constexpr size_t kMaxServing = 64;
  absl::flat_hash_map<uint32_t, std::vector<std::weak_ptr<BackendWork>>>
      serving_;
  std::map<std::pair<uint32_t, uint32_t>, StreamTurn> turns_;  // (tgid, tid)
};

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_EXCHANGE_TRACKER_H_
