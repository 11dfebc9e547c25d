// strace-style lines for `reqcost attach --events`.
#ifndef REQCOST_CLI_EVENT_PRINTER_H_
#define REQCOST_CLI_EVENT_PRINTER_H_

#include <cstdint>
#include <string>

#include "collector/event.h"

namespace reqcost::cli {

// "127.0.0.1:8080->127.0.0.1:51234", "unix:3fa19bc2->9bc2d1e0", "?".
std::string FormatSocket(const SocketId& sock);
// " tls[22:183 20:1]" (type:length of each record that begins in the read)
// for a read of a TLS stream, "" otherwise.
std::string FormatTls(const TlsRecords& tls);

// One line, no newline: time relative to `origin_ns` (the enter, or the exit
// when the enter was not seen), comm, pid/tid, the call with its fd and
// socket, the return value and the duration, e.g.
// "  0.012345 nginx 1234/1234 read(12<127.0.0.1:8080->127.0.0.1:51234>) = 91
// <0.000004>"
std::string FormatEvent(const SyscallEvent& event, const std::string& comm,
                        uint64_t origin_ns);

// "  0.020000 nginx 1234 fork -> 1240 (nginx)"
std::string FormatProcessEvent(const ProcessEvent& event, uint64_t origin_ns);

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_EVENT_PRINTER_H_
