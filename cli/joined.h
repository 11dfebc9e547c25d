// Several captures, one per host, profiled each on its own and joined
// (analyzers/host_join.h): what `report`, `compare` and `timeline` do when
// given more than one capture.
#ifndef REQCOST_CLI_JOINED_H_
#define REQCOST_CLI_JOINED_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analyzers/host_join.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "nlohmann/json.hpp"

namespace reqcost::cli {

// The joined requests of several captures and the report over them.
struct JoinedCaptures {
  analyzers::Report report;
  std::vector<analyzers::Request> requests;  // every request, joined
  analyzers::JoinSummary summary;
  uint64_t start_mono_ns = 0;  // the first capture's start
};

// Replays every capture at `paths` on its own and joins them. A capture that
// cannot be read is an error marked as `report` marks it (BadCapture).
// Every request is kept in memory until the join.
absl::StatusOr<JoinedCaptures> ProfileAndJoin(
    const std::vector<std::string>& paths);

// `spec` split at commas: "front.cap,backend.cap" names a set of captures
// (compare's A and B).
std::vector<std::string> CaptureSet(const std::string& spec);

// The join's lines for the text report: what matched and what did not.
std::string FormatJoinText(const analyzers::JoinSummary& summary);
// The same as the JSON report's "hosts" object.
nlohmann::json JoinToJson(const analyzers::JoinSummary& summary);

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_JOINED_H_
