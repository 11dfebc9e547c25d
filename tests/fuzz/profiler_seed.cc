// Turns a real capture file into an input of profiler_fuzz (its decoding in
// profiler_fuzz.cc, read back to front here): processes become pids
// 100..105 and fds 0..8 in order of appearance, socket ids 1..7, ports 80
// (the first listening port seen) or one of three ephemeral ones, times
// steps of whole µs. What does not fit the fuzzer's smaller world is
// folded into it, so the seed is the capture's shape, not its exact values.
//   profiler_seed CAPTURE > SEED
// Used to make tests/fuzz/corpus/profiler_fuzz (docs/testing.md).
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <variant>

#include "collector/capture_file.h"

namespace reqcost::collector {
namespace {

class Encoder {
 public:
  void Byte(uint8_t b) { out_.push_back(static_cast<char>(b)); }
  void U16(uint16_t v) {
    Byte(v & 0xff);
    Byte(v >> 8);
  }
  void U32(uint32_t v) {
    U16(v & 0xffff);
    U16(v >> 16);
  }
  void Bytes(const std::string& s, size_t max) {
    const size_t n = s.size() < max ? s.size() : max;
    Byte(static_cast<uint8_t>(n));
    out_.append(s, 0, n);
  }
  const std::string& out() const { return out_; }

 private:
  std::string out_;
};

// Small ids by first appearance.
class Ids {
 public:
  explicit Ids(uint64_t modulo) : modulo_(modulo) {}
  uint64_t Of(uint64_t key) {
    auto it = ids_.find(key);
    if (it != ids_.end()) return it->second;
    const uint64_t id = ids_.size() % modulo_;
    ids_[key] = id;
    return id;
  }

 private:
  uint64_t modulo_;
  std::map<uint64_t, uint64_t> ids_;
};

int Main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: profiler_seed CAPTURE > SEED\n");
    return 2;
  }
  absl::StatusOr<CaptureReader> reader = CaptureReader::Open(argv[1]);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s\n", reader.status().ToString().c_str());
    return 1;
  }
  Encoder e;
  Ids pids(6), socks(7), ephemeral(3);
  uint16_t listen_port = 0;
  const auto& procs = reader->header().processes;
  const size_t nproc = procs.size() < 3 ? procs.size() : 3;
  e.Byte(static_cast<uint8_t>(nproc));
  for (size_t i = 0; i < nproc; ++i) {
    e.Byte(static_cast<uint8_t>(pids.Of(procs[i].pid)));
    e.Byte(static_cast<uint8_t>(pids.Of(procs[i].ppid)));
    e.Bytes(procs[i].comm, 16);
  }
  uint64_t now = 0;
  const auto port = [&](uint16_t p, bool listening) -> uint8_t {
    if (p == 0) return 7;
    if (listening && listen_port == 0) listen_port = p;
    if (p == listen_port) return 0;  // 80
    static constexpr uint8_t kEphemeral[] = {4, 5, 6};
    return kEphemeral[ephemeral.Of(p)];
  };
  while (true) {
    absl::StatusOr<CaptureRecord> r = reader->Next();
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    if (std::holds_alternative<CaptureEnd>(*r)) break;
    if (const auto* s = std::get_if<SyscallEvent>(&*r)) {
      e.Byte(0);  // a syscall
      e.Byte(static_cast<uint8_t>(static_cast<int>(s->syscall) - 1));
      e.Byte(static_cast<uint8_t>(s->flags));
      const uint64_t pid = pids.Of(s->tgid) % 4;
      e.Byte(static_cast<uint8_t>(pid));
      e.Byte(s->tid != s->tgid ? 1 : 0);
      e.Byte(static_cast<uint8_t>((s->fd + 1) % 10));
      if (s->ret >= -11 && s->ret <= 4) {
        e.Byte(static_cast<uint8_t>(s->ret + 11));
      } else {
        e.Byte(0x80);
        e.U32(static_cast<uint32_t>(s->ret + 16));
      }
      const uint64_t step_us = now == 0 ? 0 : (s->exit_ns - now) / 1000;
      now = s->exit_ns;
      e.U16(static_cast<uint16_t>(step_us > 0x7fff ? 0x7fff : step_us));
      const uint64_t took =
          s->enter_ns != 0 && s->exit_ns > s->enter_ns
              ? (s->exit_ns - s->enter_ns) / 100
              : 0;
      e.U16(static_cast<uint16_t>(took > 0xfffe ? 0xfffe : took));
      static constexpr uint16_t kFamilies[] = {1, 2, 10, 16, 0};
      uint8_t kind = 4;
      for (uint8_t k = 0; k < 5; ++k) {
        if (kFamilies[k] == s->sock.family) kind = k;
      }
      if (s->sock.type == 2) kind |= 0x80;
      e.Byte(kind);
      e.Byte(static_cast<uint8_t>(s->sock.sock == 0 ? 0
                                                    : 1 + socks.Of(s->sock.sock)));
      e.Byte(static_cast<uint8_t>(s->sock.peer == 0 ? 0
                                                    : 1 + socks.Of(s->sock.peer)));
      const bool listening = IsAccept(s->syscall);
      e.Byte(static_cast<uint8_t>(port(s->sock.local_port, listening) |
                                  port(s->sock.remote_port, false) << 3));
      e.Byte(0);  // no TLS records
      e.Bytes(s->payload, 79);
    } else if (const auto* p = std::get_if<ProcessEvent>(&*r)) {
      e.Byte(0xe0);
      e.Byte(static_cast<uint8_t>(static_cast<int>(p->op) - 1));
      e.Byte(static_cast<uint8_t>(pids.Of(p->tgid)));
      e.Byte(static_cast<uint8_t>(pids.Of(p->parent_tgid)));
      e.Byte(static_cast<uint8_t>(p->start_ns));
      e.Bytes(p->comm, 16);
    } else if (const auto* d = std::get_if<DropNotice>(&*r)) {
      e.Byte(0xf0);
      e.U16(0);
      e.U16(static_cast<uint16_t>((d->to_ns - d->from_ns) / 1000));
      e.Byte(static_cast<uint8_t>(d->count > 255 ? 255 : d->count));
    }
  }
  std::fwrite(e.out().data(), 1, e.out().size(), stdout);
  return 0;
}

}  // namespace
}  // namespace reqcost::collector

int main(int argc, char** argv) {
  return reqcost::collector::Main(argc, argv);
}
