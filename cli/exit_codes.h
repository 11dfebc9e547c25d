// reqcost's exit codes: documented in docs/reqcost.8.md (EXIT STATUS); scripts
// depend on them.
//
// Every command returns an absl::Status; `main` alone turns it into one line
// on stderr and an exit code (ReportAndExit). The code comes from the
// Status's code (ExitCodeFor), unless the command marked the Status with an
// exit code of its own (WithExitCode: a bad capture file, an import without
// socket calls, ...).
#ifndef REQCOST_CLI_EXIT_CODES_H_
#define REQCOST_CLI_EXIT_CODES_H_

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace reqcost::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;        // anything not listed below
inline constexpr int kExitUsage = 2;        // a flag or argument is wrong
inline constexpr int kExitNoProcess = 3;    // a PID does not exist
inline constexpr int kExitPrivileges = 4;   // not allowed to load BPF
inline constexpr int kExitUnsupported = 5;  // the kernel lacks BTF, tracefs...
inline constexpr int kExitBadCapture = 6;   // a capture file is unreadable
inline constexpr int kExitNoSocketCalls =
    7;  // import: no socket syscalls in the log

// Payload type URLs of the marks below. Never written anywhere: they live
// only between a command and main.
inline constexpr char kExitCodePayload[] = "reqcost/exit-code";
inline constexpr char kSpeakerPayload[] = "reqcost/speaker";
inline constexpr char kReportedPayload[] = "reqcost/reported";

// `status`, marked so that main exits with `code` for it whatever its kind.
inline absl::Status WithExitCode(absl::Status status, int code) {
  status.SetPayload(kExitCodePayload, absl::Cord(std::to_string(code)));
  return status;
}

// `status`, marked so that main prints its message after "`speaker`: "
// instead of "reqcost: " (the demo speaks as "reqcost demo").
inline absl::Status WithSpeaker(absl::Status status,
                                const std::string& speaker) {
  status.SetPayload(kSpeakerPayload, absl::Cord(speaker));
  return status;
}

// `status`, marked as already shown to the user (a table of checks, a
// summary that ended with the error): main prints nothing more for it.
inline absl::Status AlreadyReported(absl::Status status) {
  status.SetPayload(kReportedPayload, absl::Cord("1"));
  return status;
}

// The exit code for a command's Status: the code it was marked with, else by
// the kind of its Status.
inline int ExitCodeFor(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (const auto mark = status.GetPayload(kExitCodePayload)) {
    int code = kExitError;
    if (absl::SimpleAtoi(std::string(*mark), &code)) return code;
  }
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

// Prints a failed command's message as one line on stderr ("reqcost:
// MESSAGE", unless already reported) and returns its exit code. The one
// place where an error ends.
inline int ReportAndExit(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (!status.GetPayload(kReportedPayload).has_value()) {
    const auto speaker = status.GetPayload(kSpeakerPayload);
    std::fprintf(
        stderr, "%s: %s\n",
        speaker.has_value() ? std::string(*speaker).c_str() : "reqcost",
        std::string(status.message()).c_str());
  }
  return ExitCodeFor(status);
}

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_EXIT_CODES_H_
