#include "cli/event_printer.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analyzers/payload.h"

namespace reqcost::cli {
namespace {

std::string FormatAddr(uint16_t family, const std::array<uint8_t, 16>& addr,
                       uint16_t port) {
  char text[INET6_ADDRSTRLEN] = "?";
  inet_ntop(family, addr.data(), text, sizeof(text));
  return family == AF_INET6 ? absl::StrFormat("[%s]:%d", text, port)
                            : absl::StrFormat("%s:%d", text, port);
}

std::string FormatSeconds(uint64_t ns) {
  return absl::StrFormat("%d.%06d", ns / 1000000000, (ns / 1000) % 1000000);
}

std::string FormatRet(const SyscallEvent& e) {
  if (e.ret >= 0) return absl::StrCat(e.ret);
  int err = static_cast<int>(-e.ret);
  const char* name = strerrorname_np(err);
  return absl::StrCat("-1 ", name ? name : absl::StrCat("E", err), " (",
                      std::strerror(err), ")");
}

}  // namespace

std::string FormatSocket(const SocketId& s) {
  const bool stream = s.type == SOCK_STREAM;
  switch (s.family) {
    case AF_UNIX:
      return absl::StrFormat("%s:%08x->%08x", stream ? "unix" : "unix-dgram",
                             static_cast<uint32_t>(s.sock),
                             static_cast<uint32_t>(s.peer));
    case AF_INET:
    case AF_INET6:
      return absl::StrCat(
          stream ? "" : (s.type == SOCK_DGRAM ? "udp:" : "raw:"),
          FormatAddr(s.family, s.local_addr, s.local_port), "->",
          FormatAddr(s.family, s.remote_addr, s.remote_port));
    case AF_NETLINK:
      return absl::StrFormat("netlink:%08x", static_cast<uint32_t>(s.sock));
    case AF_PACKET:
      return absl::StrFormat("packet:%08x", static_cast<uint32_t>(s.sock));
    case 0:
      return "?";
    default:
      return absl::StrFormat("family%d:%08x", s.family,
                             static_cast<uint32_t>(s.sock));
  }
}

std::string FormatTls(const TlsRecords& tls) {
  if (!tls.on()) return "";
  if ((tls.flags & TlsRecords::kLost) != 0) return " tls[lost]";
  std::string out = " tls[";
  for (int i = 0; i < tls.count && i < TlsRecords::kMax; ++i) {
    absl::StrAppend(&out, i > 0 ? " " : "", tls.type[i], ":", tls.length[i]);
  }
  if ((tls.flags & TlsRecords::kMore) != 0) absl::StrAppend(&out, " ...");
  if (tls.count == 0) absl::StrAppend(&out, "cont");
  return out + "]";
}

std::string FormatEvent(const SyscallEvent& e, const std::string& comm,
                        uint64_t origin_ns) {
  uint64_t at = e.enter_seen() ? e.enter_ns : e.exit_ns;
  std::string when = at >= origin_ns ? FormatSeconds(at - origin_ns)
                                     : "-" + FormatSeconds(origin_ns - at);
  std::string call;
  if (IsAccept(e.syscall)) {
    std::string listen = e.fd >= 0 ? absl::StrCat(e.fd) : "?";
    call = absl::StrCat(std::string(SyscallName(e.syscall)), "(", listen,
                        ") = ", FormatRet(e));
    if (e.ret >= 0) absl::StrAppend(&call, "<", FormatSocket(e.sock), ">");
  } else if (e.syscall == Syscall::kSocketpair) {
    // strace's form: the two new fds in brackets, the call's result 0.
    call = e.ret >= 0
               ? absl::StrCat("socketpair([", e.fd, ", ", e.ret, "]<",
                              FormatSocket(e.sock), ">) = 0")
               : absl::StrCat("socketpair() = ", FormatRet(e));
  } else {
    call = absl::StrCat(std::string(SyscallName(e.syscall)), "(", e.fd, "<",
                        FormatSocket(e.sock), ">) = ", FormatRet(e),
                        (e.flags & SyscallEvent::kPeek) != 0 ? " (peek)" : "",
                        FormatTls(e.tls));
  }
  std::string dur =
      e.enter_seen()
          ? absl::StrCat("<", FormatSeconds(e.exit_ns - e.enter_ns), ">")
      : e.enter_missed() ? "<started before attach>"
                         : "<duration unknown: seen at its end>";
  return absl::StrFormat("%12s %s %d/%d %s %s", when,
                         analyzers::TerminalText(comm), e.tgid, e.tid, call,
                         dur);
}

std::string FormatProcessEvent(const ProcessEvent& e, uint64_t origin_ns) {
  std::string when =
      e.ts_ns >= origin_ns ? FormatSeconds(e.ts_ns - origin_ns) : "0.000000";
  switch (e.op) {
    case ProcessEvent::Op::kFork:
      return absl::StrFormat("%12s %d forked %d (%s): traced", when,
                             e.parent_tgid, e.tgid,
                             analyzers::TerminalText(e.comm));
    case ProcessEvent::Op::kExec:
      return absl::StrFormat("%12s %d exec (%s)", when, e.tgid,
                             analyzers::TerminalText(e.comm));
    case ProcessEvent::Op::kExit:
      return absl::StrFormat("%12s %d exited (%s)", when, e.tgid,
                             analyzers::TerminalText(e.comm));
    case ProcessEvent::Op::kLeave:
      return absl::StrFormat(
          "%12s %d left the traced cgroups (%s): no longer traced", when,
          e.tgid, analyzers::TerminalText(e.comm));
  }
  return "";
}

}  // namespace reqcost::cli
