// Configuration templates from samples/ with @KEY@ placeholders.
#ifndef REQCOST_SAMPLES_STACK_TEMPLATE_H_
#define REQCOST_SAMPLES_STACK_TEMPLATE_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace reqcost::stack {

// Placeholder name (without the @s) -> value.
using TemplateValues = std::map<std::string, std::string>;

// Replaces every @KEY@ (KEY = [A-Z][A-Z0-9_]*) with values[KEY]. Fails naming
// every placeholder that has no value; values nobody asked for are fine.
absl::StatusOr<std::string> FillTemplate(absl::string_view text,
                                         const TemplateValues& values);

// Reads `template_path`, fills it and writes `output_path`; errors name the
// template.
absl::Status FillTemplateFile(const std::string& template_path,
                              const TemplateValues& values,
                              const std::string& output_path);

}  // namespace reqcost::stack

#endif  // REQCOST_SAMPLES_STACK_TEMPLATE_H_
