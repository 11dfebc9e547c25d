#include "analyzers/exchange_tracker.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "analyzers/connection_table.h"
#include "analyzers/connections.h"
#include "analyzers/exchanges.h"
#include "analyzers/payload.h"
#include "analyzers/profiler_records.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {
namespace {

template <typename T>
void PopFront(std::vector<T>* v) {
  v->erase(v->begin());
}

bool HasType(const std::vector<FastCgiHeader>& headers, uint8_t type) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const FastCgiHeader& h) { return h.type == type; });
}

}  // namespace

// ---------------------------------------------------------------------------
// Backend links.

std::shared_ptr<Exchange> ExchangeTracker::Begin(Conn* conn, BackendLink* link,
                                                 uint32_t tid,
                                                 uint64_t start_enter,
                                                 bool partial) {
  auto ex = std::make_shared<Exchange>();
  ex->seq = next_exchange_seq_++;
  ex->tgid = conn->tgid;
  ex->tid = tid;
  ex->new_conn = conn->requests == 0 && !conn->preattach;
  ex->backend_address = BackendAddress(*conn);
  ex->link_sock = conn->sock;
  ex->partial = partial;
  ex->start_enter = start_enter;
  ex->send_offset = conn->bytes_out;
  auto& proc = queues_[conn->tgid];
  proc.last_exchange_start_ns =
      std::max(proc.last_exchange_start_ns, start_enter);
  ex->backend_traced = conn->partner.has_value();
  ++conn->requests;
  if (link->exchange) link->exchange->done = true;
  link->exchange = ex;
  // An exchange the thread begins in the turn in which it read HTTP/2
  // streams' requests is theirs; any other is a candidate for attribution.
  // A partial exchange is still attributed (so that its request is known
  // to be incomplete rather than backend-less), but never bound.
  auto turn = turns_.find({conn->tgid, tid});
  if (turn != turns_.end() && start_enter >= turn->second.read_exit) {
    turn->second.exchanges.push_back(ex);
  } else {
    queues_[conn->tgid].candidates.push_back(ex);
    PruneCandidates(conn->tgid);
  }
  if (!ex->partial) {
    link->unbound_exchanges.push_back(ex);
    if (link->unbound_exchanges.size() > kMaxQueued) {
      PopFront(&link->unbound_exchanges);
    }
    Bind(*conn, link);
  }
  return ex;
}

// Moves a backend request's start to a later read and drops what it recorded
// before (the previous request's tail).
void ExchangeTracker::StartWorkAt(BackendWork* work, uint64_t first_read_exit) {
  work->first_read_exit = first_read_exit;
  work->starts_after = 0;
  auto& sc = work->syscalls;
  sc.erase(std::remove_if(sc.begin(), sc.end(),
                          [&](const SyscallRecord& r) {
                            return r.exit_ns < first_read_exit;
                          }),
           sc.end());
}

// True when `work`'s first read returned bytes that `ex` sent, by the byte
// counts of both ends (only where both start at the connection's start and
// no events were ever dropped: a lost send shifts the counts). Such a read
// is ex's request even when stamped before ex began: a send seen at the
// socket layer is stamped when its call returns, and a backend on another
// CPU can read what it sent before that.
bool ExchangeTracker::ReadBytesOf(const Conn& link, const BackendWork& work,
                                  const Exchange& ex) {
  if (first_drop_ns_->has_value()) return false;
  if (link.preattach || !link.partner.has_value()) return false;
  const Conn* side = connections_->Paired(link);
  if (side == nullptr || side->preattach) return false;
  return work.in_end > ex.send_offset;
}

// Pairs the link's exchanges with the backend requests of its partner in
// order, skipping backend requests that began before the exchange did (and
// read none of its bytes) and exchanges whose backend request was never
// seen.
void ExchangeTracker::Bind(const Conn& conn, BackendLink* link) {
  auto& exs = link->unbound_exchanges;
  auto& works = link->unbound_work;
  while (!exs.empty() && !works.empty()) {
    const auto& w = works.front();
    if (w->first_read_exit < exs.front()->start_enter &&
        !ReadBytesOf(conn, *w, *exs.front())) {
      // Begun before the exchange: not its request, unless it has not
      // replied yet, and then what it read before the exchange began was the
      // previous request's tail (php-fpm reads the empty FCGI_STDIN record
      // after its reply): it starts with its first read after that.
      if (w->has_write) {
        ++anomalies_->unmatched_backend_work;
        PopFront(&works);
        continue;
      }
      w->starts_after = exs.front()->start_enter;
      for (const SyscallRecord& r : w->syscalls) {
        if (IsRead(r.syscall) && r.ret > 0 && r.exit_ns >= w->starts_after) {
          StartWorkAt(w.get(), r.exit_ns);
          break;
        }
      }
    }
    if (exs.size() > 1 && w->first_read_exit >= exs[1]->start_enter) {
      PopFront(&exs);  // its backend request was not seen
      continue;
    }
    exs.front()->work = w;
    PopFront(&exs);
    PopFront(&works);
  }
}

void ExchangeTracker::OnLinkEvent(Conn* conn, BackendLink* link,
                                  const SyscallEvent& e) {
  SyscallRecord rec = ToRecord(e, Side::kServer, Target::kBackendLink);
  Exchange* ex = link->exchange.get();
  if (IsWrite(e.syscall)) {
    bool may_resync = ex == nullptr || ex->has_reply;
    auto headers =
        conn->fcgi_out.Feed(e.payload, e.ret > 0 ? e.ret : 0, may_resync);
    bool begins = HasType(headers, kFcgiBeginRequest);
    bool fresh = ex != nullptr && !ex->has_send && !ex->has_reply;
    bool start_new;
    if (ex == nullptr) {
      start_new = true;
    } else if (fresh) {
      start_new = false;
    } else if (conn->fcgi_out.synced() || begins) {
      start_new = begins;
    } else {
      start_new = ex->has_reply;
    }
    if (start_new) {
      bool partial = (conn->preattach && conn->requests == 0 && !begins) ||
                     e.enter_missed();
      link->exchange = Begin(conn, link, rec.tid, rec.start_ns(), partial);
      ex = link->exchange.get();
    }
    if (!ex->has_send && !e.payload.empty()) {
      if (begins) {
        ex->protocol = "fastcgi";
      } else if (ParseHttpRequestLine(e.payload).has_value()) {
        ex->protocol = "http";
      }
    }
    if (!ex->has_send) ex->first_send_seq = e.seq();
    ex->has_send = true;
    ex->last_send_exit = rec.exit_ns;
    ex->syscalls.push_back(rec);
    return;
  }
  if (ex == nullptr) {
    if (e.syscall == Syscall::kClose) return;
    // First seen mid-exchange (opened before attach).
    link->exchange = Begin(conn, link, rec.tid, rec.start_ns(), true);
    ex = link->exchange.get();
  }
  ex->syscalls.push_back(rec);
  if (IsRead(e.syscall) && e.ret > 0) {
    ReplyRead(conn->tgid, rec.tid, *ex);  // a reply: maybe a new turn
    auto headers = conn->fcgi_in.Feed(e.payload, e.ret, !ex->has_reply);
    if (!ex->has_reply) {
      ex->has_reply = true;
      ex->first_reply_start = rec.start_ns();
      ex->first_reply_exit = rec.exit_ns;
      if (ex->has_send) ex->send_exit_before_reply = ex->last_send_exit;
    }
    if (!ex->ended) ex->last_reply_exit = rec.exit_ns;
    if (HasType(headers, kFcgiEndRequest)) {
      ex->ended = true;
      ReleaseHeld(conn->tgid, std::nullopt);
    }
  }
}

// ---------------------------------------------------------------------------
// Backend side.

// True when a read of `len` bytes on `side` after `work`'s reply returns only
// bytes its link sent before any later exchange began: the rest of work's
// request, not the next one (php-fpm reads the empty FCGI_STDIN record only
// after its reply). Only where both ends' byte counts start at the
// connection's start; a read that runs past those bytes (into the next
// exchange's, or into bytes not yet seen sent, or because a lost event
// shifted the counts) starts a new request as before. Always true once the
// paired link has closed.
bool ExchangeTracker::ContinuesWork(const Conn& side, const BackendWork& work,
                                    uint64_t len) {
  if (side.preattach || !side.partner.has_value()) return false;
  const Conn* paired = connections_->Paired(side);
  // Its link is closed: no exchange can begin on it any more, so what is
  // left to read was sent for the work already seen (nginx closes a link
  // once it has the reply, often before php-fpm reads the request's empty
  // FCGI_STDIN record).
  if (paired == nullptr) return true;
  if (paired->preattach) return false;
  uint64_t boundary = paired->bytes_out;
  const BackendLink* link = paired->link_state();
  if (link == nullptr) return side.bytes_in + len <= boundary;
  auto later = [&](const std::shared_ptr<Exchange>& ex) {
    if (ex && ex->send_offset >= work.in_end) {
      boundary = std::min(boundary, ex->send_offset);
    }
  };
  later(link->exchange);
  for (const auto& ex : link->unbound_exchanges) later(ex);
  return side.bytes_in + len <= boundary;
}

void ExchangeTracker::OnBackendSideEvent(Conn* conn, BackendSide* side,
                                         const SyscallEvent& e) {
  SyscallRecord rec = ToRecord(e, Side::kBackend, Target::kBackendSide);
  BackendWork* w = side->work.get();
  if (IsRead(e.syscall) && e.ret > 0) {
    auto headers =
        conn->fcgi_in.Feed(e.payload, e.ret, w == nullptr || w->has_write);
    bool begins = HasType(headers, kFcgiBeginRequest);
    bool start_new;
    if (w == nullptr) {
      start_new = true;
    } else if (conn->fcgi_in.synced() || begins) {
      start_new = begins;
    } else {
      start_new = w->has_write && !ContinuesWork(*conn, *w, e.ret);
    }
    if (start_new) {
      // On a connection opened before attach the first one may be the tail
      // of a request whose exchange was not seen: Bind skips it then.
      bool partial = false;
      auto work = std::make_shared<BackendWork>();
      work->tgid = conn->tgid;
      work->tid = rec.tid;
      work->fd = conn->fd;
      work->first_read_exit = rec.exit_ns;
      work->in_end = conn->bytes_in + e.ret;
      if (conn->requests == 0 && conn->accept.has_value()) {
        work->syscalls.push_back(*conn->accept);
      }
      ++conn->requests;
      side->work = work;
      w = work.get();
      auto& serving = serving_[conn->tgid];
      serving.erase(std::remove_if(serving.begin(), serving.end(),
                                   [](const std::weak_ptr<BackendWork>& s) {
                                     return s.expired();
                                   }),
                    serving.end());
      if (serving.size() >= kMaxServing) serving.erase(serving.begin());
      serving.push_back(work);
      Conn* paired = connections_->Paired(*conn);
      BackendLink* link = paired != nullptr ? paired->link_state() : nullptr;
      if (partial || link == nullptr) {
        ++anomalies_->unmatched_backend_work;
      } else {
        link->unbound_work.push_back(work);
        if (link->unbound_work.size() > kMaxQueued) {
          PopFront(&link->unbound_work);
          ++anomalies_->unmatched_backend_work;
        }
        Bind(*paired, link);
      }
    }
    if (w->starts_after != 0 && rec.exit_ns >= w->starts_after) {
      StartWorkAt(w, rec.exit_ns);
    }
    w->syscalls.push_back(rec);
    return;
  }
  if (w == nullptr) return;
  w->syscalls.push_back(rec);
  if (IsWrite(e.syscall) && !w->ended) {
    auto headers =
        conn->fcgi_out.Feed(e.payload, e.ret > 0 ? e.ret : 0, !w->has_write);
    w->has_write = true;
    w->last_write_exit = rec.exit_ns;
    if (HasType(headers, kFcgiEndRequest)) w->ended = true;
  }
}

// ---------------------------------------------------------------------------
// Attribution.

void ExchangeTracker::StopWaiting(OpenRequest* request) {
  if (!request->waiting) return;
  auto& waiting = queues_[request->tgid].waiting;
  waiting.erase(std::remove(waiting.begin(), waiting.end(), request),
                waiting.end());
  request->waiting = false;
  PruneCandidates(request->tgid);
}

void ExchangeTracker::Attribute(OpenRequest* request, uint64_t write_start) {
  auto& candidates = queues_[request->tgid].candidates;
  auto take = candidates.end();
  for (auto it = candidates.begin(); it != candidates.end(); ++it) {
    if (!CanAttribute(**it, request->last_read_exit, write_start)) continue;
    if (take == candidates.end()) take = it;
    if ((*it)->tid == request->tid) {
      take = it;  // started by the thread that read the request
      break;
    }
  }
  if (take == candidates.end()) return;
  (*take)->attributed = true;
  if (request->stream_id != 0) (*take)->stream_conn_uid = request->conn_uid;
  request->exchange = *take;
  candidates.erase(take);
}

void ExchangeTracker::Reclaim(OpenRequest* request) {
  Await(request);
  auto& proc = queues_[request->tgid];
  auto takable = [&](const std::shared_ptr<Exchange>& ex) {
    return ex->start_enter >= request->last_read_exit;
  };
  auto kept = std::stable_partition(
      proc.held.begin(), proc.held.end(),
      [&](const std::shared_ptr<Exchange>& ex) { return !takable(ex); });
  proc.candidates.insert(proc.candidates.end(),
                         std::make_move_iterator(kept),
                         std::make_move_iterator(proc.held.end()));
  proc.held.erase(kept, proc.held.end());
}

// Drops exchanges that no waiting request can take any more: a request can
// only take an exchange that started after its last request read.
void ExchangeTracker::PruneCandidates(uint32_t tgid) {
  auto& proc = queues_[tgid];
  std::optional<uint64_t> earliest;
  for (const OpenRequest* r : proc.waiting) {
    if (r->has_read) {
      earliest = std::min(earliest.value_or(UINT64_MAX), r->last_read_exit);
    }
  }
  auto& c = proc.candidates;
  auto unreachable = [&](const std::shared_ptr<Exchange>& ex) {
    return !earliest.has_value() || ex->start_enter < *earliest;
  };
  auto gone = std::stable_partition(
      c.begin(), c.end(),
      [&](const std::shared_ptr<Exchange>& ex) { return !unreachable(ex); });
  proc.held.insert(proc.held.end(), gone, c.end());
  c.erase(gone, c.end());
  if (!proc.held.empty()) ReleaseHeld(tgid, std::nullopt);
}

// ---------------------------------------------------------------------------
// Exchanges no request took.

void ExchangeTracker::MarkUnsplitFront(const Conn& conn, uint64_t at_ns) {
  auto& fronts = queues_[conn.tgid].unsplit;
  auto [it, added] = fronts.try_emplace(conn.uid);
  ProcessQueues::UnsplitFront& f = it->second;
  if (added) {
    // Opened before attach: it may have carried requests since any time.
    f.open_ns = conn.preattach ? 0 : conn.accept_exit.value_or(0);
  }
  f.last_ns = std::max(f.last_ns, at_ns);
}

void ExchangeTracker::Release(std::shared_ptr<Exchange> ex) {
  if (!ex) return;
  ex->attributed = false;
  const uint32_t tgid = ex->tgid;
  queues_[tgid].held.push_back(std::move(ex));
  ReleaseHeld(tgid, std::nullopt);
}

bool ExchangeTracker::BehindUnsplitFront(const ProcessQueues& proc,
                                         const Exchange& ex) const {
  const uint64_t ex_end = std::max(ex.start_enter, ex.last_reply_exit);
  for (const auto& entry : proc.unsplit) {
    const ProcessQueues::UnsplitFront& f = entry.second;
    const uint64_t f_end = f.closed ? f.last_ns : UINT64_MAX;
    if (ex.start_enter <= f_end && ex_end >= f.open_ns) return true;
  }
  return false;
}

void ExchangeTracker::ReleaseHeld(uint32_t tgid,
                                  std::optional<IncompleteReason> reason) {
  // Bounds what a link that never ends its exchanges can keep here.
  constexpr size_t kMaxHeld = 4096;
  auto it = queues_.find(tgid);
  if (it == queues_.end()) return;
  std::vector<std::shared_ptr<Exchange>> held;
  held.swap(it->second.held);
  std::vector<std::shared_ptr<Exchange>> keep;
  std::vector<std::pair<std::shared_ptr<Exchange>,
                        std::optional<IncompleteReason>>>
      out;
  size_t over = held.size() > kMaxHeld ? held.size() - kMaxHeld : 0;
  for (auto& ex : held) {
    const bool ready = ex->done || ex->ended;
    if (ready) {
      out.emplace_back(std::move(ex), std::nullopt);
    } else if (reason.has_value()) {
      out.emplace_back(std::move(ex), reason);
    } else if (over > 0) {
      --over;
      out.emplace_back(std::move(ex), IncompleteReason::kExchangeIncomplete);
    } else {
      keep.push_back(std::move(ex));
    }
  }
  ProcessQueues& proc = it->second;
  // Nothing was held while deciding, so the callback cannot see a half-done
  // list.
  proc.held = std::move(keep);
  for (auto& [ex, why] : out) {
    // Without a reply it was no request's exchange (a connect retried).
    if (ex->has_reply && backend_link_callback_ &&
        BehindUnsplitFront(proc, *ex)) {
      backend_link_callback_(*ex, why);
    } else {
      ++anomalies_->unattributed_exchanges;
    }
  }
  // A closed front can only cover exchanges that began before it closed:
  // once nothing is held or waiting to be taken, none will come.
  if (proc.held.empty() && proc.candidates.empty()) {
    for (auto f = proc.unsplit.begin(); f != proc.unsplit.end();) {
      f = f->second.closed ? proc.unsplit.erase(f) : std::next(f);
    }
  }
}

void ExchangeTracker::OnProcessExit(uint32_t tgid) {
  auto it = queues_.find(tgid);
  if (it == queues_.end() || it->second.held.empty()) return;
  ReleaseHeld(tgid, IncompleteReason::kProcessExited);
}

void ExchangeTracker::Flush(IncompleteReason reason) {
  std::vector<uint32_t> tgids;
  for (auto& [tgid, proc] : queues_) {
    if (!proc.held.empty() || !proc.candidates.empty()) tgids.push_back(tgid);
  }
  for (uint32_t tgid : tgids) {
    auto& proc = queues_[tgid];
    for (auto& ex : proc.candidates) {
      if (BehindUnsplitFront(proc, *ex)) proc.held.push_back(std::move(ex));
    }
    proc.candidates.clear();
    ReleaseHeld(tgid, reason);
  }
}

// ---------------------------------------------------------------------------
// Connects, pairing and closes.

bool ExchangeTracker::OnConnectRetry(const Conn& conn, BackendLink* link,
                                     const SyscallEvent& e) {
  if (conn.preattach || conn.requests != 1 || !link->exchange ||
      link->exchange->has_send || conn.sock.sock != e.sock.sock) {
    return false;
  }
  link->exchange->syscalls.push_back(
      ToRecord(e, Side::kServer, Target::kBackendLink));
  link->exchange->connect_exit = e.exit_ns;
  return true;
}

void ExchangeTracker::OnConnect(Conn* conn, BackendLink* link,
                                const SyscallEvent& e) {
  auto ex = Begin(conn, link, e.tid, e.enter_seen() ? e.enter_ns : e.exit_ns,
                  e.enter_missed());
  ex->connect_exit = e.exit_ns;
  if (e.ret != 0 && e.ret != -EINPROGRESS) ex->connect_exit.reset();
  ex->syscalls.push_back(ToRecord(e, Side::kServer, Target::kBackendLink));
  if (conn->partner.has_value()) {
    ex->backend_traced = true;
    const Conn& side = *connections_->Paired(*conn);
    if (side.accept_exit.has_value()) {
      ex->backend_accept_exit = side.accept_exit;
    }
  }
}

void ExchangeTracker::OnPaired(const Conn& conn, BackendLink* link,
                               const Conn& side) {
  if (link->exchange) {
    link->exchange->backend_traced = true;
    // Queue: the backend accepted the connection the exchange opened.
    if (link->exchange->new_conn && conn.requests == 1 &&
        side.accept_exit.has_value()) {
      link->exchange->backend_accept_exit = side.accept_exit;
    }
  }
}

void ExchangeTracker::Discard(const Conn& conn, BackendLink* link) {
  std::vector<std::shared_ptr<Exchange>> drop =
      std::move(link->unbound_exchanges);
  if (link->exchange) drop.push_back(std::move(link->exchange));
  link->exchange.reset();
  link->unbound_exchanges.clear();
  link->unbound_work.clear();
  auto dropped = [&drop](const std::shared_ptr<Exchange>& ex) {
    return std::find(drop.begin(), drop.end(), ex) != drop.end();
  };
  if (auto it = queues_.find(conn.tgid); it != queues_.end()) {
    auto& c = it->second.candidates;
    c.erase(std::remove_if(c.begin(), c.end(), dropped), c.end());
    auto& h = it->second.held;
    h.erase(std::remove_if(h.begin(), h.end(), dropped), h.end());
  }
  for (auto& [key, turn] : turns_) {
    if (key.first != conn.tgid) continue;
    auto& e = turn.exchanges;
    e.erase(std::remove_if(e.begin(), e.end(), dropped), e.end());
  }
}

void ExchangeTracker::OnClose(const Conn& conn) {
  bool done = false;
  if (const BackendLink* l = conn.link_state(); l != nullptr && l->exchange) {
    l->exchange->done = true;
    done = true;
  }
  if (const BackendLink* l = conn.link()) {
    anomalies_->unmatched_backend_work += l->unbound_work.size();
  }
  auto it = queues_.find(conn.tgid);
  if (it == queues_.end()) return;
  if (auto f = it->second.unsplit.find(conn.uid);
      f != it->second.unsplit.end()) {
    f->second.closed = true;
  }
  if (done && !it->second.held.empty()) ReleaseHeld(conn.tgid, std::nullopt);
}

// ---------------------------------------------------------------------------
// Requests waiting for their response.

void ExchangeTracker::Await(OpenRequest* request) {
  request->waiting = true;
  queues_[request->tgid].waiting.push_back(request);
}

OpenRequest* ExchangeTracker::Serving(uint32_t tgid, uint32_t tid,
                                      uint64_t at_ns) const {
  // The latest one that has read its request before `at_ns` and not yet
  // answered, read by the same thread if there is one (a threaded server
  // serves a request on one thread).
  auto it = queues_.find(tgid);
  OpenRequest* owner = nullptr;
  if (it != queues_.end()) {
    const auto& waiting = it->second.waiting;
    for (auto w = waiting.rbegin(); w != waiting.rend(); ++w) {
      if (!(*w)->has_read || (*w)->first_read_exit > at_ns) continue;
      if (owner == nullptr) owner = *w;
      if ((*w)->tid == tid) {
        owner = *w;
        break;
      }
    }
  }
  return owner;
}

BackendWork* ExchangeTracker::WorkServing(uint32_t tgid, uint32_t tid) {
  auto it = serving_.find(tgid);
  if (it == serving_.end()) return nullptr;
  BackendWork* any = nullptr;
  for (auto w = it->second.rbegin(); w != it->second.rend(); ++w) {
    std::shared_ptr<BackendWork> work = w->lock();
    if (!work || work->ended) continue;
    if (work->tid == tid) return work.get();
    if (any == nullptr) any = work.get();
  }
  return any;
}

uint64_t ExchangeTracker::last_exchange_start_ns(uint32_t tgid) {
  // A lookup must not make an entry: it would outlive the process.
  auto it = queues_.find(tgid);
  return it == queues_.end() ? 0 : it->second.last_exchange_start_ns;
}

// ---------------------------------------------------------------------------
// HTTP/2 streams.

void ExchangeTracker::StreamsRead(uint32_t tgid, uint32_t tid,
                                  uint64_t conn_uid, uint64_t read_exit,
                                  std::vector<OpenRequest*> streams) {
  ClientIo(tgid, tid, conn_uid, true);
  if (streams.empty()) return;
  StreamTurn& turn = turns_[{tgid, tid}];
  turn.conn_uid = conn_uid;
  turn.read_exit = read_exit;
  turn.streams.insert(turn.streams.end(), streams.begin(), streams.end());
}

void ExchangeTracker::ClientIo(uint32_t tgid, uint32_t tid, uint64_t conn_uid,
                               bool is_read) {
  auto it = turns_.find({tgid, tid});
  if (it == turns_.end()) return;
  const StreamTurn& turn = it->second;
  // nginx's ngx_ssl_recv and lighttpd's connection_read_cq_ssl call
  // SSL_read until it has nothing more (the last one's socket read returns
  // EAGAIN), and only then parse the frames and begin the exchanges.
  if (is_read && conn_uid == turn.conn_uid && turn.exchanges.empty()) return;
  EndTurn(tgid, tid);
}

void ExchangeTracker::ReplyRead(uint32_t tgid, uint32_t tid,
                                const Exchange& ex) {
  auto it = turns_.find({tgid, tid});
  if (it == turns_.end()) return;
  const StreamTurn& turn = it->second;
  if (turn.exchanges.empty() && ex.stream_conn_uid != 0 &&
      ex.stream_conn_uid == turn.conn_uid) {
    return;
  }
  EndTurn(tgid, tid);
}

void ExchangeTracker::EndTurn(uint32_t tgid, uint32_t tid) {
  auto it = turns_.find({tgid, tid});
  if (it == turns_.end()) return;
  StreamTurn turn = std::move(it->second);
  turns_.erase(it);
  PairTurn(&turn);
}

// The server began one exchange per stream, in stream order (nginx starts
// a stream's upstream request while it parses the stream's frames, one
// stream after the other, before it reads again): the counts must agree,
// or the payload must tell which is whose.
void ExchangeTracker::PairTurn(StreamTurn* turn) {
  auto& streams = turn->streams;
  auto& exs = turn->exchanges;
  if (exs.empty()) return;  // none has a backend exchange from this turn
  if (exs.size() == streams.size()) {
    for (size_t i = 0; i < exs.size(); ++i) {
      exs[i]->attributed = true;
      exs[i]->stream_conn_uid = streams[i]->conn_uid;
      streams[i]->exchange = exs[i];
    }
    return;
  }
  // One stream and one exchange are the only certain pairing left.
  for (OpenRequest* r : streams) r->stream_unpaired = true;
  anomalies_->unattributed_exchanges += exs.size();
}

void ExchangeTracker::ForgetStream(const OpenRequest* request) {
  auto it = turns_.find({request->tgid, request->tid});
  if (it == turns_.end()) return;
  auto& s = it->second.streams;
  s.erase(std::remove(s.begin(), s.end(), request), s.end());
}

void ExchangeTracker::ForgetProcess(uint32_t tgid) {
  serving_.erase(tgid);
  for (auto t = turns_.begin(); t != turns_.end();) {
    t = t->first.first == tgid ? turns_.erase(t) : std::next(t);
  }
  auto it = queues_.find(tgid);
  if (it == queues_.end()) return;
  // Exchanges behind a front that cannot be split are its requests; the
  // others are forgotten, as before.
  ProcessQueues& proc = it->second;
  for (auto& ex : proc.candidates) {
    if (BehindUnsplitFront(proc, *ex)) proc.held.push_back(std::move(ex));
  }
  proc.candidates.clear();
  ReleaseHeld(tgid, IncompleteReason::kProcessExited);
  proc.unsplit.clear();
  // Its requests were finalized before this, so none waits any more; the
  // whole entry goes (its tgid may come back as another process).
  if (it->second.waiting.empty()) queues_.erase(it);
}

}  // namespace reqcost::analyzers
