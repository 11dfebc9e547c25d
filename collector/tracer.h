// Loads the kernel side, follows the traced process tree and drains events.
#ifndef REQCOST_COLLECTOR_TRACER_H_
#define REQCOST_COLLECTOR_TRACER_H_

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "collector/cgroups.h"
#include "collector/event.h"
#include "collector/ssl_sites.h"

struct bpf_link;
struct reqcost_bpf;
struct ring_buffer;

namespace reqcost::collector {

// Where drained events go, in ring-buffer order (near exit-time order).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnSyscall(const SyscallEvent& event) = 0;
  virtual void OnProcess(const ProcessEvent& event) = 0;
  // Plaintext a TLS library call moved (TracerOptions::tls_probes). Ignored
  // unless a sink asks for it.
  virtual void OnTlsData(const TlsDataEvent& /*event*/) {}
  // The kernel lost `count` records at some time in [from_ns, to_ns].
  virtual void OnDrops(uint64_t from_ns, uint64_t to_ns, uint64_t count) = 0;
};

struct TracerOptions {
  static constexpr uint32_t kDefaultRingBytes = 8u << 20;
  static constexpr uint32_t kMinRingBytes = 4096;
  static constexpr uint32_t kMaxRingBytes = 1u << 30;
  static constexpr uint32_t kMaxPayloadBytes = 256;

  std::vector<pid_t> pids;     // traced with all their descendants
  // Traced with every process in them or below them, now or later (up to
  // kMaxCgroups). A process that joins one after attach is traced from its
  // next traced call, fork or exec on, and told as an exec event.
  std::vector<CgroupTarget> cgroups;
  static constexpr size_t kMaxCgroups = 256;
  uint32_t payload_bytes = 0;  // of each read/write; 0 captures none
  uint32_t ring_bytes = kDefaultRingBytes;  // a power of two
  // Trace the data syscalls (read, write, ...) at enter and exit, so that
  // their durations are known, instead of the socket-layer tracepoints
  // (socket I/O only, seen at its end). Costs every file read and write of
  // the traced processes a tracepoint hit.
  bool syscall_times = false;
  // Follow the TLS record headers of stream reads (5 bytes per record).
  bool tls = true;
  // Uprobes on OpenSSL's SSL_read/SSL_write (and _ex) in every libssl the
  // traced processes map (at attach, and children when their fork is seen):
  // the first bytes of each call's plaintext (9, or payload_bytes when
  // larger) and its HTTP/2 frame headers. A library a process maps after
  // attach is probed at its exec, or, while it maps none, within 2 s.
  bool tls_probes = false;
  // Where and how: at OpenSSL's internal read and write functions when
  // found (ssl_sites.h), else at the public ones; as one uprobe session
  // link per process where the kernel has them (a call whose return has no
  // work then costs no return trap), else two uprobe_multi links, else one
  // perf uprobe per site. All on in reqcost; off only to test or measure
  // the other way.
  bool tls_internal_sites = true;
  bool tls_uprobe_multi = true;
  bool tls_uprobe_session = true;
  bool verbose = false;  // libbpf's own messages to stderr
  // Let reqcost's own process be a traced PID: only for `reqcost check`,
  // which loads the programs on itself (and its libssl) as a test subject.
  // Otherwise reqcost never traces itself.
  bool allow_self = false;
};

// Checks options a user can get wrong; InvalidArgument naming the flag.
absl::Status ValidateTracerOptions(const TracerOptions& options);

class Tracer {
 public:
  // Loads and attaches; the programs are live when this returns. NotFound
  // for a PID that does not exist, PermissionDenied without the privileges
  // to load BPF, FailedPrecondition when the kernel lacks what it takes.
  static absl::StatusOr<std::unique_ptr<Tracer>> Start(
      const TracerOptions& options, EventSink* sink);

  // Detaches and unloads everything.
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // The processes traced at attach (roots and descendants).
  const std::vector<ProcessInfo>& processes() const { return processes_; }

  // Replaces the traced cgroups (their directories were re-read: a
  // restarted unit's cgroup is a new one). Processes in them are traced from
  // their next traced call on. FailedPrecondition when the tracer was
  // started without cgroups; InvalidArgument past kMaxCgroups.
  absl::Status SetCgroups(const std::vector<CgroupTarget>& cgroups);

  // What Rescan found.
  struct RescanResult {
    // -p PIDs that exited (or whose number is another process's now): no
    // longer targets.
    std::vector<ProcessInfo> exited_targets;
    // Processes of the targets that were not traced and are now.
    std::vector<ProcessInfo> added;
    size_t pid_targets = 0;  // -p PIDs still targets
  };
  // Re-reads the targets from /proc: each -p PID still alive (the same
  // process, by its start time) with its descendants, and the processes in
  // the traced cgroups (as last set). One of them not traced yet (its fork
  // record was lost to a full ring buffer, or the traced table was full when
  // it forked) is traced from now on, told to the sink as an exec and given
  // its TLS uprobes. A -p PID that exited is dropped from the targets, so a
  // new process given its number is not traced. Never stops tracing a
  // process.
  RescanResult Rescan();

  // Waits up to `timeout_ms` for events, hands every ready record to the
  // sink and reports new drops. Returns how many records it handled; an
  // interrupting signal is not an error.
  absl::StatusOr<int> Poll(int timeout_ms);

  // Kernel counters summed over CPUs.
  KernelCounters counters() const;
  // Kernel ids of every program and map this tracer loaded; all of them
  // are gone once it is destroyed.
  struct ObjectIds {
    std::vector<uint32_t> programs;
    std::vector<uint32_t> maps;
  };
  ObjectIds object_ids() const;

  // Records the decoder refused (a kernel/user mismatch: never expected).
  uint64_t decode_errors() const { return decode_errors_; }

  // The TLS libraries whose SSL_read/SSL_write the uprobes are attached to
  // (paths as the first traced process that maps each one sees them).
  const std::vector<std::string>& tls_libraries() const {
    return tls_libraries_;
  }
  // How many of those are probed at their internal read and write functions
  // (ssl_sites.h), the others at SSL_read, SSL_read_ex, SSL_write and
  // SSL_write_ex themselves.
  size_t tls_internal_sites() const { return tls_internal_sites_; }
  // Whether the TLS probes are uprobe_multi links (two per process and
  // library) rather than one perf uprobe per site.
  bool tls_uprobe_multi() const { return uprobe_multi_; }
  // Whether they are one uprobe session link per process and library.
  bool tls_uprobe_session() const { return uprobe_session_; }
  // Why a library found could not be probed (OK when every one was, or
  // tls_probes is off).
  const absl::Status& tls_probe_status() const { return tls_probe_status_; }
  // The TLS uprobe links held now: those of live processes, plus those of
  // exited ones still waiting for the releasing thread.
  size_t tls_links() const;
  // Processes whose TLS uprobe links were released at their exit.
  uint64_t tls_releases() const;

 private:
  Tracer(EventSink* sink) : sink_(sink) {}
  static int OnRecord(void* ctx, void* data, size_t len);
  void CheckDrops();
  // Attaches the TLS uprobes to every libssl the traced processes map.
  void AttachTlsProbes();
  // The same for one process (once per PID).
  void AttachTlsProbesTo(uint32_t pid);
  // Attaches them to the traced processes that map no libssl yet, at most
  // every kTlsRescanNs (from Poll, which read the clock: `now`).
  void RescanTlsLibraries(uint64_t now);
  // `pid` exited: its uprobe links go to the releasing thread (detaching a
  // uprobe waits for the kernel, too long for the ring buffer's callback).
  void ReleaseTlsProbesOf(uint32_t pid);
  // The releasing thread's loop: destroys the links handed to it until
  // stop_releaser_.
  void ReleaseLoop();
  // One kernel counter (enum rc_counter), summed over CPUs.
  uint64_t Counter(uint32_t index) const;

  struct SkeletonDeleter {
    void operator()(reqcost_bpf* skel) const;
  };
  struct RingDeleter {
    void operator()(ring_buffer* rb) const;
  };
  // One TLS uprobe attachment: a libbpf link (one site), or the fd of a
  // uprobe_multi link (several sites; libbpf 1.1 has no API for those).
  class TlsLink {
   public:
    explicit TlsLink(bpf_link* link) : link_(link) {}
    explicit TlsLink(int fd) : fd_(fd) {}
    TlsLink(TlsLink&& other) noexcept
        : link_(std::exchange(other.link_, nullptr)),
          fd_(std::exchange(other.fd_, -1)) {}
    TlsLink& operator=(TlsLink&&) = delete;
    ~TlsLink();

   private:
    bpf_link* link_ = nullptr;
    int fd_ = -1;
  };
  // Counts the library at `path` among those probed, once.
  void NoteTlsLibrary(const std::string& path, bool internal);
  // Attaches the probes of one library mapped by `pid` (at `at`) as one
  // uprobe session link, else two uprobe_multi links; false when the kernel
  // refuses them (errno set).
  bool AttachTlsMulti(uint32_t pid, const std::string& at,
                      const SslSites& sites);

  EventSink* sink_;
  std::unique_ptr<reqcost_bpf, SkeletonDeleter> skel_;
  std::unique_ptr<ring_buffer, RingDeleter> ring_;
  using Link = TlsLink;
  // Destroys `links`, on several threads (each detach waits for the kernel).
  static void DestroyLinks(std::vector<Link> links);
  // The TLS uprobe links of each live process whose libssl was looked for
  // (an entry with no links: none was found). Erased at the process's exit,
  // so what is kept is bounded by the live processes.
  std::map<uint32_t, std::vector<Link>> tls_links_;
  // The libssl files (device, inode) probed in each of those processes. One
  // with none is looked at again every kTlsRescanNs (RescanTlsLibraries),
  // and any at its exec: a library it maps later is probed then.
  std::map<uint32_t, std::set<std::pair<uint64_t, uint64_t>>> tls_files_;
  uint64_t last_tls_scan_ns_ = 0;
  bool tls_probes_ = false;
  // The kernel takes uprobe_multi links (6.6+): the TLS probes of a process
  // are two links, not one per site.
  bool uprobe_multi_ = false;
  // It also takes uprobe session links (6.12+): one link, and no return
  // trap for a call whose entry says its return has no work.
  bool uprobe_session_ = false;
  bool tls_internal_sites_wanted_ = true;  // TracerOptions::tls_internal_sites
  bool has_cgroups_ = false;  // the kernel side checks cgroups
  // Links of exited processes, destroyed by releaser_ (under release_mu_).
  mutable std::mutex release_mu_;
  std::condition_variable release_cv_;
  std::vector<Link> to_release_;
  bool stop_releaser_ = false;
  uint64_t tls_releases_ = 0;
  std::thread releaser_;
  std::vector<std::string> tls_libraries_;
  size_t tls_internal_sites_ = 0;
  // Where each library file (device, inode) is probed: its internal sites,
  // or none found (the public functions then).
  std::map<std::pair<uint64_t, uint64_t>, std::optional<SslSites>>
      ssl_sites_;
  absl::Status tls_probe_status_;
  std::vector<ProcessInfo> processes_;
  // The -p PIDs still targets (as at attach: their start times tell a reused
  // number), and the traced cgroups as last set: what Rescan reads again.
  std::vector<ProcessInfo> pid_targets_;
  std::vector<CgroupTarget> cgroups_;
  SyscallEvent syscall_;  // reused: no allocation per record
  ProcessEvent process_;
  TlsDataEvent tls_data_;
  uint64_t decode_errors_ = 0;
  uint64_t dropped_seen_ = 0;
  uint64_t last_drop_check_ns_ = 0;
};

// CLOCK_MONOTONIC now, the clock of every event timestamp.
uint64_t MonotonicNowNs();

}  // namespace reqcost::collector

#endif  // REQCOST_COLLECTOR_TRACER_H_
