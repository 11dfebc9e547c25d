#include "collector/system_check.h"

#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "collector/tracefs.h"
#include "collector/tracer.h"

namespace reqcost::collector {
namespace {

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

bool HasEffectiveCap(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

// Tracepoints reqcost attaches to, as tracefs names them.
std::vector<std::string> NeededTracepoints() {
  std::vector<std::string> out;
  for (const char* sc : {"accept", "accept4", "connect", "read", "readv",
                         "recvfrom", "recvmsg", "write", "writev", "sendto",
                         "sendmsg", "sendfile64", "close", "shutdown",
                         "socketpair"}) {
    out.push_back(absl::StrCat("syscalls/sys_enter_", sc));
    out.push_back(absl::StrCat("syscalls/sys_exit_", sc));
  }
  for (const char* sched :
       {"sched_process_fork", "sched_process_exec", "sched_process_exit"}) {
    out.push_back(absl::StrCat("sched/", sched));
  }
  // The default hooks for data I/O (--syscall-times does without them).
  for (const char* sock : {"sock_recv_length", "sock_send_length"}) {
    out.push_back(absl::StrCat("sock/", sock));
  }
  return out;
}

class NullSink : public EventSink {
 public:
  void OnSyscall(const SyscallEvent&) override {}
  void OnProcess(const ProcessEvent&) override {}
  void OnDrops(uint64_t, uint64_t, uint64_t) override {}
};

}  // namespace

std::vector<CheckResult> RunSystemChecks() {
  std::vector<CheckResult> out;
  const std::string sudo = "run reqcost as root (sudo)";

  CheckResult priv{"privileges"};
  bool root = geteuid() == 0;
  bool caps = HasEffectiveCap(CAP_BPF) && HasEffectiveCap(CAP_PERFMON);
  priv.ok = root || caps;
  priv.detail = root   ? "running as root"
                : caps ? "CAP_BPF and CAP_PERFMON"
                       : "neither root nor CAP_BPF+CAP_PERFMON";
  priv.fix = sudo + ", or grant CAP_BPF,CAP_PERFMON";
  out.push_back(priv);

  CheckResult btf{"BTF"};
  btf.ok = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  utsname uts{};
  uname(&uts);
  btf.detail = absl::StrCat(btf.ok ? "/sys/kernel/btf/vmlinux present"
                                   : "/sys/kernel/btf/vmlinux missing",
                            " (kernel ", uts.release, ")");
  btf.fix = "use a kernel built with CONFIG_DEBUG_INFO_BTF=y";
  out.push_back(btf);

  CheckResult tracefs{"tracefs"};
  absl::StatusOr<std::string> dir = EnsureTracefs();
  tracefs.ok = dir.ok();
  tracefs.detail = dir.ok() ? absl::StrCat("mounted at ", *dir)
                            : std::string(dir.status().message());
  tracefs.fix = root ? "mount -t tracefs nodev /sys/kernel/tracing"
                     : sudo + ": tracefs is root's to mount and read";
  out.push_back(tracefs);

  CheckResult tps{"tracepoints"};
  std::vector<std::string> missing;
  if (dir.ok()) {
    for (const std::string& tp : NeededTracepoints()) {
      if (access(absl::StrCat(*dir, "/events/", tp).c_str(), F_OK) != 0) {
        missing.push_back(tp);
      }
    }
  }
  tps.ok = dir.ok() && missing.empty();
  tps.detail =
      !dir.ok() ? "not checked: no tracefs"
      : missing.empty()
          ? absl::StrCat(NeededTracepoints().size(),
                         " syscall, sched and sock tracepoints present")
          : absl::StrCat("missing: ", absl::StrJoin(missing, ", "));
  tps.fix =
      "use a kernel with CONFIG_FTRACE_SYSCALLS=y; without "
      "sock/sock_recv_length and sock/sock_send_length (newer kernels have "
      "them), attach with --syscall-times";
  out.push_back(tps);

  CheckResult ring{"ring buffer"};
  int probe = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr);
  ring.ok = probe == 1;
  ring.detail = probe == 1   ? "BPF_MAP_TYPE_RINGBUF supported"
                : probe == 0 ? "BPF_MAP_TYPE_RINGBUF not supported"
                             : "could not probe (no privileges?)";
  ring.fix = probe == 0 ? "reqcost needs Linux 5.8 or later" : sudo;
  out.push_back(ring);

  CheckResult load{"load and attach"};
  CheckResult tls{"TLS uprobes"};
  if (priv.ok && btf.ok && tracefs.ok && ring.ok) {
    NullSink sink;
    TracerOptions options;
    options.pids = {getpid()};
    options.allow_self = true;  // its own process is the test subject
    options.ring_bytes = TracerOptions::kMinRingBytes * 16;
    absl::StatusOr<std::unique_ptr<Tracer>> tracer =
        Tracer::Start(options, &sink);
    load.ok = tracer.ok();
    load.detail = tracer.ok()
                      ? "reqcost's programs loaded, attached and detached"
                      : std::string(tracer.status().message());
    load.fix = "run with --verbose to see libbpf's log";
    // reqcost maps libssl itself (through libcurl): its own process is the
    // test subject for the uprobes that see inside TLS.
    tls.ok = tracer.ok() && (*tracer)->tls_probe_status().ok();
    if (!tracer.ok()) {
      tls.detail = "not tried: the programs did not load";
    } else if (!(*tracer)->tls_probe_status().ok()) {
      tls.detail = std::string((*tracer)->tls_probe_status().message());
    } else if ((*tracer)->tls_libraries().empty()) {
      tls.detail = "not tried: reqcost itself maps no libssl";
    } else {
      const size_t libraries = (*tracer)->tls_libraries().size();
      const size_t internal = (*tracer)->tls_internal_sites();
      tls.detail = absl::StrCat(
          "uprobes on SSL_read/SSL_write attached to ",
          absl::StrJoin((*tracer)->tls_libraries(), ", "),
          internal == libraries ? " (at their internal functions)"
          : internal == 0
              ? " (at the functions themselves: no internal one found)"
              : absl::StrCat(" (", internal, " of ", libraries,
                             " at their internal functions)"),
          (*tracer)->tls_uprobe_session()
              ? ", as one uprobe session link per process (a call with "
                "nothing to do at its return takes no return trap)"
          : (*tracer)->tls_uprobe_multi()
              ? ", as two uprobe_multi links per process"
              : ", one uprobe per site");
    }
    tls.fix =
        "without uprobes nothing is seen inside TLS (HTTP/2 over TLS, "
        "HTTPS request lines); they are on unless attach is given "
        "--no-tls-probes";
  } else {
    load.detail = "not tried: an earlier check failed";
    load.fix = "fix the checks above first";
    tls.detail = "not tried: an earlier check failed";
    tls.fix = "fix the checks above first";
  }
  out.push_back(load);
  out.push_back(tls);
  return out;
}

}  // namespace reqcost::collector
