// The lexical half of the strace import: one line of `strace -f -ttt -T
// -yy` text into its parts (PID, comm, time, call name, arguments, result,
// duration; or an unfinished start, a resumed end, a signal or exit line),
// and the pieces of a call's arguments and annotations. It keeps no state
// between lines: what the lines mean together (processes, pending calls,
// sockets) is the importer's (collector/strace_import.h).
#ifndef REQCOST_COLLECTOR_STRACE_LEXER_H_
#define REQCOST_COLLECTOR_STRACE_LEXER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collector/event.h"

namespace reqcost::collector {

// How a line's time is written: -ttt seconds since the epoch, or -tt / -t
// the time of day (no date).
enum class StraceTimeFormat { kUnknown, kEpoch, kTimeOfDay };

// A number with an optional annotation: "5<TCP:[...]>", "-1", "0x1f".
struct StraceValue {
  int64_t number = 0;
  std::optional<std::string_view> annotation;  // without the angle brackets
};

// Reads a StraceValue off the front of `*s` and drops it; false if there is
// none (`*s` may have been partly consumed then).
bool TakeStraceValue(std::string_view* s, StraceValue* v);

// A call's result: " = RET[<annotation>] [ERRNO (text)] [(...)] [<DUR>]".
struct StraceResult {
  std::optional<StraceValue> ret;  // nullopt for "?"
  int err = 0;                     // errno when "-1 ENAME"
  std::optional<uint64_t> dur_ns;  // -T
};

// One line, lexed. Views point into the line given to LexStraceLine.
struct StraceLine {
  enum class Kind {
    kInfo,        // empty, or a "strace: ..." message
    kMalformed,   // no PID/time lead: nothing of it is known
    kBadCall,     // a lead, then nothing that parses as a call
    kSignal,      // "--- SIG... ---"
    kExit,        // "+++ exited with N +++", "+++ killed by ... +++"
    kCall,        // "name(args) = result"
    kUnfinished,  // "name(args <unfinished ...>"
    kResumed,     // "<... name resumed>args) = result"
    kDetached,    // "name(args <detached ...>": strace left mid-call
  };
  Kind kind = Kind::kMalformed;
  // The lead, for every kind but kInfo and kMalformed.
  std::optional<uint32_t> pid;  // "[pid N]" or "N ": none without -f
  std::string_view comm;        // -Y: "N<comm>"
  uint64_t ts_ns = 0;           // kTimeOfDay: since midnight
  StraceTimeFormat time_format = StraceTimeFormat::kUnknown;
  // kExit: the process ended ("exited with" / "killed by").
  bool process_ended = false;
  // kCall, kUnfinished, kResumed, kDetached: the syscall's name.
  std::string_view name;
  // kCall and kResumed: the arguments up to their ")" (kResumed: the rest
  // after "resumed>"); kUnfinished: the arguments printed so far.
  std::string_view args;
  // kCall and kResumed: the result; nullopt when it does not parse.
  std::optional<StraceResult> result;
};

// Lexes one line of strace output, without its '\n' (a trailing '\r' is
// dropped).
StraceLine LexStraceLine(std::string_view line);

// A quoted string found in a call's arguments.
struct StraceQuotedString {
  std::string bytes;
  bool truncated = false;  // strace printed `"..."...`: more bytes moved
};

// The quoted strings of `args` outside fd annotations, in order.
std::vector<StraceQuotedString> CollectStraceStrings(std::string_view args);

// The bytes a read or write moved, as far as strace printed them: its
// strings joined (iovecs in order) up to the first one cut short, at most
// kMaxPayloadBytes (collector/capture_file.h). Raises `*longest` to the longest
// string's length.
std::string StracePayloadOf(std::string_view args, uint32_t* longest);

// One parsed socket identity of a -yy annotation ("UNIX-STREAM:[1->2]",
// "TCP:[127.0.0.1:80->127.0.0.1:5000]", ...); nullopt when the text is not
// a socket (a path, pipe:[...], ...). `known` false for "socket:[ino]" (-y):
// a socket, identity unknown.
struct StraceSocket {
  SocketId id;
  bool known = true;
};
std::optional<StraceSocket> ParseStraceSocket(std::string_view annotation);

// Decodes one strace quoted string body (between the quotes): \n \r \t \v
// \f \" \\, \NNN octal, \xNN hex.
std::string DecodeStraceString(std::string_view body);

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_STRACE_LEXER_H_
