// Hostile process names end to end: a child of the test renames itself with
// prctl(PR_SET_NAME) to a name holding '"', '\', a newline or invalid UTF-8
// and serves HTTP requests while `reqcost attach --events --metrics-file
// --otlp-json` watches it. The name becomes a Prometheus label, the OTLP
// service.name and part of every --events line.
//
// Every output must stay well formed: the terminal gets escapes
// (analyzers::TerminalText), the exposition a valid UTF-8 label with no
// raw control byte (LabelText), OTLP valid UTF-8 (ValidUtf8). The capture's
// `report --html` page, rendered by headless Chromium, shows the name as
// text: its scripts ran to the end and no markup in the name became an
// element.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "tests/integration/breakdown_expect.h"
#include "tests/integration/reqcost_run.h"
#include "tests/support/browser.h"
#include "tests/support/loopback.h"
#include "tests/support/otlp_json_check.h"
#include "tests/support/require_bpf.h"
#include "tests/support/stack.h"

namespace reqcost::testing {
namespace {

struct HostileName {
  std::string label;      // for the test's name
  std::string name;       // at most 15 bytes: the kernel's comm
  std::string otlp_name;  // the service.name OTLP must carry
};

void PrintTo(const HostileName& h, std::ostream* os) { *os << h.label; }

constexpr char kResponse[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

// A child that takes `name` and answers one request per connection.
pid_t StartNamedServer(int listen_fd, const std::string& name) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  alarm(60);  // a bound on its life should the test die first
  prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
  char buf[4096];
  while (true) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) _exit(1);
    if (read(fd, buf, sizeof(buf)) > 0 &&
        write(fd, kResponse, sizeof(kResponse) - 1) < 0)
      _exit(1);
    close(fd);
  }
}

bool OneRequest(int port) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return false;
  const std::string req = "GET /hostile HTTP/1.1\r\nHost: x\r\n\r\n";
  bool ok =
      write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size());
  std::string reply;
  char buf[256];
  ssize_t n;
  while (ok && (n = read(fd, buf, sizeof(buf))) > 0)
    reply.append(buf, static_cast<size_t>(n));
  close(fd);
  return ok && reply.rfind("HTTP/1.1 200 OK", 0) == 0;
}

// Whether `text` has a byte a terminal acts on (C0 controls but newline and
// tab, DEL) or that is not UTF-8 (any byte >= 0x80: reqcost's own lines are
// ASCII).
bool TerminalSafe(const std::string& text) {
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f) return false;
  }
  return true;
}

// Whether every --events line of process `pid` still begins with its
// timestamp: a raw newline in the name splits a line in two.
bool EventLinesIntact(const std::string& text, pid_t pid) {
  const std::string who = absl::StrCat(" ", pid, "/", pid, " ");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.find(who) == absl::string_view::npos) continue;
    const size_t first = line.find_first_not_of(' ');
    if (first == absl::string_view::npos || line[first] < '0' ||
        line[first] > '9')
      return false;
  }
  return true;
}

int CountLines(const std::string& text, const std::string& what) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.find(what) != absl::string_view::npos) ++n;
  }
  return n;
}

class HostileNames : public ::testing::TestWithParam<HostileName> {};

TEST_P(HostileNames, ExpositionOtlpAndEventsStayWellFormed) {
  REQCOST_REQUIRE_BPF_OR_SKIP();
  const HostileName& h = GetParam();
  ASSERT_OK_AND_ASSIGN(dir, TempDir::Create("reqcost-hostile"));
  int port = 0;
  const int listen_fd = ListenLoopback(&port);
  ASSERT_GE(listen_fd, 0) << std::strerror(errno);
  const pid_t server = StartNamedServer(listen_fd, h.name);
  ASSERT_GT(server, 0);
  close(listen_fd);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reaper{server};
  // The rename has happened once /proc says so.
  const std::string comm_path = absl::StrCat("/proc/", server, "/comm");
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  std::string comm;
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> c = ReadFileToString(comm_path);
    comm = c.ok() ? *c : "";
    if (comm == h.name + "\n") break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(comm, h.name + "\n");

  const std::string metrics_file = dir.File("reqcost.prom");
  const std::string spans_file = dir.File("spans.jsonl");
  const std::string capture = dir.File("run.cap");
  ASSERT_OK_AND_ASSIGN(
      run, ReqcostRun::Attach(dir, {"attach", "-p", std::to_string(server),
                                    "--events", "--metrics-file", metrics_file,
                                    "--otlp-json", spans_file, "-o", capture}));
  constexpr int kRequests = 3;
  for (int i = 0; i < kRequests; ++i) ASSERT_TRUE(OneRequest(port));
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_OK_AND_ASSIGN(code, run.StopWith(SIGINT));
  ASSERT_EQ(code, 0) << run.err();

  // OTLP: the strict checker accepts every span, named after the process.
  OtlpCheck spans;
  ASSERT_OK_AND_ASSIGN(spans_text, ReadFileToString(spans_file));
  for (absl::string_view line :
       absl::StrSplit(spans_text, '\n', absl::SkipEmpty())) {
    CheckOtlpJson(std::string(line), &spans);
  }
  ASSERT_TRUE(spans.ok()) << spans.ErrorText();
  int server_spans = 0;
  for (const OtlpSpan& s : spans.spans) {
    if (s.kind != 2) continue;
    ++server_spans;
    // Valid UTF-8 names travel unchanged (the JSON reader undoes the
    // escape); invalid bytes become U+FFFD.
    EXPECT_EQ(s.resource.at("service.name")["stringValue"], h.otlp_name);
  }
  EXPECT_EQ(server_spans, kRequests);

  // Prometheus: promtool on the textfile.
  ASSERT_EQ(access("/usr/bin/promtool", X_OK), 0)
      << "install Debian's prometheus package";
  ASSERT_OK_AND_ASSIGN(
      check,
      Subprocess::Start({"/bin/sh", "-c",
                         "/usr/bin/promtool check metrics < " + metrics_file},
                        dir.File("promtool.out"), dir.File("promtool.err")));
  ASSERT_OK_AND_ASSIGN(check_status, check.WaitForExit(absl::Seconds(30)));
  EXPECT_EQ(check_status, 0) << FileTail(dir.File("promtool.err"));
  // No raw control byte in the file either (a newline inside a label is
  // written as the two characters `\n`): it is read in terminals too.
  ASSERT_OK_AND_ASSIGN(exposition, ReadFileToString(metrics_file));
  for (unsigned char c : exposition) {
    EXPECT_TRUE(c >= 0x20 || c == '\n') << static_cast<int>(c);
  }

  // The terminal: --events lines and the summary hold no byte a terminal
  // acts on and no raw non-UTF-8 byte.
  const bool clean =
      TerminalSafe(run.out()) && EventLinesIntact(run.out(), server);
  EXPECT_GE(CountLines(run.out(), absl::StrCat(" ", server, "/", server, " ")),
            4 * kRequests)
      << run.out();
  EXPECT_TRUE(clean) << run.out();

  // HTML: the page of the capture in Chromium. The DOM after the scripts
  // ran holds the process fact "PID NAME (role)" as a text node: the name
  // as the JSON report writes it (valid UTF-8), serialized by the browser
  // with <, > and & escaped. A name that became markup or ended the data's
  // <script> element would leave no such text (and the facts list, drawn
  // by the page's script from that data, would be missing).
  const std::string html = dir.File("report.html");
  ASSERT_OK_AND_ASSIGN(
      page, RunReqcostTo({"report", capture, "--html", html},
                         dir.File("html.out"), dir.File("html.err"),
                         absl::Seconds(30)));
  ASSERT_EQ(page.code, 0) << FileTail(dir.File("html.err"));
  ASSERT_OK_AND_ASSIGN(dom, DumpDom(dir, html));
  EXPECT_NE(dom.find("<dl class=\"facts\">"), std::string::npos)
      << "the page's script did not draw its facts";
  std::string shown;
  for (char c : h.otlp_name) {
    if (c == '<') {
      shown += "&lt;";
    } else if (c == '>') {
      shown += "&gt;";
    } else if (c == '&') {
      shown += "&amp;";
    } else {
      shown += c;
    }
  }
  const std::string fact = absl::StrCat("<dd>", server, " ", shown, " (");
  EXPECT_NE(dom.find(fact), std::string::npos)
      << "no text \"" << fact << "\" in the DOM:\n"
      << dom.substr(0, 4000);
  if (h.name.find('<') != std::string::npos) {
    EXPECT_EQ(dom.find(h.name), std::string::npos)
        << "the name's markup is in the DOM as markup";
  }
  // The data element is still one (a name that ended it would make the
  // rest of the JSON page text).
  EXPECT_EQ(Count(dom, "id=\"reqcost-data\""), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Names, HostileNames,
    ::testing::Values(HostileName{"Quote", "srv\"q", "srv\"q"},
                      HostileName{"Backslash", "srv\\b", "srv\\b"},
                      HostileName{"Newline", "srv\nn", "srv\nn"},
                      HostileName{"InvalidUtf8", "srv\xff\xfeu",
                                  "srv\xEF\xBF\xBD\xEF\xBF\xBDu"},
                      HostileName{"Escape", "srv\x1b[2J", "srv\x1b[2J"},
                      HostileName{"Script", "<script>q=1", "<script>q=1"},
                      HostileName{"EndScript", "</script><b>x",
                                  "</script><b>x"}),
    [](const auto& info) { return info.param.label; });

}  // namespace
}  // namespace reqcost::testing
