#include "analyzers/profiler.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analyzers/payload.h"
#include "analyzers/profiler_records.h"
#include "analyzers/profiler_state.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"

namespace reqcost::analyzers {
namespace {

constexpr int64_t kEagain = -11;
constexpr int64_t kEinprogress = -115;
constexpr size_t kMaxDropWindows = 4096;

// Clips a record's [enter, exit] into [lo, hi] (an unseen enter stays
// unseen).
void Clip(SyscallRecord* r, uint64_t lo, uint64_t hi) {
  if (r->enter_ns != 0) r->enter_ns = std::clamp(r->enter_ns, lo, hi);
  r->exit_ns = std::clamp(r->exit_ns, lo, hi);
}

}  // namespace

// ---------------------------------------------------------------------------
// Reordering.

template <typename Event>
void Profiler::State::Push(uint64_t key, const Event& event) {
  if (key < processed_ns) ++anomalies.late_events;
  if (queue.empty() || queue.back().key <= key) {
    queue.emplace_back(key, event);
  } else {
    // After every queued event with a key up to this one: arrival order
    // breaks ties.
    auto at = std::upper_bound(
        queue.begin(), queue.end(), key,
        [](uint64_t k, const Queued& q) { return k < q.key; });
    queue.emplace(at, key, event);
  }
  newest_ns = std::max(newest_ns, key);
  Drain(false);
}

void Profiler::State::Drain(bool all) {
  while (!queue.empty()) {
    const Queued& front = queue.front();
    if (!all && front.key + options.reorder_window_ns > newest_ns) break;
    processed_ns = std::max(processed_ns, front.key);
    if (const auto* e = std::get_if<SyscallEvent>(&front.item)) {
      Handle(*e);
    } else {
      const auto& p = std::get<ProcessEvent>(front.item);
      if (p.op == ProcessEvent::Op::kExit) {
        ProcessExit(p.tgid);
      } else if (!p.comm.empty()) {
        processes[p.tgid].comm = p.comm;
      }
    }
    queue.pop_front();
  }
}

// ---------------------------------------------------------------------------
// Dispatch.

void Profiler::State::Handle(const SyscallEvent& e) {
  Conn* conn = nullptr;
  if (IsAccept(e.syscall) || e.syscall == Syscall::kConnect) {
    bool accepted = IsAccept(e.syscall);
    if (accepted && e.ret < 0) return;  // nothing accepted
    int32_t fd = e.conn_fd();
    if (!accepted) {
      Conn* existing = Find(e.tgid, fd);
      // A second connect on the same socket (EINPROGRESS retry) is the same
      // connection. A connect on the fd with another socket is a new
      // connection whose fd was reused (the old one's close was lost).
      if (existing != nullptr && existing->role == Role::kLink &&
          !existing->preattach && existing->requests == 1 &&
          existing->exchange && !existing->exchange->has_send &&
          existing->sock.sock == e.sock.sock) {
        existing->exchange->syscalls.push_back(
            ToRecord(e, Side::kServer, Target::kBackendLink));
        existing->exchange->connect_exit = e.exit_ns;
        return;
      }
    }
    conn = Open(e, fd, accepted);
    // Opened while tracing: both directions start at a record boundary.
    conn->fcgi_in = FastCgiStream(true);
    conn->fcgi_out = FastCgiStream(true);
    if (accepted) {
      conn->accept = ToRecord(e, Side::kServer, Target::kClient);
      conn->accept_exit = e.exit_ns;
    }
    Classify(conn);
    if (!accepted && conn->role == Role::kLink) {
      auto ex = NewExchange(conn, e.enter_seen() ? e.enter_ns : e.exit_ns,
                            !e.enter_seen());
      ex->connect_exit = e.exit_ns;
      if (e.ret != 0 && e.ret != kEinprogress) ex->connect_exit.reset();
      ex->syscalls.push_back(ToRecord(e, Side::kServer, Target::kBackendLink));
      if (conn->partner.has_value()) {
        ex->backend_traced = true;
        Conn& side = conns.at(*conn->partner);
        if (side.accept_exit.has_value()) {
          ex->backend_accept_exit = side.accept_exit;
        }
      }
    }
    if (accepted && conn->role == Role::kBackendSide) {
      conn->accept = ToRecord(e, Side::kBackend, Target::kBackendSide);
    }
    return;
  }
  if (Settle(e)) return;
  conn = Find(e.tgid, e.fd);
  if (conn == nullptr) {
    if (e.syscall == Syscall::kClose) return;  // opened and closed unseen
    conn = Open(e, e.fd, false);
    conn->preattach = true;
    conn->preattach_reason =
        first_drop_ns.has_value() && e.exit_ns >= *first_drop_ns
            ? "connection opened before attach or while events were dropped"
            : "connection opened before attach";
    Classify(conn);
  }
  Dispatch(conn, e);
}

// An event on an open connection, by the connection's role; a close ends it.
void Profiler::State::Dispatch(Conn* conn, const SyscallEvent& e) {
  switch (conn->role) {
    case Role::kClient:
      OnClientEvent(conn, e);
      break;
    case Role::kLink:
      OnLinkEvent(conn, e);
      break;
    case Role::kBackendSide:
      OnBackendSideEvent(conn, e);
      break;
    case Role::kUnknown:
    case Role::kIgnored:
      break;
  }
  if (e.ret > 0 && IsRead(e.syscall)) conn->bytes_in += e.ret;
  if (e.ret > 0 && IsWrite(e.syscall)) conn->bytes_out += e.ret;
  if (e.syscall == Syscall::kClose) {
    if (conn->request) FinalizeRequest(conn, "");
    Close(conn);
  }
}

void Profiler::State::ProcessExit(uint32_t tgid) {
  std::vector<uint64_t> uids;
  for (const auto& [uid, conn] : conns) {
    if (conn.tgid == tgid) uids.push_back(uid);
  }
  for (uint64_t uid : uids) {
    Conn* conn = &conns.at(uid);
    if (conn->request) FinalizeRequest(conn, "process exited");
    Close(conn);
  }
  auto it = processes.find(tgid);
  if (it != processes.end()) it->second.candidates.clear();
}

// ---------------------------------------------------------------------------
// Finalization.

void Profiler::State::FinalizeRequest(Conn* conn, std::string_view reason) {
  std::unique_ptr<OpenRequest> owned = std::move(conn->request);
  OpenRequest& r = *owned;
  StopWaiting(&r);

  Request out;
  out.id = next_request_id++;
  out.pid = r.tgid;
  out.client_conn = r.first_of_conn ? ConnReuse::kNew : ConnReuse::kReused;
  out.request_line = r.request_line;
  if (reason.empty()) reason = r.partial_reason;
  if (reason.empty() && !r.has_write) reason = "no response";

  const bool accept_owned = r.accept.has_value() && r.accept->enter_seen();
  out.start_ns = accept_owned   ? r.accept->enter_ns
                 : r.has_read   ? (r.first_read_enter != 0 ? r.first_read_enter
                                                           : r.first_read_exit)
                 : (r.syscalls.empty() ? 0 : r.syscalls.front().start_ns());
  out.end_ns = r.last_write_exit;

  Exchange* ex = r.exchange.get();
  out.syscalls.reserve(
      (r.accept.has_value() ? 1 : 0) + r.syscalls.size() + r.closes.size() +
      (ex != nullptr ? ex->syscalls.size() : 0) +
      (ex != nullptr && ex->work ? ex->work->syscalls.size() : 0));
  if (r.accept.has_value()) out.syscalls.push_back(*r.accept);
  out.syscalls.insert(out.syscalls.end(), r.syscalls.begin(),
                      r.syscalls.end());
  out.syscalls.insert(out.syscalls.end(), r.closes.begin(), r.closes.end());

  if (ex != nullptr) {
    out.backend_conn = ex->new_conn ? ConnReuse::kNew : ConnReuse::kReused;
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
    Clip(&s, s.side == Side::kBackend ? backend_from : out.start_ns,
         clip_end);
  }
  std::stable_sort(out.syscalls.begin(), out.syscalls.end(),
                   [](const SyscallRecord& a, const SyscallRecord& b) {
                     return a.start_ns() < b.start_ns();
                   });
  if (reason.empty()) {
    for (const auto& [from, to] : drops) {
      if (from <= span_end && to >= out.start_ns) {
        reason = "events dropped";
        break;
      }
    }
  }

  // Backend phase inputs.
  uint64_t w_ns = 0;
  uint64_t b_ns = 0;
  if (reason.empty() && ex != nullptr) {
    if (ex->partial || !ex->has_reply) {
      reason = "backend exchange incomplete";
    } else if (ex->work) {
      if (!ex->work->has_write || ex->work->starts_after != 0) {
        reason = "backend reply not seen";
      } else {
        out.backend_timing = BackendTiming::kMeasured;
        out.backend_start_ns = ex->work->first_read_exit;
        out.backend_end_ns = ex->work->last_write_exit;
        b_ns = ex->work->last_write_exit > ex->work->first_read_exit
                   ? ex->work->last_write_exit - ex->work->first_read_exit
                   : 0;
      }
    } else if (ex->backend_traced) {
      reason = "backend events missing";
    } else if (!ex->send_exit_before_reply.has_value() ||
               ex->first_reply_enter == 0) {
      reason = "backend exchange incomplete";
    } else {
      out.backend_timing = BackendTiming::kInferred;
      out.backend_start_ns = *ex->send_exit_before_reply;
      out.backend_end_ns = ex->first_reply_enter;
      b_ns = ex->first_reply_enter > *ex->send_exit_before_reply
                 ? ex->first_reply_enter - *ex->send_exit_before_reply
                 : 0;
    }
    w_ns = ex->last_reply_exit > ex->start_enter
               ? ex->last_reply_exit - ex->start_enter
               : 0;
    out.exchange_start_ns = ex->start_enter;
    out.exchange_end_ns = ex->last_reply_exit;
    if (reason.empty() && ex->connect_exit.has_value() &&
        ex->backend_accept_exit.has_value() && ex->work) {
      out.queue_ns = *ex->backend_accept_exit > *ex->connect_exit
                         ? *ex->backend_accept_exit - *ex->connect_exit
                         : 0;
    }
  }

  if (!reason.empty()) {
    out.complete = false;
    out.incomplete_reason = std::string(reason);
    out.backend_timing = BackendTiming::kNone;
    out.queue_ns.reset();
    out.exchange_start_ns = out.exchange_end_ns = 0;
    out.backend_start_ns = out.backend_end_ns = 0;
  } else {
    // Client waits: EAGAIN read exit .. next read enter, before the response.
    uint64_t wait = 0;
    const SyscallRecord* eagain = nullptr;
    for (const SyscallRecord& s : r.syscalls) {
      if (!IsRead(s.syscall)) continue;
      if (s.start_ns() > r.first_write_start) break;
      if (eagain != nullptr && s.enter_seen() && s.enter_ns > eagain->exit_ns) {
        wait += s.enter_ns - eagain->exit_ns;
      }
      eagain = s.ret == kEagain ? &s : nullptr;
    }
    uint64_t first = r.first_read_enter;
    uint64_t t = r.last_write_exit > first ? r.last_write_exit - first : 0;
    t = t > wait ? t - wait : 0;
    if (accept_owned) t += r.accept->duration_ns();
    for (const auto& c : r.closes) t += c.duration_ns();
    out.client_wait_ns = wait;

    if (w_ns > t) {
      w_ns = t;
      ++out.clamped;
    }
    if (b_ns > w_ns) {
      b_ns = w_ns;
      ++out.clamped;
    }
    out.complete = true;
    out.total_ns = t;
    out.server_ns = t - w_ns;
    out.transport_ns = w_ns - b_ns;
    out.backend_ns = b_ns;
    if (out.clamped > 0) ++anomalies.clamped_phases;
  }
  stats.Add(out);
  if (callback) callback(out);
}

// ---------------------------------------------------------------------------
// Public API.

Profiler::Profiler(ProfilerOptions options)
    : state_(std::make_unique<State>()) {
  state_->options = options;
}

Profiler::~Profiler() = default;

void Profiler::OnProcess(const ProcessInfo& info) {
  state_->processes[info.pid].comm = info.comm;
}

void Profiler::OnProcessEvent(const ProcessEvent& event) {
  if (event.op != ProcessEvent::Op::kExit) {
    auto& p = state_->processes[event.tgid];
    if (!event.comm.empty()) p.comm = event.comm;
  }
  state_->Push(event.ts_ns, event);
}

void Profiler::OnEvent(const SyscallEvent& event) {
  state_->Push(event.exit_ns, event);
}

void Profiler::OnDrops(uint64_t from_ns, uint64_t to_ns, uint64_t count) {
  if (count == 0) return;
  if (!state_->first_drop_ns.has_value() || from_ns < *state_->first_drop_ns) {
    state_->first_drop_ns = from_ns;
  }
  auto& drops = state_->drops;
  // Forget windows that ended before every open request started.
  uint64_t oldest = state_->processed_ns;
  for (const auto& [uid, conn] : state_->conns) {
    if (conn.request && conn.request->has_read) {
      oldest = std::min(oldest, conn.request->first_read_exit);
    }
  }
  if (!state_->queue.empty()) {
    oldest = std::min(oldest, state_->queue.front().key);
  }
  drops.erase(std::remove_if(drops.begin(), drops.end(),
                             [&](const auto& d) { return d.second < oldest; }),
              drops.end());
  drops.emplace_back(from_ns, to_ns);
  if (drops.size() > kMaxDropWindows) {
    // Merge everything into one conservative window rather than forget.
    uint64_t lo = UINT64_MAX, hi = 0;
    for (const auto& [f, t] : drops) {
      lo = std::min(lo, f);
      hi = std::max(hi, t);
    }
    drops.assign(1, {lo, hi});
  }
}

void Profiler::SetRequestCallback(
    std::function<void(const Request&)> callback) {
  state_->callback = std::move(callback);
}

void Profiler::Finish(uint64_t end_ns) {
  state_->Drain(true);
  state_->processed_ns = std::max(state_->processed_ns, end_ns);
  // A connection set aside on a reused fd will not see its close any more.
  while (!state_->displaced.empty()) {
    Conn* old = state_->displaced.begin()->second;
    if (old->request) state_->FinalizeRequest(old, "close not seen");
    state_->Close(old);
  }
  std::vector<uint64_t> open;
  for (const auto& [uid, conn] : state_->conns) {
    if (conn.request) open.push_back(uid);
  }
  for (uint64_t uid : open) {
    // A request whose response was written is complete on a connection the
    // client keeps open; only one still waiting for its response or for its
    // backend exchange to finish is not.
    Conn* conn = &state_->conns.at(uid);
    const OpenRequest& r = *conn->request;
    const Exchange* ex = r.exchange.get();
    bool exchange_done = ex == nullptr || ex->ended || ex->done;
    state_->FinalizeRequest(
        conn, r.has_write && exchange_done ? "" : "still open at end");
  }
}

Report Profiler::BuildReport(const CaptureInfo& info) const {
  Report report;
  report.capture = info;
  for (const auto& [pid, p] : state_->processes) {
    std::string role = p.has_backend_side ? "backend"
                       : p.has_client     ? "server"
                                          : "other";
    report.processes.push_back({pid, p.comm, role});
  }
  state_->stats.Fill(&report);
  report.anomalies = state_->anomalies;
  return report;
}

const Anomalies& Profiler::anomalies() const { return state_->anomalies; }

}  // namespace reqcost::analyzers
