#include "analyzers/host_join.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {
namespace {

std::string AddressText(uint16_t family, const std::array<uint8_t, 16>& addr) {
  char text[INET6_ADDRSTRLEN] = "?";
  inet_ntop(family, addr.data(), text, sizeof(text));
  return text;
}

// A request's place: capture index and request index.
using Ref = std::pair<size_t, size_t>;

// The read of `b` that holds the byte at stream position `seq`, or nullopt.
// Sequence numbers wrap: the distance is taken modulo 2^32.
std::optional<size_t> ReadHolding(const Request& b, uint32_t seq) {
  for (size_t k = 0; k < b.client_reads.size(); ++k) {
    const WireRead& r = b.client_reads[k];
    if (static_cast<uint32_t>(seq - r.seq) < r.len) return k;
  }
  return std::nullopt;
}

// Moves every time of `r` by `delta` ns (a display shift).
void Shift(Request* r, int64_t delta) {
  if (delta == 0) return;
  auto move = [delta](uint64_t* t) {
    if (*t != 0) *t = static_cast<uint64_t>(static_cast<int64_t>(*t) + delta);
  };
  move(&r->start_ns);
  move(&r->end_ns);
  move(&r->exchange_start_ns);
  move(&r->exchange_end_ns);
  move(&r->backend_start_ns);
  move(&r->backend_end_ns);
  move(&r->queue_start_ns);
  for (SyscallRecord& s : r->syscalls) {
    move(&s.enter_ns);
    move(&s.exit_ns);
  }
  for (WireRead& w : r->client_reads) move(&w.exit_ns);
}

// Folds backend request `b` (read `k` holds the exchange's first byte), of
// host `host`, into front request `q`.
void Fold(const Request& b, size_t k, const std::string& host, Request* q,
          JoinSummary* summary) {
  const uint64_t from = b.client_reads[k].exit_ns;
  uint64_t backend = b.end_ns > from ? b.end_ns - from : 0;
  const uint64_t w = q->transport_ns.value_or(0) + q->backend_ns.value_or(0);
  if (backend > w) {
    backend = w;
    ++q->clamped;
    ++summary->clamped;
  }
  q->backend_ns = backend;
  q->transport_ns = w - backend;
  q->queue_ns.reset();  // the connect and the accept are on two clocks
  q->queue_start_ns = 0;
  q->backend_timing = BackendTiming::kMeasured;
  q->backend_pid = b.pid;
  q->backend_host = host;
  // Drawn centred in the exchange: where in it the backend's work lay is
  // not known across two clocks, only how long it was.
  const uint64_t start = q->exchange_start_ns + (w - backend) / 2;
  q->backend_start_ns = start;
  q->backend_end_ns = start + backend;
  const int64_t delta =
      static_cast<int64_t>(start) - static_cast<int64_t>(from);
  for (const SyscallRecord& s : b.syscalls) {
    // Its reads before the one that holds the exchange's first byte were the
    // previous request's tail (php-fpm reads FCGI_STDIN's end late).
    if (s.exit_ns < from) continue;
    SyscallRecord moved = s;
    moved.side = Side::kBackend;
    moved.target = Target::kBackendSide;
    if (moved.enter_ns != 0) {
      moved.enter_ns = static_cast<uint64_t>(
          std::max<int64_t>(static_cast<int64_t>(moved.enter_ns) + delta,
                            static_cast<int64_t>(start)));
    }
    moved.exit_ns = static_cast<uint64_t>(std::clamp<int64_t>(
        static_cast<int64_t>(moved.exit_ns) + delta,
        static_cast<int64_t>(start), static_cast<int64_t>(start + backend)));
    q->syscalls.push_back(moved);
  }
  std::stable_sort(q->syscalls.begin(), q->syscalls.end(),
                   [](const SyscallRecord& a, const SyscallRecord& b) {
                     return a.start_ns() < b.start_ns();
                   });
}

}  // namespace

std::string ServerEndpoint(const WireTuple& t) {
  const std::string addr = AddressText(t.family, t.server_addr);
  return t.family == AF_INET6 ? absl::StrCat("[", addr, "]:", t.server_port)
                              : absl::StrCat(addr, ":", t.server_port);
}

std::string ClientAddress(const WireTuple& t) {
  return AddressText(t.family, t.client_addr);
}

JoinResult JoinHosts(std::vector<HostRequests> hosts) {
  JoinResult out;
  out.summary.captures = hosts.size();

  // Backend requests by their connection, as the accepting end saw it.
  std::map<WireTuple, std::vector<Ref>> accepted;
  for (size_t h = 0; h < hosts.size(); ++h) {
    for (size_t i = 0; i < hosts[h].requests.size(); ++i) {
      const Request& r = hosts[h].requests[i];
      if (r.client_reads.empty()) continue;
      std::optional<WireTuple> t = WireTupleOf(r.client_sock, true);
      if (t.has_value()) accepted[*t].push_back({h, i});
    }
  }

  // The endpoints fronts sent exchanges to: a request accepted on one of
  // them is a backend's, whether or not its payload showed FastCGI.
  std::set<std::tuple<uint16_t, std::array<uint8_t, 16>, uint16_t>> targets;
  for (const HostRequests& h : hosts) {
    for (const Request& q : h.requests) {
      if (!q.exchange_wire.has_value()) continue;
      targets.insert({q.exchange_wire->family, q.exchange_wire->server_addr,
                      q.exchange_wire->server_port});
    }
  }
  std::set<Ref> folded;
  // (capture, side, client address, server endpoint) -> count
  std::map<std::tuple<size_t, std::string, std::string, std::string>,
           uint64_t>
      unmatched;
  for (size_t f = 0; f < hosts.size(); ++f) {
    for (Request& q : hosts[f].requests) {
      // A backend traced in the front's own capture measured it already.
      if (!q.exchange_wire.has_value() ||
          q.backend_timing == BackendTiming::kMeasured) {
        continue;
      }
      std::optional<Ref> match;
      std::optional<size_t> read;
      auto it = accepted.find(*q.exchange_wire);
      if (it != accepted.end() && q.exchange_seq.has_value()) {
        for (const Ref& ref : it->second) {
          if (ref.first == f || folded.count(ref) != 0) continue;
          read = ReadHolding(hosts[ref.first].requests[ref.second],
                             *q.exchange_seq);
          if (read.has_value()) {
            match = ref;
            break;
          }
        }
      }
      if (!match.has_value()) {
        ++out.summary.unmatched_exchanges;
        ++unmatched[{f, "front", ClientAddress(*q.exchange_wire),
                     ServerEndpoint(*q.exchange_wire)}];
        continue;
      }
      folded.insert(*match);
      ++out.summary.matched;
      const HostRequests& bh = hosts[match->first];
      const Request& b = bh.requests[match->second];
      if (!q.complete || !b.complete || !q.backend_ns.has_value()) {
        ++out.summary.matched_incomplete;
        continue;
      }
      Fold(b, *read, bh.host, &q, &out.summary);
    }
  }

  // Backend requests no front had: on their own, as their host saw them.
  const int64_t ref_offset = hosts.empty() ? 0 : hosts[0].mono_to_wall_ns;
  for (size_t h = 0; h < hosts.size(); ++h) {
    const int64_t delta = hosts[h].mono_to_wall_ns - ref_offset;
    for (size_t i = 0; i < hosts[h].requests.size(); ++i) {
      if (folded.count({h, i}) != 0) continue;
      Request r = std::move(hosts[h].requests[i]);
      std::optional<WireTuple> t = WireTupleOf(r.client_sock, true);
      if (hosts.size() > 1 && r.complete && t.has_value() &&
          (r.origin == RequestOrigin::kBackendSide ||
           targets.count({t->family, t->server_addr, t->server_port}) != 0)) {
        {
          ++out.summary.unmatched_backend;
          ++unmatched[{h, "backend", ClientAddress(*t), ServerEndpoint(*t)}];
        }
      }
      Shift(&r, delta);
      r.id = out.requests.size() + 1;
      out.requests.push_back(std::move(r));
    }
  }

  for (const auto& [key, count] : unmatched) {
    const auto& [h, side, client, server] = key;
    out.summary.unmatched.push_back(
        {hosts[h].name, side, client, server, count});
  }
  std::stable_sort(out.summary.unmatched.begin(), out.summary.unmatched.end(),
                   [](const UnmatchedEndpoints& a, const UnmatchedEndpoints& b) {
                     return a.count > b.count;
                   });
  return out;
}

}  // namespace reqcost::analyzers
