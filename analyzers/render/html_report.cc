#include "analyzers/render/html_report.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "analyzers/render/compare_format.h"
#include "analyzers/render/format.h"
#include "analyzers/render/html_assets.h"

namespace reqcost::analyzers {
namespace {

using nlohmann::json;

json RequestsToJson(const std::vector<Request>& requests) {
  json out = json::array();
  for (const Request& r : requests) out.push_back(RequestToJson(r));
  return out;
}

std::string EscapeHtml(const std::string& text) {
  return absl::StrReplaceAll(
      text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

// JSON that can sit inside <script>: "<" only occurs inside strings, where
// \u003c means the same, so no "</script>" or "<!--" can end the element.
// Bytes that are not UTF-8 (a captured request line) become U+FFFD.
std::string JsonForScript(const json& data) {
  std::string text = data.dump(-1, ' ', false, json::error_handler_t::replace);
  return absl::StrReplaceAll(text, {{"<", "\\u003c"}});
}

}  // namespace

json ReportPageData(const std::string& source, const Report& report,
                    const std::vector<Request>& slowest, uint64_t slowest_of) {
  return json{{"schema", kHtmlPageSchema},
              {"page", "report"},
              {"source", source},
              {"report", ReportToJson(report)},
              {"slowest", RequestsToJson(slowest)},
              {"slowest_of", slowest_of}};
}

json ComparePageData(const std::string& a_source, const std::string& b_source,
                     const Comparison& comparison,
                     const std::vector<Request>& a_slowest,
                     uint64_t a_slowest_of,
                     const std::vector<Request>& b_slowest,
                     uint64_t b_slowest_of) {
  return json{{"schema", kHtmlPageSchema},
              {"page", "compare"},
              {"a_source", a_source},
              {"b_source", b_source},
              {"compare", ComparisonToJson(comparison)},
              {"a_slowest", RequestsToJson(a_slowest)},
              {"a_slowest_of", a_slowest_of},
              {"b_slowest", RequestsToJson(b_slowest)},
              {"b_slowest_of", b_slowest_of}};
}

std::string HtmlPage(const std::string& title, const json& data,
                     const std::string& text) {
  // The blank line after <style> and <script> is where the assets began
  // when they were raw strings: kept so that pages stay byte-identical.
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, "
      "initial-scale=1\">\n<title>",
      EscapeHtml(title), "</title>\n<style>\n\n", kHtmlCss,
      "</style>\n</head>\n<body>\n<header><h1>", EscapeHtml(title),
      "</h1></header>\n<main id=\"app\"><noscript><p>The charts of this "
      "page are drawn by JavaScript; the text output is below, and the data "
      "is the JSON in the page's source.</p></noscript></main>\n"
      "<details id=\"text-output\"><summary>Text output</summary><pre>",
      EscapeHtml(text),
      "</pre></details>\n<script type=\"application/json\" "
      "id=\"reqcost-data\">",
      JsonForScript(data), "</script>\n<script>\n\n", kHtmlJs,
      "</script>\n</body>\n</html>\n");
}

}  // namespace reqcost::analyzers
