#include "analyzers/report.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace reqcost::analyzers {
namespace {

constexpr double kNsPerUs = 1000.0;

std::optional<PhaseSummary> ToPhaseSummary(const Summary& s) {
  if (s.count() == 0) return std::nullopt;
  PhaseSummary p;
  p.count = s.count();
  p.mean_us = s.mean_ns() / kNsPerUs;
  p.p50_us = s.Percentile(0.50) / kNsPerUs;
  p.p90_us = s.Percentile(0.90) / kNsPerUs;
  p.p99_us = s.Percentile(0.99) / kNsPerUs;
  p.max_us = s.max_ns() / kNsPerUs;
  p.stddev_us = std::sqrt(s.variance_ns2()) / kNsPerUs;
  return p;
}

}  // namespace

void Anomalies::Add(const Anomalies& other) {
  late_events += other.late_events;
  clamped_phases += other.clamped_phases;
  unattributed_exchanges += other.unattributed_exchanges;
  unmatched_backend_work += other.unmatched_backend_work;
  ignored_connections += other.ignored_connections;
  reclassified_connections += other.reclassified_connections;
  stray_events += other.stray_events;
  side_calls_outside_requests += other.side_calls_outside_requests;
  merged_requests += other.merged_requests;
  unattributed_calls += other.unattributed_calls;
  call_connections_over_cap += other.call_connections_over_cap;
  http2_frames_lost += other.http2_frames_lost;
}

std::optional<PhaseSummary> SummaryOf(const Summary& s) {
  return ToPhaseSummary(s);
}

namespace {

bool IsBackendWrite(const SyscallRecord& r) {
  return r.side == Side::kBackend && IsWrite(r.syscall);
}

bool IsReplyRead(const SyscallRecord& r) {
  return r.side == Side::kServer && r.target == Target::kBackendLink &&
         IsRead(r.syscall) && r.ret > 0;
}

// The start of a request's first read of the client: its first request byte
// (the request's start when it has none).
uint64_t FirstByteNs(const Request& r) {
  for (const SyscallRecord& s : r.syscalls) {
    if (s.side == Side::kServer && s.target == Target::kClient &&
        IsRead(s.syscall) && s.ret > 0) {
      return s.blocked ? s.exit_ns : s.start_ns();
    }
  }
  return r.start_ns;
}

// The table slot of a syscall: unknown values share slot 0, named "?".
uint16_t KindOf(Syscall syscall) {
  auto kind = static_cast<uint16_t>(syscall);
  return kind < kSyscallMax ? kind : 0;
}

}  // namespace

size_t RequestStats::LineIndex(const TimelineKey& key) {
  return (key.kind * kSides + static_cast<size_t>(key.side)) * kTargets +
         static_cast<size_t>(key.target);
}

size_t RequestStats::SyscallIndex(uint16_t kind, Side side, size_t peer_slot) {
  return (kind * kSides + static_cast<size_t>(side)) * kPeerSlots + peer_slot;
}

void RequestStats::Phases::Add(const Request& r) {
  // A null phase is unknown, not zero: it is counted apart and left out.
  auto add = [this](Summary* summary, Phase phase,
                    const std::optional<uint64_t>& ns) {
    if (ns.has_value()) {
      summary->Add(*ns);
    } else {
      ++unknown[PhaseIndex(phase)];
    }
  };
  add(&total, Phase::kTotal, r.total_ns);
  add(&server, Phase::kServer, r.server_ns);
  add(&transport, Phase::kTransport, r.transport_ns);
  add(&backend, Phase::kBackend, r.backend_ns);
  if (r.queue_ns.has_value()) queue.Add(*r.queue_ns);
  if (r.tls_ns.has_value()) tls.Add(*r.tls_ns);
}

PhaseSet RequestStats::Phases::ToSet() const {
  PhaseSet set;
  set.total = ToPhaseSummary(total);
  set.server = ToPhaseSummary(server);
  set.transport = ToPhaseSummary(transport);
  set.backend = ToPhaseSummary(backend);
  set.queue = ToPhaseSummary(queue);
  set.tls = ToPhaseSummary(tls);
  set.unknown = unknown;
  return set;
}

void RequestStats::Add(const Request& r) {
  ++count_;
  if (!r.complete) {
    ++ProcessRow(r.pid).incomplete;
    ++incomplete_reasons_[r.incomplete_reason];
    return;
  }
  ++complete_;
  calls_.Add(r);
  if (r.backend_timing == BackendTiming::kMeasured) ++measured_;
  if (r.backend_timing == BackendTiming::kInferred) ++inferred_;
  if (static_cast<size_t>(r.origin) < origins_.size()) {
    ++origins_[static_cast<size_t>(r.origin)];
  }
  phases_.Add(r);
  auto& group = groups_[{r.client_conn, r.backend_conn}];
  ++group.first;
  group.second.Add(r);
  ProcessStats& proc = ProcessRow(r.pid);
  ++proc.complete;
  proc.phases.Add(r);
  // What the client saw needs the client side: a request seen from a
  // backend only is left out of it.
  if (r.origin == RequestOrigin::kClient) {
    first_start_ns_ = std::min(first_start_ns_, r.start_ns);
    last_end_ns_ = std::max(last_end_ns_, r.end_ns);
    if (r.end_ns > r.start_ns) open_ns_ += r.end_ns - r.start_ns;
    const uint64_t first_byte = FirstByteNs(r);
    response_.Add(r.end_ns > first_byte ? r.end_ns - first_byte : 0);
  }

  // The request's timeline: its syscalls, and the backend phase as a
  // "(work)" line at the backend phase's start.
  auto offset = [&](uint64_t ns) {
    return static_cast<int64_t>(ns) - static_cast<int64_t>(r.start_ns);
  };
  auto add_line = [&](TimelineKey key, uint64_t ns, int64_t offset_ns,
                      bool timed) {
    TimelineSum& sum = timeline_[LineIndex(key)];
    if (sum.n == 0) timeline_order_.push_back(key);
    sum.ns += ns;
    ++sum.n;
    if (timed) ++sum.timed;
    sum.offset_ns += offset_ns;
  };
  span_ns_ += WallSpanNs(r);
  if (r.exchange_start_ns != 0 && r.exchange_end_ns >= r.exchange_start_ns) {
    exchange_.ns += r.exchange_end_ns - r.exchange_start_ns;
    ++exchange_.n;
    ++exchange_.timed;
    exchange_.offset_ns += offset(r.exchange_start_ns);
  }
  bool work_placed = r.backend_timing == BackendTiming::kNone;
  for (const SyscallRecord& s : r.syscalls) {
    // Without a recorded backend span (older producers), the work line goes
    // before the backend's first reply write or the server's first reply
    // read.
    if (!work_placed && r.backend_start_ns == 0 &&
        ((r.backend_timing == BackendTiming::kMeasured && IsBackendWrite(s)) ||
         (r.backend_timing == BackendTiming::kInferred && IsReplyRead(s)))) {
      add_line({kWorkLine, Side::kBackend, Target::kBackendSide},
               r.backend_ns.value_or(0), offset(s.start_ns()), true);
      work_placed = true;
    }
    const uint16_t kind = KindOf(s.syscall);
    add_line({kind, s.side, s.target}, s.duration_ns(), offset(s.start_ns()),
             s.enter_seen());
    const size_t peer_slot =
        IsSideCall(s.target) ? static_cast<size_t>(s.target) - 2 : 0;
    const size_t index = SyscallIndex(kind, s.side, peer_slot);
    if (syscall_counts_[index]++ == 0) {
      syscall_order_.push_back({kind, s.side, peer_slot, s.target});
    }
    if (s.enter_seen()) syscalls_[index].Add(s.duration_ns());
    if (s.enter_seen() && s.blocked) slept_ns_[index] += s.duration_ns();
  }
  if (!work_placed) {
    add_line(
        {kWorkLine, Side::kBackend, Target::kBackendSide},
        r.backend_ns.value_or(0),
        r.backend_start_ns != 0 ? offset(r.backend_start_ns) : offset(r.end_ns),
        true);
  }
}

TimelineEntry RequestStats::TimelineLine(const TimelineSum& sum,
                                         std::string name, std::string side,
                                         std::string target) const {
  TimelineEntry e;
  e.name = std::move(name);
  e.side = std::move(side);
  e.target = std::move(target);
  e.untimed = sum.timed == 0;
  if (complete_ > 0) {
    e.mean_us_per_request = sum.ns / kNsPerUs / complete_;
    e.count_per_request = static_cast<double>(sum.n) / complete_;
  }
  e.mean_offset_us = sum.n > 0 ? sum.offset_ns / kNsPerUs / sum.n : 0;
  return e;
}

void RequestStats::Fill(Report* report) const {
  calls_.Fill(&report->calls, complete_);
  report->count = count_;
  report->complete = complete_;
  report->incomplete = count_ - complete_;
  report->rate_per_s = report->capture.duration_s > 0
                           ? count_ / report->capture.duration_s
                           : 0.0;
  if (measured_ > 0 && inferred_ > 0) {
    report->backend_timing = "mixed";
  } else if (measured_ > 0) {
    report->backend_timing = "measured";
  } else if (inferred_ > 0) {
    report->backend_timing = "inferred";
  } else {
    report->backend_timing = "none";
  }
  report->phases = phases_.ToSet();
  report->syscalls.clear();
  for (const SyscallKey& key : syscall_order_) {
    const size_t index = SyscallIndex(key.kind, key.side, key.peer_slot);
    const Summary& s = syscalls_[index];
    SyscallSummary out;
    out.name = std::string(SyscallName(Syscall{key.kind}));
    out.side = std::string(SideName(key.side));
    if (key.peer_slot != 0) out.peer = std::string(TargetName(key.target));
    out.count = syscall_counts_[index];
    out.untimed = out.count - s.count();
    if (out.timed() > 0) {
      out.mean_us = s.mean_ns() / kNsPerUs;
      out.p99_us = s.Percentile(0.99) / kNsPerUs;
      out.p50_us = s.Percentile(0.50) / kNsPerUs;
      out.slept_us = slept_ns_[index] / kNsPerUs;
    }
    report->syscalls.push_back(std::move(out));
  }
  report->timeline.clear();
  for (const TimelineKey& key : timeline_order_) {
    const bool work = key.kind == kWorkLine;
    report->timeline.push_back(TimelineLine(
        timeline_[LineIndex(key)],
        work ? "(work)" : std::string(SyscallName(Syscall{key.kind})),
        std::string(SideName(key.side)),
        work ? "" : std::string(TargetName(key.target))));
  }
  report->mean_span_us = complete_ > 0 ? span_ns_ / kNsPerUs / complete_ : 0;
  report->exchange.reset();
  if (exchange_.n > 0) {
    report->exchange =
        TimelineLine(exchange_, "(exchange)", "server",
                     std::string(TargetName(Target::kBackendLink)));
  }
  std::stable_sort(report->timeline.begin(), report->timeline.end(),
                   [](const TimelineEntry& a, const TimelineEntry& b) {
                     return a.mean_offset_us < b.mean_offset_us;
                   });
  report->groups.clear();
  for (const auto& [key, value] : groups_) {
    report->groups.push_back({std::string(ReuseName(key.first)),
                              std::string(ReuseName(key.second)), value.first,
                              value.second.ToSet()});
  }
  report->by_process.clear();
  auto summary = [](uint32_t pid, const ProcessStats& stats) {
    ProcessSummary p;
    p.pid = pid;
    p.requests = stats.complete;
    p.incomplete = stats.incomplete;
    // A process with only incomplete requests has no phases at all.
    if (stats.complete > 0) p.phases = stats.phases.ToSet();
    return p;
  };
  for (const auto& [pid, stats] : by_process_) {
    report->by_process.push_back(summary(pid, stats));
  }
  if (folded_processes_ > 0) {
    ProcessSummary p = summary(0, other_processes_);
    p.other = true;
    p.folded = folded_processes_;
    report->by_process.push_back(std::move(p));
  }
  report->incomplete_reasons = incomplete_reasons_;
  report->origins.clear();
  for (size_t i = 0; i < origins_.size(); ++i) {
    if (origins_[i] > 0) {
      report->origins[std::string(
          OriginName(static_cast<RequestOrigin>(i)))] = origins_[i];
    }
  }
  report->client = {};
  if (complete_ > 0 && last_end_ns_ > first_start_ns_) {
    ClientView& c = report->client;
    c.first_start_ns = first_start_ns_;
    c.last_end_ns = last_end_ns_;
    c.busy_s = (last_end_ns_ - first_start_ns_) / 1e9;
    c.rate_per_s = origins_[0] / c.busy_s;  // requests the client saw
    c.in_flight = open_ns_ / 1e9 / c.busy_s;
    c.response = ToPhaseSummary(response_);
  }
}

void RequestStats::Phases::Merge(const Phases& o) {
  total.Merge(o.total);
  server.Merge(o.server);
  transport.Merge(o.transport);
  backend.Merge(o.backend);
  queue.Merge(o.queue);
  tls.Merge(o.tls);
  for (size_t i = 0; i < kPhaseCount; ++i) unknown[i] += o.unknown[i];
}

void RequestStats::ProcessStats::Merge(const ProcessStats& o) {
  complete += o.complete;
  incomplete += o.incomplete;
  last_seen = std::max(last_seen, o.last_seen);
  phases.Merge(o.phases);
}

RequestStats::ProcessStats& RequestStats::ProcessRow(uint32_t pid) {
  auto it = by_process_.find(pid);
  if (it == by_process_.end()) {
    if (by_process_.size() >= kMaxProcessRows) {
      // Fold the least recently active process: under churn that is one
      // that exited, and the live workers keep their rows.
      auto oldest = by_process_.begin();
      for (auto i = by_process_.begin(); i != by_process_.end(); ++i) {
        if (i->second.last_seen < oldest->second.last_seen) oldest = i;
      }
      other_processes_.Merge(oldest->second);
      ++folded_processes_;
      by_process_.erase(oldest);
    }
    it = by_process_.try_emplace(pid).first;
  }
  it->second.last_seen = std::max(it->second.last_seen, count_);
  return it->second;
}

void RequestStats::Merge(const RequestStats& o) {
  count_ += o.count_;
  complete_ += o.complete_;
  measured_ += o.measured_;
  inferred_ += o.inferred_;
  for (size_t i = 0; i < origins_.size(); ++i) origins_[i] += o.origins_[i];
  phases_.Merge(o.phases_);
  for (const auto& [key, value] : o.groups_) {
    auto& g = groups_[key];
    g.first += value.first;
    g.second.Merge(value.second);
  }
  for (const auto& [pid, stats] : o.by_process_) {
    ProcessRow(pid).Merge(stats);
  }
  if (o.folded_processes_ > 0) {
    other_processes_.Merge(o.other_processes_);
    folded_processes_ += o.folded_processes_;
  }
  for (const auto& [reason, n] : o.incomplete_reasons_) {
    incomplete_reasons_[reason] += n;
  }
  first_start_ns_ = std::min(first_start_ns_, o.first_start_ns_);
  last_end_ns_ = std::max(last_end_ns_, o.last_end_ns_);
  open_ns_ += o.open_ns_;
  response_.Merge(o.response_);
  for (const SyscallKey& key : o.syscall_order_) {
    const size_t index = SyscallIndex(key.kind, key.side, key.peer_slot);
    if (syscall_counts_[index] == 0) syscall_order_.push_back(key);
    syscall_counts_[index] += o.syscall_counts_[index];
    syscalls_[index].Merge(o.syscalls_[index]);
    slept_ns_[index] += o.slept_ns_[index];
  }
  for (const TimelineKey& key : o.timeline_order_) {
    TimelineSum& sum = timeline_[LineIndex(key)];
    const TimelineSum& add = o.timeline_[LineIndex(key)];
    if (sum.n == 0) timeline_order_.push_back(key);
    sum.ns += add.ns;
    sum.n += add.n;
    sum.timed += add.timed;
    sum.offset_ns += add.offset_ns;
  }
  exchange_.ns += o.exchange_.ns;
  exchange_.n += o.exchange_.n;
  exchange_.timed += o.exchange_.timed;
  exchange_.offset_ns += o.exchange_.offset_ns;
  span_ns_ += o.span_ns_;
  calls_.Merge(o.calls_);
}

}  // namespace reqcost::analyzers
