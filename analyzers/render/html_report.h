// `--html`: one self-contained HTML page (inline CSS, SVG drawn by inline
// JS, nothing fetched) built from the very JSON objects `--format json` and
// `--format jsonl` print, embedded in the page as data. Pure: values in,
// a string out.
//
// Why the charts are drawn in the browser from embedded JSON rather than
// pre-rendered SVG: the page carries exactly the data the JSON output
// prints (one source of truth; a reader can take the numbers out of the
// page), the C++ side stays a small embedder, and the charts are laid out
// for the window they are shown in (a narrow window gets narrower bars,
// not a scaled-down picture with unreadable labels). Without JavaScript the
// page still shows the text output, and every chart has a table with its
// numbers.
#ifndef REQCOST_ANALYZERS_RENDER_HTML_REPORT_H_
#define REQCOST_ANALYZERS_RENDER_HTML_REPORT_H_

#include <string>
#include <vector>

#include "analyzers/compare.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "nlohmann/json.hpp"

namespace reqcost::analyzers {

inline constexpr char kHtmlPageSchema[] = "reqcost.html/1";

// The data of a `report --html` page:
// {"schema": "reqcost.html/1", "page": "report", "source": file,
//  "report": {reqcost.report object}, "slowest": [per-request objects,
//  slowest first], "slowest_of": complete requests they were chosen from}.
nlohmann::json ReportPageData(const std::string& source, const Report& report,
                              const std::vector<Request>& slowest,
                              uint64_t slowest_of);

// The data of a `compare --html` page:
// {"schema": "reqcost.html/1", "page": "compare", "a_source", "b_source",
//  "compare": {reqcost.compare object}, "a_slowest", "b_slowest",
//  "a_slowest_of", "b_slowest_of"}.
nlohmann::json ComparePageData(const std::string& a_source,
                               const std::string& b_source,
                               const Comparison& comparison,
                               const std::vector<Request>& a_slowest,
                               uint64_t a_slowest_of,
                               const std::vector<Request>& b_slowest,
                               uint64_t b_slowest_of);

// The page: `data` embedded as JSON (script type application/json, id
// "reqcost-data"), the renderer, and `text` (the command's text output) in
// a <pre> for readers without JavaScript.
std::string HtmlPage(const std::string& title, const nlohmann::json& data,
                     const std::string& text);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_RENDER_HTML_REPORT_H_
