#include "tests/bench/round_figures.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace reqcost::bench {

int StartBench(int argc, char** argv, const char* program, RoundsFlags quick,
               RoundsFlags* flags) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    bool ok = true;
    if (absl::ConsumePrefix(&a, "--rounds=")) {
      ok = absl::SimpleAtoi(a, &flags->rounds) && flags->rounds >= 1;
    } else if (absl::ConsumePrefix(&a, "--requests=")) {
      ok = absl::SimpleAtoi(a, &flags->requests) && flags->requests >= 10;
    } else if (a == "--quick") {
      *flags = quick;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "usage: %s [--rounds=N] [--requests=N] [--quick]\n",
                   program);
      return 2;
    }
  }
  if (geteuid() == 0) return 0;
  std::fprintf(stderr, "%s: needs root (BPF, uprobes)\n", program);
  const char* req = std::getenv("REQCOST_REQUIRE_BPF");
  return req != nullptr && std::string(req) == "1" ? 1 : 77;
}

std::unique_ptr<collector::Tracer> StartTlsTracer(const char* program,
                                                  pid_t pid, bool probes,
                                                  bool session,
                                                  uint32_t payload_bytes,
                                                  collector::EventSink* sink) {
  collector::TracerOptions options;
  options.pids = {pid};
  options.tls_probes = probes;
  options.tls_uprobe_session = session;
  options.payload_bytes = payload_bytes;
  absl::StatusOr<std::unique_ptr<collector::Tracer>> tracer =
      collector::Tracer::Start(options, sink);
  if (!tracer.ok()) {
    std::fprintf(stderr, "%s: tracer: %s\n", program,
                 tracer.status().ToString().c_str());
    return nullptr;
  }
  return *std::move(tracer);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Spread(const std::vector<double>& v, const char* fmt) {
  if (v.empty()) return "-";
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return absl::StrCat(absl::StrFormat(fmt, Median(v)), " (",
                      absl::StrFormat(fmt, *lo), "..",
                      absl::StrFormat(fmt, *hi), ")");
}

}  // namespace reqcost::bench
