// What the TLS benchmarks (tls_cost, tls_calls) share: their flags, their
// need of root, the tracer they start and a sink that only counts, and the
// median and spread of a figure over the rounds.
#ifndef REQCOST_TESTS_BENCH_ROUND_FIGURES_H_
#define REQCOST_TESTS_BENCH_ROUND_FIGURES_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "collector/tracer.h"

namespace reqcost::bench {

// The tracer's sink in a benchmark: counts what it is handed.
class CountingSink : public collector::EventSink {
 public:
  void OnSyscall(const SyscallEvent&) override { ++syscalls; }
  void OnProcess(const ProcessEvent&) override {}
  void OnTlsData(const TlsDataEvent&) override { ++tls_data; }
  void OnDrops(uint64_t, uint64_t, uint64_t count) override { drops += count; }
  uint64_t syscalls = 0, tls_data = 0, drops = 0;
};

// --rounds=N, --requests=N, --quick (the quick figures in place), and
// root. 0 to go on; else the exit code, having said why on stderr: 2 for
// a bad flag, 77 (skipped) without root, 1 without root under
// REQCOST_REQUIRE_BPF=1.
struct RoundsFlags {
  int rounds = 0;
  int requests = 0;
};
int StartBench(int argc, char** argv, const char* program, RoundsFlags quick,
               RoundsFlags* flags);

// The median (the mean of the middle two of an even count; 0 when empty).
// reqcost's tracer on process `pid`, with its TLS probes or without, as
// one uprobe session link (`session`, where the kernel has them) or two
// multi links, wanting `payload_bytes` of plaintext. nullptr when it did
// not start: why is on stderr, as `program`'s.
std::unique_ptr<collector::Tracer> StartTlsTracer(const char* program,
                                                  pid_t pid, bool probes,
                                                  bool session,
                                                  uint32_t payload_bytes,
                                                  collector::EventSink* sink);

double Median(std::vector<double> v);

// "median (min..max)", each printed with `fmt`; "-" when empty.
std::string Spread(const std::vector<double>& v, const char* fmt);

}  // namespace reqcost::bench

#endif  // REQCOST_TESTS_BENCH_ROUND_FIGURES_H_
