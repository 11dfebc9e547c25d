#include "analyzers/render/group_format.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analyzers/compare.h"
#include "analyzers/duration.h"
#include "analyzers/group_by.h"
#include "analyzers/payload.h"
#include "analyzers/phase.h"
#include "analyzers/render/compare_format.h"
#include "analyzers/render/format.h"
#include "analyzers/report.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {

using nlohmann::json;

std::string FormatGroupTableText(GroupKeys keys,
                                 const std::vector<GroupReport>& groups) {
  const char* by = keys.by == GroupBy::kUrl             ? "url"
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
  row("", [&](const GroupReport& g) { return cut(TerminalText(g.label)); });
  row("requests", [](const GroupReport& g) {
    return absl::StrFormat("%d", g.report.complete);
  });
  row("incomplete", [](const GroupReport& g) {
    return absl::StrFormat("%d", g.report.incomplete);
  });
  row("share of time", [&](const GroupReport& g) {
    return all_us > 0
               ? absl::StrFormat("%.1f%%", 100 * TotalTimeUs(g.report) / all_us)
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
        g.other_groups, groups.size() - 1, g.overflow_requests, kMaxGroupKeys);
  }
  return out;
}

std::string FormatGroupComparisonText(
    const std::vector<GroupReport>& groups,
    const std::vector<Comparison>& comparisons) {
  std::string out = "groups:\n";
  for (const GroupReport& g : groups) {
    absl::StrAppendFormat(&out, "  %-32s %d requests (%d complete)\n",
                          TerminalText(g.label), g.report.count,
                          g.report.complete);
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
