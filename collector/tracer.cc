#include "collector/tracer.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "collector/decoder.h"
#include "collector/proc.h"
#include "collector/status_macros.h"
#include "collector/tracefs.h"
#include "reqcost.h"
#include "reqcost_bpf.skel.h"
#include "traced_syscalls.h"

namespace reqcost::collector {
namespace {

bool g_verbose = false;

int PrintLibbpf(enum libbpf_print_level /*level*/, const char* format,
                va_list args) {
  // Even warnings stay quiet by default: the Status says what failed.
  if (!g_verbose) return 0;
  return vfprintf(stderr, format, args);
}

absl::Status LoadError(int err, const char* what) {
  if ((err == EPERM || err == EACCES) && geteuid() != 0) {
    return absl::PermissionDeniedError(
        "loading BPF needs root or CAP_BPF+CAP_PERFMON; run with sudo");
  }
  if (err == EACCES) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s failed: the kernel's verifier refused a program (run with "
        "--verbose for its log)",
        what));
  }
  return absl::FailedPreconditionError(
      absl::StrFormat("%s failed: %s (run with --verbose for libbpf's log)",
                      what, std::strerror(err)));
}

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

uint64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

absl::Status ValidateTracerOptions(const TracerOptions& o) {
  if (o.pids.empty() && o.cgroups.empty()) {
    return absl::InvalidArgumentError(
        "give at least one target: -p PID, --cgroup PATH or --unit NAME");
  }
  for (pid_t pid : o.pids) {
    if (pid <= 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("-p %d: a PID is a positive number", pid));
    }
    if (pid == getpid() && !o.allow_self) {
      return absl::InvalidArgumentError(
          absl::StrFormat("-p %d is reqcost itself, which never traces itself",
                          pid));
    }
  }
  if (o.cgroups.size() > TracerOptions::kMaxCgroups) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d cgroups and units given; reqcost traces up to %d",
                        o.cgroups.size(), TracerOptions::kMaxCgroups));
  }
  if (o.payload_bytes > TracerOptions::kMaxPayloadBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--payload %d is out of range: 0 to %d bytes",
                        o.payload_bytes, TracerOptions::kMaxPayloadBytes));
  }
  if (o.ring_bytes < TracerOptions::kMinRingBytes ||
      o.ring_bytes > TracerOptions::kMaxRingBytes ||
      !IsPowerOfTwo(o.ring_bytes)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--ring-buffer %d is out of range: a power of two from 4 KiB to 1 GiB",
        o.ring_bytes));
  }
  return absl::OkStatus();
}

void Tracer::SkeletonDeleter::operator()(reqcost_bpf* skel) const {
  reqcost_bpf__destroy(skel);
}

void Tracer::RingDeleter::operator()(ring_buffer* rb) const {
  ring_buffer__free(rb);
}

Tracer::TlsLink::~TlsLink() {
  if (link_ != nullptr) bpf_link__destroy(link_);
  if (fd_ >= 0) close(fd_);
}

namespace {

// uprobe_multi (Linux 6.6), which the system's linux/bpf.h (Debian 12: 6.1)
// and libbpf 1.1 do not know: its attach type, its return flag, and
// BPF_LINK_CREATE's arguments for it, laid out as the kernel's uapi has
// them (after prog_fd, target_fd, attach_type and flags).
constexpr uint32_t kBpfTraceUprobeMulti = 48;
constexpr uint32_t kBpfTraceUprobeSession = 57;  // Linux 6.12
constexpr uint32_t kBpfFUprobeMultiReturn = 1;
struct UprobeMultiLinkCreate {
  uint32_t prog_fd;
  uint32_t target_fd;
  uint32_t attach_type;
  uint32_t flags;
  uint64_t path;
  uint64_t offsets;
  uint64_t ref_ctr_offsets;
  uint64_t cookies;
  uint32_t cnt;
  uint32_t multi_flags;
  uint32_t pid;
};
static_assert(sizeof(UprobeMultiLinkCreate) <= sizeof(union bpf_attr));

// Whether this kernel loads a program for uprobe_multi: a two-instruction
// kprobe program with that expected attach type.
bool KernelHasUprobeMulti() {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},  // r0 = 0
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                   // exit
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts);
  opts.expected_attach_type = static_cast<bpf_attach_type>(kBpfTraceUprobeMulti);
  int fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, nullptr, "GPL", insns, 2, &opts);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// Whether this kernel loads a uprobe session program: one that asks
// bpf_session_is_return (a kfunc of 6.12's uprobe sessions, refused to
// other programs), found by its BTF id.
bool KernelHasUprobeSession() {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) return false;
  const int id =
      btf__find_by_name_kind(vmlinux, "bpf_session_is_return", BTF_KIND_FUNC);
  btf__free(vmlinux);
  if (id <= 0) return false;
  const bpf_insn insns[] = {
      // call bpf_session_is_return
      {BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, id},
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},  // r0 = 0
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                   // exit
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts);
  opts.expected_attach_type =
      static_cast<bpf_attach_type>(kBpfTraceUprobeSession);
  int fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, nullptr, "GPL", insns, 3, &opts);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// A uprobe_multi link of `prog` on `offsets` (with `cookies`) in the file
// at `path`, for process `pid` only: of the entries, the returns (`ret`),
// or a session of both (`attach_type` kBpfTraceUprobeSession); its fd, or
// -1 with errno set.
int AttachUprobeMulti(bpf_program* prog, const std::string& path,
                      const std::vector<uint64_t>& offsets,
                      const std::vector<uint64_t>& cookies, uint32_t pid,
                      bool ret, uint32_t attach_type = kBpfTraceUprobeMulti) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  UprobeMultiLinkCreate args{};
  args.prog_fd = static_cast<uint32_t>(bpf_program__fd(prog));
  args.attach_type = attach_type;
  args.path = reinterpret_cast<uint64_t>(path.c_str());
  args.offsets = reinterpret_cast<uint64_t>(offsets.data());
  args.cookies = reinterpret_cast<uint64_t>(cookies.data());
  args.cnt = static_cast<uint32_t>(offsets.size());
  args.multi_flags = ret ? kBpfFUprobeMultiReturn : 0;
  args.pid = pid;
  std::memcpy(&attr, &args, sizeof(args));
  return static_cast<int>(
      syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tracer>> Tracer::Start(
    const TracerOptions& options, EventSink* sink) {
  RETURN_IF_ERROR(ValidateTracerOptions(options));
  ProcFs proc;
  // Fail on a bad PID before touching the kernel.
  for (pid_t pid : options.pids) {
    RETURN_IF_ERROR(proc.ReadProcess(pid).status());
  }
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    return absl::FailedPreconditionError(
        "this kernel has no BTF (/sys/kernel/btf/vmlinux); reqcost needs "
        "CONFIG_DEBUG_INFO_BTF=y");
  }
  g_verbose = options.verbose;
  libbpf_set_print(PrintLibbpf);
  if (absl::StatusOr<std::string> t = EnsureTracefs(); !t.ok()) {
    if (geteuid() != 0) {
      return absl::PermissionDeniedError(
          "loading BPF needs root or CAP_BPF+CAP_PERFMON; run with sudo");
    }
    return t.status();
  }

  std::unique_ptr<Tracer> tracer(new Tracer(sink));
  tracer->skel_.reset(reqcost_bpf__open());
  if (!tracer->skel_) return LoadError(errno, "opening the BPF object");
  reqcost_bpf* skel = tracer->skel_.get();
  uint64_t key = 0;
  if (getrandom(&key, sizeof(key), 0) != sizeof(key)) {
    return absl::ErrnoToStatus(errno, "getrandom for the socket-id key");
  }
  skel->rodata->targ_hash_key = key;
  skel->rodata->targ_payload = options.payload_bytes;
  skel->rodata->targ_tls = options.tls;
  skel->rodata->targ_syscall_times = options.syscall_times;
  skel->rodata->targ_self_tgid = static_cast<uint32_t>(getpid());
  skel->rodata->targ_cgroups = !options.cgroups.empty();
  skel->rodata->targ_tls_data_bytes =
      std::max<uint32_t>(RC_TLS_DATA_PEEK, options.payload_bytes);
  for (bpf_program* prog :
       {skel->progs.ssl_read_enter, skel->progs.ssl_read_ex_enter,
        skel->progs.ssl_write_enter, skel->progs.ssl_write_ex_enter,
        skel->progs.ssl_exit, skel->progs.ssl_free_enter}) {
    bpf_program__set_autoload(prog, options.tls_probes);
  }
  // The same probes as uprobe_multi links where the kernel has them (the
  // per-site programs above stay loaded: a library the multi link is
  // refused for is probed site by site).
  tracer->uprobe_multi_ = options.tls_probes && options.tls_uprobe_multi &&
                          KernelHasUprobeMulti();
  tracer->tls_internal_sites_wanted_ = options.tls_internal_sites;
  for (bpf_program* prog :
       {skel->progs.ssl_enter_multi, skel->progs.ssl_exit_multi}) {
    bpf_program__set_autoload(prog, tracer->uprobe_multi_);
    bpf_program__set_expected_attach_type(
        prog, static_cast<bpf_attach_type>(kBpfTraceUprobeMulti));
  }
  // And as one session link where the kernel has those (the two multi
  // programs stay loaded for a library the session link is refused for).
  tracer->uprobe_session_ = tracer->uprobe_multi_ &&
                            options.tls_uprobe_session &&
                            KernelHasUprobeSession();
  bpf_program__set_autoload(skel->progs.ssl_session, tracer->uprobe_session_);
  bpf_program__set_expected_attach_type(
      skel->progs.ssl_session,
      static_cast<bpf_attach_type>(kBpfTraceUprobeSession));
  // Wake the consumer once an eighth of the ring is filled: large batches
  // (a wake-up is a context switch and a cold cache), and seven eighths of
  // headroom for the time it takes to be scheduled.
  skel->rodata->targ_wakeup_bytes = options.ring_bytes / 8;
  // One way to see the data syscalls: their tracepoints, or the socket
  // layer's (see TracerOptions::syscall_times).
#define DATA_PROGRAMS(name, sc, buf, iovcnt)                                  \
  bpf_program__set_autoload(skel->progs.enter_##name, options.syscall_times); \
  bpf_program__set_autoload(skel->progs.exit_##name, options.syscall_times);
  RC_DATA_SYSCALLS(DATA_PROGRAMS)
#undef DATA_PROGRAMS
  bpf_program__set_autoload(skel->progs.sock_recv, !options.syscall_times);
  bpf_program__set_autoload(skel->progs.sock_send, !options.syscall_times);
  if (int err =
          bpf_map__set_max_entries(skel->maps.events, options.ring_bytes)) {
    return LoadError(-err, "sizing the ring buffer");
  }
  if (int err = reqcost_bpf__load(skel)) {
    return LoadError(-err, "loading the BPF programs");
  }
  for (pid_t pid : options.pids) {
    ASSIGN_OR_RETURN(ProcessInfo info, proc.ReadProcess(pid));
    tracer->pid_targets_.push_back(std::move(info));
  }
  tracer->has_cgroups_ = !options.cgroups.empty();
  if (tracer->has_cgroups_) RETURN_IF_ERROR(tracer->SetCgroups(options.cgroups));
  // Attach with an empty traced set: nothing emits yet, but forks are
  // followed from here on, so no child born during the scan is missed.
  if (int err = reqcost_bpf__attach(skel)) {
    return LoadError(-err, "attaching to the syscall and socket tracepoints");
  }

  // Scan twice: the second scan catches children forked before the fork
  // tracepoint saw their traced parent.
  std::set<uint32_t> traced;
  int map_fd = bpf_map__fd(skel->maps.traced);
  const uint32_t self = static_cast<uint32_t>(getpid());
  for (int scan = 0; scan < 2; ++scan) {
    ASSIGN_OR_RETURN(std::vector<ProcessInfo> procs,
                     proc.WithDescendants(options.pids));
    const size_t by_pid = procs.size();
    // The cgroups' members now (later ones join in the kernel).
    for (const CgroupTarget& cg : options.cgroups) {
      for (pid_t pid : CgroupMembers(cg.path)) {
        absl::StatusOr<ProcessInfo> info = proc.ReadProcess(pid);
        if (info.ok()) procs.push_back(std::move(*info));  // else: gone
      }
    }
    for (size_t i = 0; i < procs.size(); ++i) {
      ProcessInfo& info = procs[i];
      // `attach -p $$` from a shell: reqcost is the shell's child.
      if (info.pid == self && !options.allow_self) continue;
      if (!traced.insert(info.pid).second) continue;
      // A PID's tree first: traced wherever it goes; a cgroup's member
      // while it stays in a traced cgroup.
      uint8_t how = i < by_pid ? RC_TRACED_BY_PID : RC_TRACED_BY_CGROUP;
      if (bpf_map_update_elem(map_fd, &info.pid, &how, BPF_ANY) != 0) {
        return absl::ErrnoToStatus(
            errno,
            absl::StrFormat("tracing PID %d (too many processes?)", info.pid));
      }
      tracer->processes_.push_back(std::move(info));
    }
  }

  tracer->tls_probes_ = options.tls_probes;
  if (options.tls_probes) {
    tracer->AttachTlsProbes();
    Tracer* t = tracer.get();
    tracer->releaser_ = std::thread([t] { t->ReleaseLoop(); });
  }

  tracer->ring_.reset(ring_buffer__new(bpf_map__fd(skel->maps.events),
                                       &Tracer::OnRecord, tracer.get(),
                                       nullptr));
  if (!tracer->ring_) return LoadError(errno, "opening the ring buffer");
  tracer->last_drop_check_ns_ = MonotonicNowNs();
  return tracer;
}

absl::Status Tracer::SetCgroups(const std::vector<CgroupTarget>& cgroups) {
  if (!has_cgroups_) {
    return absl::FailedPreconditionError(
        "this run was started without --cgroup or --unit targets");
  }
  if (cgroups.size() > TracerOptions::kMaxCgroups) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d cgroups and units given; reqcost traces up to %d",
                        cgroups.size(), TracerOptions::kMaxCgroups));
  }
  int fd = bpf_map__fd(skel_->maps.traced_cgroups);
  std::set<uint64_t> wanted;
  uint64_t levels = 0;
  for (const CgroupTarget& cg : cgroups) {
    if (cg.level < 0 || cg.level > kMaxCgroupLevel) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s is %d levels deep; reqcost follows cgroups up to level %d",
          cg.flag, cg.level, kMaxCgroupLevel));
    }
    wanted.insert(cg.id);
    levels |= uint64_t{1} << cg.level;
  }
  // New ones first, then the levels, then stale ones out: a process of a
  // cgroup kept is never seen as outside.
  uint8_t one = 1;
  for (uint64_t id : wanted) {
    if (bpf_map_update_elem(fd, &id, &one, BPF_ANY) != 0) {
      return absl::ErrnoToStatus(errno, "tracing a cgroup");
    }
  }
  skel_->bss->cgroup_levels |= levels;
  std::vector<uint64_t> stale;
  uint64_t key = 0, next = 0;
  const uint64_t* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (!wanted.count(next)) stale.push_back(next);
    key = next;
    prev = &key;
  }
  for (uint64_t id : stale) bpf_map_delete_elem(fd, &id);
  skel_->bss->cgroup_levels = levels;
  cgroups_ = cgroups;
  return absl::OkStatus();
}

Tracer::~Tracer() {
  ring_.reset();
  if (releaser_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(release_mu_);
      stop_releaser_ = true;
    }
    release_cv_.notify_one();
    releaser_.join();
  }
  // The releaser left what it had not started on (ReleaseLoop).
  std::vector<Link> links = std::move(to_release_);
  for (auto& [pid, of_pid] : tls_links_) {
    for (Link& l : of_pid) links.push_back(std::move(l));
  }
  tls_links_.clear();
  DestroyLinks(std::move(links));
  skel_.reset();
}

void Tracer::DestroyLinks(std::vector<Link> links) {
  // Each link's detach waits for the kernel (a uprobe_multi link once for
  // all its sites, a perf uprobe once per site); on several threads the
  // waits overlap.
  constexpr size_t kDetachThreads = 32;
  const size_t threads = std::min(kDetachThreads, links.size());
  std::vector<std::thread> detach;
  for (size_t t = 0; t < threads; ++t) {
    detach.emplace_back([&links, t, threads] {
      for (size_t i = t; i < links.size(); i += threads) {
        Link gone = std::move(links[i]);
      }
    });
  }
  for (std::thread& t : detach) t.join();
}

size_t Tracer::tls_links() const {
  size_t n = 0;
  for (const auto& [pid, links] : tls_links_) n += links.size();
  std::lock_guard<std::mutex> lock(release_mu_);
  return n + to_release_.size();
}

uint64_t Tracer::tls_releases() const {
  std::lock_guard<std::mutex> lock(release_mu_);
  return tls_releases_;
}

void Tracer::ReleaseTlsProbesOf(uint32_t pid) {
  auto it = tls_links_.find(pid);
  if (it == tls_links_.end()) return;
  std::vector<Link> links = std::move(it->second);
  tls_links_.erase(it);  // a new process with this PID is probed anew
  tls_files_.erase(pid);
  if (links.empty()) return;
  {
    std::lock_guard<std::mutex> lock(release_mu_);
    for (Link& l : links) to_release_.push_back(std::move(l));
    ++tls_releases_;
  }
  release_cv_.notify_one();
}

void Tracer::ReleaseLoop() {
  std::unique_lock<std::mutex> lock(release_mu_);
  while (true) {
    release_cv_.wait(lock,
                     [this] { return stop_releaser_ || !to_release_.empty(); });
    // Stopping: what is left is destroyed with the live links, all at once.
    if (stop_releaser_) return;
    std::vector<Link> batch = std::move(to_release_);
    to_release_.clear();
    lock.unlock();
    DestroyLinks(std::move(batch));  // outside the lock
    lock.lock();
  }
}

void Tracer::AttachTlsProbes() {
  for (const ProcessInfo& info : processes_) AttachTlsProbesTo(info.pid);
}

void Tracer::AttachTlsProbesTo(uint32_t pid) {
  // Attached per process, not to the library file for every process: a
  // uprobe traps in every process that maps the file, and TLS clients on
  // the same machine (curl, h2load, ...) would pay a trap per call for
  // nothing. A child forked later is attached when its fork is seen (its
  // calls before that are missed).
  tls_links_.try_emplace(pid);
  // Called again at its exec and while it maps none: files probed before
  // are not probed twice.
  std::set<std::pair<uint64_t, uint64_t>>& seen = tls_files_[pid];
  reqcost_bpf* skel = skel_.get();
  std::ifstream maps(absl::StrFormat("/proc/%d/maps", pid));
  std::string line;
  while (std::getline(maps, line)) {
    size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    size_t base = path.rfind('/');
    if (path.compare(base + 1, 9, "libssl.so") != 0) continue;
    // Through the process's own root: right in another mount namespace.
    std::string at = absl::StrFormat("/proc/%d/root%s", pid, path);
    struct stat st;
    if (stat(at.c_str(), &st) != 0) continue;
    if (!seen.insert({st.st_dev, st.st_ino}).second) continue;
    auto cached = ssl_sites_.find({st.st_dev, st.st_ino});
    if (cached == ssl_sites_.end()) {
      absl::StatusOr<SslSites> found = FindSslSites(at);
      if (found.ok() && !tls_internal_sites_wanted_) {
        found->read = found->write = 0;  // the public functions, then
      }
      cached = ssl_sites_
                   .emplace(std::make_pair(st.st_dev, st.st_ino),
                            found.ok() ? std::optional<SslSites>(*found)
                                       : std::nullopt)
                   .first;
    }
    const std::optional<SslSites>& sites = cached->second;
    if (sites.has_value() && uprobe_multi_) {
      if (AttachTlsMulti(pid, at, *sites)) {
        NoteTlsLibrary(path, sites->internal());
        continue;
      }
      if (errno == ESRCH) return;  // gone meanwhile
      // Refused: site by site below.
    }
    // At an offset in the file, or at a function's name (offset 0) where
    // the file could not be read.
    struct Probe {
      bpf_program* prog;
      const char* func;
      uint64_t offset;
      bool ret;
    };
    const bool internal = sites.has_value() && sites->internal();
    // Offsets 0 where the file could not be read: probed by name.
    const SslSites known = sites.value_or(SslSites{});
    std::vector<Probe> probes;
    auto entry_and_return = [&](bpf_program* entry, const char* func,
                                uint64_t offset) {
      probes.push_back({entry, func, offset, false});
      probes.push_back({skel->progs.ssl_exit, func, offset, true});
    };
    if (internal) {
      // They take SSL_read_ex's and SSL_write_ex's arguments: both public
      // forms of a call are seen there, once.
      entry_and_return(skel->progs.ssl_read_ex_enter, "ssl_read_internal",
                       known.read);
      entry_and_return(skel->progs.ssl_write_ex_enter, "ssl_write_internal",
                       known.write);
    } else {
      entry_and_return(skel->progs.ssl_read_enter, "SSL_read", known.ssl_read);
      entry_and_return(skel->progs.ssl_read_ex_enter, "SSL_read_ex",
                       known.ssl_read_ex);
      entry_and_return(skel->progs.ssl_write_enter, "SSL_write",
                       known.ssl_write);
      entry_and_return(skel->progs.ssl_write_ex_enter, "SSL_write_ex",
                       known.ssl_write_ex);
    }
    probes.push_back(
        {skel->progs.ssl_free_enter, "SSL_free", known.ssl_free, false});
    bool ok = true;
    for (const Probe& p : probes) {
      // A function the file does not export (the _ex forms before OpenSSL
      // 1.1.1): nothing to probe.
      if (sites.has_value() && p.offset == 0) continue;
      bpf_uprobe_opts opts{};
      opts.sz = sizeof(opts);
      opts.retprobe = p.ret;
      opts.func_name = p.offset != 0 ? nullptr : p.func;
      bpf_link* link = bpf_program__attach_uprobe_opts(
          p.prog, static_cast<pid_t>(pid), at.c_str(), p.offset, &opts);
      if (link == nullptr) {
        int err = errno;
        if (err == ESRCH) return;  // gone meanwhile: nothing to see
        tls_probe_status_ = absl::ErrnoToStatus(
            err, absl::StrFormat("uprobe on %s in %s", p.func, path));
        ok = false;
        break;
      }
      tls_links_[pid].emplace_back(link);
    }
    if (ok) NoteTlsLibrary(path, internal);
  }
}

void Tracer::NoteTlsLibrary(const std::string& path, bool internal) {
  if (std::find(tls_libraries_.begin(), tls_libraries_.end(), path) !=
      tls_libraries_.end()) {
    return;
  }
  tls_libraries_.push_back(path);
  if (internal) ++tls_internal_sites_;
}

bool Tracer::AttachTlsMulti(uint32_t pid, const std::string& at,
                            const SslSites& sites) {
  std::vector<uint64_t> offsets, cookies;
  auto site = [&](uint64_t offset, uint64_t cookie) {
    if (offset == 0) return;
    offsets.push_back(offset);
    cookies.push_back(cookie);
  };
  if (sites.internal()) {
    site(sites.read, RC_TLS_DATA_READ_EX);
    site(sites.write, RC_TLS_DATA_WRITE_EX);
  } else {
    site(sites.ssl_read, RC_TLS_DATA_READ);
    site(sites.ssl_read_ex, RC_TLS_DATA_READ_EX);
    site(sites.ssl_write, RC_TLS_DATA_WRITE);
    site(sites.ssl_write_ex, RC_TLS_DATA_WRITE_EX);
  }
  if (uprobe_session_) {
    std::vector<uint64_t> all_offsets = offsets, all_cookies = cookies;
    if (sites.ssl_free != 0) {
      all_offsets.push_back(sites.ssl_free);
      all_cookies.push_back(RC_TLS_SITE_FREE);
    }
    const int fd = AttachUprobeMulti(skel_->progs.ssl_session, at, all_offsets,
                                     all_cookies, pid, false,
                                     kBpfTraceUprobeSession);
    if (fd >= 0) {
      tls_links_[pid].emplace_back(fd);
      return true;
    }
    if (errno == ESRCH) return false;
    // Refused: as two links below.
  }
  // The returns first: an entry without its return would note calls that
  // never end.
  const int ret_fd = AttachUprobeMulti(skel_->progs.ssl_exit_multi, at,
                                       offsets, cookies, pid, true);
  if (ret_fd < 0) return false;
  site(sites.ssl_free, RC_TLS_SITE_FREE);
  const int enter_fd = AttachUprobeMulti(skel_->progs.ssl_enter_multi, at,
                                         offsets, cookies, pid, false);
  if (enter_fd < 0) {
    const int err = errno;
    {  // released by the releaser: closing a link waits for a grace period
      std::lock_guard<std::mutex> lock(release_mu_);
      to_release_.emplace_back(ret_fd);
    }
    release_cv_.notify_one();
    errno = err;
    return false;
  }
  std::vector<Link>& links = tls_links_[pid];
  links.emplace_back(ret_fd);
  links.emplace_back(enter_fd);
  return true;
}

Tracer::RescanResult Tracer::Rescan() {
  RescanResult result;
  ProcFs proc;
  // (process, why it is traced), PID trees first.
  std::vector<std::pair<ProcessInfo, uint8_t>> found;
  for (auto it = pid_targets_.begin(); it != pid_targets_.end();) {
    absl::StatusOr<std::vector<ProcessInfo>> tree =
        proc.WithDescendants({static_cast<pid_t>(it->pid)});
    // The start time read from /proc at attach: the same process or not.
    if (!tree.ok() || tree->empty() || (*tree)[0].start_ns != it->start_ns) {
      result.exited_targets.push_back(std::move(*it));
      it = pid_targets_.erase(it);
      continue;
    }
    for (ProcessInfo& info : *tree) {
      found.emplace_back(std::move(info), RC_TRACED_BY_PID);
    }
    ++it;
  }
  result.pid_targets = pid_targets_.size();
  for (const CgroupTarget& cg : cgroups_) {
    for (pid_t pid : CgroupMembers(cg.path)) {
      absl::StatusOr<ProcessInfo> info = proc.ReadProcess(pid);
      if (info.ok()) found.emplace_back(std::move(*info), RC_TRACED_BY_CGROUP);
    }
  }
  const int map_fd = bpf_map__fd(skel_->maps.traced);
  const uint32_t self = static_cast<uint32_t>(getpid());
  for (auto& [info, how] : found) {
    if (info.pid == self) continue;
    if (bpf_map_update_elem(map_fd, &info.pid, &how, BPF_NOEXIST) == 0) {
      ProcessEvent e;
      e.op = ProcessEvent::Op::kExec;  // as a process that joins is told
      e.tgid = info.pid;
      e.parent_tgid = info.ppid;
      e.ts_ns = MonotonicNowNs();
      e.start_ns = info.start_ns;
      e.comm = info.comm;
      sink_->OnProcess(e);
      result.added.push_back(info);
    } else if (how == RC_TRACED_BY_PID) {
      // In a PID's tree and traced for its cgroup too: it stays traced
      // wherever it goes (no-op when traced by PID already).
      (void)bpf_map_update_elem(map_fd, &info.pid, &how, BPF_EXIST);
    }
    if (tls_probes_) AttachTlsProbesTo(info.pid);
  }
  return result;
}

int Tracer::OnRecord(void* ctx, void* data, size_t len) {
  auto* self = static_cast<Tracer*>(ctx);
  RecordKind kind;
  if (!DecodeRecord(data, len, &kind, &self->syscall_, &self->process_,
                    &self->tls_data_)
           .ok()) {
    ++self->decode_errors_;
    return 0;
  }
  // A drop that happened before this record must be known before the record
  // is: the profiler may finalize requests as soon as it sees later events.
  uint64_t at = kind == RecordKind::kSyscall   ? self->syscall_.exit_ns
                : kind == RecordKind::kTlsData ? self->tls_data_.exit_ns
                                               : self->process_.ts_ns;
  if (at > self->last_drop_check_ns_) self->CheckDrops();
  if (kind == RecordKind::kSyscall) {
    self->sink_->OnSyscall(self->syscall_);
  } else if (kind == RecordKind::kTlsData) {
    self->sink_->OnTlsData(self->tls_data_);
  } else {
    // A new process of the traced tree: its uprobes (it maps what its
    // parent mapped).
    // A process that joined a traced cgroup is told as an exec.
    if (self->tls_probes_ && !self->process_.ends()) {
      self->AttachTlsProbesTo(self->process_.tgid);
    }
    // Its links can no longer fire (or, once it left the traced cgroups,
    // must no longer): released off this thread, which must keep draining
    // the ring.
    if (self->tls_probes_ && self->process_.ends()) {
      self->ReleaseTlsProbesOf(self->process_.tgid);
    }
    self->sink_->OnProcess(self->process_);
  }
  return 0;
}

void Tracer::RescanTlsLibraries(uint64_t now) {
  // A process that dlopens libssl after attach is probed within this long.
  constexpr uint64_t kTlsRescanNs = 2'000'000'000;
  if (now - last_tls_scan_ns_ < kTlsRescanNs) return;
  last_tls_scan_ns_ = now;
  std::vector<uint32_t> without;
  for (const auto& [pid, files] : tls_files_) {
    if (files.empty()) without.push_back(pid);
  }
  for (uint32_t pid : without) AttachTlsProbesTo(pid);
}

absl::StatusOr<int> Tracer::Poll(int timeout_ms) {
  // The kernel side wakes us only past a backlog; the timeout drains the
  // rest, so a quiet stream is still delivered within timeout_ms.
  int n = ring_buffer__poll(ring_.get(), timeout_ms);
  if (n == -EINTR) n = 0;
  if (n < 0) return absl::ErrnoToStatus(-n, "polling the ring buffer");
  int more = ring_buffer__consume(ring_.get());
  if (more == -EINTR) more = 0;
  if (more < 0) return absl::ErrnoToStatus(-more, "draining the ring buffer");
  CheckDrops();  // reads the clock into last_drop_check_ns_
  if (tls_probes_) RescanTlsLibraries(last_drop_check_ns_);
  return n + more;
}

void Tracer::CheckDrops() {
  // Counter first, clock second: every drop counted happened before `now`.
  // Only the one counter: this runs often while a busy batch drains.
  uint64_t dropped = Counter(RC_CNT_DROPPED);
  uint64_t now = MonotonicNowNs();
  if (dropped > dropped_seen_) {
    sink_->OnDrops(last_drop_check_ns_, now, dropped - dropped_seen_);
    dropped_seen_ = dropped;
  }
  last_drop_check_ns_ = now;
}

Tracer::ObjectIds Tracer::object_ids() const {
  ObjectIds ids;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0) {
      ids.programs.push_back(info.id);
    }
  }
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(bpf_map__fd(map), &info, &len) == 0) {
      ids.maps.push_back(info.id);
    }
  }
  return ids;
}

uint64_t Tracer::Counter(uint32_t index) const {
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return 0;
  std::vector<uint64_t> values(static_cast<size_t>(ncpus));
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.counters), &index,
                          values.data()) != 0) {
    return 0;
  }
  uint64_t sum = 0;
  for (uint64_t v : values) sum += v;
  return sum;
}

KernelCounters Tracer::counters() const {
  KernelCounters out;
  out.emitted = Counter(RC_CNT_EMITTED);
  out.dropped = Counter(RC_CNT_DROPPED);
  out.unpaired = Counter(RC_CNT_UNPAIRED);
  out.enter_lost = Counter(RC_CNT_ENTER_LOST);
  out.foreign = Counter(RC_CNT_FOREIGN);
  out.tls_calls = Counter(RC_CNT_TLS_CALLS);
  out.tls_returns = Counter(RC_CNT_TLS_RETURNS);
  out.stream_states = Counter(RC_CNT_STREAM_STATES);
  return out;
}

}  // namespace reqcost::collector
