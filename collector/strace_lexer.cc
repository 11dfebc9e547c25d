#include "collector/strace_lexer.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "collector/capture_file.h"
#include "collector/event.h"

namespace reqcost::collector {
namespace {

constexpr uint64_t kNsPerSec = 1'000'000'000;
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

bool ParseIpPort(std::string_view text, bool v6, std::array<uint8_t, 16>* addr,
                 uint16_t* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = text.substr(0, colon);
  uint32_t p = 0;
  if (!absl::SimpleAtoi(Absl(text.substr(colon + 1)), &p) || p > 65535)
    return false;
  if (v6) {
    if (host.size() < 2 || host.front() != '[' || host.back() != ']')
      return false;
    host = host.substr(1, host.size() - 2);
  }
  std::string h(host);
  addr->fill(0);
  if (inet_pton(v6 ? AF_INET6 : AF_INET, h.c_str(), addr->data()) != 1)
    return false;
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

// One line's leading PID, comm (-Y) and timestamp.
struct Lead {
  std::optional<uint32_t> pid;
  std::string_view comm;
  uint64_t ts_ns = 0;
  StraceTimeFormat format = StraceTimeFormat::kUnknown;
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
    if (!TakeUint(s, &h) || h > 23 || s->empty() || s->front() != ':')
      return false;
    s->remove_prefix(1);
    if (!TakeUint(s, &m) || m > 59 || s->empty() || s->front() != ':')
      return false;
    s->remove_prefix(1);
    if (!TakeSecondsNs(s, &sec_ns) || sec_ns >= 61 * kNsPerSec) return false;
    lead->ts_ns = (h * 3600 + m * 60) * kNsPerSec + sec_ns;
    lead->format = StraceTimeFormat::kTimeOfDay;
  } else if ((*s)[n] == '.') {
    if (!TakeSecondsNs(s, &lead->ts_ns)) return false;
    lead->format = StraceTimeFormat::kEpoch;
  } else {
    return false;
  }
  if (s->empty() || s->front() != ' ') return false;
  s->remove_prefix(1);
  return true;
}

// " = RET[<annotation>] [ERRNO (text)] [(...)] [<DUR>]", the text after
// the arguments' ")".
bool ParseResult(std::string_view s, StraceResult* r) {
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
  StraceValue v;
  if (!TakeStraceValue(&s, &v)) return false;
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

// Ends a call line, whole or resumed: `s` holds the arguments (after "(" or
// "resumed>"), the closing ")" and the result. Sets `kind`, the arguments and
// the result on `out`; leaves `out` malformed when no result follows.
void FinishCall(std::string_view s, StraceLine::Kind kind, StraceLine* out) {
  Split split = ArgsEnd(s);
  if (split.args_end == std::string_view::npos) return;
  out->kind = kind;
  out->args = s.substr(0, split.args_end);
  StraceResult r;
  if (ParseResult(s.substr(split.result), &r)) out->result = r;
}

bool TakeName(std::string_view* s, std::string_view* name) {
  size_t n = 0;
  while (n < s->size() && (((*s)[n] >= 'a' && (*s)[n] <= 'z') ||
                           IsDigit((*s)[n]) || (*s)[n] == '_')) {
    ++n;
  }
  if (n == 0) return false;
  *name = s->substr(0, n);
  s->remove_prefix(n);
  return true;
}

}  // namespace

StraceLine LexStraceLine(std::string_view line) {
  StraceLine out;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || StartsWith(line, "strace: ")) {
    out.kind = StraceLine::Kind::kInfo;
    return out;
  }
  std::string_view s = line;
  Lead lead;
  if (!TakeLead(&s, &lead)) {
    out.kind = StraceLine::Kind::kMalformed;
    return out;
  }
  out.pid = lead.pid;
  out.comm = lead.comm;
  out.ts_ns = lead.ts_ns;
  out.time_format = lead.format;
  out.kind = StraceLine::Kind::kBadCall;

  if (StartsWith(s, "--- ")) {
    out.kind = StraceLine::Kind::kSignal;
    return out;
  }
  if (StartsWith(s, "+++ ")) {
    out.kind = StraceLine::Kind::kExit;
    out.process_ended = s.find("exited with") != std::string_view::npos ||
                        s.find("killed by") != std::string_view::npos;
    return out;
  }
  if (StartsWith(s, "<... ")) {
    s.remove_prefix(5);
    if (!TakeName(&s, &out.name) || !StartsWith(s, " resumed>")) return out;
    s.remove_prefix(9);
    FinishCall(s, StraceLine::Kind::kResumed, &out);
    return out;
  }
  if (!TakeName(&s, &out.name) || s.empty() || s.front() != '(') return out;
  s.remove_prefix(1);
  // strace detached (Ctrl-C) while the call was under way: it never ends
  // in the log.
  constexpr std::string_view kDetached = " <detached ...>";
  if (s.size() >= kDetached.size() &&
      s.substr(s.size() - kDetached.size()) == kDetached) {
    out.kind = StraceLine::Kind::kDetached;
    return out;
  }
  constexpr std::string_view kUnfinished = " <unfinished ...>";
  if (s.size() >= kUnfinished.size() &&
      s.substr(s.size() - kUnfinished.size()) == kUnfinished) {
    s.remove_suffix(kUnfinished.size());
    out.kind = StraceLine::Kind::kUnfinished;
    out.args = s;
    return out;
  }
  FinishCall(s, StraceLine::Kind::kCall, &out);
  return out;
}

bool TakeStraceValue(std::string_view* s, StraceValue* v) {
  bool negative = false;
  if (!s->empty() && s->front() == '-') {
    negative = true;
    s->remove_prefix(1);
  }
  uint64_t n = 0;
  if (StartsWith(*s, "0x")) {
    s->remove_prefix(2);
    size_t len = 0;
    while (len < s->size() &&
           std::isxdigit(static_cast<unsigned char>((*s)[len])))
      ++len;
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

std::vector<StraceQuotedString> CollectStraceStrings(std::string_view args) {
  std::vector<StraceQuotedString> out;
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
    StraceQuotedString q;
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

std::string StracePayloadOf(std::string_view args, uint32_t* longest) {
  std::string payload;
  for (StraceQuotedString& q : CollectStraceStrings(args)) {
    *longest = std::max<uint32_t>(
        *longest,
        static_cast<uint32_t>(std::min<size_t>(q.bytes.size(), UINT32_MAX)));
    payload += q.bytes;
    if (q.truncated || payload.size() >= kMaxPayloadBytes) break;
  }
  if (payload.size() > kMaxPayloadBytes) payload.resize(kMaxPayloadBytes);
  return payload;
}

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
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'f':
        out += '\f';
        break;
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
    id.type = kind == "UNIX-DGRAM"       ? kSockDgram
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

}  // namespace reqcost::collector
