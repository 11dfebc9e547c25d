// reqcost's exit codes: documented in docs/reqcost.8.md (EXIT STATUS); scripts
// depend on them.
#ifndef REQCOST_CLI_EXIT_CODES_H_
#define REQCOST_CLI_EXIT_CODES_H_

#include "absl/status/status.h"

namespace reqcost::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;        // anything not listed below
inline constexpr int kExitUsage = 2;        // a flag or argument is wrong
inline constexpr int kExitNoProcess = 3;    // a PID does not exist
inline constexpr int kExitPrivileges = 4;   // not allowed to load BPF
inline constexpr int kExitUnsupported = 5;  // the kernel lacks BTF, tracefs...
inline constexpr int kExitBadCapture = 6;   // a capture file is unreadable
inline constexpr int kExitNoSocketCalls = 7;  // import: no socket syscalls in the log

// The exit code for a failed command, by the kind of its Status.
inline int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNoProcess;
    case absl::StatusCode::kPermissionDenied:
      return kExitPrivileges;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnimplemented:
      return kExitUnsupported;
    case absl::StatusCode::kDataLoss:
      return kExitBadCapture;
    default:
      return kExitError;
  }
}

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_EXIT_CODES_H_
