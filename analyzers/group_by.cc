#include "analyzers/group_by.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "analyzers/compare.h"
#include "analyzers/report.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {
namespace {

std::string GroupLabel(GroupKeys keys, ConnReuse client, ConnReuse backend) {
  std::vector<std::string> parts;
  if (keys.client_conn) {
    parts.push_back(absl::StrCat("client ", std::string(ReuseName(client))));
  }
  if (keys.backend_conn) {
    parts.push_back(absl::StrCat("backend ", std::string(ReuseName(backend))));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

std::optional<GroupKeys> ParseGroupBy(const std::string& text,
                                      std::string* error) {
  GroupKeys keys;
  int single = 0;  // keys with many values, which stand alone
  int parts = 0;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    ++parts;
    if (part == "client-conn") {
      keys.client_conn = true;
    } else if (part == "backend-conn") {
      keys.backend_conn = true;
    } else if (part == "url") {
      keys.by = GroupBy::kUrl;
      ++single;
    } else if (part == "process" || part == "server-process") {
      keys.by = GroupBy::kServerProcess;
      ++single;
    } else if (part == "backend-process") {
      keys.by = GroupBy::kBackendProcess;
      ++single;
    } else if (part == "peer") {
      keys.by = GroupBy::kPeer;
      ++single;
    } else {
      *error = absl::StrFormat(
          "--group-by %s: \"%s\" is not a key; use client-conn, "
          "backend-conn or both (client-conn,backend-conn), or one of url, "
          "process (server-process), backend-process, peer",
          text, part);
      return std::nullopt;
    }
  }
  if (single > 0 && parts > 1) {
    *error = absl::StrFormat(
        "--group-by %s: url, process, server-process, backend-process and "
        "peer stand alone; give one of them without other keys",
        text);
    return std::nullopt;
  }
  return keys;
}

namespace {

// The key text of a request for url/process grouping; "" when it has none.
std::string KeyOf(GroupBy by, const Request& r) {
  switch (by) {
    case GroupBy::kUrl: {
      if (!r.request_line.has_value()) return "";
      // "GET /path": the path (the query is already cut off).
      const size_t space = r.request_line->find(' ');
      return space == std::string::npos ? *r.request_line
                                        : r.request_line->substr(space + 1);
    }
    case GroupBy::kServerProcess:
      return absl::StrCat(r.pid);
    case GroupBy::kBackendProcess:
      return r.backend_pid != 0 ? absl::StrCat(r.backend_pid) : "";
    case GroupBy::kReuse:
    case GroupBy::kPeer:  // calls are grouped, not requests (peer_calls.h)
      break;
  }
  return "";
}

}  // namespace

double TotalTimeUs(const Report& r) {
  return r.phases.total.has_value()
             ? r.phases.total->mean_us * r.phases.total->count
             : 0;
}

namespace {

std::string ProcessLabel(const Report& base, uint32_t pid) {
  for (const ProcessEntry& p : base.processes) {
    if (p.pid == pid) return absl::StrCat(p.comm, " ", pid);
  }
  return absl::StrCat("pid ", pid);
}

}  // namespace

void KeyedGroupStats::Add(const Request& r) {
  std::string key = KeyOf(by_, r);
  auto it = groups_.find(key);
  if (it == groups_.end()) {
    if (groups_.size() >= max_keys_) {
      ++overflow_requests_;
      overflow_.Add(r);
      return;
    }
    it = groups_.emplace(std::move(key), RequestStats()).first;
  }
  it->second.Add(r);
}

std::vector<GroupReport> KeyedGroupStats::Reports(const Report& base,
                                                  size_t top) const {
  auto fill = [&base](const RequestStats& stats, GroupReport* g) {
    g->report.capture = base.capture;
    g->report.processes = base.processes;
    g->report.anomalies = base.anomalies;
    stats.Fill(&g->report);
  };
  std::vector<std::pair<const std::string*, GroupReport>> all;
  for (const auto& [key, stats] : groups_) {
    GroupReport g;
    fill(stats, &g);
    all.emplace_back(&key, std::move(g));
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& x, const auto& y) {
    return TotalTimeUs(x.second.report) > TotalTimeUs(y.second.report);
  });
  std::vector<GroupReport> out;
  RequestStats rest = overflow_;
  uint64_t folded = 0;
  for (auto& [key, g] : all) {
    if (out.size() >= top) {
      rest.Merge(groups_.at(*key));
      ++folded;
      continue;
    }
    if (by_ == GroupBy::kUrl) {
      g.url = *key;
      g.label = key->empty() ? "(no request line)" : *key;
    } else {
      g.pid = key->empty() ? 0 : static_cast<uint32_t>(std::stoul(*key));
      g.label =
          key->empty() ? "(backend not measured)" : ProcessLabel(base, g.pid);
    }
    out.push_back(std::move(g));
  }
  if (folded > 0 || overflow_requests_ > 0) {
    GroupReport other;
    other.label = "other";
    other.other = true;
    other.other_groups = folded;
    other.overflow_requests = overflow_requests_;
    fill(rest, &other);
    out.push_back(std::move(other));
  }
  return out;
}

void GroupedStats::Add(const Request& r) {
  ConnReuse client = keys_.client_conn ? r.client_conn : ConnReuse::kNone;
  ConnReuse backend = keys_.backend_conn ? r.backend_conn : ConnReuse::kNone;
  groups_[{client, backend}].Add(r);
}

std::vector<GroupReport> GroupedStats::Reports(const Report& base) const {
  std::vector<GroupReport> out;
  for (const auto& [key, stats] : groups_) {
    GroupReport g;
    g.label = GroupLabel(keys_, key.first, key.second);
    if (keys_.client_conn) g.client_conn = std::string(ReuseName(key.first));
    if (keys_.backend_conn) {
      g.backend_conn = std::string(ReuseName(key.second));
    }
    g.report.capture = base.capture;
    g.report.processes = base.processes;
    g.report.anomalies = base.anomalies;
    stats.Fill(&g.report);
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<Comparison> CompareGroups(const std::vector<GroupReport>& groups,
                                      CompareOptions options) {
  std::vector<Comparison> out;
  for (size_t i = 1; i < groups.size(); ++i) {
    out.push_back(Compare(groups[0].report, groups[i].report, groups[0].label,
                          groups[i].label, options));
  }
  return out;
}

}  // namespace reqcost::analyzers
