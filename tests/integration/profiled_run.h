// One profiled ab run (reqcost attach --format json -o CAP around ab) and the
// replay of its capture as per-request jsonl: what stacks_test.cc,
// tls_test.cc and resolve_test.cc share.
#ifndef REQCOST_TESTS_INTEGRATION_PROFILED_RUN_H_
#define REQCOST_TESTS_INTEGRATION_PROFILED_RUN_H_

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/stack.h"

namespace reqcost::testing {

struct Profiled {
  nlohmann::json report;  // reqcost.report/2
  AbResult ab;
  std::string capture;  // the capture file (-o)
};

// Attaches reqcost to `pids` (waits for its probes), runs ab, stops reqcost
// with SIGINT whatever ab did, and parses the report. Every step is bounded.
// `flags` go to `reqcost attach` too (e.g. --syscall-times).
inline absl::StatusOr<Profiled> ProfileAb(
    const TempDir& dir, const std::vector<pid_t>& pids, const AbOptions& ab,
    const std::vector<std::string>& flags = {}) {
  static int n = 0;
  Profiled p;
  p.capture = dir.File(absl::StrCat("run-", n++, ".cap"));
  std::vector<std::string> args = {"attach"};
  for (pid_t pid : pids) {
    args.push_back("-p");
    args.push_back(std::to_string(pid));
  }
  for (const char* a : {"--format", "json", "-o"}) args.push_back(a);
  args.push_back(p.capture);
  args.insert(args.end(), flags.begin(), flags.end());
  absl::StatusOr<ReqcostRun> run = ReqcostRun::Attach(dir, args);
  if (!run.ok()) return run.status();
  absl::StatusOr<AbResult> result = RunAb(ab);
  absl::StatusOr<int> code = run->StopWith(SIGINT);
  if (!result.ok()) return result.status();
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(
        absl::StrCat("reqcost exited ", *code, ": ", run->err()));
  }
  p.ab = *result;
  try {
    p.report = nlohmann::json::parse(run->out());
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(
        absl::StrCat("reqcost printed no JSON (", e.what(), "): ", run->out()));
  }
  return p;
}

// The requests of a capture, one object each (reqcost report CAP --requests
// --format jsonl).
inline absl::StatusOr<std::vector<nlohmann::json>> ReplayRequests(
    const std::string& capture) {
  absl::StatusOr<ReqcostOutput> r =
      RunReqcostTo({"report", capture, "--requests", "--format", "jsonl"},
                   capture + ".jsonl", capture + ".err", absl::Seconds(30));
  if (!r.ok()) return r.status();
  if (r->code != 0) {
    return absl::InternalError(absl::StrCat("reqcost report exited ", r->code,
                                            ": ", FileTail(capture + ".err")));
  }
  std::vector<nlohmann::json> requests;
  for (absl::string_view line :
       absl::StrSplit(r->out, '\n', absl::SkipEmpty())) {
    try {
      requests.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      return absl::InternalError(
          absl::StrCat("bad jsonl line (", e.what(), "): ", line));
    }
  }
  return requests;
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_INTEGRATION_PROFILED_RUN_H_
