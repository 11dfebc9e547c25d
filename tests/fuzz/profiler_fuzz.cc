// libFuzzer target for the profiler: `reqcost report` and `reqcost timeline`
// feed it whatever a capture file holds, so any decoded stream of processes,
// syscall events and drop notices must give requests and a report, never a
// crash, a sanitizer report or an exception; every output the CLI prints must
// serialize. The input is decoded into a stream that stays close to what
// the profiler acts on (a few processes, fds and sockets, times that mostly
// move forward) so that mutations reach pairing, exchanges and phases.
// Run: profiler_fuzz -max_total_time=60 corpus/
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "analyzers/profiler.h"
#include "analyzers/render/format.h"
#include "analyzers/render/trace_export.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {
namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "profiler_fuzz: %s\n", what);
  std::abort();
}

// Reads the input front to back; zeros once it is used up.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(Byte() | Byte() << 8); }
  uint32_t U32() { return U16() | static_cast<uint32_t>(U16()) << 16; }
  uint64_t U64() { return U32() | static_cast<uint64_t>(U32()) << 32; }
  std::string Bytes(size_t n) {
    std::string s;
    while (n-- > 0 && !done()) s.push_back(static_cast<char>(Byte()));
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

constexpr uint32_t kFirstPid = 100;
constexpr uint64_t kStartNs = 1'000'000'000;

// Payloads the parsers act on; the input picks one or gives its own bytes.
const char* const kPayloads[] = {
    "GET /index.php?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    "HTTP/1.1 200 OK\r\nServer: nginx\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00",
    "\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    "\x01\x06\x00\x01\x00\x10\x00\x00Status: 200\r\n\r\n",
    "/run/php/php-fpm.sock",
};

SocketId DecodeSocket(Input& in) {
  SocketId s;
  const uint8_t kind = in.Byte();
  static constexpr uint16_t kFamilies[] = {1, 2, 10, 16, 0};
  s.family = kFamilies[kind % 5];
  s.type = (kind & 0x80) != 0 ? 2 : 1;  // SOCK_DGRAM or SOCK_STREAM
  s.sock = in.Byte() % 8;
  s.peer = in.Byte() % 8;
  static constexpr uint16_t kPorts[] = {80,    443,   9000,  53,
                                        40000, 40001, 50000, 0};
  const uint8_t ports = in.Byte();
  s.local_port = kPorts[ports & 7];
  s.remote_port = kPorts[(ports >> 3) & 7];
  if (s.family == 2 || s.family == 10) {
    s.local_addr[0] = s.remote_addr[0] = 127;
    s.local_addr[3] = s.remote_addr[3] = 1;
    if ((ports & 0x40) != 0) s.remote_addr[3] = in.Byte();
  }
  return s;
}

SyscallEvent DecodeSyscall(Input& in, uint64_t& now_ns) {
  SyscallEvent e;
  // Only the syscalls a capture file may hold (the reader refuses others).
  e.syscall = static_cast<Syscall>(1 + in.Byte() % (kSyscallMax - 1));
  e.flags = in.Byte();
  e.tgid = kFirstPid + in.Byte() % 4;
  e.tid = e.tgid + in.Byte() % 2;
  e.fd = static_cast<int32_t>(in.Byte() % 10) - 1;
  const uint8_t ret = in.Byte();
  // Small results (fds, -EAGAIN, EOF) or byte counts.
  e.ret = (ret & 0x80) != 0 ? static_cast<int64_t>(in.U32()) - 16
                            : static_cast<int64_t>(ret % 16) - 11;
  // Time mostly moves forward by up to 65 ms; sometimes it jumps back.
  const uint16_t step = in.U16();
  if ((step & 0x8000) != 0 && now_ns > kStartNs + 1'000'000) {
    now_ns -= (step & 0x7fff) * 100ULL;
  } else {
    now_ns += step * 1000ULL;
  }
  e.exit_ns = now_ns;
  const uint16_t took = in.U16();
  e.enter_ns = took == 0xffff ? now_ns + 5 : now_ns - took * 100ULL;
  if (!e.enter_seen()) e.enter_ns = 0;
  e.sock = DecodeSocket(in);
  const uint8_t tls = in.Byte();
  if (tls != 0) {
    e.tls.flags = tls & 7;
    e.tls.count = (tls >> 3) % (TlsRecords::kMax + 1);
    for (int i = 0; i < e.tls.count; ++i) {
      e.tls.type[i] = 20 + in.Byte() % 5;
      e.tls.length[i] = in.U16();
    }
  }
  const uint8_t payload = in.Byte();
  if (payload >= 0xf0) {
    e.payload = kPayloads[(payload - 0xf0) % std::size(kPayloads)];
  } else if (payload > 0) {
    e.payload = in.Bytes(payload % 80);
  }
  return e;
}

ProcessEvent DecodeProcessEvent(Input& in, uint64_t now_ns) {
  ProcessEvent p;
  p.op = static_cast<ProcessEvent::Op>(1 + in.Byte() % 3);
  p.tgid = kFirstPid + in.Byte() % 6;
  p.parent_tgid = kFirstPid + in.Byte() % 6;
  p.ts_ns = now_ns;
  p.start_ns = in.Byte();
  p.comm = in.Bytes(in.Byte() % 17);
  return p;
}

// Whether `r`'s phases are what phases.h promises.
void CheckRequest(const Request& r) {
  if (!r.complete) {
    if (r.total_ns.has_value()) Die("incomplete request with a total");
    return;
  }
  if (!r.backend_ns) Die("complete request without its backend phase");
  switch (r.origin) {
    case RequestOrigin::kClient:
      if (!r.total_ns || !r.server_ns || !r.transport_ns) {
        Die("complete request without its phases");
      }
      if (*r.server_ns + *r.transport_ns + *r.backend_ns != *r.total_ns) {
        Die("phases do not add up to the total");
      }
      break;
    case RequestOrigin::kBackendLink:
      // Seen from the server's backend link: what the client side did is
      // unknown, the exchange is measured.
      if (r.total_ns || r.server_ns) Die("backend-link request with a server");
      if (!r.transport_ns) Die("backend-link request without its transport");
      break;
    case RequestOrigin::kBackendSide:
      // Seen from the backend only: just the backend's work is known.
      if (r.server_ns || r.transport_ns) {
        Die("backend-side request with a server or transport phase");
      }
      if (r.total_ns != r.backend_ns) Die("backend-side total is not backend");
      break;
  }
  if (r.queue_ns.has_value() &&
      (!r.transport_ns.has_value() || *r.queue_ns > *r.transport_ns)) {
    Die("queue longer than transport");
  }
}

void Run(const uint8_t* data, size_t size) {
  Input in(data, size);
  Profiler profiler;
  std::vector<ProcessEntry> entries;
  const int processes = in.Byte() % 4;
  for (int i = 0; i < processes; ++i) {
    ProcessInfo p;
    p.pid = kFirstPid + in.Byte() % 6;
    p.ppid = kFirstPid + in.Byte() % 6;
    p.comm = in.Bytes(in.Byte() % 17);
    profiler.OnProcess(p);
  }
  std::vector<Request> requests;
  profiler.SetRequestCallback([&](const Request& r) {
    CheckRequest(r);
    (void)RequestToJson(r).dump();
    (void)FormatRequestLine(r);
    requests.push_back(r);
  });
  uint64_t now_ns = kStartNs;
  uint64_t events = 0;
  uint64_t dropped = 0;
  while (!in.done()) {
    const uint8_t op = in.Byte();
    if (op < 0xe0) {
      profiler.OnEvent(DecodeSyscall(in, now_ns));
      ++events;
    } else if (op < 0xf0) {
      profiler.OnProcessEvent(DecodeProcessEvent(in, now_ns));
      ++events;
    } else {
      const uint64_t from = now_ns - in.U16() * 1000ULL;
      const uint64_t to = from + in.U16() * 1000ULL;
      const uint64_t count = in.Byte();
      profiler.OnDrops(from, to, count);
      dropped += count;
    }
  }
  profiler.Finish(now_ns + 1'000'000);
  CaptureInfo info{(now_ns - kStartNs) / 1e9, events, dropped};
  Report report = profiler.BuildReport(info);
  if (report.count != report.complete + report.incomplete) {
    Die("count is not complete + incomplete");
  }
  if (report.count != requests.size()) Die("report count != requests seen");
  (void)ReportToJson(report).dump(2);
  (void)FormatText(report);
  (void)ChromeTrace(requests, report.processes, kStartNs).dump();
}

}  // namespace
}  // namespace reqcost::analyzers

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  reqcost::analyzers::Run(data, size);
  return 0;
}
