#include "tests/bench/floor_uprobes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "collector/ssl_sites.h"
#include "floor_bpf.skel.h"
#include "tests/support/stack.h"

namespace reqcost::bench {
namespace {

// The public functions the probes went on before ssl_sites.h.
constexpr const char* kTlsFunctions[] = {"SSL_read", "SSL_read_ex",
                                         "SSL_write", "SSL_write_ex"};

// The libssl `pid` maps, through its own root.
absl::StatusOr<std::string> LibsslOf(pid_t pid) {
  absl::StatusOr<std::string> maps =
      stack::ReadFileToString(absl::StrCat("/proc/", pid, "/maps"));
  if (!maps.ok()) return maps.status();
  for (absl::string_view line : absl::StrSplit(*maps, '\n')) {
    size_t slash = line.find('/');
    if (slash == absl::string_view::npos) continue;
    absl::string_view path = line.substr(slash);
    if (absl::StrContains(path, "/libssl.so")) {
      return absl::StrCat("/proc/", pid, "/root", path);
    }
  }
  return absl::NotFoundError(absl::StrCat("process ", pid, " maps no libssl"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FloorUprobes>> FloorUprobes::Attach(
    const std::vector<pid_t>& pids, bool public_functions, bool returns) {
  std::unique_ptr<FloorUprobes> f(new FloorUprobes(floor_bpf__open()));
  if (f->skel_ == nullptr) return absl::InternalError("floor_bpf__open");
  bpf_program* prog;
  bpf_object__for_each_program(prog, f->skel_->obj) {
    const std::string name = bpf_program__name(prog);
    bpf_program__set_autoload(
        prog, name == "floor_uprobe" || name == "floor_uretprobe");
  }
  if (int err = floor_bpf__load(f->skel_); err != 0) {
    return absl::InternalError(
        absl::StrCat("loading floor uprobes: ", std::strerror(-err)));
  }
  for (pid_t pid : pids) {
    absl::StatusOr<std::string> lib = LibsslOf(pid);
    if (!lib.ok()) return lib.status();
    // (function name, file offset): one or the other.
    std::vector<std::pair<const char*, uint64_t>> at;
    absl::StatusOr<collector::SslSites> sites = collector::FindSslSites(*lib);
    if (!public_functions && sites.ok()) {
      at = {{nullptr, sites->read}, {nullptr, sites->write}};
    } else {
      for (const char* func : kTlsFunctions) at.emplace_back(func, 0);
    }
    for (const auto& [func, offset] : at) {
      for (bool ret : {false, true}) {
        if (ret && !returns) continue;
        bpf_uprobe_opts opts{};
        opts.sz = sizeof(opts);
        opts.retprobe = ret;
        opts.func_name = func;
        bpf_link* link = bpf_program__attach_uprobe_opts(
            ret ? f->skel_->progs.floor_uretprobe
                : f->skel_->progs.floor_uprobe,
            pid, lib->c_str(), offset, &opts);
        if (link == nullptr) {
          return absl::ErrnoToStatus(
              errno, absl::StrCat("floor uprobe on ",
                                  func != nullptr ? func : "an internal site",
                                  " in ", *lib));
        }
        f->links_.push_back(link);
      }
    }
  }
  return f;
}

FloorUprobes::~FloorUprobes() {
  for (bpf_link* l : links_) bpf_link__destroy(l);
  if (skel_ != nullptr) floor_bpf__destroy(skel_);
}

std::vector<uint32_t> FloorUprobes::ProgramIds() const {
  std::vector<uint32_t> ids;
  for (bpf_program* p :
       {skel_->progs.floor_uprobe, skel_->progs.floor_uretprobe}) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len) == 0) {
      ids.push_back(info.id);
    }
  }
  return ids;
}

}  // namespace reqcost::bench
