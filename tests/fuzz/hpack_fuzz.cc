// libFuzzer target for the HPACK decoder (analyzers/hpack.h): any bytes give
// header fields or an error value, never a crash, an out-of-bounds read or an
// unbounded allocation, and the dynamic table keeps its promises:
//   - its size is the sum of its entries' sizes (name + value + 32) and
//     never above its capacity, nor the capacity above the limit;
//   - after an error every later block is refused.
// The first two bytes set the table size limit; the rest is cut into header
// blocks at every 0xff 0x00 pair (several blocks share one dynamic table).
// Run: hpack_fuzz -max_total_time=60 corpus/
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "analyzers/hpack.h"

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "hpack_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reqcost::analyzers;
  if (size < 2) return 0;
  size_t limit = (size_t{data[0]} << 8 | data[1]) % 8192;
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);

  (void)HpackHuffmanDecode(rest);

  HpackDecoder decoder(limit);
  bool failed = false;
  while (true) {
    size_t cut = rest.find(std::string_view("\xff\x00", 2));
    std::string_view block = rest.substr(0, cut);
    absl::StatusOr<std::vector<HeaderField>> fields = decoder.Decode(block);
    if (failed && fields.ok()) Die("a block decoded after an error");
    if (!fields.ok()) failed = true;
    size_t sum = 0;
    for (const HeaderField& f : decoder.dynamic_table()) {
      sum += f.name.size() + f.value.size() + kHpackEntryOverhead;
    }
    if (sum != decoder.table_size()) Die("table size is not its entries' sum");
    if (decoder.table_size() > decoder.table_capacity())
      Die("table over capacity");
    if (decoder.table_capacity() > limit) Die("capacity over the limit");
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + 2);
  }
  return 0;
}
