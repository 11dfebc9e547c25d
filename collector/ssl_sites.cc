#include "collector/ssl_sites.h"

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace reqcost::collector {
namespace {

// Bytes of each public function searched for its call: OpenSSL's wrappers
// call the internal function within their first 0x20 bytes.
constexpr size_t kScanBytes = 64;

// A parsed x86-64 ELF file held in memory; every read is bounds-checked.
class Elf {
 public:
  explicit Elf(std::string bytes) : bytes_(std::move(bytes)) {}

  template <typename T>
  std::optional<T> At(uint64_t offset) const {
    if (offset > bytes_.size() || bytes_.size() - offset < sizeof(T)) {
      return std::nullopt;
    }
    T value;
    std::memcpy(&value, bytes_.data() + offset, sizeof(T));
    return value;
  }

  std::string_view Bytes(uint64_t offset, uint64_t n) const {
    if (offset >= bytes_.size()) return {};
    return std::string_view(bytes_).substr(offset, n);
  }

  // The file offset of virtual address `vaddr`, in a loaded segment
  // (executable ones only when `exec`).
  std::optional<uint64_t> FileOffset(uint64_t vaddr, bool exec) const {
    std::optional<Elf64_Ehdr> eh = At<Elf64_Ehdr>(0);
    if (!eh) return std::nullopt;
    for (uint16_t i = 0; i < eh->e_phnum; ++i) {
      std::optional<Elf64_Phdr> ph =
          At<Elf64_Phdr>(eh->e_phoff + uint64_t{i} * eh->e_phentsize);
      if (!ph || ph->p_type != PT_LOAD) continue;
      if (exec && (ph->p_flags & PF_X) == 0) continue;
      if (vaddr >= ph->p_vaddr && vaddr - ph->p_vaddr < ph->p_filesz) {
        return vaddr - ph->p_vaddr + ph->p_offset;
      }
    }
    return std::nullopt;
  }

  // Whether `vaddr` lies in a procedure linkage table (.plt, .plt.sec,
  // .plt.got): a call there goes to another library (ERR_new and the like).
  bool InPlt(uint64_t vaddr) const {
    std::optional<Elf64_Ehdr> eh = At<Elf64_Ehdr>(0);
    if (!eh || eh->e_shentsize != sizeof(Elf64_Shdr)) return false;
    std::optional<Elf64_Shdr> names = At<Elf64_Shdr>(
        eh->e_shoff + uint64_t{eh->e_shstrndx} * sizeof(Elf64_Shdr));
    if (!names) return false;
    std::string_view strings = Bytes(names->sh_offset, names->sh_size);
    for (uint16_t i = 0; i < eh->e_shnum; ++i) {
      std::optional<Elf64_Shdr> sh =
          At<Elf64_Shdr>(eh->e_shoff + uint64_t{i} * sizeof(Elf64_Shdr));
      if (!sh || sh->sh_name >= strings.size()) continue;
      std::string_view rest = strings.substr(sh->sh_name);
      if (rest.substr(0, rest.find('\0')).substr(0, 4) != ".plt") continue;
      if (vaddr >= sh->sh_addr && vaddr - sh->sh_addr < sh->sh_size) {
        return true;
      }
    }
    return false;
  }

  // The values of the dynamic symbols named in `names` that are defined
  // functions.
  std::map<std::string, uint64_t> Functions(
      const std::set<std::string>& names) const {
    std::map<std::string, uint64_t> out;
    std::optional<Elf64_Ehdr> eh = At<Elf64_Ehdr>(0);
    if (!eh || eh->e_shentsize != sizeof(Elf64_Shdr)) return out;
    for (uint16_t i = 0; i < eh->e_shnum; ++i) {
      std::optional<Elf64_Shdr> sh =
          At<Elf64_Shdr>(eh->e_shoff + uint64_t{i} * sizeof(Elf64_Shdr));
      if (!sh || sh->sh_type != SHT_DYNSYM || sh->sh_entsize == 0) continue;
      std::optional<Elf64_Shdr> strtab = At<Elf64_Shdr>(
          eh->e_shoff + uint64_t{sh->sh_link} * sizeof(Elf64_Shdr));
      if (!strtab) continue;
      std::string_view strings = Bytes(strtab->sh_offset, strtab->sh_size);
      for (uint64_t k = 0; k < sh->sh_size / sh->sh_entsize; ++k) {
        std::optional<Elf64_Sym> sym =
            At<Elf64_Sym>(sh->sh_offset + k * sh->sh_entsize);
        if (!sym || ELF64_ST_TYPE(sym->st_info) != STT_FUNC ||
            sym->st_shndx == SHN_UNDEF || sym->st_name >= strings.size()) {
          continue;
        }
        std::string_view rest = strings.substr(sym->st_name);
        std::string name(rest.substr(0, rest.find('\0')));
        if (names.count(name) != 0) out.emplace(name, sym->st_value);
      }
    }
    return out;
  }

 private:
  std::string bytes_;
};

// The call targets named in `code` read at `addr`.
std::set<uint64_t> CallTargets(std::string_view code, uint64_t addr) {
  std::set<uint64_t> out;
  for (size_t i = 0; i + 5 <= code.size(); ++i) {
    if (static_cast<uint8_t>(code[i]) != 0xe8) continue;
    int32_t rel;
    std::memcpy(&rel, code.data() + i + 1, sizeof(rel));
    out.insert(addr + i + 5 + static_cast<int64_t>(rel));
  }
  return out;
}

}  // namespace

std::optional<uint64_t> CommonCallTarget(std::string_view a, uint64_t a_addr,
                                         std::string_view b, uint64_t b_addr) {
  std::set<uint64_t> in_a = CallTargets(a, a_addr);
  std::optional<uint64_t> found;
  for (uint64_t t : CallTargets(b, b_addr)) {
    if (in_a.count(t) == 0) continue;
    if (found.has_value()) return std::nullopt;  // two: not sure which
    found = t;
  }
  return found;
}

bool BeginsWithPush(std::string_view code) {
  size_t i = 0;
  if (!code.empty() && (static_cast<uint8_t>(code[0]) & 0xf0) == 0x40) i = 1;
  return i < code.size() && (static_cast<uint8_t>(code[i]) & 0xf8) == 0x50;
}

absl::StatusOr<SslSites> FindSslSites(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  Elf elf{std::string(std::istreambuf_iterator<char>(in),
                      std::istreambuf_iterator<char>())};
  std::optional<Elf64_Ehdr> eh = elf.At<Elf64_Ehdr>(0);
  if (!eh || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not an x86-64 ELF file"));
  }
  std::map<std::string, uint64_t> f =
      elf.Functions({"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex",
                     "SSL_free"});
  SslSites sites;
  auto offset = [&](const std::string& name) -> uint64_t {
    auto it = f.find(name);
    if (it == f.end()) return 0;
    return elf.FileOffset(it->second, true).value_or(0);
  };
  sites.ssl_read = offset("SSL_read");
  sites.ssl_read_ex = offset("SSL_read_ex");
  sites.ssl_write = offset("SSL_write");
  sites.ssl_write_ex = offset("SSL_write_ex");
  sites.ssl_free = offset("SSL_free");
  if (sites.ssl_read == 0 || sites.ssl_write == 0 || sites.ssl_free == 0) {
    return absl::NotFoundError(
        absl::StrCat(path, " exports no SSL_read, SSL_write and SSL_free"));
  }
  // The internal function a public pair both call, at `one` and `ex`.
  auto internal = [&](const std::string& one, const std::string& ex,
                      uint64_t one_at, uint64_t ex_at, uint64_t* at,
                      bool* emulated) {
    if (one_at == 0 || ex_at == 0) return;
    std::optional<uint64_t> target = CommonCallTarget(
        elf.Bytes(one_at, kScanBytes), f[one], elf.Bytes(ex_at, kScanBytes),
        f[ex]);
    std::optional<uint64_t> file = target && !elf.InPlt(*target)
                                       ? elf.FileOffset(*target, true)
                                       : std::nullopt;
    if (!file) return;
    *at = *file;
    *emulated = BeginsWithPush(elf.Bytes(*file, 2));
  };
  internal("SSL_read", "SSL_read_ex", sites.ssl_read, sites.ssl_read_ex,
           &sites.read, &sites.read_emulated);
  internal("SSL_write", "SSL_write_ex", sites.ssl_write, sites.ssl_write_ex,
           &sites.write, &sites.write_emulated);
  if (!sites.internal()) sites.read = sites.write = 0;
  return sites;
}

}  // namespace reqcost::collector
