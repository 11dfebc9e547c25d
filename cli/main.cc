// reqcost: where a web request's time goes, across the server and its
// backends, measured in the kernel.
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "cli/exit_codes.h"

int main(int argc, char** argv) {
  using namespace reqcost::cli;
  CLI::App app{"reqcost: request-cost profiler for web servers and their "
               "FastCGI/HTTP backends"};
  app.require_subcommand(1);

  app.add_subcommand("check", "what this machine allows, and why not");

  AttachOptions attach;
  CLI::App* attach_cmd = app.add_subcommand(
      "attach", "trace live processes until Ctrl-C or --duration");
  attach_cmd->add_option("-p,--pid", attach.pids,
                         "PID to trace with all its descendants (repeatable)")
      ->required();
  attach_cmd->add_option("-d,--duration", attach.duration,
                         "stop after this long: 10s, 500ms, 2m (0: Ctrl-C)");
  attach_cmd->add_flag("--events", attach.events,
                       "print every traced syscall, strace-style");
  attach_cmd->add_option("--payload", attach.payload_bytes,
                         "bytes of each read/write to capture (0-256; default "
                         "0: none)");
  attach_cmd->add_option("--ring-buffer", attach.ring_bytes,
                         "ring buffer bytes, a power of two (default 8 MiB)");
  attach_cmd->add_flag("-v,--verbose", attach.verbose, "show libbpf's log");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "reqcost: %s\n", e.what());
    return kExitUsage;
  }

  if (app.got_subcommand("check")) return RunCheck();
  if (app.got_subcommand(attach_cmd)) return RunAttach(attach);
  return kExitUsage;
}
