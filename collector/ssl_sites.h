// Where the TLS uprobes go in a libssl (docs/performance.md, "Inside TLS").
//
// A uprobe costs a trap per hit, and on x86-64 what the trap costs depends
// on the probed instruction: the kernel emulates a call, a jump or a push
// (about 1 µs a hit on this VM) and single-steps anything else out of line
// (about 10 µs). OpenSSL's SSL_read and SSL_write begin with `sub
// $0x18,%rsp`, single-stepped; SSL_read and SSL_read_ex both call one
// internal function (ssl_read_internal, same for writes) that takes
// SSL_read_ex's arguments, returns a positive int on success and begins
// with a push. Probing that function's entry (and return) sees every
// read of both public functions with half the probes and a tenth of the
// entry trap's cost.
//
// The internal functions are not exported: each is found as the one call
// target that both public functions' first bytes name, outside the
// procedure linkage table (a call to ERR_new@plt in both error paths is
// no internal function). Checked by hand on Debian's libssl.so.3:
// ERR_new@plt (0x1f3c0) lies in the table, ssl_read_internal (0x35290)
// does not.
#ifndef REQCOST_COLLECTOR_SSL_SITES_H_
#define REQCOST_COLLECTOR_SSL_SITES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace reqcost::collector {

// Offsets in the library file, what a uprobe is attached at; 0: none.
struct SslSites {
  uint64_t read = 0;   // the internal read function both read calls use
  uint64_t write = 0;  // the same for writes
  // Whether each begins with an instruction the kernel emulates (a push).
  bool read_emulated = false;
  bool write_emulated = false;
  // The exported functions, probed where no internal ones were found.
  uint64_t ssl_read = 0, ssl_read_ex = 0, ssl_write = 0, ssl_write_ex = 0;
  uint64_t ssl_free = 0;

  bool internal() const { return read != 0 && write != 0; }
};

// The sites in the x86-64 ELF file at `path`. An error when it is no such
// file or exports no SSL_read, SSL_write and SSL_free (the caller then
// probes by function name); the internal sites are 0 when no call target
// is common to both functions of a pair.
absl::StatusOr<SslSites> FindSslSites(const std::string& path);

// The one target of a `call rel32` (0xe8) that both code excerpts name:
// `a` was read at virtual address `a_addr`, `b` at `b_addr`. Every 0xe8
// byte is taken as a call, since instruction boundaries are unknown; a
// target common to two different functions is not a coincidence. None when
// there is no common target or more than one.
std::optional<uint64_t> CommonCallTarget(std::string_view a, uint64_t a_addr,
                                         std::string_view b, uint64_t b_addr);

// Whether `code` begins with a push of a general register (0x50-0x57,
// optionally after a REX prefix 0x40-0x4f), which x86 uprobes emulate.
bool BeginsWithPush(std::string_view code);

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_SSL_SITES_H_
