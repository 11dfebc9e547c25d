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
#include "analyzers/format.h"
#include "analyzers/phase.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {
namespace {

using nlohmann::json;

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
    } else {
      *error = absl::StrFormat(
          "--group-by %s: \"%s\" is not a key; use client-conn, "
          "backend-conn or both (client-conn,backend-conn), or one of url, "
          "process (server-process), backend-process",
          text, part);
      return std::nullopt;
    }
  }
  if (single > 0 && parts > 1) {
    *error = absl::StrFormat(
        "--group-by %s: url, process, server-process and backend-process "
        "stand alone; give one of them without other keys",
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
      break;
  }
  return "";
}

double TotalTimeUs(const Report& r) {
  return r.phases.total.has_value()
             ? r.phases.total->mean_us * r.phases.total->count
             : 0;
}

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
      g.label = key->empty() ? "(backend not measured)"
                             : ProcessLabel(base, g.pid);
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

std::string FormatGroupTableText(GroupKeys keys,
                                 const std::vector<GroupReport>& groups) {
  const char* by = keys.by == GroupBy::kUrl              ? "url"
                   : keys.by == GroupBy::kServerProcess ? "server process"
                                                         : "backend process";
  std::string out = absl::StrFormat(
      "requests by %s, the groups with the most total time first "
      "(mean per complete request):\n",
      by);
  if (groups.empty()) return out + "  no requests\n";
  double all_us = 0;
  for (const GroupReport& g : groups) all_us += TotalTimeUs(g.report);
  const int w = 16;
  auto row = [&](const std::string& name, auto cell) {
    absl::StrAppendFormat(&out, "  %-14s", name);
    for (const GroupReport& g : groups) {
      absl::StrAppendFormat(&out, " %*s", w, cell(g));
    }
    absl::StrAppend(&out, "\n");
  };
  auto cut = [w](std::string s) {
    // Keep a long path's end: it names the resource.
    if (s.size() > static_cast<size_t>(w)) s = "~" + s.substr(s.size() - w + 1);
    return s;
  };
  row("", [&](const GroupReport& g) { return cut(g.label); });
  row("requests", [](const GroupReport& g) {
    return absl::StrFormat("%d", g.report.complete);
  });
  row("incomplete", [](const GroupReport& g) {
    return absl::StrFormat("%d", g.report.incomplete);
  });
  row("share of time", [&](const GroupReport& g) {
    return all_us > 0 ? absl::StrFormat("%.1f%%",
                                        100 * TotalTimeUs(g.report) / all_us)
                      : std::string("-");
  });
  for (Phase phase : kPhases) {
    if (phase == Phase::kTls) continue;  // the group table leaves tls out
    row(PhaseName(phase), [phase](const GroupReport& g) {
      const std::optional<PhaseSummary>& p = g.report.phases.Of(phase);
      return p.has_value() ? FormatDuration(p->mean_us) : std::string("-");
    });
  }
  row("total p99", [](const GroupReport& g) {
    return g.report.phases.total.has_value()
               ? FormatDuration(g.report.phases.total->p99_us)
               : std::string("-");
  });
  for (const GroupReport& g : groups) {
    if (!g.other) continue;
    absl::StrAppendFormat(
        &out,
        "\nother: %d group(s) past the top %d, and %d request(s) of keys "
        "past the first %d tracked\n",
        g.other_groups, groups.size() - 1, g.overflow_requests,
        kMaxGroupKeys);
  }
  return out;
}

std::string FormatGroupComparisonText(
    const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons) {
  std::string out = "groups:\n";
  for (const GroupReport& g : groups) {
    absl::StrAppendFormat(&out, "  %-32s %d requests (%d complete)\n", g.label,
                          g.report.count, g.report.complete);
  }
  if (groups.size() < 2) {
    absl::StrAppend(&out,
                    "\nonly one group: nothing to compare (every request has "
                    "the same connection reuse)\n");
  }
  for (const Comparison& c : comparisons) {
    absl::StrAppend(&out, "\n", FormatComparisonText(c));
  }
  return out;
}

nlohmann::json GroupComparisonToJson(
    GroupKeys keys, const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons) {
  json group_by = json::array();
  if (keys.by == GroupBy::kUrl) group_by.push_back("url");
  if (keys.by == GroupBy::kServerProcess) group_by.push_back("server_process");
  if (keys.by == GroupBy::kBackendProcess) {
    group_by.push_back("backend_process");
  }
  if (keys.client_conn) group_by.push_back("client_conn");
  if (keys.backend_conn) group_by.push_back("backend_conn");
  json list = json::array();
  for (const GroupReport& g : groups) {
    json j = {{"label", g.label}};
    if (keys.client_conn) j["client_conn"] = g.client_conn;
    if (keys.backend_conn) j["backend_conn"] = g.backend_conn;
    if (g.other) {
      j["other"] = true;
      j["other_groups"] = g.other_groups;
      j["overflow_requests"] = g.overflow_requests;
    } else if (keys.by == GroupBy::kUrl) {
      j["url"] = g.url.empty() ? json() : json(g.url);
    } else if (keys.by != GroupBy::kReuse) {
      j["pid"] = g.pid != 0 ? json(g.pid) : json();
    }
    j["report"] = ReportToJson(g.report);
    list.push_back(std::move(j));
  }
  json cs = json::array();
  for (const Comparison& c : comparisons) {
    cs.push_back({{"a", c.a_label},
                  {"b", c.b_label},
                  {"threshold_pct", c.threshold_pct},
                  {"delta", ComparisonDeltasToJson(c)},
                  {"client", ComparisonClientToJson(c)},
                  {"verdict", c.verdict}});
  }
  return json{{"schema", kCompareGroupsSchema},
              {"group_by", group_by},
              {"groups", list},
              {"comparisons", cs}};
}

}  // namespace reqcost::analyzers
