#include "analyzers/render/trace_export.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "analyzers/phase.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "collector/event.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {
namespace {

using nlohmann::json;

constexpr double kNsPerUs = 1000.0;
// Track ids for the extra tracks of overlapping requests: above any real tid
// (pid_max is at most 2^22), within int32.
constexpr uint32_t kFirstOverlapTrack = 1'000'000'000;

// A slice and the slices nested in it, kept sorted by start and disjoint.
struct Node {
  std::string name;
  std::string cat;
  uint64_t start = 0;
  uint64_t end = 0;
  json args = json::object();
  bool container = false;  // syscalls that begin inside it go inside it
  bool instant = false;    // a point in time: a call seen at its end only
  std::vector<Node> children;
};

// Inserts `leaf` into `node` without crossing any slice: inside the
// container its start falls in, after the sibling it would overlap, and cut
// where the next sibling begins.
void Place(Node* node, Node leaf) {
  leaf.start = std::clamp(leaf.start, node->start, node->end);
  leaf.end = std::clamp(leaf.end, leaf.start, node->end);
  auto& ch = node->children;
  while (true) {
    for (Node& c : ch) {
      if (c.container && c.start <= leaf.start && leaf.start < c.end) {
        Place(&c, std::move(leaf));
        return;
      }
    }
    auto next =
        std::upper_bound(ch.begin(), ch.end(), leaf.start,
                         [](uint64_t s, const Node& n) { return s < n.start; });
    if (next != ch.begin() && std::prev(next)->end > leaf.start) {
      leaf.start = std::prev(next)->end;  // a leaf: begin after it
      leaf.end = std::max(leaf.end, leaf.start);
      continue;
    }
    leaf.end = std::min(leaf.end, next != ch.end() ? next->start : node->end);
    leaf.end = std::max(leaf.end, leaf.start);
    ch.insert(next, std::move(leaf));
    return;
  }
}

Node Container(std::string name, uint64_t start, uint64_t end) {
  Node n;
  n.name = std::move(name);
  n.cat = "phase";
  n.start = start;
  n.end = end;
  n.container = true;
  return n;
}

json NsToUs(const std::optional<uint64_t>& ns) {
  return ns.has_value() ? json(*ns / kNsPerUs) : json();
}

std::string RequestName(const Request& r) {
  return r.request_line.has_value() ? *r.request_line
                                    : absl::StrCat("request #", r.id);
}

json RequestArgs(const Request& r) {
  json args = {
      {"id", r.id},
      {"request_line",
       r.request_line.has_value() ? json(*r.request_line) : json()},
      {"client_conn", std::string(ReuseName(r.client_conn))},
      {"backend_conn", std::string(ReuseName(r.backend_conn))},
      {"origin", std::string(OriginName(r.origin))},
      {"complete", r.complete},
  };
  for (Phase phase : kPhases) {
    args[absl::StrCat(PhaseName(phase), "_us")] = NsToUs(PhaseNs(r, phase));
  }
  if (r.complete) {
    args["backend_timing"] = std::string(TimingName(r.backend_timing));
  } else {
    args["incomplete_reason"] = r.incomplete_reason;
  }
  return args;
}

Node SyscallLeaf(const SyscallRecord& s) {
  Node n;
  n.name = std::string(SyscallName(s.syscall));
  n.cat = "syscall";
  n.start = s.start_ns();
  n.end = s.enter_seen() ? s.exit_ns : n.start;
  n.instant = !s.enter_seen();
  n.args = {{"ret", s.ret},
            {"side", std::string(SideName(s.side))},
            {"peer", std::string(TargetName(s.target))},
            {"enter_seen", s.enter_seen()}};
  return n;
}

// One request's slices on one thread.
struct Block {
  uint32_t pid = 0;
  uint32_t tid = 0;
  Node root;
};

using ThreadKey = std::pair<uint32_t, uint32_t>;  // pid, tid

// The request's slices: the main block on its server thread first, then one
// block per other thread its syscalls ran on.
std::vector<Block> RequestBlocks(const Request& r) {
  std::vector<Block> blocks;
  if (r.syscalls.empty() && r.start_ns == 0) return blocks;
  ThreadKey main{r.pid, r.pid};
  bool found = false;
  for (const SyscallRecord& s : r.syscalls) {
    if (s.side == Side::kServer && s.target == Target::kClient) {
      main = {s.tgid, s.tid != 0 ? s.tid : s.tgid};
      found = true;
      break;
    }
  }
  for (const SyscallRecord& s : r.syscalls) {
    if (found) break;
    if (s.side == Side::kServer) {
      main = {s.tgid, s.tid != 0 ? s.tid : s.tgid};
      found = true;
    }
  }
  auto key_of = [](const SyscallRecord& s) {
    return ThreadKey{s.tgid, s.tid != 0 ? s.tid : s.tgid};
  };

  // Spans per thread.
  std::map<ThreadKey, std::pair<uint64_t, uint64_t>> spans;
  std::vector<ThreadKey> order;
  for (const SyscallRecord& s : r.syscalls) {
    Node leaf = SyscallLeaf(s);
    auto [it, inserted] = spans.try_emplace(key_of(s), leaf.start, leaf.end);
    if (inserted) {
      order.push_back(key_of(s));
    } else {
      it->second.first = std::min(it->second.first, leaf.start);
      it->second.second = std::max(it->second.second, leaf.end);
    }
  }

  // The main block: request, phases, its own thread's syscalls.
  Block main_block;
  main_block.pid = main.first;
  main_block.tid = main.second;
  uint64_t start = r.start_ns;
  uint64_t end = r.end_ns;
  if (auto it = spans.find(main); it != spans.end()) {
    if (start == 0) start = it->second.first;
    end = std::max(end, it->second.second);
  }
  end = std::max(end, start);
  Node& root = main_block.root;
  root.name = RequestName(r);
  root.cat = "request";
  root.start = start;
  root.end = end;
  root.args = RequestArgs(r);
  if (r.complete) {
    auto phase_args = [&](const char* key, const std::optional<uint64_t>& v) {
      return json{{key, NsToUs(v)}};
    };
    if (r.exchange_start_ns != 0) {
      uint64_t ws = std::clamp(r.exchange_start_ns, start, end);
      uint64_t we = std::clamp(r.exchange_end_ns, ws, end);
      if (ws > start) {
        root.children.push_back(Container("server", start, ws));
        root.children.back().args = phase_args("server_us", r.server_ns);
      }
      Node transport = Container("transport", ws, we);
      transport.args = phase_args("transport_us", r.transport_ns);
      if (r.backend_start_ns != 0) {
        uint64_t bs = std::clamp(r.backend_start_ns, ws, we);
        uint64_t be = std::clamp(r.backend_end_ns, bs, we);
        transport.children.push_back(Container("backend", bs, be));
        transport.children.back().args = {
            {"backend_us", NsToUs(r.backend_ns)},
            {"backend_timing", std::string(TimingName(r.backend_timing))}};
      }
      root.children.push_back(std::move(transport));
      if (end > we) {
        root.children.push_back(Container("server", we, end));
        root.children.back().args = phase_args("server_us", r.server_ns);
      }
    } else {
      root.children.push_back(Container("server", start, end));
      root.children.back().args = phase_args("server_us", r.server_ns);
    }
  }
  for (const SyscallRecord& s : r.syscalls) {
    if (key_of(s) == main) Place(&root, SyscallLeaf(s));
  }
  blocks.push_back(std::move(main_block));

  // Other threads: the backend's part (with its measured span) and any
  // other server thread.
  bool backend_placed = false;
  for (const ThreadKey& key : order) {
    if (key == main) continue;
    Block b;
    b.pid = key.first;
    b.tid = key.second;
    auto [lo, hi] = spans.at(key);
    bool with_backend = !backend_placed && r.complete &&
                        r.backend_timing == BackendTiming::kMeasured &&
                        key.first == r.backend_pid && r.backend_start_ns != 0;
    if (with_backend) {
      lo = std::min(lo, r.backend_start_ns);
      hi = std::max(hi, r.backend_end_ns);
    }
    b.root.name = RequestName(r);
    b.root.cat = "request-part";
    b.root.start = lo;
    b.root.end = std::max(hi, lo);
    b.root.args = {{"id", r.id}};
    if (with_backend) {
      backend_placed = true;
      b.root.children.push_back(
          Container("backend", r.backend_start_ns,
                    std::max(r.backend_end_ns, r.backend_start_ns)));
      b.root.children.back().args = {{"backend_us", NsToUs(r.backend_ns)},
                                     {"backend_timing", "measured"}};
    }
    for (const SyscallRecord& s : r.syscalls) {
      if (key_of(s) == key) Place(&b.root, SyscallLeaf(s));
    }
    blocks.push_back(std::move(b));
  }
  return blocks;
}

void Emit(const Node& n, uint32_t pid, uint32_t tid, uint64_t origin_ns,
          json* events) {
  double ts = (static_cast<double>(n.start) - static_cast<double>(origin_ns)) /
              kNsPerUs;
  if (n.instant) {
    // A thread-scoped instant event: Perfetto draws it as a mark on the
    // thread's track at that time.
    events->push_back({{"name", n.name},
                       {"cat", n.cat},
                       {"ph", "i"},
                       {"s", "t"},
                       {"ts", ts},
                       {"pid", pid},
                       {"tid", tid},
                       {"args", n.args}});
    return;
  }
  events->push_back({{"name", n.name},
                     {"cat", n.cat},
                     {"ph", "X"},
                     {"ts", ts},
                     {"dur", (n.end - n.start) / kNsPerUs},
                     {"pid", pid},
                     {"tid", tid},
                     {"args", n.args}});
  for (const Node& c : n.children) Emit(c, pid, tid, origin_ns, events);
}

}  // namespace

nlohmann::json ChromeTrace(const std::vector<Request>& requests,
                           const std::vector<ProcessEntry>& processes,
                           uint64_t origin_ns) {
  std::map<ThreadKey, std::vector<Block>> by_thread;
  for (const Request& r : requests) {
    for (Block& b : RequestBlocks(r)) {
      by_thread[{b.pid, b.tid}].push_back(std::move(b));
    }
  }
  std::map<uint32_t, const ProcessEntry*> info;
  for (const ProcessEntry& p : processes) info[p.pid] = &p;
  auto comm = [&](uint32_t pid) {
    auto it = info.find(pid);
    return it != info.end() ? it->second->comm : std::string("?");
  };

  json events = json::array();
  json metadata = json::array();
  std::map<uint32_t, bool> named_process;
  uint32_t next_overlap_track = kFirstOverlapTrack;
  for (auto& [key, blocks] : by_thread) {
    const auto [pid, tid] = key;
    if (!named_process[pid]) {
      named_process[pid] = true;
      auto it = info.find(pid);
      std::string name = it != info.end()
                             ? absl::StrCat(it->second->comm, " ", pid, " (",
                                            it->second->role, ")")
                             : absl::StrCat("pid ", pid);
      metadata.push_back({{"name", "process_name"},
                          {"ph", "M"},
                          {"pid", pid},
                          {"tid", pid},
                          {"args", {{"name", name}}}});
    }
    // Lanes: a block goes on the first track of its thread whose last slice
    // ended by the time it starts.
    std::stable_sort(blocks.begin(), blocks.end(),
                     [](const Block& a, const Block& b) {
                       return a.root.start < b.root.start;
                     });
    std::vector<std::pair<uint32_t, uint64_t>> lanes;  // track id, last end
    for (const Block& b : blocks) {
      size_t lane = 0;
      while (lane < lanes.size() && lanes[lane].second > b.root.start) ++lane;
      if (lane == lanes.size()) {
        uint32_t track = lane == 0 ? tid : next_overlap_track++;
        lanes.push_back({track, 0});
        std::string name = absl::StrCat(comm(pid), " ", tid);
        if (lane > 0) absl::StrAppend(&name, " (overlap ", lane, ")");
        metadata.push_back({{"name", "thread_name"},
                            {"ph", "M"},
                            {"pid", pid},
                            {"tid", track},
                            {"args", {{"name", name}}}});
        metadata.push_back({{"name", "thread_sort_index"},
                            {"ph", "M"},
                            {"pid", pid},
                            {"tid", track},
                            {"args", {{"sort_index", tid * 64ull + lane}}}});
      }
      lanes[lane].second = b.root.end;
      Emit(b.root, pid, lanes[lane].first, origin_ns, &events);
    }
  }
  for (json& e : events) metadata.push_back(std::move(e));
  return json{
      {"traceEvents", std::move(metadata)},
      {"displayTimeUnit", "ms"},
      {"otherData",
       {{"generator", "reqcost timeline"}, {"requests", requests.size()}}}};
}

}  // namespace reqcost::analyzers
