// floor.bpf.c's empty uprobe and uretprobe on the TLS sites of processes:
// what the traps alone cost, with no program work (tls_cost, tls_calls).
#ifndef REQCOST_TESTS_BENCH_FLOOR_UPROBES_H_
#define REQCOST_TESTS_BENCH_FLOOR_UPROBES_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

struct bpf_link;
struct floor_bpf;

namespace reqcost::bench {

class FloorUprobes {
 public:
  // In the libssl each of `pids` maps: where the tracer probes (OpenSSL's
  // internal read and write functions, collector/ssl_sites.h), or on the
  // four public functions (`public_functions`); the entries alone without
  // `returns`.
  static absl::StatusOr<std::unique_ptr<FloorUprobes>> Attach(
      const std::vector<pid_t>& pids, bool public_functions, bool returns);
  ~FloorUprobes();
  FloorUprobes(const FloorUprobes&) = delete;
  FloorUprobes& operator=(const FloorUprobes&) = delete;

  // The two programs' ids, for bpf_stats.
  std::vector<uint32_t> ProgramIds() const;

 private:
  explicit FloorUprobes(floor_bpf* skel) : skel_(skel) {}

  floor_bpf* skel_;
  std::vector<bpf_link*> links_;
};

}  // namespace reqcost::bench

#endif  // REQCOST_TESTS_BENCH_FLOOR_UPROBES_H_
