#include "samples/stack/template.h"

#include <cctype>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "samples/stack/process.h"
#include "samples/stack/status_macros.h"

namespace reqcost::stack {
namespace {

bool IsKeyStart(char c) { return c >= 'A' && c <= 'Z'; }
bool IsKeyChar(char c) {
  return IsKeyStart(c) || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

absl::StatusOr<std::string> FillTemplate(absl::string_view text,
                                         const TemplateValues& values) {
  std::string out;
  out.reserve(text.size());
  std::set<std::string> missing;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '@' && i + 1 < text.size() && IsKeyStart(text[i + 1])) {
      size_t j = i + 1;
      while (j < text.size() && IsKeyChar(text[j])) ++j;
      if (j < text.size() && text[j] == '@') {
        std::string key(text.substr(i + 1, j - i - 1));
        auto it = values.find(key);
        if (it == values.end()) {
          missing.insert(key);
        } else {
          out += it->second;
        }
        i = j + 1;
        continue;
      }
    }
    out += c;
    ++i;
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("template placeholders without a value: @%s@",
                        absl::StrJoin(missing, "@, @")));
  }
  return out;
}

absl::Status FillTemplateFile(const std::string& template_path,
                              const TemplateValues& values,
                              const std::string& output_path) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string text,
                              ReadFileToString(template_path));
  absl::StatusOr<std::string> filled = FillTemplate(text, values);
  if (!filled.ok()) {
    return absl::Status(
        filled.status().code(),
        absl::StrCat(template_path, ": ", filled.status().message()));
  }
  return WriteStringToFile(output_path, *filled);
}

}  // namespace reqcost::stack
