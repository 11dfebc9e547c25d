#include "analyzers/nested_requests.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "analyzers/request.h"

namespace reqcost::analyzers {

bool CallServedBy(const CallRecord& call, const Request& request,
                  const RequestPosition& position) {
  if (call.send_seq.has_value() && !request.client_reads.empty()) {
    for (const WireRead& read : request.client_reads) {
      // Modulo 2^32: sequence numbers wrap.
      if (static_cast<uint32_t>(*call.send_seq - read.seq) < read.len) {
        return true;
      }
    }
    return false;
  }
  return call.offset_valid && position.first_offset.has_value() &&
         *position.first_offset <= call.send_offset &&
         call.send_offset < position.end_offset;
}

void LinkNested(const Request& caller, size_t index, CallRecord* call,
                Request* nested) {
  call->nested_id = nested->id;
  Request::NestedIn in;
  in.request_id = caller.id;
  in.call = index;
  in.exchange_wire = caller.exchange_wire;
  in.exchange_seq = caller.exchange_seq;
  nested->nested_in = in;
  if (!nested->complete || !nested->total_ns.has_value()) return;
  const uint64_t call_ns = call->duration_ns();
  call->peer_capped = *nested->total_ns > call_ns;
  call->peer_ns = std::min(*nested->total_ns, call_ns);
  call->transport_ns = call_ns - *call->peer_ns;
  call->nested_server_ns = nested->server_ns;
  call->nested_transport_ns = nested->transport_ns;
  call->nested_backend_ns = nested->backend_ns;
}

void NestedRequests::Add(Request request, const RequestPosition& position) {
  now_ns_ = std::max(now_ns_, request.end_ns);
  bool paired_calls = false;
  for (const CallRecord& c : request.calls) {
    paired_calls = paired_calls || c.peer_conn != 0;
  }
  if (!paired_calls && !position.call_peer) {
    emit_(request);  // the common case: nothing to wait for
    Expire();
    return;
  }
  const uint64_t token = next_token_++;
  Held& h = held_[token];
  h.request = std::move(request);
  h.position = position;
  h.since_ns = now_ns_;
  std::vector<uint64_t> ready;
  // As a caller: each paired call's request, if it came first.
  for (size_t i = 0; i < h.request.calls.size(); ++i) {
    CallRecord& c = h.request.calls[i];
    if (c.peer_conn == 0) continue;
    bool found = false;
    auto [lo, hi] = served_.equal_range(c.peer_conn);
    for (auto it = lo; it != hi; ++it) {
      Held& n = held_.at(it->second);
      if (!CallServedBy(c, n.request, n.position)) continue;
      LinkNested(h.request, i, &c, &n.request);
      n.for_call = false;
      if (n.waiting == 0) ready.push_back(it->second);
      served_.erase(it);
      found = true;
      break;
    }
    if (!found) {
      wants_.emplace(c.peer_conn, Want{token, i});
      ++h.waiting;
    }
  }
  // As the request that served a call, if the call came first.
  if (position.call_peer) {
    bool found = false;
    auto [lo, hi] = wants_.equal_range(position.conn_uid);
    for (auto it = lo; it != hi; ++it) {
      if (it->second.token == token) continue;
      Held& caller = held_.at(it->second.token);
      CallRecord& c = caller.request.calls[it->second.call];
      if (!CallServedBy(c, h.request, position)) continue;
      LinkNested(caller.request, it->second.call, &c, &h.request);
      if (--caller.waiting == 0) ready.push_back(it->second.token);
      wants_.erase(it);
      found = true;
      break;
    }
    if (!found) {
      h.for_call = true;
      served_.emplace(position.conn_uid, token);
    }
  }
  if (h.waiting == 0 && !h.for_call) ready.push_back(token);
  std::sort(ready.begin(), ready.end());
  for (uint64_t t : ready) {
    auto it = held_.find(t);
    if (it != held_.end() && it->second.waiting == 0 && !it->second.for_call) {
      Release(t);
    }
  }
  Expire();
}

void NestedRequests::Release(uint64_t token) {
  auto it = held_.find(token);
  if (it == held_.end()) return;
  // What still waits goes on unpaired.
  for (auto w = wants_.begin(); w != wants_.end();) {
    w = w->second.token == token ? wants_.erase(w) : std::next(w);
  }
  for (auto s = served_.begin(); s != served_.end();) {
    s = s->second == token ? served_.erase(s) : std::next(s);
  }
  Request request = std::move(it->second.request);
  held_.erase(it);
  emit_(request);
}

void NestedRequests::Expire() {
  while (!held_.empty() &&
         (held_.size() > kMaxHeldRequests ||
          held_.begin()->second.since_ns + kNestWaitNs < now_ns_)) {
    Release(held_.begin()->first);
  }
}

void NestedRequests::AdvanceTo(uint64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  Expire();
}

void NestedRequests::Flush() {
  while (!held_.empty()) Release(held_.begin()->first);
}

}  // namespace reqcost::analyzers
