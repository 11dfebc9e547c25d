// `reqcost demo`: profiles a real nginx + php-fpm stack it starts itself.
#ifndef REQCOST_CLI_DEMO_H_
#define REQCOST_CLI_DEMO_H_

#include "absl/status/status.h"

namespace reqcost::cli {

struct DemoOptions {
  int requests = 2000;  // per way, ab -n, over all rounds
  int rounds = 4;       // every way runs once per round, in turn
};

// Starts the stack on loopback in a temp dir, profiles it four ways (and the
// sample backend once), prints the comparison and stops all it started,
// on Ctrl-C too. Its errors speak as "reqcost demo" (cli/exit_codes.h).
absl::Status RunDemo(const DemoOptions& options);

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_DEMO_H_
