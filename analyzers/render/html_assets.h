// The stylesheet and the renderer of the `--html` page (html_report.h),
// kept as real files (html/report.css, html/report.js) and embedded at
// build time (html/embed.cmake). The renderer reads the JSON in
// <script id="reqcost-data"> and draws every chart as SVG sized to the
// window; each chart also gets a table of its numbers. The DOM it builds is
// what tests/html checks (docs/html.md lists the classes and data
// attributes).
#ifndef REQCOST_ANALYZERS_RENDER_HTML_ASSETS_H_
#define REQCOST_ANALYZERS_RENDER_HTML_ASSETS_H_

namespace reqcost::analyzers {

// The bytes of html/report.css, NUL-terminated.
extern const char kHtmlCss[];

// The bytes of html/report.js, NUL-terminated.
extern const char kHtmlJs[];

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_RENDER_HTML_ASSETS_H_
