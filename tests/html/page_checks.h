// What a rendered --html page must show, checked on the DOM a real browser
// dumped after the page's scripts ran, against the JSON objects the page was
// built from: shared by the unit test (synthetic streams) and the
// integration test (real nginx + php-fpm captures).
#ifndef REQCOST_TESTS_HTML_PAGE_CHECKS_H_
#define REQCOST_TESTS_HTML_PAGE_CHECKS_H_

#include <cmath>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "tests/support/browser.h"

namespace reqcost::testing {

inline const char* const kDrawnPhases[] = {"total",   "server", "transport",
                                           "backend", "queue",  "tls"};

// The text of `dom` from `from` (included) to `to` (excluded, or the end);
// "" when `from` is missing.
inline std::string Between(const std::string& dom, const std::string& from,
                           const std::string& to = "") {
  size_t a = dom.find(from);
  if (a == std::string::npos) return "";
  size_t b = to.empty() ? std::string::npos : dom.find(to, a + from.size());
  return dom.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

// The <svg> element whose data-request is `id`.
inline std::string SvgOf(const std::string& dom, const std::string& id) {
  size_t at = dom.find(absl::StrCat("data-request=\"", id, "\""));
  if (at == std::string::npos) return "";
  size_t start = dom.rfind("<svg", at);
  size_t end = dom.find("</svg>", at);
  return dom.substr(start, end - start);
}

// Every attribute value `name="..."` in `text`, parsed as a number.
inline std::vector<double> Numbers(const std::string& text,
                                   const std::string& regex) {
  std::vector<double> out;
  std::regex re(regex);
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end;
       ++it) {
    out.push_back(std::strtod((*it)[1].str().c_str(), nullptr));
  }
  return out;
}

inline std::vector<int> SvgWidths(const std::string& dom) {
  std::vector<int> out;
  for (double w : Numbers(dom, "<svg class=\"[^\"]*\" width=\"([0-9.]+)\"")) {
    out.push_back(static_cast<int>(w));
  }
  return out;
}

// A displayed duration ("12.3 us", "1.234 ms") in microseconds.
inline double DisplayedUs(const std::string& text) {
  double v = std::strtod(text.c_str(), nullptr);
  if (text.find(" ms") != std::string::npos) return v * 1e3;
  if (text.find(" s") != std::string::npos &&
      text.find(" us") == std::string::npos) {
    return v * 1e6;
  }
  return v;
}

inline std::string EscapedText(absl::string_view text) {
  return absl::StrReplaceAll(text,
                             {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}});
}

// Nothing is fetched: no external resource of any kind.
inline void ExpectSelfContained(const std::string& page) {
  for (const char* bad :
       {"<link", " src=", "@import", "url(http", "href=\"http", "fetch(",
        "XMLHttpRequest", "<iframe", "<img", "<object"}) {
    EXPECT_EQ(page.find(bad), std::string::npos)
        << "the page fetches something: " << bad;
  }
}

// The phase table, the mean split and the percentile bars of `scope` show
// `report`'s numbers.
inline void ExpectPhases(const std::string& scope,
                         const nlohmann::json& report) {
  const nlohmann::json& phases = report["phases"];
  for (const char* p : kDrawnPhases) {
    const nlohmann::json& ph = phases[p];
    if (ph["count"] == 0) continue;
    std::string row =
        Between(scope, absl::StrCat("<tr data-phase=\"", p, "\""), "</tr>");
    ASSERT_FALSE(row.empty()) << "no table row for phase " << p;
    std::vector<double> mean = Numbers(row, "data-mean-us=\"([-0-9.e+]+)\"");
    ASSERT_EQ(mean.size(), 1u) << row;
    EXPECT_DOUBLE_EQ(mean[0], ph["mean_us"].get<double>()) << p;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(
        row, m, std::regex("data-field=\"mean_us\">([^<]+)<")));
    const double shown = DisplayedUs(m[1].str());
    EXPECT_NEAR(shown, ph["mean_us"].get<double>(),
                ph["mean_us"].get<double>() < 1000 ? 0.051 : 0.51)
        << p << " shown as " << m[1].str();
    for (const char* k : {"p50", "p90", "p99"}) {
      std::vector<double> bar = Numbers(
          scope,
          absl::StrCat("class=\"pct ", k, "[^\"]*\" data-phase=\"", p,
                       "\" data-p=\"", k, "\" data-us=\"([-0-9.e+]+)\""));
      ASSERT_EQ(bar.size(), 1u) << p << " " << k;
      EXPECT_DOUBLE_EQ(bar[0], ph[absl::StrCat(k, "_us")].get<double>())
          << p << " " << k;
    }
  }
  if (phases["total"]["count"] == 0) return;
  std::vector<double> segs =
      Numbers(scope,
              "class=\"seg seg-[a-z]+\" data-phase=\"[a-z]+\" "
              "data-us=\"([-0-9.e+]+)\"");
  ASSERT_EQ(segs.size(), 3u);
  const double total = phases["total"]["mean_us"].get<double>();
  EXPECT_NEAR(segs[0] + segs[1] + segs[2], total, 1e-6 * total + 1e-9);
  EXPECT_DOUBLE_EQ(segs[0], phases["server"]["mean_us"].get<double>());
  EXPECT_DOUBLE_EQ(segs[1], phases["transport"]["mean_us"].get<double>());
  EXPECT_DOUBLE_EQ(segs[2], phases["backend"]["mean_us"].get<double>());
}

// The average request of `report` drawn in <svg data-request=id>: one bar
// and one label per timeline line, three lanes.
inline void ExpectAverageWaterfall(const std::string& dom,
                                   const nlohmann::json& report,
                                   const std::string& id) {
  std::string svg = SvgOf(dom, id);
  ASSERT_FALSE(svg.empty()) << "no waterfall " << id;
  size_t syscalls = 0, work = 0;
  for (const auto& line : report["timeline"]["lines"]) {
    (line["name"] == "(work)" ? work : syscalls)++;
  }
  ASSERT_GT(syscalls, 0u);
  EXPECT_EQ(Count(svg, "class=\"bar syscall "), syscalls) << id;
  EXPECT_EQ(Count(svg, "class=\"bar work "), work) << id;
  EXPECT_EQ(Count(svg, "class=\"label\""), syscalls + work) << id;
  EXPECT_EQ(Count(svg, "class=\"lane-label\""), 3u) << id;
  EXPECT_THAT(svg, ::testing::HasSubstr("role=\"img\""));
  EXPECT_THAT(svg, ::testing::HasSubstr("<desc"));
  // The request lane spans the mean wall span, which holds the mean total.
  std::vector<double> band =
      Numbers(svg,
              "class=\"band lane-server\" data-phase=\"server\" "
              "data-us=\"([-0-9.e+]+)\"");
  ASSERT_EQ(band.size(), 1u);
  EXPECT_DOUBLE_EQ(band[0], report["timeline"]["span_us"].get<double>());
  EXPECT_GE(band[0] + 1e-9, report["phases"]["total"]["mean_us"].get<double>());
}

// Each of `slowest` in its own article and waterfall: one bar and label per
// syscall, and its total.
inline void ExpectSlowest(const std::string& scope,
                          const nlohmann::json& slowest,
                          const std::string& prefix) {
  EXPECT_EQ(Count(scope, "<article class=\"req\""), slowest.size());
  for (const auto& q : slowest) {
    const std::string id = absl::StrCat(prefix, q["id"].get<uint64_t>());
    std::string svg = SvgOf(scope, id);
    ASSERT_FALSE(svg.empty()) << "no waterfall for request " << id;
    EXPECT_EQ(Count(svg, "class=\"bar syscall "), q["syscalls"].size()) << id;
    EXPECT_EQ(Count(svg, "class=\"label\""), q["syscalls"].size()) << id;
    std::vector<double> band =
        Numbers(svg,
                "class=\"band lane-server\" data-phase=\"server\" "
                "data-us=\"([-0-9.e+]+)\"");
    ASSERT_EQ(band.size(), 1u) << id;
    EXPECT_DOUBLE_EQ(band[0], q["span_us"].get<double>()) << id;
    EXPECT_GE(band[0] + 1e-9, q["total_us"].get<double>()) << id;
  }
  // Slowest first.
  for (size_t i = 1; i < slowest.size(); ++i) {
    EXPECT_GE(slowest[i - 1]["total_us"].get<double>(),
              slowest[i]["total_us"].get<double>());
  }
}

// A `report --html` page.
inline void ExpectReportPage(const std::string& dom,
                             const nlohmann::json& report,
                             const nlohmann::json& slowest,
                             const std::string& prefix) {
  ASSERT_THAT(dom, ::testing::HasSubstr("data-rendered=\"ok\""));
  ExpectPhases(dom, report);
  ExpectAverageWaterfall(dom, report, "average");
  ExpectSlowest(dom, slowest, prefix);
  // A table for every waterfall: the text alternative.
  EXPECT_EQ(Count(dom, "<table class=\"waterfall-table\""), 1 + slowest.size());
}

// A `compare --html` page.
inline void ExpectComparePage(const std::string& dom, const nlohmann::json& c,
                              const nlohmann::json& a_slowest,
                              const nlohmann::json& b_slowest) {
  ASSERT_THAT(dom, ::testing::HasSubstr("data-rendered=\"ok\""));
  EXPECT_THAT(dom, ::testing::HasSubstr(absl::StrCat(
                       "<p class=\"verdict\">",
                       EscapedText(c["verdict"].get<std::string>()), "</p>")));
  size_t rows = 0;
  for (const char* p : kDrawnPhases) {
    if (c["a"]["phases"][p]["count"] == 0 || c["b"]["phases"][p]["count"] == 0)
      continue;
    ++rows;
    std::string row = Between(
        dom, absl::StrCat("<tr data-phase=\"", p, "\" data-a-us"), "</tr>");
    ASSERT_FALSE(row.empty()) << p;
    std::vector<double> a = Numbers(row, "data-a-us=\"([-0-9.e+]+)\"");
    std::vector<double> b = Numbers(row, "data-b-us=\"([-0-9.e+]+)\"");
    std::vector<double> d = Numbers(row, "data-delta-us=\"([-0-9.e+]+)\"");
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(b.size(), 1u);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_DOUBLE_EQ(a[0], c["a"]["phases"][p]["mean_us"].get<double>()) << p;
    EXPECT_DOUBLE_EQ(b[0], c["b"]["phases"][p]["mean_us"].get<double>()) << p;
    EXPECT_DOUBLE_EQ(d[0], c["delta"][p]["mean_us"].get<double>()) << p;
  }
  EXPECT_EQ(Count(dom, "class=\"bar-a\""), rows);
  EXPECT_EQ(Count(dom, "class=\"bar-b\""), rows);
  std::string side_a = Between(dom, "<section class=\"side\" data-side=\"A\">",
                               "<section class=\"side\" data-side=\"B\">");
  std::string side_b = Between(dom, "<section class=\"side\" data-side=\"B\">",
                               "<section class=\"slowest\"");
  ASSERT_FALSE(side_a.empty());
  ASSERT_FALSE(side_b.empty());
  ExpectPhases(side_a, c["a"]);
  ExpectPhases(side_b, c["b"]);
  ExpectAverageWaterfall(side_a, c["a"], "average-a");
  ExpectAverageWaterfall(side_b, c["b"], "average-b");
  ExpectSlowest(Between(dom, "<section class=\"slowest\" data-of=\"A\">",
                        "<section class=\"slowest\" data-of=\"B\">"),
                a_slowest, "a-");
  ExpectSlowest(Between(dom, "<section class=\"slowest\" data-of=\"B\">"),
                b_slowest, "b-");
}

// The screenshot is a picture: many colours, and the three phase colours of
// the mean split drawn solid.
inline void ExpectDrawn(const std::string& png_path) {
  absl::StatusOr<std::string> bytes = stack::ReadFileToString(png_path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<Image> image = DecodePng(*bytes);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_GT(image->width, 0u);
  EXPECT_GE(DistinctColors(*image), 16u) << "the screenshot looks blank";
  const uint8_t kServer[] = {0x4e, 0x79, 0xa7},
                kTransport[] = {0xf2, 0x8e, 0x2b},
                kBackend[] = {0x59, 0xa1, 0x4f};
  for (const uint8_t* colour : {kServer, kTransport, kBackend}) {
    size_t n = 0;
    for (size_t i = 0; i + 3 < image->rgba.size(); i += 4) {
      if (image->rgba[i] == colour[0] && image->rgba[i + 1] == colour[1] &&
          image->rgba[i + 2] == colour[2]) {
        ++n;
      }
    }
    EXPECT_GT(n, 20u) << absl::StrFormat("colour #%02x%02x%02x not drawn",
                                         colour[0], colour[1], colour[2]);
  }
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_HTML_PAGE_CHECKS_H_
