// HPACK (RFC 7541): decoding the header blocks of HTTP/2 HEADERS and
// CONTINUATION frames into header fields, with the static table, the
// connection's dynamic table and Huffman-coded strings. Pure; malformed input
// is an error value.
#ifndef REQCOST_ANALYZERS_HPACK_H_
#define REQCOST_ANALYZERS_HPACK_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace reqcost::analyzers {

// One decoded header field.
struct HeaderField {
  std::string name;
  std::string value;
  friend bool operator==(const HeaderField& a, const HeaderField& b) {
    return a.name == b.name && a.value == b.value;
  }
};

// SETTINGS_HEADER_TABLE_SIZE until the decoder's side announces another.
inline constexpr size_t kHpackDefaultTableSize = 4096;
// What an entry costs in the dynamic table beyond its name and value.
inline constexpr size_t kHpackEntryOverhead = 32;

// Decodes a Huffman-coded string (RFC 7541 5.2, Appendix B). Errors
// (InvalidArgument): the EOS symbol inside the string, padding longer than
// 7 bits or not made of 1 bits, a code cut short.
absl::StatusOr<std::string> HpackHuffmanDecode(std::string_view coded);

// The HPACK decoder of one direction of one connection: the dynamic table
// lives across header blocks. After an error the table is undefined, so the
// decoder refuses every later block (HTTP/2 makes that a connection error).
class HpackDecoder {
 public:
  // `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE the decoding side
  // allows; a dynamic table size update above it is an error.
  explicit HpackDecoder(size_t max_table_size = kHpackDefaultTableSize);

  // Decodes one complete header block (the payloads of a HEADERS frame and
  // its CONTINUATIONs, padding and priority removed, concatenated). Returns
  // the fields in order. Errors: InvalidArgument for a truncated integer or
  // string, an integer that overflows, index 0 or an index past both
  // tables, bad Huffman coding, a table size update above the limit or
  // after a field; FailedPrecondition after an earlier error.
  absl::StatusOr<std::vector<HeaderField>> Decode(std::string_view block);

  // Sets the SETTINGS_HEADER_TABLE_SIZE limit (the encoder must then send a
  // size update at the start of its next block).
  void SetMaxTableSize(size_t limit) { limit_ = limit; }

  // The dynamic table's size in RFC 7541 units (name + value + 32 each).
  size_t table_size() const { return size_; }
  // Its current maximum size, as the encoder last set it.
  size_t table_capacity() const { return capacity_; }
  // Entries of the dynamic table, newest first.
  const std::deque<HeaderField>& dynamic_table() const { return dynamic_; }

 private:
  absl::Status DecodeBlock(std::string_view block,
                           std::vector<HeaderField>* out);
  absl::StatusOr<HeaderField> Lookup(uint64_t index) const;
  void Add(HeaderField field);
  void Evict();

  size_t limit_;
  size_t capacity_;
  size_t size_ = 0;
  std::deque<HeaderField> dynamic_;
  absl::Status status_;
};

// The header block fragment a HEADERS frame carries: `payload` without its
// padding (flag PADDED) and priority fields (flag PRIORITY). InvalidArgument
// when the padding or priority does not fit in the payload. For a
// CONTINUATION frame the whole payload is the fragment.
absl::StatusOr<std::string_view> HeadersFragment(std::string_view payload,
                                                 uint8_t flags);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_HPACK_H_
