#include "analyzers/exchanges.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace reqcost::analyzers {
bool CanAttribute(const Exchange& ex, uint64_t last_read_exit,
                  uint64_t write_start) {
  return ex.start_enter >= last_read_exit && ex.has_reply &&
         ex.first_reply_exit <= write_start;
}

}  // namespace reqcost::analyzers
