// Checks a Chrome trace-event JSON object the way a viewer nests it: on each
// track (pid, tid), complete ("X") slices must each lie within the slice
// they start in. Shared by the unit and the integration tests.
#ifndef REQCOST_TESTS_ANALYZERS_TRACE_NESTING_H_
#define REQCOST_TESTS_ANALYZERS_TRACE_NESTING_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers::test_support {

// Every problem found, one sentence each (empty: the trace nests). Also
// checks that "phase" and "syscall" slices have a parent and "request"
// slices do not.
inline std::vector<std::string> TraceNestingErrors(
    const nlohmann::json& trace) {
  constexpr double kEpsUs = 1e-6;
  struct Slice {
    double ts, end;
    std::string name, cat;
  };
  std::vector<std::string> errors;
  std::map<std::pair<int64_t, int64_t>, std::vector<Slice>> tracks;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    double ts = e.at("ts").get<double>();
    double dur = e.at("dur").get<double>();
    if (dur < 0) errors.push_back(absl::StrCat("negative dur: ", e.dump()));
    tracks[{e.at("pid").get<int64_t>(), e.at("tid").get<int64_t>()}].push_back(
        {ts, ts + dur, e.at("name").get<std::string>(),
         e.value("cat", std::string())});
  }
  for (auto& [track, slices] : tracks) {
    // Parents first: earlier start, then the longer one.
    std::stable_sort(slices.begin(), slices.end(),
                     [](const Slice& a, const Slice& b) {
                       if (a.ts != b.ts) return a.ts < b.ts;
                       return a.end - a.ts > b.end - b.ts;
                     });
    std::vector<const Slice*> stack;
    for (const Slice& s : slices) {
      while (!stack.empty() && s.ts >= stack.back()->end - kEpsUs &&
             !(s.ts <= stack.back()->ts + kEpsUs &&
               s.end <= stack.back()->end + kEpsUs)) {
        stack.pop_back();
      }
      auto where = [&] {
        return absl::StrCat(" on track ", track.first, "/", track.second);
      };
      if (!stack.empty() && s.end > stack.back()->end + kEpsUs) {
        errors.push_back(
            absl::StrCat(s.cat, " '", s.name, "' [", s.ts, ", ", s.end,
                         "] crosses the end of ", stack.back()->cat, " '",
                         stack.back()->name, "' [", stack.back()->ts, ", ",
                         stack.back()->end, "]", where()));
      }
      if (stack.empty() && (s.cat == "phase" || s.cat == "syscall")) {
        errors.push_back(absl::StrCat(s.cat, " '", s.name, "' at ", s.ts,
                                      " has no parent", where()));
      }
      if (!stack.empty() && s.cat == "request") {
        errors.push_back(absl::StrCat("request '", s.name, "' at ", s.ts,
                                      " is nested in '", stack.back()->name,
                                      "'", where()));
      }
      stack.push_back(&s);
    }
  }
  return errors;
}

}  // namespace reqcost::analyzers::test_support

#endif  // REQCOST_TESTS_ANALYZERS_TRACE_NESTING_H_
