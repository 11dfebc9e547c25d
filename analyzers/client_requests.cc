#include "analyzers/client_requests.h"

#include <memory>

#include "analyzers/payload.h"
#include "analyzers/profiler.h"
#include "analyzers/profiler_records.h"
#include "analyzers/profiler_state.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {

// ---------------------------------------------------------------------------
// Client connections.

void Profiler::State::OnClientEvent(Conn* conn, const SyscallEvent& e) {
  SyscallRecord rec = ToRecord(e, Side::kServer, Target::kClient);
  OpenRequest* r = conn->request.get();
  if (IsRead(e.syscall) && e.ret > 0) {
    if (r != nullptr && r->has_write) {
      FinalizeRequest(conn, "");
      r = nullptr;
    }
    if (r == nullptr) {
      conn->request = std::make_unique<OpenRequest>();
      r = conn->request.get();
      r->conn_uid = conn->uid;
      r->tgid = conn->tgid;
      r->first_of_conn = conn->requests == 0;
      ++conn->requests;
      if (r->first_of_conn) {
        r->accept = conn->accept;
        if (conn->preattach) r->partial_reason = conn->preattach_reason;
      }
      r->has_read = true;
      r->first_read_start = rec.start_ns();
      r->first_read_exit = rec.exit_ns;
      if (e.enter_missed() && r->partial_reason.empty()) {
        r->partial_reason = "request start not seen";
      }
      r->request_line = ParseHttpRequestLine(e.payload);
      r->waiting = true;
      processes[conn->tgid].waiting.push_back(r);
    }
    r->last_read_exit = rec.exit_ns;
    r->syscalls.push_back(rec);
    return;
  }
  if (IsRead(e.syscall)) {
    if (r == nullptr) {
      ++anomalies.stray_events;
    } else if (r->has_write) {
      r->trailing.push_back(rec);
    } else {
      r->syscalls.push_back(rec);
    }
    return;
  }
  if (IsWrite(e.syscall)) {
    if (r == nullptr) {
      if (!conn->preattach || conn->requests > 0) {
        ++anomalies.stray_events;
        return;
      }
      // The tail of a request that began before attach.
      conn->request = std::make_unique<OpenRequest>();
      r = conn->request.get();
      r->conn_uid = conn->uid;
      r->tgid = conn->tgid;
      r->first_of_conn = true;
      r->partial_reason = conn->preattach_reason;
      ++conn->requests;
    }
    if (!r->has_write) {
      r->has_write = true;
      r->first_write_start = rec.start_ns();
      if (r->has_read) Attribute(r, rec.start_ns());
      StopWaiting(r);
    }
    for (auto& t : r->trailing) r->syscalls.push_back(t);
    r->trailing.clear();
    r->syscalls.push_back(rec);
    r->last_write_exit = rec.exit_ns;
    return;
  }
  if (e.syscall == Syscall::kClose || e.syscall == Syscall::kShutdown) {
    if (r != nullptr) r->closes.push_back(rec);
  }
}

}  // namespace reqcost::analyzers
