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

void RequestFinalizer::Finalize(const Conn& conn, ClientConn* client,
                                std::optional<IncompleteReason> reason) {
  std::unique_ptr<OpenRequest> owned = std::move(client->request);
  if (!reason.has_value() && !owned->partial_reason.has_value() &&
      client->http2 && !client->decrypted) {
    reason = IncompleteReason::kHttp2;
  }
  FinalizeRequest(conn, std::move(owned), reason);
}

void RequestFinalizer::FinalizeRequest(const Conn& conn,
                                       std::unique_ptr<OpenRequest> owned,
                                       std::optional<IncompleteReason> reason) {
  OpenRequest& r = *owned;
  exchanges_->StopWaiting(&r);
  exchanges_->ForgetStream(&r);

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
  if (r.accept.has_value()) out.syscalls.push_back(*r.accept);
  out.syscalls.insert(out.syscalls.end(), r.pre_request.begin(),
                      r.pre_request.end());
  out.syscalls.insert(out.syscalls.end(), r.syscalls.begin(), r.syscalls.end());
  out.syscalls.insert(out.syscalls.end(), r.side_calls.begin(),
                      r.side_calls.end());
  out.syscalls.insert(out.syscalls.end(), r.closes.begin(), r.closes.end());

  if (ex != nullptr) {
    out.backend_conn = ex->new_conn ? ConnReuse::kNew : ConnReuse::kReused;
    out.backend_address = ex->backend_address;
    out.backend_protocol = ex->protocol;
    out.syscalls.insert(out.syscalls.end(), ex->syscalls.begin(),
                        ex->syscalls.end());
    if (ex->work) {
      out.syscalls.insert(out.syscalls.end(), ex->work->syscalls.begin(),
                          ex->work->syscalls.end());
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
  std::stable_sort(out.syscalls.begin(), out.syscalls.end(),
                   [](const SyscallRecord& a, const SyscallRecord& b) {
                     return a.start_ns() < b.start_ns();
                   });
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
    if (r.tls_before_ns.has_value()) {
      out.tls_ns = *r.tls_before_ns + r.tls_inside_ns;
    }
    if (out.clamped > 0) ++anomalies_->clamped_phases;
  }
  stats_.Add(out);
  if (callback_) callback_(out);
}

}  // namespace reqcost::analyzers
