#include "collector/strace_import.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
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

namespace reqcost::collector {
namespace {

constexpr uint64_t kNsPerSec = 1'000'000'000;
constexpr uint64_t kNsPerDay = 86'400 * kNsPerSec;
constexpr size_t kCommMax = 15;  // TASK_COMM_LEN - 1, as the kernel keeps it
constexpr uint16_t kSockStream = SOCK_STREAM;
constexpr uint16_t kSockDgram = SOCK_DGRAM;

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Reads leading digits of `*s` into `*value` and drops them; false if none
// or if the number does not fit.
bool TakeUint(std::string_view* s, uint64_t* value) {
  size_t n = 0;
  uint64_t v = 0;
  while (n < s->size() && IsDigit((*s)[n])) {
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>((*s)[n] - '0');
    ++n;
  }
  if (n == 0) return false;
  *value = v;
  s->remove_prefix(n);
  return true;
}

// "SEC.FRACTION" (any number of fraction digits) as ns.
bool TakeSecondsNs(std::string_view* s, uint64_t* ns) {
  uint64_t sec = 0;
  if (!TakeUint(s, &sec) || sec > UINT64_MAX / kNsPerSec - 1) return false;
  uint64_t frac = 0;
  if (!s->empty() && s->front() == '.') {
    s->remove_prefix(1);
    uint64_t scale = kNsPerSec / 10;
    size_t n = 0;
    while (n < s->size() && IsDigit((*s)[n])) {
      frac += static_cast<uint64_t>((*s)[n] - '0') * scale;
      scale /= 10;
      ++n;
    }
    if (n == 0) return false;
    s->remove_prefix(n);
  }
  *ns = sec * kNsPerSec + frac;
  return true;
}

// The index of the '"' that closes the quoted string opened at s[open],
// past backslash escapes; npos if the string is not closed.
size_t QuoteEnd(std::string_view s, size_t open) {
  size_t i = open + 1;
  while (i < s.size() && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
  return i < s.size() ? i : std::string_view::npos;
}

// The end of a `<...>` annotation that starts at s[0] == '<': the index of
// its closing '>' (brackets and quotes nest: "TCP:[a:1->b:2]"), or npos.
size_t AnnotationEnd(std::string_view s) {
  int depth = 0;
  for (size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"') {
      i = QuoteEnd(s, i);
      if (i == std::string_view::npos) break;
    } else if (c == '[') {
      ++depth;
    } else if (c == ']') {
      --depth;
    } else if (c == '>' && depth <= 0) {
      return i;
    }
  }
  return std::string_view::npos;
}

// A number with an optional annotation: "5<TCP:[...]>", "-1", "0x1f".
struct Value {
  int64_t number = 0;
  std::optional<std::string_view> annotation;  // without the angle brackets
};

bool TakeValue(std::string_view* s, Value* v) {
  bool negative = false;
  if (!s->empty() && s->front() == '-') {
    negative = true;
    s->remove_prefix(1);
  }
  uint64_t n = 0;
  if (StartsWith(*s, "0x")) {
    s->remove_prefix(2);
    size_t len = 0;
    while (len < s->size() && std::isxdigit(static_cast<unsigned char>((*s)[len]))) ++len;
    if (len == 0 || len > 16) return false;
    if (!absl::SimpleHexAtoi(Absl(s->substr(0, len)), &n)) return false;
    s->remove_prefix(len);
  } else if (!TakeUint(s, &n)) {
    return false;
  }
  v->number = negative ? -static_cast<int64_t>(n & INT64_MAX)
                       : static_cast<int64_t>(n & INT64_MAX);
  if (!s->empty() && s->front() == '<') {
    size_t end = AnnotationEnd(*s);
    if (end == std::string_view::npos) return false;
    v->annotation = s->substr(1, end - 1);
    s->remove_prefix(end + 1);
  }
  return true;
}

// errno names ("EAGAIN") to numbers, from the C library.
const std::map<std::string, int, std::less<>>& ErrnoNames() {
  static const auto* names = [] {
    auto* m = new std::map<std::string, int, std::less<>>();
    for (int e = 1; e < 200; ++e) {
      const char* name = strerrorname_np(e);
      if (name != nullptr) m->emplace(name, e);
    }
    // strace's names for kernel-internal codes user space never sees.
    m->emplace("ERESTARTSYS", 512);
    m->emplace("ERESTARTNOINTR", 513);
    m->emplace("ERESTARTNOHAND", 514);
    m->emplace("ERESTART_RESTARTBLOCK", 516);
    return m;
  }();
  return *names;
}

// A quoted string found in a call's arguments.
struct QuotedString {
  std::string bytes;
  bool truncated = false;  // strace printed `"..."...`: more bytes moved
};

// The quoted strings of `args` outside fd annotations, in order.
std::vector<QuotedString> CollectStrings(std::string_view args) {
  std::vector<QuotedString> out;
  size_t i = 0;
  while (i < args.size()) {
    char c = args[i];
    if (c == '<' && i > 0 && IsDigit(args[i - 1])) {
      size_t end = AnnotationEnd(args.substr(i));
      if (end == std::string_view::npos) break;
      i += end + 1;
      continue;
    }
    if (c != '"') {
      ++i;
      continue;
    }
    size_t j = QuoteEnd(args, i);
    if (j == std::string_view::npos) break;  // unterminated: the line was cut
    QuotedString q;
    q.bytes = DecodeStraceString(args.substr(i + 1, j - i - 1));
    i = j + 1;
    if (args.substr(i, 3) == "...") {
      q.truncated = true;
      i += 3;
    }
    out.push_back(std::move(q));
  }
  return out;
}

// The bytes a read or write moved, as far as strace printed them: its
// strings joined (iovecs in order) up to the first one cut short.
std::string PayloadOf(std::string_view args, uint32_t* longest) {
  std::string payload;
  for (QuotedString& q : CollectStrings(args)) {
    *longest = std::max<uint32_t>(*longest, static_cast<uint32_t>(
                                                std::min<size_t>(q.bytes.size(), UINT32_MAX)));
    payload += q.bytes;
    if (q.truncated || payload.size() >= kMaxPayloadBytes) break;
  }
  if (payload.size() > kMaxPayloadBytes) payload.resize(kMaxPayloadBytes);
  return payload;
}

bool ParseIpPort(std::string_view text, bool v6, std::array<uint8_t, 16>* addr,
                 uint16_t* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = text.substr(0, colon);
  uint32_t p = 0;
  if (!absl::SimpleAtoi(Absl(text.substr(colon + 1)), &p) || p > 65535) return false;
  if (v6) {
    if (host.size() < 2 || host.front() != '[' || host.back() != ']') return false;
    host = host.substr(1, host.size() - 2);
  }
  std::string h(host);
  addr->fill(0);
  if (inet_pton(v6 ? AF_INET6 : AF_INET, h.c_str(), addr->data()) != 1) return false;
  *port = static_cast<uint16_t>(p);
  return true;
}

// "ino", "ino->peer", "ino,\"path\"", "ino->peer,\"path\"".
bool ParseUnixBody(std::string_view body, SocketId* id) {
  uint64_t ino = 0;
  if (!TakeUint(&body, &ino)) return false;
  id->sock = ino;
  if (StartsWith(body, "->")) {
    body.remove_prefix(2);
    uint64_t peer = 0;
    if (!TakeUint(&body, &peer)) return false;
    id->peer = peer;
  }
  return body.empty() || body.front() == ',';
}

// "ino", "a:p" (listening or bound), "a:p->b:p".
bool ParseInetBody(std::string_view body, bool v6, SocketId* id) {
  if (!body.empty() && IsDigit(body.front()) &&
      body.find_first_not_of("0123456789") == std::string_view::npos) {
    return true;  // an inode only: not bound or not connected yet
  }
  size_t arrow = body.find("->");
  std::string_view local = body.substr(0, arrow);
  if (!ParseIpPort(local, v6, &id->local_addr, &id->local_port)) return false;
  if (arrow != std::string_view::npos &&
      !ParseIpPort(body.substr(arrow + 2), v6, &id->remote_addr,
                   &id->remote_port)) {
    return false;
  }
  return true;
}

// Whether `id` says who the socket is talking to.
bool HasPeer(const SocketId& id) {
  if (id.family == AF_UNIX) return id.peer != 0;
  if (id.family == AF_INET || id.family == AF_INET6) return id.remote_port != 0;
  return false;
}

enum class TimeFormat { kUnknown, kEpoch, kTimeOfDay };

// One line's leading PID, comm (-Y) and timestamp.
struct Lead {
  std::optional<uint32_t> pid;
  std::string_view comm;
  uint64_t ts_ns = 0;
  TimeFormat format = TimeFormat::kUnknown;
};

// "[pid  123] ", "123 ", "123<comm> "; then "SEC.USEC " or "HH:MM:SS[.USEC] ".
bool TakeLead(std::string_view* s, Lead* lead) {
  auto take_pid = [&](std::string_view* t) {
    uint64_t pid = 0;
    std::string_view save = *t;
    if (!TakeUint(t, &pid) || pid > UINT32_MAX) {
      *t = save;
      return false;
    }
    if (!t->empty() && t->front() == '<') {
      size_t end = t->find('>');
      if (end == std::string_view::npos) return false;
      lead->comm = t->substr(1, end - 1);
      t->remove_prefix(end + 1);
    }
    lead->pid = static_cast<uint32_t>(pid);
    return true;
  };
  if (StartsWith(*s, "[pid ")) {
    s->remove_prefix(5);
    while (!s->empty() && s->front() == ' ') s->remove_prefix(1);
    if (!take_pid(s) || !StartsWith(*s, "] ")) return false;
    s->remove_prefix(2);
  } else {
    // Digits then ' ' or '<' are a PID; then '.' or ':' a timestamp.
    size_t n = 0;
    while (n < s->size() && IsDigit((*s)[n])) ++n;
    if (n > 0 && n < s->size() && ((*s)[n] == ' ' || (*s)[n] == '<')) {
      if (!take_pid(s) || s->empty() || s->front() != ' ') return false;
      while (!s->empty() && s->front() == ' ') s->remove_prefix(1);
    }
  }
  // Timestamp.
  size_t n = 0;
  while (n < s->size() && IsDigit((*s)[n])) ++n;
  if (n == 0 || n >= s->size()) return false;
  if ((*s)[n] == ':') {
    uint64_t h = 0, m = 0, sec_ns = 0;
    if (!TakeUint(s, &h) || h > 23 || s->empty() || s->front() != ':') return false;
    s->remove_prefix(1);
    if (!TakeUint(s, &m) || m > 59 || s->empty() || s->front() != ':') return false;
    s->remove_prefix(1);
    if (!TakeSecondsNs(s, &sec_ns) || sec_ns >= 61 * kNsPerSec) return false;
    lead->ts_ns = (h * 3600 + m * 60) * kNsPerSec + sec_ns;
    lead->format = TimeFormat::kTimeOfDay;
  } else if ((*s)[n] == '.') {
    if (!TakeSecondsNs(s, &lead->ts_ns)) return false;
    lead->format = TimeFormat::kEpoch;
  } else {
    return false;
  }
  if (s->empty() || s->front() != ' ') return false;
  s->remove_prefix(1);
  return true;
}

// A call's result: " = RET[<annotation>] [ERRNO (text)] [(...)] [<DUR>]".
struct Result {
  std::optional<Value> ret;  // nullopt for "?"
  int err = 0;               // errno when "-1 ENAME"
  std::optional<uint64_t> dur_ns;
};

bool ParseResult(std::string_view s, Result* r) {
  // Duration, from the end: " <0.000021>".
  if (!s.empty() && s.back() == '>') {
    size_t open = s.rfind('<');
    if (open != std::string_view::npos) {
      std::string_view d = s.substr(open + 1, s.size() - open - 2);
      uint64_t ns = 0;
      std::string_view t = d;
      if (TakeSecondsNs(&t, &ns) && t.empty()) {
        r->dur_ns = ns;
        s = s.substr(0, open);
        while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
      }
    }
  }
  if (StartsWith(s, "?")) return true;
  Value v;
  if (!TakeValue(&s, &v)) return false;
  r->ret = v;
  if (v.number < 0 && StartsWith(s, " E")) {
    s.remove_prefix(1);
    size_t end = s.find(' ');
    std::string_view name = s.substr(0, end);
    auto it = ErrnoNames().find(name);
    r->err = it != ErrnoNames().end() ? it->second : 1;
  }
  return true;
}

// Where a call's arguments end and its result begins: the last ")", outside
// quotes, followed by " = " (strace pads short calls to a column, so any
// number of spaces); npos if none.
struct Split {
  size_t args_end = std::string_view::npos;
  size_t result = 0;
};
Split ArgsEnd(std::string_view s) {
  Split found;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"') {
      i = QuoteEnd(s, i);
      if (i == std::string_view::npos) break;
    } else if (c == ')') {
      size_t j = i + 1;
      while (j < s.size() && s[j] == ' ') ++j;
      if (j > i + 1 && s.substr(j, 2) == "= ") found = {i, j + 2};
    }
  }
  return found;
}

bool TakeName(std::string_view* s, std::string_view* name) {
  size_t n = 0;
  while (n < s->size() &&
         (((*s)[n] >= 'a' && (*s)[n] <= 'z') || IsDigit((*s)[n]) || (*s)[n] == '_')) {
    ++n;
  }
  if (n == 0) return false;
  *name = s->substr(0, n);
  s->remove_prefix(n);
  return true;
}

std::optional<Syscall> TracedSyscall(std::string_view name) {
  if (name == "sendfile64") return Syscall::kSendfile;
  return SyscallFromName(name);
}

}  // namespace

std::string DecodeStraceString(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++i];
    switch (e) {
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'f': out += '\f'; break;
      case 'x': {
        int v = 0, n = 0;
        while (n < 2 && i + 1 < body.size() &&
               std::isxdigit(static_cast<unsigned char>(body[i + 1]))) {
          char h = body[++i];
          v = v * 16 + (IsDigit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
          ++n;
        }
        out += static_cast<char>(v);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0', n = 1;
          while (n < 3 && i + 1 < body.size() && body[i + 1] >= '0' &&
                 body[i + 1] <= '7') {
            v = v * 8 + (body[++i] - '0');
            ++n;
          }
          out += static_cast<char>(v & 0xff);
        } else {
          out += e;  // \" \\ and anything else: the character itself
        }
    }
  }
  return out;
}

std::optional<StraceSocket> ParseStraceSocket(std::string_view a) {
  StraceSocket s;
  size_t colon = a.find(":[");
  if (colon == std::string_view::npos || a.back() != ']') return std::nullopt;
  std::string_view kind = a.substr(0, colon);
  std::string_view body = a.substr(colon + 2, a.size() - colon - 3);
  SocketId& id = s.id;
  if (kind == "socket") {
    s.known = false;
    return s;
  }
  if (kind == "UNIX" || kind == "UNIX-STREAM" || kind == "UNIX-DGRAM" ||
      kind == "UNIX-SEQPACKET") {
    id.family = AF_UNIX;
    // Older strace printed "UNIX" for every unix socket: the stream kind is
    // the one that carries requests, and the common one.
    id.type = kind == "UNIX-DGRAM" ? kSockDgram
              : kind == "UNIX-SEQPACKET" ? static_cast<uint16_t>(SOCK_SEQPACKET)
                                         : kSockStream;
    if (!ParseUnixBody(body, &id)) return std::nullopt;
    return s;
  }
  bool tcp = kind == "TCP" || kind == "TCPv6";
  bool udp = kind == "UDP" || kind == "UDPv6";
  if (tcp || udp) {
    bool v6 = kind.back() == '6';
    id.family = v6 ? AF_INET6 : AF_INET;
    id.type = tcp ? kSockStream : kSockDgram;
    if (!ParseInetBody(body, v6, &id)) return std::nullopt;
    return s;
  }
  if (kind == "NETLINK") {
    id.family = AF_NETLINK;
    id.type = SOCK_RAW;
    return s;
  }
  return std::nullopt;  // pipe:[...], anon_inode:[...], a path ...
}

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
  std::set<uint32_t> forked;  // tgids whose creation is in the log
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
            std::string_view result);
  void ProcessCall(uint32_t tgid, std::string_view name, uint64_t exit_ns,
                   std::string_view args, const Result& r);
  void SocketCall(uint32_t tid, uint32_t tgid, Syscall sc, uint64_t enter_ns,
                  uint64_t exit_ns, bool timed, std::string_view args,
                  const Result& r);
  void Backfill(uint32_t tgid, int32_t fd, const SocketId& id);
  StraceImport Finish();
};

void StraceImporter::State::Line(std::string_view line) {
  ++stats.lines;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || StartsWith(line, "strace: ")) {
    ++stats.info_lines;
    return;
  }
  std::string_view s = line;
  Lead lead;
  if (!TakeLead(&s, &lead)) {
    Malformed();
    return;
  }
  uint32_t tid = 0;
  if (lead.pid.has_value()) {
    tid = *lead.pid;
  } else if (file_pid.has_value()) {
    tid = *file_pid;
  } else {
    ++stats.no_pid_lines;
  }
  uint64_t ts = lead.ts_ns;
  if (lead.format == TimeFormat::kTimeOfDay) {
    stats.wall_clock = true;
    // Lines are in time order within a file: a step back of more than half
    // a day is midnight.
    if (ts + kNsPerDay / 2 < last_tod_ns) day_ns += kNsPerDay;
    last_tod_ns = ts;
    ts += day_ns;
  }
  uint32_t tgid = Tgid(tid);
  if (!lead.comm.empty() && (tid == tgid || procs[tgid].comm.empty())) {
    procs[tgid].comm = std::string(lead.comm.substr(0, kCommMax));
  }

  if (StartsWith(s, "--- ")) {
    ++stats.signals;
    return;
  }
  if (StartsWith(s, "+++ ")) {
    ++stats.exits;
    if (tid == tgid && (s.find("exited with") != std::string_view::npos ||
                        s.find("killed by") != std::string_view::npos)) {
      ProcessEvent pe;
      pe.op = ProcessEvent::Op::kExit;
      pe.tgid = tgid;
      pe.parent_tgid = procs[tgid].ppid;
      pe.ts_ns = ts;
      pe.comm = procs[tgid].comm;
      process_events.push_back(std::move(pe));
    }
    return;
  }
  std::string_view name;
  if (StartsWith(s, "<... ")) {
    s.remove_prefix(5);
    if (!TakeName(&s, &name) || !StartsWith(s, " resumed>")) {
      Malformed();
      return;
    }
    s.remove_prefix(9);
    auto it = pending.find(tid);
    Split split = ArgsEnd(s);
    if (split.args_end == std::string_view::npos) {
      Malformed();
      return;
    }
    std::string_view call_args = s.substr(0, split.args_end);
    std::string_view result = s.substr(split.result);
    if (it == pending.end() || it->second.name != name) {
      // Its start was before the log (or lost): timed from its duration.
      ++stats.orphan_resumed;
      Result r;
      if (!ParseResult(result, &r)) {
        Malformed();
        return;
      }
      uint64_t dur = r.dur_ns.value_or(0);
      Call(tid, name, ts >= dur ? ts - dur : 0, ts, call_args, result);
      return;
    }
    Pending p = std::move(it->second);
    pending.erase(it);
    std::string args = p.args + std::string(call_args);
    Call(tid, name, p.ts_ns, ts, args, result);
    return;
  }
  if (!TakeName(&s, &name) || s.empty() || s.front() != '(') {
    Malformed();
    return;
  }
  s.remove_prefix(1);
  // strace detached (Ctrl-C) while the call was under way: it never ends
  // in the log.
  constexpr std::string_view kDetached = " <detached ...>";
  if (s.size() >= kDetached.size() &&
      s.substr(s.size() - kDetached.size()) == kDetached) {
    if (TracedSyscall(name).has_value()) ++stats.unfinished;
    return;
  }
  constexpr std::string_view kUnfinished = " <unfinished ...>";
  if (s.size() >= kUnfinished.size() &&
      s.substr(s.size() - kUnfinished.size()) == kUnfinished) {
    s.remove_suffix(kUnfinished.size());
    auto old = pending.find(tid);
    if (old != pending.end() && TracedSyscall(old->second.name).has_value()) {
      ++stats.unfinished;  // never resumed
    }
    pending[tid] = Pending{std::string(name), ts, std::string(s)};
    return;
  }
  Split split = ArgsEnd(s);
  if (split.args_end == std::string_view::npos) {
    Malformed();
    return;
  }
  Call(tid, name, ts, std::nullopt, s.substr(0, split.args_end),
       s.substr(split.result));
}

void StraceImporter::State::Call(uint32_t tid, std::string_view name,
                                 uint64_t enter_ns,
                                 std::optional<uint64_t> exit_ns,
                                 std::string_view args,
                                 std::string_view result) {
  Result r;
  if (!ParseResult(result, &r)) {
    Malformed();
    return;
  }
  ++stats.calls;
  // strace stamps a line when the call starts and -T is how long it took;
  // a resumed call without -T ends at its resumed line's time.
  bool timed = r.dur_ns.has_value() || exit_ns.has_value();
  uint64_t exit = r.dur_ns.has_value() ? enter_ns + *r.dur_ns
                                       : exit_ns.value_or(enter_ns);
  uint32_t tgid = Tgid(tid);
  if (std::optional<Syscall> sc = TracedSyscall(name)) {
    SocketCall(tid, tgid, *sc, enter_ns, exit, timed, args, r);
    return;
  }
  ++stats.other_calls;
  ProcessCall(tgid, name, exit, args, r);
}

void StraceImporter::State::ProcessCall(uint32_t tgid, std::string_view name,
                                        uint64_t exit_ns,
                                        std::string_view args,
                                        const Result& r) {
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
    std::vector<QuotedString> strings = CollectStrings(args);
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
    uint16_t family = StartsWith(args, "AF_UNIX") || StartsWith(args, "AF_LOCAL")
                          ? AF_UNIX
                      : StartsWith(args, "AF_INET6") ? AF_INET6
                      : StartsWith(args, "AF_INET")  ? AF_INET
                      : StartsWith(args, "AF_NETLINK") ? AF_NETLINK
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

void StraceImporter::State::SocketCall(uint32_t tid, uint32_t tgid,
                                       Syscall sc, uint64_t enter_ns,
                                       uint64_t exit_ns, bool timed,
                                       std::string_view args,
                                       const Result& r) {
  std::string_view a = args;
  Value fd;
  if (!TakeValue(&a, &fd) || fd.number < INT32_MIN || fd.number > INT32_MAX) {
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
      accept ? (r.ret->annotation.has_value() ? r.ret->annotation : fd.annotation)
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
    std::vector<QuotedString> strings = CollectStrings(a);
    if (e.sock.family == AF_UNIX || StartsWith(a, ", {sa_family=AF_UNIX")) {
      if (!strings.empty()) {
        e.flags |= SyscallEvent::kPeerPath;
        e.payload = strings.front().bytes.substr(0, 108);
      }
    }
  } else if (sc != Syscall::kClose && sc != Syscall::kShutdown) {
    e.payload = PayloadOf(a, &stats.payload_bytes);
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
    if (e.sock.family != AF_UNIX || e.sock.sock == 0 || e.sock.peer == 0) continue;
    peer_of.emplace(e.sock.sock, e.sock.peer);
    peer_of.emplace(e.sock.peer, e.sock.sock);
  }
  for (SyscallEvent& e : events) {
    if (e.sock.family != AF_UNIX || e.sock.sock == 0 || e.sock.peer != 0) continue;
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
        if (!StartsWith(path, "/var/run/nscd/") && !StartsWith(path, "/run/nscd/") &&
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
