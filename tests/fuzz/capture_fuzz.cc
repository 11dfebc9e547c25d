// libFuzzer target for CaptureReader: any bytes must give records or a clean
// error, never a crash, an out-of-bounds read or an unbounded allocation.
// A file that reads completely must survive a write/read round trip
// unchanged. Run: capture_fuzz -max_total_time=60 -dict=capture.dict corpus/
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/capture_file.h"

namespace reqcost::collector {
namespace {

// An in-memory file holding `data`, positioned at its start; -1 on failure.
int MemFile(const uint8_t* data, size_t size) {
  const int fd = memfd_create("capture_fuzz", MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  if (lseek(fd, 0, SEEK_SET) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "capture_fuzz: %s\n", what);
  std::abort();
}

// Reads everything; true and the records when the file is complete.
bool ReadAllRecords(CaptureReader& reader, std::vector<CaptureRecord>& out) {
  for (;;) {
    absl::StatusOr<CaptureRecord> r = reader.Next();
    if (!r.ok()) {
      if (r.status().message().empty()) Die("error without a message");
      // Errors are sticky.
      if (reader.Next().status() != r.status()) Die("error not sticky");
      return false;
    }
    const bool end = std::holds_alternative<CaptureEnd>(*r);
    out.push_back(*std::move(r));
    if (end) return true;
  }
}

// Writes `header` and `records` again and checks that they read back equal.
void RoundTrip(const CaptureHeader& header,
               const std::vector<CaptureRecord>& records) {
  char path[] = "/tmp/capture_fuzz.XXXXXX";
  const int tmp = mkstemp(path);
  if (tmp < 0) return;
  close(tmp);
  CaptureWriter::Options options;
  options.overwrite = true;
  absl::StatusOr<CaptureWriter> w =
      CaptureWriter::Create(path, header, options);
  if (!w.ok()) {
    unlink(path);
    return;  // e.g. a header the reader accepts but the writer refuses
  }
  CaptureEnd end;
  for (const CaptureRecord& record : records) {
    absl::Status s;
    if (const auto* e = std::get_if<SyscallEvent>(&record)) {
      s = w->Write(*e);
    } else if (const auto* p = std::get_if<ProcessEvent>(&record)) {
      s = w->Write(*p);
    } else if (const auto* d = std::get_if<DropNotice>(&record)) {
      s = w->WriteDrops(d->from_ns, d->to_ns, d->count);
    } else if (const auto* c = std::get_if<CountersSnapshot>(&record)) {
      s = w->WriteCounters(c->at_ns, c->counters);
    } else if (const auto* t = std::get_if<TlsDataEvent>(&record)) {
      s = w->Write(*t);
    } else {
      end = std::get<CaptureEnd>(record);
    }
    if (!s.ok()) {  // a payload or comm the reader takes, the writer refuses
      unlink(path);
      return;
    }
  }
  const KernelCounters final_counters{1, 2, 3, 4};
  if (!w->Close(end.end_ns, final_counters).ok()) Die("close failed");

  absl::StatusOr<CaptureReader> r = CaptureReader::Open(path);
  if (!r.ok()) Die("re-written file does not open");
  CaptureHeader expected = header;
  expected.end_mono_ns = end.end_ns;
  if (!(r->header() == expected)) Die("header changed in round trip");
  std::vector<CaptureRecord> again;
  if (!ReadAllRecords(*r, again)) Die("re-written file does not read");
  unlink(path);
  // Skipped optional records are not re-written; Close() adds counters.
  std::vector<CaptureRecord> want(records.begin(), records.end() - 1);
  // A TLS data record keeps its payload only in a capture with a payload
  // prefix.
  if (header.payload_capture_bytes == 0) {
    for (CaptureRecord& record : want) {
      if (auto* t = std::get_if<TlsDataEvent>(&record)) t->payload.clear();
    }
  }
  want.push_back(CountersSnapshot{end.end_ns, final_counters});
  want.push_back(CaptureEnd{end.end_ns, want.size()});
  if (!(again == want)) Die("records changed in round trip");
}

}  // namespace
}  // namespace reqcost::collector

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reqcost::collector;
  const int fd = MemFile(data, size);
  if (fd < 0) return 0;
  absl::StatusOr<CaptureReader> reader = CaptureReader::FromFd(fd, "fuzz");
  if (!reader.ok()) {
    if (reader.status().message().empty()) Die("error without a message");
    return 0;
  }
  std::vector<CaptureRecord> records;
  const bool complete = ReadAllRecords(*reader, records);
  if (complete) {
    if (reader->header().processes.size() > size) Die("process table > input");
    RoundTrip(reader->header(), records);
  }
  return 0;
}
