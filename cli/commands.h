// The `reqcost` subcommands. Each returns an exit code (cli/exit_codes.h)
// and prints its own errors as one sentence on stderr.
#ifndef REQCOST_CLI_COMMANDS_H_
#define REQCOST_CLI_COMMANDS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace reqcost::cli {

// `reqcost check`: prints each check and its fix; 0 when all pass.
int RunCheck();

struct AttachOptions {
  std::vector<pid_t> pids;
  std::string duration = "0";  // "0": until Ctrl-C
  bool events = false;         // print every event, strace-style
  uint32_t payload_bytes = 0;
  uint32_t ring_bytes = 8u << 20;
  bool verbose = false;
};

// `reqcost attach`: traces until --duration or SIGINT/SIGTERM.
int RunAttach(const AttachOptions& options);

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_COMMANDS_H_
