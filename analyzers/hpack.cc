#include "analyzers/hpack.h"

#include <array>
#include <utility>

#include "absl/strings/str_format.h"
#include "collector/status_macros.h"

namespace reqcost::analyzers {
namespace {

// RFC 7541 Appendix A.
struct StaticEntry {
  std::string_view name;
  std::string_view value;
};
constexpr std::array<StaticEntry, 61> kStaticTable = {{
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
}};

// RFC 7541 Appendix B, the code length of each symbol (256 is EOS). The
// code is canonical: codes of one length are consecutive in symbol order and
// follow the last code of the length below, so the lengths determine every
// code (the tests check codes against the appendix's hex column).
constexpr std::array<uint8_t, 257> kHuffmanLengths = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,  //   0
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,  //  16
    6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11, 8,  6,  6,  6,   //  32
    5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8,  15, 6,  12, 10,  //  48
    13, 6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,   //  64
    7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8,  13, 19, 13, 14, 6,   //  80
    15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,   //  96
    6,  7,  6,  5,  5,  6,  7,  7,  7,  7,  7,  15, 11, 14, 13, 28,  // 112
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,  // 128
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,  // 144
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,  // 160
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,  // 176
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,  // 192
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,  // 208
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,  // 224
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,  // 240
    30,                                                              // 256
};
constexpr int kHuffmanMaxLength = 30;
constexpr int kEos = 256;

// The canonical decoding tables built from the lengths: for each length,
// its first code and where its symbols start in `symbols`.
struct HuffmanTables {
  std::array<uint32_t, kHuffmanMaxLength + 1> first_code{};
  std::array<uint16_t, kHuffmanMaxLength + 1> count{};
  std::array<uint16_t, kHuffmanMaxLength + 1> first_index{};
  std::array<uint16_t, 257> symbols{};

  HuffmanTables() {
    for (uint8_t len : kHuffmanLengths) ++count[len];
    uint32_t code = 0;
    uint16_t index = 0;
    for (int len = 1; len <= kHuffmanMaxLength; ++len) {
      code = (code + (len > 1 ? count[len - 1] : 0)) << (len > 1 ? 1 : 0);
      first_code[len] = code;
      first_index[len] = index;
      index += count[len];
    }
    std::array<uint16_t, kHuffmanMaxLength + 1> next = first_index;
    for (int sym = 0; sym <= kEos; ++sym) {
      symbols[next[kHuffmanLengths[sym]]++] = static_cast<uint16_t>(sym);
    }
  }
};

const HuffmanTables& Huffman() {
  static const HuffmanTables* tables = new HuffmanTables();
  return *tables;
}

// Reads an integer with an N-bit prefix (RFC 7541 5.1) at *pos; advances.
absl::StatusOr<uint64_t> ReadInteger(std::string_view in, size_t* pos,
                                     int prefix_bits) {
  if (*pos >= in.size()) {
    return absl::InvalidArgumentError("header block ends inside an integer");
  }
  const uint64_t max_prefix = (1u << prefix_bits) - 1;
  uint64_t value = static_cast<uint8_t>(in[*pos]) & max_prefix;
  ++*pos;
  if (value < max_prefix) return value;
  for (int shift = 0;; shift += 7) {
    if (*pos >= in.size()) {
      return absl::InvalidArgumentError("header block ends inside an integer");
    }
    // Past 2^32 no index, length or size makes sense: refuse rather than
    // let a long run of continuation bytes overflow.
    if (shift > 28) {
      return absl::InvalidArgumentError("integer too large");
    }
    auto byte = static_cast<uint8_t>(in[(*pos)++]);
    value += uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return value;
  }
}

// Reads a string literal (RFC 7541 5.2) at *pos; advances.
absl::StatusOr<std::string> ReadString(std::string_view in, size_t* pos) {
  if (*pos >= in.size()) {
    return absl::InvalidArgumentError("header block ends before a string");
  }
  const bool huffman = (static_cast<uint8_t>(in[*pos]) & 0x80) != 0;
  ASSIGN_OR_RETURN(const uint64_t length, ReadInteger(in, pos, 7));
  if (length > in.size() - *pos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("string of %d bytes with %d left in the header block",
                        length, in.size() - *pos));
  }
  std::string_view bytes = in.substr(*pos, length);
  *pos += length;
  if (huffman) return HpackHuffmanDecode(bytes);
  return std::string(bytes);
}

}  // namespace

absl::StatusOr<std::string> HpackHuffmanDecode(std::string_view coded) {
  const HuffmanTables& h = Huffman();
  std::string out;
  out.reserve(coded.size() * 8 / 5);
  uint32_t code = 0;
  int len = 0;
  for (char c : coded) {
    for (int bit = 7; bit >= 0; --bit) {
      code = (code << 1) | ((static_cast<uint8_t>(c) >> bit) & 1u);
      ++len;
      if (code - h.first_code[len] < h.count[len]) {
        uint16_t sym =
            h.symbols[h.first_index[len] + (code - h.first_code[len])];
        if (sym == kEos) {
          return absl::InvalidArgumentError("Huffman string contains EOS");
        }
        out.push_back(static_cast<char>(sym));
        code = 0;
        len = 0;
      } else if (len == kHuffmanMaxLength) {
        return absl::InvalidArgumentError("invalid Huffman code");
      }
    }
  }
  // What is left is padding: the most significant bits of EOS (all 1s),
  // fewer than 8 of them.
  if (len > 7) {
    return absl::InvalidArgumentError("Huffman padding longer than 7 bits");
  }
  if (code != (1u << len) - 1) {
    return absl::InvalidArgumentError("Huffman padding is not EOS's bits");
  }
  return out;
}

HpackDecoder::HpackDecoder(size_t max_table_size)
    : limit_(max_table_size), capacity_(max_table_size) {}

absl::StatusOr<std::vector<HeaderField>> HpackDecoder::Decode(
    std::string_view block) {
  if (!status_.ok()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "an earlier header block failed: %s", status_.message()));
  }
  std::vector<HeaderField> out;
  if (absl::Status s = DecodeBlock(block, &out); !s.ok()) {
    status_ = s;
    return s;
  }
  return out;
}

absl::StatusOr<HeaderField> HpackDecoder::Lookup(uint64_t index) const {
  if (index == 0) {
    return absl::InvalidArgumentError("header index 0");
  }
  if (index <= kStaticTable.size()) {
    const StaticEntry& e = kStaticTable[index - 1];
    return HeaderField{std::string(e.name), std::string(e.value)};
  }
  uint64_t i = index - kStaticTable.size() - 1;
  if (i >= dynamic_.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "header index %d past the %d static and %d dynamic entries", index,
        kStaticTable.size(), dynamic_.size()));
  }
  return dynamic_[i];
}

void HpackDecoder::Evict() {
  while (size_ > capacity_ && !dynamic_.empty()) {
    const HeaderField& last = dynamic_.back();
    size_ -= last.name.size() + last.value.size() + kHpackEntryOverhead;
    dynamic_.pop_back();
  }
}

void HpackDecoder::Add(HeaderField field) {
  size_t entry = field.name.size() + field.value.size() + kHpackEntryOverhead;
  if (entry > capacity_) {
    // Not an error (RFC 7541 4.4): the table ends up empty.
    dynamic_.clear();
    size_ = 0;
    return;
  }
  size_ += entry;
  dynamic_.push_front(std::move(field));
  Evict();
}

absl::Status HpackDecoder::DecodeBlock(std::string_view in,
                                       std::vector<HeaderField>* out) {
  size_t pos = 0;
  while (pos < in.size()) {
    const auto first = static_cast<uint8_t>(in[pos]);
    if (first & 0x80) {  // indexed field
      ASSIGN_OR_RETURN(const uint64_t index, ReadInteger(in, &pos, 7));
      ASSIGN_OR_RETURN(HeaderField field, Lookup(index));
      out->push_back(std::move(field));
      continue;
    }
    if ((first & 0xe0) == 0x20) {  // dynamic table size update
      if (!out->empty()) {
        return absl::InvalidArgumentError(
            "dynamic table size update after a header field");
      }
      ASSIGN_OR_RETURN(const uint64_t size, ReadInteger(in, &pos, 5));
      if (size > limit_) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "dynamic table size update to %d above the limit of %d", size,
            limit_));
      }
      capacity_ = size;
      Evict();
      continue;
    }
    // A literal: with incremental indexing (01), else without (0000) or
    // never indexed (0001).
    const bool indexing = (first & 0xc0) == 0x40;
    ASSIGN_OR_RETURN(const uint64_t name_index,
                     ReadInteger(in, &pos, indexing ? 6 : 4));
    HeaderField field;
    if (name_index != 0) {
      ASSIGN_OR_RETURN(HeaderField named, Lookup(name_index));
      field.name = std::move(named.name);
    } else {
      ASSIGN_OR_RETURN(field.name, ReadString(in, &pos));
    }
    ASSIGN_OR_RETURN(field.value, ReadString(in, &pos));
    if (indexing) Add(field);
    out->push_back(std::move(field));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string_view> HeadersFragment(std::string_view payload,
                                                 uint8_t flags) {
  size_t pad = 0;
  if (flags & 0x8) {  // PADDED
    if (payload.empty()) {
      return absl::InvalidArgumentError("PADDED HEADERS without a pad length");
    }
    pad = static_cast<uint8_t>(payload[0]);
    payload.remove_prefix(1);
  }
  if (flags & 0x20) {  // PRIORITY: stream dependency and weight
    if (payload.size() < 5) {
      return absl::InvalidArgumentError("HEADERS too short for its priority");
    }
    payload.remove_prefix(5);
  }
  if (pad > payload.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("HEADERS padding of %d bytes in a %d-byte payload", pad,
                        payload.size()));
  }
  payload.remove_suffix(pad);
  return payload;
}

}  // namespace reqcost::analyzers
