#include "analyzers/request.h"

#include <algorithm>
#include <cstdint>
#include <string_view>

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

}  // namespace reqcost::analyzers
