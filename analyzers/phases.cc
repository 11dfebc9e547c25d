#include "analyzers/phases.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/types/span.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {
uint64_t RequestStartNs(const PhaseInput& in) {
  return in.accept != nullptr ? in.accept->enter_ns
         : in.has_read
             ? in.first_read_start
             : (in.syscalls.empty() ? 0 : in.syscalls.front().start_ns());
}

uint64_t ClientWaitNs(absl::Span<const SyscallRecord> syscalls,
                      uint64_t first_write_start) {
  // Client waits: EAGAIN read exit .. next read enter, before the response.
  uint64_t wait = 0;
  const SyscallRecord* eagain = nullptr;
  for (const SyscallRecord& s : syscalls) {
    if (!IsRead(s.syscall)) continue;
    if (s.start_ns() > first_write_start) break;
    if (eagain != nullptr && s.start_ns() > eagain->exit_ns) {
      wait += s.start_ns() - eagain->exit_ns;
    }
    eagain = s.ret == -EAGAIN ? &s : nullptr;
  }
  return wait;
}

RequestPhases ComputePhases(const PhaseInput& in) {
  RequestPhases out;
  uint64_t wait = ClientWaitNs(in.syscalls, in.first_write_start);
  uint64_t first = in.first_read_start;
  uint64_t t = in.last_write_exit > first ? in.last_write_exit - first : 0;
  t = t > wait ? t - wait : 0;
  if (in.accept != nullptr) t += in.accept->duration_ns();
  t += in.tls_before_ns;
  for (const auto& c : in.closes) t += c.duration_ns();
  out.client_wait_ns = wait;

  uint64_t w_ns = in.exchange_ns;
  uint64_t b_ns = in.backend_ns;
  if (w_ns > t) {
    w_ns = t;
    ++out.clamped;
  }
  if (b_ns > w_ns) {
    b_ns = w_ns;
    ++out.clamped;
  }
  out.total_ns = t;
  out.server_ns = t - w_ns;
  out.transport_ns = w_ns - b_ns;
  out.backend_ns = b_ns;
  return out;
}

BackendPhase MeasureBackend(const Exchange& ex) {
  BackendPhase out;
  if (ex.partial || !ex.has_reply) {
    out.incomplete = IncompleteReason::kExchangeIncomplete;
  } else if (ex.work) {
    if (!ex.work->has_write || ex.work->starts_after != 0) {
      out.incomplete = IncompleteReason::kBackendReplyNotSeen;
    } else {
      out.timing = BackendTiming::kMeasured;
      out.start_ns = ex.work->first_read_exit;
      out.end_ns = ex.work->last_write_exit;
      out.backend_ns = ex.work->last_write_exit > ex.work->first_read_exit
                           ? ex.work->last_write_exit - ex.work->first_read_exit
                           : 0;
    }
  } else if (ex.backend_traced) {
    out.incomplete = IncompleteReason::kBackendEventsMissing;
  } else if (!ex.send_exit_before_reply.has_value()) {
    out.incomplete = IncompleteReason::kExchangeIncomplete;
  } else {
    out.timing = BackendTiming::kInferred;
    out.start_ns = *ex.send_exit_before_reply;
    out.end_ns = ex.first_reply_start;
    out.backend_ns = ex.first_reply_start > *ex.send_exit_before_reply
                         ? ex.first_reply_start - *ex.send_exit_before_reply
                         : 0;
  }
  out.exchange_ns = ex.last_reply_exit > ex.start_enter
                        ? ex.last_reply_exit - ex.start_enter
                        : 0;
  if (out.incomplete.has_value()) {
    out.incomplete_reason = Name(*out.incomplete);
  } else if (ex.connect_exit.has_value() &&
             ex.backend_accept_exit.has_value() && ex.work) {
    out.queue_ns = *ex.backend_accept_exit > *ex.connect_exit
                       ? *ex.backend_accept_exit - *ex.connect_exit
                       : 0;
  }
  return out;
}

}  // namespace reqcost::analyzers
