// libFuzzer target for the backend-call protocol detectors and query
// extractors (analyzers/call_protocols.h): any bytes as a client's first
// send, a server's greeting, a unix path or a query, never a crash, and:
//   - an extracted query is at most `max` bytes (SQL) or 32 (a Redis
//     command name), never longer than the input;
//   - a Redis command name is upper case letters, digits and _.|- only:
//     never an argument;
//   - an unknown protocol yields no query.
// The first input byte chooses `max` (0..255) and the protocol.
// Run: call_protocols_fuzz -max_total_time=60 corpus/
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "analyzers/call_protocols.h"

namespace reqcost::analyzers {
namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "call_protocols_fuzz: %s\n", what);
  std::abort();
}

}  // namespace
}  // namespace reqcost::analyzers

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reqcost::analyzers;  // NOLINT: a fuzz target's body
  if (size == 0) return 0;
  const size_t max = data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1),
                               size - 1);
  const CallProtocol sent = DetectFromSend(bytes, bytes.size());
  (void)DetectFromSend(bytes, bytes.size() + max);
  (void)DetectFromGreeting(bytes);
  (void)ProtocolByPath(bytes);
  (void)ProtocolName(sent);
  constexpr CallProtocol kAll[] = {
      CallProtocol::kUnknown,   CallProtocol::kMysql, CallProtocol::kPostgresql,
      CallProtocol::kRedis,     CallProtocol::kMemcached,
      CallProtocol::kHttp,      CallProtocol::kFastCgi};
  for (CallProtocol p : kAll) {
    const std::string q = ExtractQuery(p, bytes, max);
    if (p == CallProtocol::kUnknown && !q.empty()) Die("query of kUnknown");
    if ((p == CallProtocol::kMysql || p == CallProtocol::kPostgresql) &&
        q.size() > 3 * max) {
      // ValidUtf8 may widen a byte to U+FFFD (3 bytes), never more.
      Die("SQL longer than max");
    }
    if (p == CallProtocol::kRedis) {
      if (q.size() > 32) Die("Redis name longer than 32");
      for (char c : q) {
        if (std::islower(static_cast<unsigned char>(c)) ||
            !(std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
              c == '.' || c == '|' || c == '-')) {
          Die("Redis name with an argument's byte");
        }
      }
    }
  }
  return 0;
}
