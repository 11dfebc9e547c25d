#include "cli/pipeline.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "analyzers/render/format.h"
#include "cli/event_printer.h"

namespace reqcost::cli {

absl::StatusOr<Format> ParseFormat(const std::string& text) {
  if (text == "text") return Format::kText;
  if (text == "json") return Format::kJson;
  if (text == "jsonl") return Format::kJsonl;
  return absl::InvalidArgumentError(absl::StrFormat(
      "--format %s is not a format: use text, json or jsonl", text));
}

std::string CountersLine(uint64_t syscalls, uint64_t process_events,
                         const KernelCounters& c) {
  return absl::StrFormat(
      "%d events (%d syscalls, %d process changes), %d dropped, %d unpaired, "
      "%d enter-lost, %d foreign",
      syscalls + process_events, syscalls, process_events, c.dropped,
      c.unpaired, c.enter_lost, c.foreign);
}

Pipeline::Pipeline(const OutputOptions& options, std::FILE* out)
    : options_(options), out_(out) {
  profiler_.SetRequestCallback(
      [this](const analyzers::Request& r) { OnRequest(r); });
}

void Pipeline::Begin(uint64_t start_ns,
                     const std::vector<ProcessInfo>& processes) {
  start_ns_ = start_ns;
  for (const ProcessInfo& p : processes) {
    comm_[p.pid] = p.comm;
    live_.insert(p.pid);
    profiler_.OnProcess(p);
  }
}

const std::string& Pipeline::Comm(uint32_t tgid) const {
  static const std::string unknown = "?";
  auto it = comm_.find(tgid);
  return it == comm_.end() ? unknown : it->second;
}

void Pipeline::NoteWriteError(absl::Status status) {
  if (write_error_.ok() && !status.ok()) write_error_ = std::move(status);
}

bool Pipeline::JustLeft(uint32_t tgid, uint64_t ns) {
  while (!left_.empty() && left_.front().second + kLeftWindowNs < ns) {
    left_.pop_front();
  }
  for (const auto& [pid, at] : left_) {
    if (pid == tgid && ns >= at) return true;
  }
  return false;
}

void Pipeline::OnSyscall(const SyscallEvent& e) {
  if (!left_.empty() && JustLeft(e.tgid, e.exit_ns)) return;
  ++syscalls_;
  seen_.Add(e);
  if (writer_ != nullptr) NoteWriteError(writer_->Write(e));
  if (options_.events && options_.format == Format::kText) {
    std::fprintf(out_, "%s\n", FormatEvent(e, Comm(e.tgid), start_ns_).c_str());
  }
  profiler_.OnEvent(e);
}

void Pipeline::OnProcess(const ProcessEvent& e) {
  ++process_events_;
  if (writer_ != nullptr) NoteWriteError(writer_->Write(e));
  if (e.op == ProcessEvent::Op::kLeave) left_.emplace_back(e.tgid, e.ts_ns);
  if (!e.ends()) {
    // Back in a traced cgroup: its events count again.
    left_.erase(std::remove_if(left_.begin(), left_.end(),
                               [&e](const auto& l) { return l.first == e.tgid; }),
                left_.end());
    comm_[e.tgid] = e.comm;
    live_.insert(e.tgid);
  } else {
    live_.erase(e.tgid);
    exited_.push_back(e.tgid);
    while (exited_.size() > kKeptExitedComms) {
      // Not when the PID is a live process's again.
      if (live_.count(exited_.front()) == 0) comm_.erase(exited_.front());
      exited_.pop_front();
    }
  }
  if (options_.events && options_.format == Format::kText) {
    std::fprintf(out_, "%s\n", FormatProcessEvent(e, start_ns_).c_str());
  }
  profiler_.OnProcessEvent(e);
}

void Pipeline::OnDrops(uint64_t from_ns, uint64_t to_ns, uint64_t count) {
  ++drop_notices_;
  if (writer_ != nullptr)
    NoteWriteError(writer_->WriteDrops(from_ns, to_ns, count));
  profiler_.OnDrops(from_ns, to_ns, count);
}

void Pipeline::OnTlsData(const TlsDataEvent& e) {
  if (!left_.empty() && JustLeft(e.tgid, e.exit_ns)) return;
  ++tls_data_events_;
  if (writer_ != nullptr) NoteWriteError(writer_->Write(e));
  profiler_.OnTlsData(e);
}

void Pipeline::OnRequest(const analyzers::Request& r) {
  if (options_.requests ||
      (options_.format == Format::kJsonl && !options_.intervals)) {
    if (options_.format == Format::kJsonl) {
      std::fprintf(out_, "%s\n", analyzers::RequestToJson(r).dump().c_str());
    } else if (options_.format == Format::kText) {
      std::fprintf(out_, "%s\n", analyzers::FormatRequestLine(r).c_str());
    }
  }
  for (const auto& observer : observers_) observer(r);
}

absl::Status Pipeline::End(uint64_t end_ns, const KernelCounters& counters) {
  profiler_.Finish(end_ns);
  if (before_summary_) before_summary_();
  analyzers::CaptureInfo info;
  info.duration_s = end_ns > start_ns_ ? (end_ns - start_ns_) / 1e9 : 0;
  info.events = syscalls_ + process_events_;
  info.dropped_events = counters.dropped;
  report_ = profiler_.BuildReport(info);
  if (writer_ != nullptr) NoteWriteError(writer_->Close(end_ns, counters));
  if (options_.summary) {
    switch (options_.format) {
      case Format::kText:
        std::fprintf(
            out_, "%s%s\n",
            options_.explain_empty && report_.count == 0
                ? ExplainNoRequest(seen_, comm_.size()).c_str()
                : analyzers::FormatText(report_).c_str(),
            CountersLine(syscalls_, process_events_, counters).c_str());
        break;
      case Format::kJson:
        std::fprintf(out_, "%s\n",
                     analyzers::ReportToJson(report_).dump(2).c_str());
        break;
      case Format::kJsonl:
        // The requests were the output; after intervals, the whole run.
        if (options_.intervals) {
          nlohmann::json j;
          j["type"] = "summary";
          j["report"] = analyzers::ReportToJson(report_);
          std::fprintf(out_, "%s\n", j.dump().c_str());
        }
        break;
    }
  }
  std::fflush(out_);
  return write_error_;
}

}  // namespace reqcost::cli
