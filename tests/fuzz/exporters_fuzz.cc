// libFuzzer target for the outputs a process name or a socket path reaches:
// the Prometheus exposition, OTLP/JSON, the --html page and the --events
// lines. The input gives a process name (the kernel's comm, any bytes), a
// unix socket path (the backend's address) and a request line; a complete
// request of that server through that backend goes through each output,
// which must stay well formed whatever the bytes:
//   - exposition: every line a comment or `name{label="value",...} number`,
//     label values escaped as the format says (only \\, \" and \n after a
//     backslash), valid UTF-8, no raw control byte;
//   - OTLP/JSON: parses (strict UTF-8), service.name is the name's
//     ValidUtf8 form, the backend's server.address the path's;
//   - HTML: the data element ends where the page put it (its JSON parses
//     and equals the data), the text output's <pre> holds no markup;
//   - --events and the text summary: no byte a terminal acts on (C0 but
//     newline, DEL, C1) and only well-formed UTF-8.
// Run: exporters_fuzz -max_total_time=60 corpus/
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "analyzers/payload.h"
#include "analyzers/render/format.h"
#include "analyzers/render/html_report.h"
#include "analyzers/render/otlp.h"
#include "analyzers/report.h"
#include "analyzers/request.h"
#include "cli/event_printer.h"
#include "cli/exporters/metrics.h"
#include "collector/event.h"
#include "nlohmann/json.hpp"

namespace reqcost {
namespace {

using analyzers::Request;
using nlohmann::json;

[[noreturn]] void Die(const char* what, std::string_view text) {
  std::fprintf(stderr, "exporters_fuzz: %s in:\n%.*s\n", what,
               static_cast<int>(text.size()), text.data());
  std::abort();
}

constexpr uint64_t kUs = 1000;

// Length of the well-formed UTF-8 sequence at text[i], 0 if none.
size_t Utf8Length(std::string_view text, size_t i) {
  const auto b = [&](size_t k) {
    return k < text.size() ? static_cast<uint8_t>(text[k]) : 0;
  };
  const uint8_t c = b(i);
  const auto cont = [&](size_t k) { return (b(k) & 0xc0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xe0 && b(i + 1) < 0xa0) return 0;  // overlong
    if (c == 0xed && b(i + 1) >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xf0 && b(i + 1) < 0x90) return 0;
    if (c == 0xf4 && b(i + 1) >= 0x90) return 0;
    return 4;
  }
  return 0;
}

// Well-formed UTF-8 with no C0 control but newline (and tab when
// `tab_ok`), no DEL and no C1 control (U+0080..U+009F).
void CheckTerminal(std::string_view text, bool tab_ok, const char* what) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = Utf8Length(text, i);
    if (n == 0) Die(what, text);
    const uint8_t c = static_cast<uint8_t>(text[i]);
    if (n == 1 && ((c < 0x20 && c != '\n' && !(tab_ok && c == '\t')) ||
                   c == 0x7f)) {
      Die(what, text);
    }
    if (n == 2 && c == 0xc2 && static_cast<uint8_t>(text[i + 1]) < 0xa0) {
      Die(what, text);
    }
    i += n;
  }
}

// The exposition format, line by line: "# HELP"/"# TYPE" comments, or a
// sample `name{label="value",...} value`.
void CheckExposition(const std::string& text) {
  CheckTerminal(text, false, "exposition: raw control byte or bad UTF-8");
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) Die("exposition: last line unterminated", text);
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (line.rfind("# HELP ", 0) != 0 && line.rfind("# TYPE ", 0) != 0)
        Die("exposition: bad comment", line);
      continue;
    }
    size_t i = 0;
    const auto name_char = [](char c, bool first) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             c == ':' || (!first && c >= '0' && c <= '9');
    };
    if (i >= line.size() || !name_char(line[i], true))
      Die("exposition: bad metric name", line);
    while (i < line.size() && name_char(line[i], false)) ++i;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        if (i >= line.size() || !name_char(line[i], true))
          Die("exposition: bad label name", line);
        while (i < line.size() && name_char(line[i], false)) ++i;
        if (line.substr(i, 2) != "=\"") Die("exposition: no =\" after label", line);
        i += 2;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size() ||
                (line[i + 1] != '\\' && line[i + 1] != '"' && line[i + 1] != 'n'))
              Die("exposition: bad escape in a label value", line);
            i += 2;
          } else {
            ++i;
          }
        }
        if (i >= line.size()) Die("exposition: unterminated label value", line);
        ++i;  // the closing quote
        if (i < line.size() && line[i] == ',') ++i;
      }
    }
    if (i >= line.size() || line[i] != ' ') Die("exposition: no value", line);
    std::string value(line.substr(i + 1));
    char* end = nullptr;
    std::strtod(value.c_str(), &end);
    if (value.empty() || (*end != '\0' && *end != ' ') ) {
      if (value != "+Inf" && value != "-Inf" && value != "NaN")
        Die("exposition: bad value", line);
    }
  }
}

// Reads the input front to back: a length byte, then that many bytes.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  std::string Field(size_t max) {
    if (pos_ >= size_) return "";
    size_t n = data_[pos_++] % (max + 1);
    std::string s;
    while (n-- > 0 && pos_ < size_) s.push_back(static_cast<char>(data_[pos_++]));
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

Request MakeRequest(const std::string& backend, const std::string& line) {
  Request r;
  r.id = 1;
  r.pid = 100;
  r.complete = true;
  r.client_conn = analyzers::ConnReuse::kNew;
  r.backend_conn = analyzers::ConnReuse::kNew;
  r.backend_timing = analyzers::BackendTiming::kMeasured;
  r.backend_address = backend;
  if (!line.empty()) r.request_line = line;
  r.client_sock.family = 2;
  r.client_sock.local_port = 80;
  r.client_sock.remote_port = 40000;
  r.start_ns = 1'000'000'000;
  r.exchange_start_ns = r.start_ns + 50 * kUs;
  r.backend_start_ns = r.start_ns + 80 * kUs;
  r.backend_end_ns = r.start_ns + 280 * kUs;
  r.exchange_end_ns = r.start_ns + 300 * kUs;
  r.end_ns = r.start_ns + 350 * kUs;
  r.total_ns = 350 * kUs;
  r.server_ns = 100 * kUs;
  r.transport_ns = 50 * kUs;
  r.backend_ns = 200 * kUs;
  analyzers::SyscallRecord s;
  s.syscall = Syscall::kConnect;
  s.enter_ns = r.exchange_start_ns;
  s.exit_ns = s.enter_ns + 7 * kUs;
  r.syscalls.push_back(s);
  return r;
}

void CheckOtlp(const Request& r, const std::string& name,
               const std::string& path) {
  analyzers::OtlpResource resource;
  resource.service_name = analyzers::ValidUtf8(name);
  resource.host_name = "host";
  resource.pid = 100;
  analyzers::OtlpBatch batch(7, 0);
  batch.Add(analyzers::SpanSource::From(r, resource));
  const std::string doc = batch.Take("0");
  json parsed;
  try {
    parsed = json::parse(doc);  // strict: invalid UTF-8 throws
  } catch (const json::exception&) {
    Die("OTLP: not JSON", doc);
  }
  const json& rs = parsed.at("resourceSpans").at(0);
  bool named = false;
  for (const json& a : rs.at("resource").at("attributes")) {
    if (a.at("key") == "service.name") {
      named = a.at("value").at("stringValue") == analyzers::ValidUtf8(name);
    }
  }
  if (!named) Die("OTLP: service.name is not the name", doc);
  bool addressed = false;
  for (const json& span : rs.at("scopeSpans").at(0).at("spans")) {
    if (span.at("kind") != analyzers::kSpanKindClient) continue;
    for (const json& a : span.at("attributes")) {
      if (a.at("key") == "server.address") {
        addressed = a.at("value").at("stringValue") == analyzers::ValidUtf8(path);
      }
    }
  }
  if (!addressed) Die("OTLP: server.address is not the socket path", doc);
}

void CheckHtml(const Request& r, const std::string& name) {
  analyzers::RequestStats stats;
  stats.Add(r);
  analyzers::Report report;
  stats.Fill(&report);
  report.capture.duration_s = 1;
  analyzers::ProcessEntry p;
  p.pid = 100;
  p.comm = analyzers::ValidUtf8(name);
  p.comm_bytes = name;
  p.role = "server";
  report.processes.push_back(p);
  const std::string text = analyzers::FormatText(report);
  CheckTerminal(text, true, "text summary: raw control byte or bad UTF-8");
  const json data = analyzers::ReportPageData(name, report, {r}, 1);
  const std::string page = analyzers::HtmlPage(name, data, text);
  const std::string open = "<script type=\"application/json\" id=\"reqcost-data\">";
  const size_t at = page.find(open);
  if (at == std::string::npos) Die("HTML: no data element", page);
  const size_t from = at + open.size();
  const size_t end = page.find("</script>", from);
  if (end == std::string::npos) Die("HTML: data element not closed", page);
  json parsed;
  try {
    parsed = json::parse(page.substr(from, end - from));
  } catch (const json::exception&) {
    Die("HTML: the data element's JSON does not parse", page);
  }
  // The data as the page meant it (bytes that are not UTF-8 replaced).
  const json expected = json::parse(
      data.dump(-1, ' ', false, json::error_handler_t::replace));
  if (parsed != expected) Die("HTML: the data element was cut", page);
  const size_t pre = page.find("<pre>");
  const size_t pre_end = page.find("</pre>", pre);
  if (pre == std::string::npos || pre_end == std::string::npos)
    Die("HTML: no text output", page);
  if (page.substr(pre + 5, pre_end - pre - 5).find('<') != std::string::npos)
    Die("HTML: markup inside the text output", page);
  const size_t title = page.find("<title>");
  const size_t title_end = page.find("</title>", title);
  if (page.substr(title + 7, title_end - title - 7).find('<') !=
      std::string::npos)
    Die("HTML: markup inside the title", page);
}

void CheckEvents(const std::string& name, const std::string& path) {
  SyscallEvent e;
  e.syscall = Syscall::kConnect;
  e.flags = SyscallEvent::kPeerPath;
  e.tgid = e.tid = 100;
  e.fd = 5;
  e.enter_ns = 1'000'000'000;
  e.exit_ns = e.enter_ns + 5000;
  e.sock.family = 1;
  e.payload = path;
  CheckTerminal(cli::FormatEvent(e, name, 0), false,
                "--events: raw control byte or bad UTF-8");
  ProcessEvent p;
  p.op = ProcessEvent::Op::kFork;
  p.tgid = 101;
  p.parent_tgid = 100;
  p.ts_ns = 1'000'000'000;
  p.comm = name;
  CheckTerminal(cli::FormatProcessEvent(p, 0), false,
                "--events fork line: raw control byte or bad UTF-8");
}

}  // namespace
}  // namespace reqcost

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reqcost;  // NOLINT
  Input in(data, size);
  const std::string name = in.Field(15);   // the kernel's comm
  const std::string path = "/" + in.Field(106);  // sun_path
  const std::string line = in.Field(80);
  const Request r = MakeRequest(path, line);

  exporters::Metrics metrics;
  metrics.OnRequest(r, name);
  metrics.Flush();
  CheckExposition(metrics.Exposition());
  CheckOtlp(r, name, path);
  CheckHtml(r, name);
  CheckEvents(name, path);
  return 0;
}
