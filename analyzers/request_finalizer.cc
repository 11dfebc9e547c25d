#include "analyzers/request_finalizer.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analyzers/client_requests.h"
#include "analyzers/connections.h"
#include "analyzers/exchanges.h"
#include "analyzers/incomplete_reason.h"
#include "analyzers/phases.h"
#include "analyzers/request.h"
#include "analyzers/syscall_runs.h"
#include "collector/event.h"

namespace reqcost::analyzers {
namespace {

// Clips a record's [enter, exit] into [lo, hi] (an unseen enter stays
// unseen).
void Clip(SyscallRecord* r, uint64_t lo, uint64_t hi) {
  if (r->enter_ns != 0) r->enter_ns = std::clamp(r->enter_ns, lo, hi);
  r->exit_ns = std::clamp(r->exit_ns, lo, hi);
}

}  // namespace

void RequestFinalizer::AddDropWindow(uint64_t from_ns, uint64_t to_ns,
                                     uint64_t oldest_ns) {
  constexpr size_t kMaxDropWindows = 4096;
  if (!first_drop_ns_.has_value() || from_ns < *first_drop_ns_) {
    first_drop_ns_ = from_ns;
  }
  drops_.erase(
      std::remove_if(drops_.begin(), drops_.end(),
                     [&](const auto& d) { return d.second < oldest_ns; }),
      drops_.end());
  drops_.emplace_back(from_ns, to_ns);
  if (drops_.size() > kMaxDropWindows) {
    // Merge everything into one conservative window rather than forget.
    uint64_t lo = UINT64_MAX, hi = 0;
    for (const auto& [f, t] : drops_) {
      lo = std::min(lo, f);
      hi = std::max(hi, t);
    }
    drops_.assign(1, {lo, hi});
  }
}

void RequestFinalizer::TakeQueuedReplyWrites(BackendWork* work) {
  constexpr uint64_t kLateSendNs = 1'000'000;
  reorder_->ForEachSyscallUpTo(
      reorder_->processed_ns() + kLateSendNs, [work](const SyscallEvent& e) {
        if (e.tgid != work->tgid || e.fd != work->fd || !IsWrite(e.syscall) ||
            e.ret <= 0) {
          return;
        }
        work->has_write = true;
        work->last_write_exit = std::max(work->last_write_exit, e.exit_ns);
      });
}

void RequestFinalizer::AsBackendSide(const OpenRequest& r, Request* out) {
  // Its client sent FastCGI: this process is a backend whose server is not
  // traced here (another host). What it did is exact; what the server and
  // the wire did is unknown.
  const uint64_t end = std::max(r.last_write_exit, r.fastcgi_begin_exit);
  out->origin = RequestOrigin::kBackendSide;
  out->backend_pid = r.tgid;
  out->backend_timing = BackendTiming::kMeasured;
  out->backend_start_ns = r.fastcgi_begin_exit;
  out->backend_end_ns = end;
  out->backend_ns = end - r.fastcgi_begin_exit;
  out->total_ns = out->backend_ns;
  out->server_ns.reset();
  out->transport_ns.reset();
  // The queue is part of transport: unknown too.
  out->queue_ns.reset();
  out->queue_start_ns = 0;
  out->tls_ns.reset();
  out->client_wait_ns = 0;
  out->clamped = 0;
}

void RequestFinalizer::AddCalls(const BackendWork& work, Request* out) {
  anomalies_->unattributed_calls += work.calls_dropped;
  // Clipped to the backend phase when it was measured (a reply read after
  // the backend wrote its own reply is not part of the request).
  const bool measured = out->complete &&
                        out->backend_timing == BackendTiming::kMeasured &&
                        out->backend_end_ns > out->backend_start_ns;
  out->calls.reserve(work.calls.size());
  for (const auto& call : work.calls) {
    CallRecord c = *call;
    if (measured) {
      c.start_ns = std::clamp(c.start_ns, out->backend_start_ns,
                              out->backend_end_ns);
      c.end_ns = std::clamp(c.end_ns, c.start_ns, out->backend_end_ns);
    }
    out->calls.push_back(std::move(c));
  }
  // The calls nearly always come in start order: sorted (with a buffer the
  // size of the calls) only when they are not.
  const auto starts_before = [](const CallRecord& a, const CallRecord& b) {
    return a.start_ns < b.start_ns;
  };
  if (!std::is_sorted(out->calls.begin(), out->calls.end(), starts_before)) {
    std::stable_sort(out->calls.begin(), out->calls.end(), starts_before);
  }
  if (measured && out->backend_ns.has_value()) {
    const uint64_t calls_ns = CallUnionNs(out->calls);
    out->backend_own_ns =
        *out->backend_ns > calls_ns ? *out->backend_ns - calls_ns : 0;
  }
}

void RequestFinalizer::Finalize(const Conn& conn, ClientConn* client,
                                std::optional<IncompleteReason> reason) {
  std::unique_ptr<OpenRequest> owned = std::move(client->request);
  if (!reason.has_value() && !owned->partial_reason.has_value() &&
      client->http2 && !client->decrypted) {
    reason = IncompleteReason::kHttp2;
  }
  if (client->http2 && !client->decrypted && owned->exchange) {
    // The exchange it took may be any stream's: it is reported on its own,
    // seen from the backend link, and this request keeps none.
    exchanges_->MarkUnsplitFront(
        conn, std::max(owned->last_write_exit, owned->last_read_exit));
    exchanges_->Release(std::move(owned->exchange));
  }
  FinalizeRequest(conn, std::move(owned), reason);
}

void RequestFinalizer::FinalizeRequest(const Conn& conn,
                                       std::unique_ptr<OpenRequest> owned,
                                       std::optional<IncompleteReason> reason) {
  OpenRequest& r = *owned;
  exchanges_->StopWaiting(&r);
  exchanges_->ForgetStream(&r);
  // The previous FastCGI request's tail, read after its reply: no request.
  if (r.fastcgi_tail && r.fastcgi_begin_exit == 0 && !r.has_write) return;

  Request out;
  out.id = next_request_id_++;
  out.pid = r.tgid;
  out.client_conn = r.first_of_conn ? ConnReuse::kNew : ConnReuse::kReused;
  out.request_line = r.request_line;
  out.client_sock = conn.sock;
  if (!reason.has_value()) reason = r.partial_reason;
  if (!reason.has_value() && r.stream_unpaired) {
    reason = IncompleteReason::kStreamUnpaired;
  }
  if (!reason.has_value() && !r.has_write) {
    reason = IncompleteReason::kNoResponse;
  }

  PhaseInput in;
  if (r.accept.has_value() && r.accept->enter_seen() && !r.accept->blocked) {
    in.accept = &*r.accept;
  }
  in.has_read = r.has_read;
  in.first_read_start = r.first_read_start;
  in.first_read_exit = r.first_read_exit;
  in.first_write_start = r.first_write_start;
  in.last_write_exit = r.last_write_exit;
  in.syscalls = r.syscalls;
  in.closes = r.closes;
  in.tls_before_ns = r.tls_before_ns.value_or(0);
  out.start_ns = RequestStartNs(in);
  out.end_ns = r.last_write_exit;

  Exchange* ex = r.exchange.get();
  out.syscalls.reserve(
      (r.accept.has_value() ? 1 : 0) + r.pre_request.size() +
      r.side_calls.size() + r.syscalls.size() + r.closes.size() +
      (ex != nullptr ? ex->syscalls.size() : 0) +
      (ex != nullptr && ex->work ? ex->work->syscalls.size() : 0));
  SyscallRuns runs;
  if (r.accept.has_value()) out.syscalls.push_back(*r.accept);
  runs.End(out.syscalls.size());
  out.syscalls.insert(out.syscalls.end(), r.pre_request.begin(),
                      r.pre_request.end());
  runs.End(out.syscalls.size());
  out.syscalls.insert(out.syscalls.end(), r.syscalls.begin(), r.syscalls.end());
  runs.End(out.syscalls.size());
  out.syscalls.insert(out.syscalls.end(), r.side_calls.begin(),
                      r.side_calls.end());
  runs.End(out.syscalls.size());
  out.syscalls.insert(out.syscalls.end(), r.closes.begin(), r.closes.end());
  runs.End(out.syscalls.size());

  if (!r.wire_reads.empty() && WireTupleOf(conn.sock, true).has_value()) {
    out.client_reads = r.wire_reads;
  }
  if (ex != nullptr) {
    out.exchange_wire = WireTupleOf(ex->link_sock, false);
    if (out.exchange_wire.has_value()) out.exchange_seq = ex->first_send_seq;
    out.backend_conn = ex->new_conn ? ConnReuse::kNew : ConnReuse::kReused;
    out.backend_address = ex->backend_address;
    out.backend_protocol = ex->protocol;
    out.syscalls.insert(out.syscalls.end(), ex->syscalls.begin(),
                        ex->syscalls.end());
    runs.End(out.syscalls.size());
    if (ex->work) {
      out.syscalls.insert(out.syscalls.end(), ex->work->syscalls.begin(),
                          ex->work->syscalls.end());
      runs.End(out.syscalls.size());
      out.backend_pid = ex->work->tgid;
    }
  }
  uint64_t span_end = out.end_ns;
  for (const auto& c : r.closes) span_end = std::max(span_end, c.exit_ns);
  // Only the part of a syscall inside the request is the request's: a
  // backend blocked in accept() or in a read on a kept connection was idle
  // before the request existed, and until the server began the exchange it
  // was waiting for the server. Without a response the end is unknown.
  const uint64_t clip_end = span_end > out.start_ns ? span_end : UINT64_MAX;
  const uint64_t backend_from =
      ex != nullptr ? std::clamp(ex->start_enter, out.start_ns, clip_end)
                    : out.start_ns;
  for (SyscallRecord& s : out.syscalls) {
    Clip(&s, s.side == Side::kBackend ? backend_from : out.start_ns, clip_end);
  }
  runs.SortByStart(&out.syscalls, &sort_scratch_);
  if (!reason.has_value()) {
    // From its owned accept's start even when the accept blocked: a lost
    // event of the connection's making (its peer's connect) lies there.
    const uint64_t span_start =
        r.accept.has_value() ? std::min(out.start_ns, r.accept->start_ns())
                             : out.start_ns;
    for (const auto& [from, to] : drops_) {
      if (from <= span_end && to >= span_start) {
        reason = IncompleteReason::kEventsDropped;
        break;
      }
    }
    // A client connection of a backend process, once events were lost: the
    // connect that would have paired it with its link may be among them.
    if (!reason.has_value() && first_drop_ns_.has_value() &&
        *first_drop_ns_ <= span_end && processes_->InBackendFamily(r.tgid)) {
      reason = IncompleteReason::kUnpairedWhileDropped;
    }
  }

  // Backend phase inputs.
  if (!reason.has_value() && ex != nullptr && ex->work && ex->has_reply &&
      !ex->work->has_write) {
    TakeQueuedReplyWrites(ex->work.get());
  }
  if (!reason.has_value() && ex != nullptr) {
    BackendPhase backend = MeasureBackend(*ex);
    reason = backend.incomplete;
    out.backend_timing = backend.timing;
    out.backend_start_ns = backend.start_ns;
    out.backend_end_ns = backend.end_ns;
    in.backend_ns = backend.backend_ns;
    in.exchange_ns = backend.exchange_ns;
    out.exchange_start_ns = ex->start_enter;
    out.exchange_end_ns = ex->last_reply_exit;
    out.queue_ns = backend.queue_ns;
    if (out.queue_ns.has_value()) out.queue_start_ns = *ex->connect_exit;
  }

  if (reason.has_value()) {
    out.complete = false;
    out.incomplete_reason = std::string(Name(*reason));
    out.backend_timing = BackendTiming::kNone;
    out.queue_ns.reset();
    out.queue_start_ns = 0;
    out.exchange_start_ns = out.exchange_end_ns = 0;
    out.backend_start_ns = out.backend_end_ns = 0;
  } else {
    RequestPhases phases = ComputePhases(in);
    out.client_wait_ns = phases.client_wait_ns;
    out.clamped = phases.clamped;
    out.complete = true;
    out.total_ns = phases.total_ns;
    out.server_ns = phases.server_ns;
    out.transport_ns = phases.transport_ns;
    out.backend_ns = phases.backend_ns;
    if (out.queue_ns.has_value() && *out.queue_ns > phases.transport_ns) {
      // Part of transport, which a clamp may have shortened.
      out.queue_ns = phases.transport_ns;
    }
    if (r.tls_before_ns.has_value()) {
      out.tls_ns = *r.tls_before_ns + r.tls_inside_ns;
    }
    if (out.clamped > 0) ++anomalies_->clamped_phases;
    if (ex == nullptr && r.fastcgi_begin_exit != 0) AsBackendSide(r, &out);
  }
  if (ex != nullptr && ex->work) AddCalls(*ex->work, &out);
  RequestPosition position;
  position.conn_uid = conn.uid;
  position.call_peer = conn.call_peer;
  if (!conn.preattach) position.first_offset = r.first_read_offset;
  position.end_offset = r.read_end_offset;
  nested_.Add(std::move(out), position);
}

// ---------------------------------------------------------------------------
// Requests seen from the backend link only.

void RequestFinalizer::FinalizeBackendLink(
    const Exchange& ex, std::optional<IncompleteReason> reason) {
  Request out;
  out.id = next_request_id_++;
  out.pid = ex.tgid;
  out.origin = RequestOrigin::kBackendLink;
  out.client_conn = ConnReuse::kNone;
  out.backend_conn = ex.new_conn ? ConnReuse::kNew : ConnReuse::kReused;
  out.backend_address = ex.backend_address;
  out.backend_protocol = ex.protocol;
  out.start_ns = ex.start_enter;
  out.end_ns = std::max(ex.start_enter, ex.last_reply_exit);
  out.syscalls = ex.syscalls;
  SyscallRuns runs;
  runs.End(out.syscalls.size());
  if (ex.work) {
    out.syscalls.insert(out.syscalls.end(), ex.work->syscalls.begin(),
                        ex.work->syscalls.end());
    runs.End(out.syscalls.size());
    out.backend_pid = ex.work->tgid;
  }
  // The request is the exchange: everything outside it is unknown.
  const uint64_t clip_end = out.end_ns > out.start_ns ? out.end_ns : UINT64_MAX;
  for (SyscallRecord& s : out.syscalls) Clip(&s, out.start_ns, clip_end);
  runs.SortByStart(&out.syscalls, &sort_scratch_);
  if (!reason.has_value()) {
    for (const auto& [from, to] : drops_) {
      if (from <= out.end_ns && to >= out.start_ns) {
        reason = IncompleteReason::kEventsDropped;
        break;
      }
    }
  }
  BackendPhase backend;
  if (!reason.has_value()) {
    if (ex.work && ex.has_reply && !ex.work->has_write) {
      TakeQueuedReplyWrites(ex.work.get());
    }
    backend = MeasureBackend(ex);
    reason = backend.incomplete;
  }
  if (reason.has_value()) {
    out.complete = false;
    out.incomplete_reason = std::string(Name(*reason));
  } else {
    out.complete = true;
    out.backend_timing = backend.timing;
    out.backend_start_ns = backend.start_ns;
    out.backend_end_ns = backend.end_ns;
    out.exchange_start_ns = ex.start_enter;
    out.exchange_end_ns = ex.last_reply_exit;
    uint64_t backend_ns = backend.backend_ns;
    if (backend_ns > backend.exchange_ns) {
      // A late-stamped reply write (phases.h): the same clamp as a client
      // request's.
      backend_ns = backend.exchange_ns;
      out.clamped = 1;
      ++anomalies_->clamped_phases;
    }
    out.backend_ns = backend_ns;
    out.transport_ns = backend.exchange_ns - backend_ns;
    out.queue_ns = backend.queue_ns;
    if (out.queue_ns.has_value() && *out.queue_ns > *out.transport_ns) {
      // Part of transport: the clamp above may have shortened it.
      out.queue_ns = out.transport_ns;
    }
    if (out.queue_ns.has_value()) out.queue_start_ns = *ex.connect_exit;
    // total and server stay null: the client side was not seen.
  }
  if (ex.work) AddCalls(*ex.work, &out);
  nested_.Add(std::move(out), RequestPosition());
}

}  // namespace reqcost::analyzers
