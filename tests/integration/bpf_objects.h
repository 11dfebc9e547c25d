// Which BPF programs and maps a process holds, and whether they are gone:
// "nothing of reqcost stays loaded" checked by kernel id, not by name, so
// another reqcost running on the machine cannot make the check pass or fail.
#ifndef REQCOST_TESTS_INTEGRATION_BPF_OBJECTS_H_
#define REQCOST_TESTS_INTEGRATION_BPF_OBJECTS_H_

#include <bpf/bpf.h>
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>

namespace reqcost::testing {

// Programs reqcost loads by default: an enter and an exit program on each
// of the 5 setup syscalls, the 2 socket-layer programs and the 3 sched ones
// (--syscall-times loads 2 x 14 + 3 instead).
inline constexpr size_t kDefaultPrograms = 2 * 5 + 2 + 3;

struct BpfObjectIds {
  std::set<uint32_t> programs;
  std::set<uint32_t> maps;
  bool empty() const { return programs.empty() && maps.empty(); }
};

// The ids behind every BPF program, link and map fd of `pid`, read from
// /proc/PID/fdinfo ("prog_id:", "map_id:").
inline BpfObjectIds BpfObjectsHeldBy(pid_t pid) {
  BpfObjectIds ids;
  std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ids;
  while (dirent* e = readdir(d)) {
    std::ifstream in(dir + "/" + e->d_name);
    std::string key;
    uint32_t value;
    while (in >> key) {
      if ((key == "prog_id:" || key == "map_id:") && (in >> value)) {
        (key == "prog_id:" ? ids.programs : ids.maps).insert(value);
      }
    }
  }
  closedir(d);
  return ids;
}

// The ids among `ids` that still name a loaded program or map.
inline BpfObjectIds StillLoaded(const BpfObjectIds& ids) {
  BpfObjectIds alive;
  for (uint32_t id : ids.programs) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd >= 0) {
      alive.programs.insert(id);
      close(fd);
    }
  }
  for (uint32_t id : ids.maps) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd >= 0) {
      alive.maps.insert(id);
      close(fd);
    }
  }
  return alive;
}

// True once none of `ids` is loaded (the kernel frees them after an RCU
// grace period), false if some still are after `timeout_s`.
inline bool AllGoneWithin(const BpfObjectIds& ids, int timeout_s) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (!StillLoaded(ids).empty()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_INTEGRATION_BPF_OBJECTS_H_
