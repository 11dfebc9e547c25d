// The HTTP/2 tests' clients: h2load (found, run, its summary parsed) and any
// client command run to its end, plus the median the tests compare with
// php-fpm's own clock. Shared by the nginx and the lighttpd HTTP/2 tests.
#ifndef REQCOST_TESTS_INTEGRATION_H2_CLIENTS_H_
#define REQCOST_TESTS_INTEGRATION_H2_CLIENTS_H_

#include <unistd.h>

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/support/stack.h"

namespace reqcost::testing {

// The path of h2load, or NotFound saying which package has it.
inline absl::StatusOr<std::string> H2load() {
  for (const char* p : {"/usr/bin/h2load", "/usr/local/bin/h2load"}) {
    if (access(p, X_OK) == 0) return std::string(p);
  }
  return absl::NotFoundError(
      "h2load not found: apt-get install nghttp2-client "
      "(scripts/bootstrap.sh)");
}

// What h2load printed: requests succeeded and its mean time per request.
struct H2loadResult {
  int succeeded = -1;
  double mean_request_us = 0;
};

// h2load's summary parsed; an error quotes it when either figure is missing.
inline absl::StatusOr<H2loadResult> ParseH2load(const std::string& out) {
  H2loadResult r;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"((\d+) succeeded)"))) {
    r.succeeded = std::stoi(m[1]);
  }
  // "time for request:  MIN  MAX  MEAN  SD ..." with units us, ms or s.
  if (std::regex_search(
          out, m,
          std::regex(R"(time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s))"))) {
    double v = std::stod(m[1]);
    r.mean_request_us =
        m[2] == "us" ? v : (m[2] == "ms" ? v * 1000 : v * 1'000'000);
  }
  if (r.succeeded < 0 || r.mean_request_us <= 0) {
    return absl::InternalError("h2load output not understood: " + out);
  }
  return r;
}

// The median of `v` (0 when empty).
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2]
                           : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Runs `argv` to its end (at most 120 s) with its output in `dir` as
// NAME.out / NAME.err and returns its stdout; an exit other than 0 is an
// error quoting it.
inline absl::StatusOr<std::string> RunClient(
    const TempDir& dir, const std::vector<std::string>& argv,
    const std::string& name) {
  absl::StatusOr<Subprocess> p =
      Subprocess::Start(argv, dir.File(name + ".out"), dir.File(name + ".err"));
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->WaitForExit(absl::Seconds(120));
  if (!status.ok()) {
    (void)p->Stop(absl::Seconds(2));
    return status.status();
  }
  absl::StatusOr<std::string> out = ReadFileToString(dir.File(name + ".out"));
  if (!out.ok()) return out.status();
  if (*status != 0) {
    return absl::InternalError(
        absl::StrCat(name, " exited ", *status, ": ", *out,
                     ReadFileToString(dir.File(name + ".err")).value_or("")));
  }
  return out;
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_INTEGRATION_H2_CLIENTS_H_
