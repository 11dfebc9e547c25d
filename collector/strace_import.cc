// The importer half of the strace import: the lexer
// (collector/strace_lexer.h) hands it each line's parts, and it keeps what
// the lines mean together: processes and threads, calls pending between
// their unfinished and resumed lines, sockets and their identities.
#include "collector/strace_import.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "collector/event.h"
#include "collector/strace_lexer.h"

namespace reqcost::collector {
namespace {

constexpr uint64_t kNsPerDay = uint64_t{86'400} * 1'000'000'000;
constexpr size_t kCommMax = 15;  // TASK_COMM_LEN - 1, as the kernel keeps it
constexpr uint16_t kSockStream = SOCK_STREAM;
constexpr uint16_t kSockDgram = SOCK_DGRAM;

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Whether `id` says who the socket is talking to.
bool HasPeer(const SocketId& id) {
  if (id.family == AF_UNIX) return id.peer != 0;
  if (id.family == AF_INET || id.family == AF_INET6) return id.remote_port != 0;
  return false;
}

std::optional<Syscall> TracedSyscall(std::string_view name) {
  if (name == "sendfile64") return Syscall::kSendfile;
  return SyscallFromName(name);
}

}  // namespace

struct StraceImporter::State {
  // A call started and not yet resumed.
  struct Pending {
    std::string name;
    uint64_t ts_ns = 0;
    std::string args;
  };
  // What is known of an fd without -yy.
  struct FdInfo {
    uint16_t family = 0;  // 0: a stream socket (identity unknown)
    uint16_t type = 0;
  };

  StraceImportStats stats;
  std::vector<SyscallEvent> events;
  std::vector<ProcessEvent> process_events;

  // Current file.
  std::string file;
  std::optional<uint32_t> file_pid;
  uint64_t line_no = 0;
  std::optional<std::string> held;  // the last line, until we know it ended
  uint64_t day_ns = 0;              // -tt: midnights passed in this file
  uint64_t last_tod_ns = 0;

  std::map<uint32_t, uint32_t> tgid_of;  // tid -> tgid
  std::map<uint32_t, ProcessInfo> procs;
  std::set<uint32_t> forked;            // tgids whose creation is in the log
  std::map<uint32_t, Pending> pending;  // by tid
  std::map<std::pair<uint32_t, int32_t>, FdInfo> fds;  // without -yy
  // A connect's event index by (tgid, fd), until a later call on the fd
  // shows the connected socket's identity.
  std::map<std::pair<uint32_t, int32_t>, size_t> connects;

  void Malformed() {
    ++stats.malformed;
    if (stats.malformed_samples.size() < StraceImportStats::kMaxSamples) {
      stats.malformed_samples.push_back(absl::StrCat(file, ":", line_no));
    }
  }

  uint32_t Tgid(uint32_t tid) {
    auto it = tgid_of.find(tid);
    if (it != tgid_of.end()) return it->second;
    tgid_of[tid] = tid;
    ProcessInfo& p = procs[tid];
    p.pid = tid;
    return tid;
  }

  void Line(std::string_view line);
  void Call(uint32_t tid, std::string_view name, uint64_t enter_ns,
            std::optional<uint64_t> exit_ns, std::string_view args,
            const std::optional<StraceResult>& result);
  void ProcessCall(uint32_t tgid, std::string_view name, uint64_t exit_ns,
                   std::string_view args, const StraceResult& r);
  void SocketCall(uint32_t tid, uint32_t tgid, Syscall sc, uint64_t enter_ns,
                  uint64_t exit_ns, bool timed, std::string_view args,
                  const StraceResult& r);
  void Backfill(uint32_t tgid, int32_t fd, const SocketId& id);
  StraceImport Finish();
};

void StraceImporter::State::Line(std::string_view text) {
  ++stats.lines;
  const StraceLine line = LexStraceLine(text);
  if (line.kind == StraceLine::Kind::kInfo) {
    ++stats.info_lines;
    return;
  }
  if (line.kind == StraceLine::Kind::kMalformed) {
    Malformed();
    return;
  }
  uint32_t tid = 0;
  if (line.pid.has_value()) {
    tid = *line.pid;
  } else if (file_pid.has_value()) {
    tid = *file_pid;
  } else {
    ++stats.no_pid_lines;
  }
  uint64_t ts = line.ts_ns;
  if (line.time_format == StraceTimeFormat::kTimeOfDay) {
    stats.wall_clock = true;
    // Lines are in time order within a file: a step back of more than half
    // a day is midnight.
    if (ts + kNsPerDay / 2 < last_tod_ns) day_ns += kNsPerDay;
    last_tod_ns = ts;
    ts += day_ns;
  }
  uint32_t tgid = Tgid(tid);
  if (!line.comm.empty() && (tid == tgid || procs[tgid].comm.empty())) {
    procs[tgid].comm = std::string(line.comm.substr(0, kCommMax));
  }

  switch (line.kind) {
    case StraceLine::Kind::kInfo:
    case StraceLine::Kind::kMalformed:
    case StraceLine::Kind::kBadCall:
      Malformed();
      return;
    case StraceLine::Kind::kSignal:
      ++stats.signals;
      return;
    case StraceLine::Kind::kExit:
      ++stats.exits;
      if (tid == tgid && line.process_ended) {
        ProcessEvent pe;
        pe.op = ProcessEvent::Op::kExit;
        pe.tgid = tgid;
        pe.parent_tgid = procs[tgid].ppid;
        pe.ts_ns = ts;
        pe.comm = procs[tgid].comm;
        process_events.push_back(std::move(pe));
      }
      return;
    case StraceLine::Kind::kResumed: {
      auto it = pending.find(tid);
      if (it == pending.end() || it->second.name != line.name) {
        // Its start was before the log (or lost): timed from its duration.
        ++stats.orphan_resumed;
        if (!line.result.has_value()) {
          Malformed();
          return;
        }
        uint64_t dur = line.result->dur_ns.value_or(0);
        Call(tid, line.name, ts >= dur ? ts - dur : 0, ts, line.args,
             line.result);
        return;
      }
      Pending p = std::move(it->second);
      pending.erase(it);
      std::string args = p.args + std::string(line.args);
      Call(tid, line.name, p.ts_ns, ts, args, line.result);
      return;
    }
    case StraceLine::Kind::kDetached:
      // It never ends in the log.
      if (TracedSyscall(line.name).has_value()) ++stats.unfinished;
      return;
    case StraceLine::Kind::kUnfinished: {
      auto old = pending.find(tid);
      if (old != pending.end() && TracedSyscall(old->second.name).has_value()) {
        ++stats.unfinished;  // never resumed
      }
      pending[tid] =
          Pending{std::string(line.name), ts, std::string(line.args)};
      return;
    }
    case StraceLine::Kind::kCall:
      Call(tid, line.name, ts, std::nullopt, line.args, line.result);
      return;
  }
}

void StraceImporter::State::Call(uint32_t tid, std::string_view name,
                                 uint64_t enter_ns,
                                 std::optional<uint64_t> exit_ns,
                                 std::string_view args,
                                 const std::optional<StraceResult>& result) {
  if (!result.has_value()) {
    Malformed();
    return;
  }
  const StraceResult& r = *result;
  ++stats.calls;
  // strace stamps a line when the call starts and -T is how long it took;
  // a resumed call without -T ends at its resumed line's time.
  bool timed = r.dur_ns.has_value() || exit_ns.has_value();
  uint64_t exit =
      r.dur_ns.has_value() ? enter_ns + *r.dur_ns : exit_ns.value_or(enter_ns);
  uint32_t tgid = Tgid(tid);
  if (std::optional<Syscall> sc = TracedSyscall(name)) {
    SocketCall(tid, tgid, *sc, enter_ns, exit, timed, args, r);
    return;
  }
  ++stats.other_calls;
  ProcessCall(tgid, name, exit, args, r);
}

void StraceImporter::State::ProcessCall(uint32_t tgid, std::string_view name,
                                        uint64_t exit_ns, std::string_view args,
                                        const StraceResult& r) {
  if (!r.ret.has_value() || r.ret->number < 0) return;
  int64_t ret = r.ret->number;
  if (name == "clone" || name == "clone3" || name == "fork" ||
      name == "vfork") {
    if (ret == 0 || ret > UINT32_MAX) return;
    uint32_t child = static_cast<uint32_t>(ret);
    if ((name == "clone" || name == "clone3") &&
        args.find("CLONE_THREAD") != std::string_view::npos) {
      tgid_of[child] = tgid;
      return;
    }
    tgid_of[child] = child;
    ProcessInfo& p = procs[child];
    p.pid = child;
    p.ppid = tgid;
    if (r.ret->annotation.has_value()) {
      p.comm = std::string(r.ret->annotation->substr(0, kCommMax));
    } else if (p.comm.empty()) {
      p.comm = procs[tgid].comm;
    }
    forked.insert(child);
    ProcessEvent pe;
    pe.op = ProcessEvent::Op::kFork;
    pe.tgid = child;
    pe.parent_tgid = tgid;
    pe.ts_ns = exit_ns;
    pe.comm = p.comm;
    process_events.push_back(std::move(pe));
    return;
  }
  if (name == "execve" || name == "execveat") {
    std::vector<StraceQuotedString> strings = CollectStraceStrings(args);
    if (strings.empty()) return;
    std::string path = strings.front().bytes;
    size_t slash = path.rfind('/');
    ProcessInfo& p = procs[tgid];
    p.comm = path.substr(slash == std::string::npos ? 0 : slash + 1, kCommMax);
    p.exe = path;
    ProcessEvent pe;
    pe.op = ProcessEvent::Op::kExec;
    pe.tgid = tgid;
    pe.parent_tgid = p.ppid;
    pe.ts_ns = exit_ns;
    pe.comm = p.comm;
    process_events.push_back(std::move(pe));
    return;
  }
  if (name == "socket" && ret <= INT32_MAX) {
    // Without -yy, the kind of socket is what it was created as.
    FdInfo info;
    bool stream = args.find("SOCK_STREAM") != std::string_view::npos;
    uint16_t family =
        StartsWith(args, "AF_UNIX") || StartsWith(args, "AF_LOCAL") ? AF_UNIX
        : StartsWith(args, "AF_INET6")                              ? AF_INET6
        : StartsWith(args, "AF_INET")                               ? AF_INET
        : StartsWith(args, "AF_NETLINK")                            ? AF_NETLINK
                                                                    : AF_UNSPEC;
    if (!stream || family == AF_NETLINK || family == AF_UNSPEC) {
      // Not a request carrier: its calls are side calls, as live.
      info.family = family == AF_UNSPEC ? AF_PACKET : family;
      info.type = stream ? kSockStream : kSockDgram;
    }
    fds[{tgid, static_cast<int32_t>(ret)}] = info;
  }
}

void StraceImporter::State::Backfill(uint32_t tgid, int32_t fd,
                                     const SocketId& id) {
  auto it = connects.find({tgid, fd});
  if (it == connects.end()) return;
  SocketId& c = events[it->second].sock;
  if (!HasPeer(id) || c.family != id.family) return;
  if (c.family == AF_UNIX && c.sock != 0 && id.sock != c.sock) return;
  c = id;
  connects.erase(it);
}

void StraceImporter::State::SocketCall(uint32_t tid, uint32_t tgid, Syscall sc,
                                       uint64_t enter_ns, uint64_t exit_ns,
                                       bool timed, std::string_view args,
                                       const StraceResult& r) {
  std::string_view a = args;
  StraceValue fd;
  if (!TakeStraceValue(&a, &fd) || fd.number < INT32_MIN ||
      fd.number > INT32_MAX) {
    Malformed();
    return;
  }
  if (!r.ret.has_value()) {
    ++stats.other_calls;  // no result (the process died in it)
    return;
  }
  SyscallEvent e;
  e.syscall = sc;
  e.tgid = tgid;
  e.tid = tid;
  e.fd = static_cast<int32_t>(fd.number);
  e.ret = r.err != 0 ? -r.err : r.ret->number;
  if (timed) {
    e.enter_ns = enter_ns;
    e.exit_ns = exit_ns;
  } else {
    e.flags |= SyscallEvent::kExitOnly;  // no -T: only when it started
    e.exit_ns = enter_ns;
    ++stats.no_duration;
  }
  const std::pair<uint32_t, int32_t> key{tgid, e.fd};
  bool accept = IsAccept(sc);
  // Whose identity: an accept's is the new socket's, in its result.
  std::optional<std::string_view> annotation =
      accept
          ? (r.ret->annotation.has_value() ? r.ret->annotation : fd.annotation)
          : fd.annotation;
  std::optional<StraceSocket> sock;
  if (fd.annotation.has_value()) {
    sock = ParseStraceSocket(*fd.annotation);
    if (!sock.has_value()) {
      ++stats.not_socket;  // a file, a pipe, ...
      return;
    }
    if (accept && annotation != fd.annotation) {
      std::optional<StraceSocket> got = ParseStraceSocket(*annotation);
      if (got.has_value()) sock = got;
    }
  } else {
    // No -yy: only fds known to be sockets.
    auto it = fds.find(key);
    if (accept || sc == Syscall::kConnect) {
      FdInfo info = it != fds.end() ? it->second : FdInfo{};
      if (it == fds.end()) fds[key] = info;
      sock = StraceSocket{};
      sock->known = false;
      sock->id.family = info.family;
      sock->id.type = info.type;
    } else if (it != fds.end()) {
      sock = StraceSocket{};
      sock->known = false;
      sock->id.family = it->second.family;
      sock->id.type = it->second.type;
    } else {
      ++stats.unknown_fd;
      return;
    }
  }
  if (sock->known) ++stats.identified;
  e.sock = sock->id;

  if (accept) {
    if (e.ret >= 0) {
      e.flags |= SyscallEvent::kListener;
      connects.erase({tgid, static_cast<int32_t>(e.ret)});
      if (!fd.annotation.has_value()) {
        fds[{tgid, static_cast<int32_t>(e.ret)}] = FdInfo{};
      }
    }
  } else if (sc == Syscall::kConnect) {
    std::vector<StraceQuotedString> strings = CollectStraceStrings(a);
    if (e.sock.family == AF_UNIX || StartsWith(a, ", {sa_family=AF_UNIX")) {
      if (!strings.empty()) {
        e.flags |= SyscallEvent::kPeerPath;
        e.payload = strings.front().bytes.substr(0, 108);
      }
    }
  } else if (sc != Syscall::kClose && sc != Syscall::kShutdown) {
    e.payload = StracePayloadOf(a, &stats.payload_bytes);
    if ((sc == Syscall::kRecvfrom || sc == Syscall::kRecvmsg) &&
        a.find("MSG_PEEK") != std::string_view::npos) {
      e.flags |= SyscallEvent::kPeek;
    }
  }
  if (!accept && sock->known) Backfill(tgid, e.fd, e.sock);
  if (sc == Syscall::kClose) {
    connects.erase(key);
    if (e.ret >= 0) fds.erase(key);
  }
  ++stats.socket_calls;
  events.push_back(std::move(e));
  if (sc == Syscall::kConnect && sock->known && !HasPeer(events.back().sock)) {
    connects[key] = events.size() - 1;
  }
}

StraceImport StraceImporter::State::Finish() {
  StraceImport out;
  for (const auto& [tid, p] : pending) {
    if (TracedSyscall(p.name).has_value()) ++stats.unfinished;
  }
  // A unix socket's peer, seen on either end, names both ends' pairing.
  std::map<uint64_t, uint64_t> peer_of;
  for (const SyscallEvent& e : events) {
    if (e.sock.family != AF_UNIX || e.sock.sock == 0 || e.sock.peer == 0)
      continue;
    peer_of.emplace(e.sock.sock, e.sock.peer);
    peer_of.emplace(e.sock.peer, e.sock.sock);
  }
  for (SyscallEvent& e : events) {
    if (e.sock.family != AF_UNIX || e.sock.sock == 0 || e.sock.peer != 0)
      continue;
    auto it = peer_of.find(e.sock.sock);
    if (it != peer_of.end()) e.sock.peer = it->second;
  }
  // No socket identity at all: a backend's connections cannot be paired
  // with the server's links, so processes that only accept, when another
  // process connects, are left out and the backend phase is inferred.
  if (stats.identified == 0 && !events.empty()) {
    std::set<uint32_t> connecting, accepting;
    for (const SyscallEvent& e : events) {
      if (e.syscall == Syscall::kConnect && e.sock.family == 0 &&
          (e.flags & SyscallEvent::kPeerPath) == 0) {
        connecting.insert(e.tgid);
      }
      if (IsAccept(e.syscall) && e.ok()) accepting.insert(e.tgid);
      if (e.syscall == Syscall::kConnect && e.sock.family == 0 &&
          (e.flags & SyscallEvent::kPeerPath) != 0) {
        // A unix connect: a name service is not a backend (see connections.h).
        std::string_view path(e.payload);
        if (!StartsWith(path, "/var/run/nscd/") &&
            !StartsWith(path, "/run/nscd/") &&
            !StartsWith(path, "/run/systemd/resolve/")) {
          connecting.insert(e.tgid);
        }
      }
    }
    if (!connecting.empty()) {
      std::vector<SyscallEvent> kept;
      kept.reserve(events.size());
      for (SyscallEvent& e : events) {
        if (connecting.count(e.tgid) == 0 && accepting.count(e.tgid) > 0) {
          ++stats.backend_left_out;
          continue;
        }
        kept.push_back(std::move(e));
      }
      events = std::move(kept);
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const SyscallEvent& a, const SyscallEvent& b) {
                     return a.exit_ns < b.exit_ns;
                   });
  std::stable_sort(process_events.begin(), process_events.end(),
                   [](const ProcessEvent& a, const ProcessEvent& b) {
                     return a.ts_ns < b.ts_ns;
                   });
  uint64_t start = UINT64_MAX, end = 0;
  for (const SyscallEvent& e : events) {
    start = std::min(start, e.enter_seen() ? e.enter_ns : e.exit_ns);
    end = std::max(end, e.exit_ns);
  }
  for (const ProcessEvent& p : process_events) {
    start = std::min(start, p.ts_ns);
    end = std::max(end, p.ts_ns);
  }
  if (start == UINT64_MAX) start = 0;
  out.header.start_mono_ns = start;
  out.header.end_mono_ns = end;
  // Times are the log's own clock: epoch ns (-ttt), so wall = mono; with -tt
  // the date is unknown and times count from the first day's midnight.
  out.header.mono_to_wall_ns = 0;
  out.header.payload_capture_bytes = stats.payload_bytes;
  for (const auto& [pid, info] : procs) {
    if (forked.count(pid) > 0) continue;  // its fork event says it
    out.header.processes.push_back(info);
  }
  stats.processes = procs.size();
  out.events = std::move(events);
  out.process_events = std::move(process_events);
  out.stats = std::move(stats);
  return out;
}

StraceImporter::StraceImporter() : state_(std::make_unique<State>()) {}
StraceImporter::~StraceImporter() = default;

void StraceImporter::BeginFile(std::string_view name) {
  State& s = *state_;
  ++s.stats.files;
  s.file = std::string(name);
  s.line_no = 0;
  s.held.reset();
  s.day_ns = 0;
  s.last_tod_ns = 0;
  s.file_pid.reset();
  // strace -ff -o PREFIX writes PREFIX.PID.
  size_t dot = name.rfind('.');
  uint32_t pid = 0;
  if (dot != std::string_view::npos && dot + 1 < name.size() &&
      name.find_first_not_of("0123456789", dot + 1) == std::string_view::npos &&
      absl::SimpleAtoi(Absl(name.substr(dot + 1)), &pid)) {
    s.file_pid = pid;
  }
}

void StraceImporter::AddLine(std::string_view line) {
  State& s = *state_;
  if (s.held.has_value()) {
    ++s.line_no;
    s.Line(*s.held);
  }
  s.held = std::string(line);
}

void StraceImporter::EndFile(bool ended_with_newline) {
  State& s = *state_;
  if (!s.held.has_value()) return;
  ++s.line_no;
  if (ended_with_newline) {
    s.Line(*s.held);
  } else {
    ++s.stats.lines;
    ++s.stats.truncated;
  }
  s.held.reset();
}

StraceImport StraceImporter::Finish() {
  StraceImport out = state_->Finish();
  state_ = std::make_unique<State>();
  return out;
}

StraceImport ImportStrace(
    const std::vector<std::pair<std::string, std::string_view>>& logs) {
  StraceImporter importer;
  for (const auto& [name, text] : logs) {
    importer.BeginFile(name);
    std::string_view rest = text;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) {
        importer.AddLine(rest);
        importer.EndFile(false);
        rest = {};
        break;
      }
      importer.AddLine(rest.substr(0, nl));
      rest.remove_prefix(nl + 1);
    }
    importer.EndFile(true);  // no-op after a cut-short last line
  }
  return importer.Finish();
}

}  // namespace reqcost::collector
