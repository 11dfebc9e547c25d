#include "analyzers/request.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace reqcost::analyzers {

std::string_view SideName(Side side) {
  return side == Side::kServer ? "server" : "backend";
}

std::string_view TargetName(Target target) {
  switch (target) {
    case Target::kClient:
      return "client";
    case Target::kBackendLink:
      return "backend";
    case Target::kBackendSide:
      return "server";
    case Target::kNetlink:
      return "netlink";
    case Target::kDns:
      return "dns";
    case Target::kUdp:
      return "udp";
    case Target::kUnixDgram:
      return "unix-dgram";
    case Target::kSocket:
      return "socket";
    case Target::kNscd:
      return "nscd";
    case Target::kResolved:
      return "resolved";
  }
  return "?";
}

std::string_view TimingName(BackendTiming timing) {
  switch (timing) {
    case BackendTiming::kNone:
      return "none";
    case BackendTiming::kMeasured:
      return "measured";
    case BackendTiming::kInferred:
      return "inferred";
  }
  return "?";
}

std::string_view OriginName(RequestOrigin origin) {
  switch (origin) {
    case RequestOrigin::kClient:
      return "client";
    case RequestOrigin::kBackendLink:
      return "backend-link";
    case RequestOrigin::kBackendSide:
      return "backend-side";
  }
  return "client";
}

std::string_view ReuseName(ConnReuse reuse) {
  switch (reuse) {
    case ConnReuse::kNone:
      return "none";
    case ConnReuse::kNew:
      return "new";
    case ConnReuse::kReused:
      return "reused";
  }
  return "?";
}

uint64_t WallSpanNs(const Request& r) {
  uint64_t end = r.end_ns;
  for (const SyscallRecord& s : r.syscalls) end = std::max(end, s.exit_ns);
  return end > r.start_ns ? end - r.start_ns : 0;
}

std::optional<WireTuple> WireTupleOf(const SocketId& sock, bool accepted) {
  constexpr uint16_t kAfInet = 2, kAfInet6 = 10, kSockStream = 1;
  if ((sock.family != kAfInet && sock.family != kAfInet6) ||
      sock.type != kSockStream) {
    return std::nullopt;
  }
  WireTuple t;
  t.family = sock.family;
  if (accepted) {
    t.server_addr = sock.local_addr;
    t.server_port = sock.local_port;
    t.client_addr = sock.remote_addr;
    t.client_port = sock.remote_port;
  } else {
    t.client_addr = sock.local_addr;
    t.client_port = sock.local_port;
    t.server_addr = sock.remote_addr;
    t.server_port = sock.remote_port;
  }
  return t;
}

std::vector<PeerTime> CallsByPeer(const Request& r) {
  std::vector<PeerTime> out;
  for (const CallRecord& c : r.calls) {
    auto it = std::find_if(out.begin(), out.end(), [&](const PeerTime& p) {
      return p.peer == c.peer;
    });
    if (it == out.end()) {
      out.push_back({c.peer, c.protocol, 0, 0});
      it = out.end() - 1;
    }
    ++it->calls;
    it->ns += c.duration_ns();
  }
  return out;
}

uint64_t CallUnionNs(const std::vector<CallRecord>& calls) {
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  spans.reserve(calls.size());
  for (const CallRecord& c : calls) {
    if (c.end_ns > c.start_ns) spans.emplace_back(c.start_ns, c.end_ns);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t total = 0;
  uint64_t lo = 0, hi = 0;
  bool open = false;
  for (const auto& [s, e] : spans) {
    if (open && s <= hi) {
      hi = std::max(hi, e);
      continue;
    }
    if (open) total += hi - lo;
    lo = s;
    hi = e;
    open = true;
  }
  if (open) total += hi - lo;
  return total;
}

}  // namespace reqcost::analyzers
