#include "analyzers/client_requests.h"

#include <algorithm>
#include <memory>

#include "analyzers/request.h"

namespace reqcost::analyzers {

void PreRequest::AddHandshake(const SyscallRecord& rec, bool write) {
  tls = true;
  if (write) {
    leg_wrote = leg_start != 0;
  } else if (rec.ret > 0 && (leg_start == 0 || leg_wrote)) {
    CloseLeg();
    leg_start = rec.start_ns();
  }
  if (leg_start != 0) leg_end = std::max(leg_end, rec.exit_ns);
  syscalls.push_back(rec);
}

uint64_t PreRequest::CloseLeg() {
  if (leg_start != 0 && leg_end > leg_start) tls_ns += leg_end - leg_start;
  leg_start = leg_end = 0;
  leg_wrote = false;
  return tls_ns;
}

}  // namespace reqcost::analyzers
