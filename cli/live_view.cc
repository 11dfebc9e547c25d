#include "cli/live_view.h"

#include <sys/socket.h>
#include <time.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analyzers/phase.h"
#include "nlohmann/json.hpp"

namespace reqcost::cli {

void SeenCalls::Add(const SyscallEvent& e) {
  ++calls;
  if (tgids.size() < kMaxTgids) tgids.insert(e.tgid);
  if (e.sock.type == SOCK_STREAM) {
    ++stream;
  } else {
    ++non_stream;
  }
  if (IsAccept(e.syscall) && e.ok()) ++accepts;
  if (e.syscall == Syscall::kConnect) ++connects;
}

std::string ExplainNoRequest(const SeenCalls& s, size_t processes) {
  std::string out = "no request seen.\n";
  if (s.calls == 0) {
    absl::StrAppendFormat(
        &out,
        "  the %d traced processes made no socket call.\n"
        "  check: is this the server (its workers are found as its "
        "children, or give its cgroup with --cgroup)? did it get requests "
        "while attached?\n",
        processes);
    return out;
  }
  absl::StrAppendFormat(&out,
                        "  saw %d socket calls from %d%s processes: %d on "
                        "stream sockets, %d on other sockets; %d "
                        "connections accepted, %d opened.\n",
                        s.calls, s.tgids.size(),
                        s.tgids.size() >= SeenCalls::kMaxTgids ? "+" : "",
                        s.stream, s.non_stream, s.accepts, s.connects);
  if (s.stream == 0) {
    out +=
        "  check: only non-stream sockets (UDP, unix datagram, netlink): "
        "reqcost follows requests on TCP and unix stream connections.\n";
  } else if (s.accepts == 0) {
    out +=
        "  check: no connection was accepted, so no traced process served "
        "one: is this PID a server's, or only a client's? a request starts "
        "at the server's accept (connections accepted before attach show "
        "as incomplete).\n";
  } else {
    out +=
        "  check: connections were accepted but no request completed on "
        "them: were they closed before any response (health checks, port "
        "scans)?\n";
  }
  return out;
}

namespace {

std::string Clock(int64_t wall_ns) {
  time_t secs = static_cast<time_t>(wall_ns / 1000000000);
  tm local{};
  localtime_r(&secs, &local);
  char buf[16];
  strftime(buf, sizeof(buf), "%H:%M:%S", &local);
  return buf;
}

}  // namespace

void IntervalView::Print(uint64_t from_ns, uint64_t to_ns,
                         uint64_t dropped_events) {
  analyzers::Report r;
  stats_.Fill(&r);
  stats_ = analyzers::RequestStats();
  const double seconds = to_ns > from_ns ? (to_ns - from_ns) / 1e9 : 0;
  const uint64_t dropped = dropped_events - last_dropped_;
  last_dropped_ = dropped_events;
  const int64_t end_wall = static_cast<int64_t>(to_ns) + mono_to_wall_ns_;
  ++intervals_;
  if (jsonl_) {
    nlohmann::json j;
    j["type"] = "interval";
    j["interval"] = intervals_;
    j["start_unix_ns"] = static_cast<int64_t>(from_ns) + mono_to_wall_ns_;
    j["end_unix_ns"] = end_wall;
    j["duration_s"] = seconds;
    j["requests"] = r.count;
    j["complete"] = r.complete;
    j["incomplete"] = r.incomplete;
    j["rate_per_s"] = seconds > 0 ? r.count / seconds : 0;
    j["dropped_events"] = dropped;
    nlohmann::json phases = nlohmann::json::object();
    for (analyzers::Phase phase : analyzers::kPhases) {
      const auto& p = r.phases.Of(phase);
      if (!p) continue;
      phases[analyzers::PhaseName(phase)] = {
          {"count", p->count},   {"mean_us", p->mean_us},
          {"p50_us", p->p50_us}, {"p90_us", p->p90_us},
          {"p99_us", p->p99_us}, {"max_us", p->max_us}};
    }
    j["phases"] = phases;
    j["incomplete_reasons"] = r.incomplete_reasons;
    std::fprintf(out_, "%s\n", j.dump().c_str());
    std::fflush(out_);
    return;
  }
  const std::string t = Clock(end_wall);
  std::string block =
      absl::StrFormat("\n%-8s  %-9s %8s %10s %10s %10s %10s\n", t, "phase",
                      "count", "p50_us", "p90_us", "p99_us", "mean_us");
  bool any = false;
  for (analyzers::Phase phase : analyzers::kPhases) {
    const auto& p = r.phases.Of(phase);
    if (!p || p->count == 0) continue;
    any = true;
    absl::StrAppendFormat(&block,
                          "%-8s  %-9s %8d %10.1f %10.1f %10.1f %10.1f\n", t,
                          analyzers::PhaseName(phase), p->count, p->p50_us,
                          p->p90_us, p->p99_us, p->mean_us);
  }
  if (!any) absl::StrAppendFormat(&block, "%-8s  (no complete request)\n", t);
  std::string reasons;
  for (const auto& [reason, n] : r.incomplete_reasons) {
    absl::StrAppendFormat(&reasons, "%s%s %d", reasons.empty() ? " (" : ", ",
                          reason, n);
  }
  if (!reasons.empty()) reasons += ")";
  absl::StrAppendFormat(
      &block,
      "%-8s  requests %d (%.1f/s): %d complete, %d incomplete%s; %d events "
      "dropped\n",
      t, r.count, seconds > 0 ? r.count / seconds : 0.0, r.complete,
      r.incomplete, reasons, dropped);
  std::fputs(block.c_str(), out_);
  std::fflush(out_);
}

}  // namespace reqcost::cli
