// `report --group-by`: requests of one capture split into groups (by
// connection reuse, url, server or backend process), each group's report,
// and the comparisons between them (printed by render/group_format.h).
#ifndef REQCOST_ANALYZERS_GROUP_BY_H_
#define REQCOST_ANALYZERS_GROUP_BY_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analyzers/compare.h"
#include "analyzers/report.h"
#include "analyzers/request.h"

namespace reqcost::analyzers {

// What `report --group-by` splits requests by: connection reuse (client,
// backend or both; every group is compared with the first), or one of the
// keys with many values (the top groups by total time side by side), or the
// backend's calls by the peer they went to (peer_calls.h: calls, not
// requests, are grouped).
enum class GroupBy { kReuse, kUrl, kServerProcess, kBackendProcess, kPeer };
struct GroupKeys {
  bool client_conn = false;
  bool backend_conn = false;
  GroupBy by = GroupBy::kReuse;
};

// Parses "client-conn", "backend-conn" or both, comma-separated, or one of
// "url", "process" (= "server-process"), "backend-process", "peer"; nullopt
// and a
// sentence in `error` for anything else.
std::optional<GroupKeys> ParseGroupBy(const std::string& text,
                                      std::string* error);

// One group of requests of a capture and its report.
struct GroupReport {
  std::string label;         // "client new", "/index.php", "nginx 4242"
  std::string client_conn;   // "new", "reused"; empty when not a key
  std::string backend_conn;  // "new", "reused", "none"; empty when not a key
  std::string url;           // the path (url key); "" without a request line
  uint32_t pid = 0;          // the process (process keys); 0: none
  // The "other" group: the groups past the top N and the requests of keys
  // first seen after the cap on tracked keys.
  bool other = false;
  uint64_t other_groups = 0;       // tracked groups folded into "other"
  uint64_t overflow_requests = 0;  // requests of keys past the cap
  Report report;
};

// How many distinct url/process keys are tracked: the requests of later
// keys are counted in "other" (memory stays bounded).
inline constexpr size_t kMaxGroupKeys = 100;
inline constexpr size_t kDefaultTopGroups = 5;

// Statistics per url, server process or backend process, each a full
// RequestStats, for at most `max_keys` keys; Reports() keeps the `top`
// groups by total time of their complete requests and folds the rest into
// "other".
class KeyedGroupStats {
 public:
  KeyedGroupStats(GroupBy by, size_t max_keys = kMaxGroupKeys)
      : by_(by), max_keys_(max_keys) {}
  void Add(const Request& request);
  // The top groups by total time (largest first), then "other" if any
  // request is left; labels name processes from `base.processes`.
  std::vector<GroupReport> Reports(const Report& base, size_t top) const;
  uint64_t overflow_requests() const { return overflow_requests_; }

 private:
  GroupBy by_;
  size_t max_keys_;
  std::map<std::string, RequestStats> groups_;  // by key text
  RequestStats overflow_;
  uint64_t overflow_requests_ = 0;
};

// Statistics per group of requests (by the chosen reuse keys), each a full
// RequestStats. Memory grows with the number of groups (at most 6), not
// with requests.
class GroupedStats {
 public:
  explicit GroupedStats(GroupKeys keys) : keys_(keys) {}
  void Add(const Request& request);
  // One report per group seen, in key order ("new" before "reused");
  // capture, processes and anomalies are copied from `base`.
  std::vector<GroupReport> Reports(const Report& base) const;

 private:
  GroupKeys keys_;
  std::map<std::pair<ConnReuse, ConnReuse>, RequestStats> groups_;
};

// The summed total time of a report's complete requests (mean * count):
// what url/process groups are ranked by.
double TotalTimeUs(const Report& r);

// Each group after the first compared with the first.
std::vector<Comparison> CompareGroups(const std::vector<GroupReport>& groups,
                                      CompareOptions options = {});

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_GROUP_BY_H_
