// Turns strace logs into the events a live capture would have recorded, so
// that `report`, `compare` and `timeline` work on them unchanged.
//
// Input: the text of `strace -f -ttt -T -yy` (recommended; -Y and -s 256
// help), or -tt (time of day, rolled over at midnight), one file or the
// files of `-ff -o PREFIX` (the PID of a file's lines is its ".PID"
// suffix), with `<unfinished ...>` / `<... resumed>` pairs, signal and exit
// lines and a last line cut short.
//
// Output, per traced call on a socket (accept, accept4, connect, read,
// readv, recvfrom, recvmsg, recvmmsg, write, writev, sendto, sendmsg,
// sendmmsg, sendfile, close, shutdown): a SyscallEvent with enter = the
// call's timestamp (strace stamps a line when the call starts) and exit =
// enter + its -T duration. Socket identity comes from the -yy annotations:
// a unix socket's id is its inode and its peer the peer's inode (the kernel
// pairs them the same way live capture does with socket addresses; a peer
// seen on one end is given to the other end too, since strace often prints
// it on one end only); TCP sockets carry their 4-tuple. A connect's
// identity is read at its exit in live capture: here it is taken from the
// next call on that fd. Process roles follow from the sockets, as live;
// threads and children come from clone/clone3/fork/vfork results; strace's
// quoted strings (-s) are the payload prefixes (request lines, FastCGI
// record headers), and a unix connect's sun_path is kept as live capture
// does.
//
// Without -yy, sockets have no identity: calls on fds opened by socket,
// accept or connect in the log are kept, a server's backend links cannot be
// paired with the backend's connections, and so the calls of processes that
// only accept (backends, when some process in the log connects) are left
// out and counted: the backend phase is inferred from the server's side.
//
// Nothing here does I/O: the parser is a pure function of the text.
#ifndef REQCOST_COLLECTOR_STRACE_IMPORT_H_
#define REQCOST_COLLECTOR_STRACE_IMPORT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collector/capture_file.h"
#include "collector/event.h"
#include "collector/strace_lexer.h"

namespace reqcost::collector {

// What the import made of its input; every line not turned into an event is
// in one of these counts.
struct StraceImportStats {
  static constexpr size_t kMaxSamples = 5;  // malformed lines named
  uint64_t files = 0;
  uint64_t lines = 0;         // lines read (empty ones included)
  uint64_t calls = 0;         // syscall lines (an unfinished+resumed pair: 1)
  uint64_t socket_calls = 0;  // calls turned into events
  uint64_t other_calls = 0;   // calls reqcost does not trace (epoll, ...)
  uint64_t not_socket = 0;    // traced names on files, pipes, ...: skipped
  uint64_t unknown_fd = 0;    // no -yy: on an fd not known to be a socket
  uint64_t signals = 0;       // "--- SIG... ---" lines
  uint64_t exits = 0;         // "+++ exited ... +++" / "+++ killed ... +++"
  uint64_t info_lines = 0;    // "strace: ..." messages, empty lines
  uint64_t malformed = 0;     // lines that are none of the above
  std::vector<std::string> malformed_samples;  // "FILE:LINE", first few
  uint64_t truncated = 0;       // last lines cut short (no newline): dropped
  uint64_t unfinished = 0;      // calls never resumed: dropped
  uint64_t orphan_resumed = 0;  // resumed with no unfinished start seen
  uint64_t no_duration = 0;     // socket calls without -T: start unknown
  uint64_t identified = 0;      // socket calls with a -yy socket identity
  // No -yy: calls of accept-only processes left out (see the file comment).
  uint64_t backend_left_out = 0;
  uint64_t no_pid_lines = 0;   // lines without a PID and no ".PID" file
  bool wall_clock = false;     // -tt/-t: time of day, no date
  uint32_t payload_bytes = 0;  // longest string strace printed (its -s)
  uint64_t processes = 0;
};

// The import: a capture's header and records, and what was made of the text.
struct StraceImport {
  CaptureHeader header;
  std::vector<SyscallEvent> events;          // by exit time
  std::vector<ProcessEvent> process_events;  // by time
  StraceImportStats stats;
  // Without -yy (no socket identity at all): the backend phase can only be
  // inferred.
  bool inferred_only() const {
    return stats.socket_calls > 0 && stats.identified == 0;
  }
};

// Feeds strace logs line by line. Not thread-safe.
class StraceImporter {
 public:
  StraceImporter();
  ~StraceImporter();
  StraceImporter(const StraceImporter&) = delete;
  StraceImporter& operator=(const StraceImporter&) = delete;

  // Starts the next log; `name` is used in sample line numbers. Lines with no
  // PID of their own belong to the process of a ".PID" suffix of `name` (the
  // files of strace -ff -o PREFIX).
  void BeginFile(std::string_view name);
  // One line of the current log, without its '\n'.
  void AddLine(std::string_view line);
  // Ends the current log. `ended_with_newline` false: its last line was cut
  // short (strace killed mid-write) and is dropped, counted as truncated.
  void EndFile(bool ended_with_newline);
  // The import of everything fed. The importer is empty afterwards.
  StraceImport Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The import of whole logs: (name, text) pairs, in order. A pure function:
// the fuzz target and the unit tests call this.
StraceImport ImportStrace(
    const std::vector<std::pair<std::string, std::string_view>>& logs);

// ParseStraceSocket and DecodeStraceString: collector/strace_lexer.h.

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_STRACE_IMPORT_H_
