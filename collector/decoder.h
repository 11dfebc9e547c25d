// Decodes the records of bpf/reqcost.h from ring-buffer bytes.
#ifndef REQCOST_COLLECTOR_DECODER_H_
#define REQCOST_COLLECTOR_DECODER_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "collector/event.h"

namespace reqcost::collector {

// What a record was.
enum class RecordKind { kSyscall, kProcess, kTlsData };

// Decodes one ring-buffer record of `len` bytes. Fills `*syscall` or
// `*process` (reusing their storage) and returns which; every length is
// checked before it is read: short, oversized, unknown kind or a size field
// that disagrees with `len` are InvalidArgument errors naming the problem.
absl::Status DecodeRecord(const void* data, size_t len, RecordKind* kind,
                          SyscallEvent* syscall, ProcessEvent* process,
                          TlsDataEvent* tls_data);
// The same for callers that expect no TLS data records: one is decoded into
// a scratch value and reported as kTlsData.
absl::Status DecodeRecord(const void* data, size_t len, RecordKind* kind,
                          SyscallEvent* syscall, ProcessEvent* process);

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_DECODER_H_
