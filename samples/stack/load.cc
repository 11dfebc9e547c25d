#include "samples/stack/load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "samples/stack/process.h"
#include "samples/stack/status_macros.h"

namespace reqcost::stack {
namespace {

// The number after "label" on the first line that starts with it.
std::optional<double> NumberAfter(absl::string_view output,
                                  absl::string_view label) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&l, label)) continue;
    l = absl::StripLeadingAsciiWhitespace(l);
    size_t end = 0;
    while (end < l.size() && (absl::ascii_isdigit(l[end]) || l[end] == '.'))
      ++end;
    double v;
    if (end > 0 && absl::SimpleAtod(l.substr(0, end), &v)) return v;
    return std::nullopt;
  }
  return std::nullopt;
}

// Runs argv to completion within `timeout`; returns its stdout. A non-zero
// exit is an error carrying both outputs.
absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv,
                                    const std::string& work_dir,
                                    absl::string_view tag,
                                    absl::Duration timeout) {
  std::optional<TempDir> own_dir;
  std::string dir = work_dir;
  if (dir.empty()) {
    REQCOST_TS_ASSIGN_OR_RETURN(TempDir d, TempDir::Create("reqcost-load"));
    own_dir.emplace(std::move(d));
    dir = own_dir->path();
  }
  static int run_counter = 0;
  ++run_counter;
  std::string out_path = absl::StrCat(dir, "/", tag, "-", run_counter, ".out");
  std::string err_path = absl::StrCat(dir, "/", tag, "-", run_counter, ".err");
  REQCOST_TS_ASSIGN_OR_RETURN(Subprocess p,
                              Subprocess::Start(argv, out_path, err_path));
  absl::StatusOr<int> status = p.WaitForExit(timeout);
  if (!status.ok()) {
    (void)p.Stop(absl::Seconds(2));
    return absl::DeadlineExceededError(absl::StrFormat(
        "%s did not finish in %s (killed): %s\nstdout ends with:\n%s",
        absl::StrJoin(argv, " "), absl::FormatDuration(timeout),
        FileTail(err_path), FileTail(out_path)));
  }
  REQCOST_TS_ASSIGN_OR_RETURN(std::string out, ReadFileToString(out_path));
  if (*status != 0) {
    return absl::InternalError(absl::StrFormat(
        "%s %s; stderr: %s\nstdout ends with:\n%s", absl::StrJoin(argv, " "),
        DescribeWaitStatus(*status), FileTail(err_path), FileTail(out_path)));
  }
  return out;
}

absl::Status LineError(absl::string_view what, size_t line_no,
                       absl::string_view line) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s line %d is malformed: '%s'", what, line_no, line));
}

}  // namespace

// ---------------------------------------------------------------- ab

absl::StatusOr<AbResult> ParseAbOutput(absl::string_view output) {
  AbResult r;
  r.output = std::string(output);
  auto complete = NumberAfter(output, "Complete requests:");
  auto failed = NumberAfter(output, "Failed requests:");
  auto rps = NumberAfter(output, "Requests per second:");
  auto tpr = NumberAfter(output, "Time per request:");
  if (!complete || !failed || !rps || !tpr) {
    return absl::InvalidArgumentError(
        absl::StrCat("ab printed no complete report:\n", output));
  }
  r.complete = static_cast<int>(*complete);
  r.failed = static_cast<int>(*failed);
  r.requests_per_s = *rps;
  r.time_per_request_ms = *tpr;
  r.non_2xx =
      static_cast<int>(NumberAfter(output, "Non-2xx responses:").value_or(0));
  r.keepalive_requests =
      static_cast<int>(NumberAfter(output, "Keep-Alive requests:").value_or(0));
  return r;
}

absl::StatusOr<AbResult> RunAb(const AbOptions& opts) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string ab, FindBinary("ab"));
  int64_t socket_timeout_s =
      std::max<int64_t>(1, absl::ToInt64Seconds(opts.timeout));
  std::vector<std::string> argv = {ab,
                                   "-n",
                                   absl::StrCat(opts.requests),
                                   "-c",
                                   absl::StrCat(opts.concurrency),
                                   "-s",
                                   absl::StrCat(socket_timeout_s)};
  if (opts.keepalive) argv.push_back("-k");
  if (opts.continue_on_receive_errors) argv.push_back("-r");
  if (!opts.tls_protocol.empty()) {
    argv.push_back("-f");
    argv.push_back(opts.tls_protocol);
  }
  argv.push_back(opts.url);
  REQCOST_TS_ASSIGN_OR_RETURN(
      std::string out,
      RunTool(argv, opts.work_dir, "ab", opts.timeout + absl::Seconds(5)));
  return ParseAbOutput(out);
}

// --------------------------------------------------------------- wrk

absl::StatusOr<WrkResult> ParseWrkOutput(absl::string_view output) {
  WrkResult r;
  r.output = std::string(output);
  auto rps = NumberAfter(output, "Requests/sec:");
  std::optional<double> requests;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    // "  1234 requests in 2.00s, 345.67KB read"
    std::vector<absl::string_view> words = absl::StrSplit(
        absl::StripAsciiWhitespace(line), ' ', absl::SkipEmpty());
    if (words.size() >= 3 && words[1] == "requests" && words[2] == "in") {
      double v;
      if (absl::SimpleAtod(words[0], &v)) requests = v;
    }
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&l, "Socket errors:")) {
      // "connect 0, read 0, write 0, timeout 0"
      for (absl::string_view part : absl::StrSplit(l, ',')) {
        std::vector<absl::string_view> kv = absl::StrSplit(
            absl::StripAsciiWhitespace(part), ' ', absl::SkipEmpty());
        int64_t n;
        if (kv.size() == 2 && absl::SimpleAtoi(kv[1], &n)) r.socket_errors += n;
      }
    }
  }
  if (!rps || !requests) {
    return absl::InvalidArgumentError(
        absl::StrCat("wrk printed no report:\n", output));
  }
  r.requests_per_s = *rps;
  r.requests = static_cast<int64_t>(*requests);
  r.non_2xx_3xx = static_cast<int64_t>(
      NumberAfter(output, "Non-2xx or 3xx responses:").value_or(0));
  return r;
}

absl::StatusOr<WrkResult> RunWrk(const WrkOptions& opts) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string wrk, FindBinary("wrk"));
  int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(opts.duration));
  std::vector<std::string> argv = {
      wrk,
      "-t",
      absl::StrCat(opts.threads),
      "-c",
      absl::StrCat(opts.connections),
      "-d",
      absl::StrCat(std::max<int64_t>(1, (ms + 999) / 1000), "s"),
      "--timeout",
      "10s",
      opts.url};
  REQCOST_TS_ASSIGN_OR_RETURN(
      std::string out,
      RunTool(argv, opts.work_dir, "wrk", opts.duration + absl::Seconds(30)));
  return ParseWrkOutput(out);
}

// ---------------------------------------------------------- HttpGet

absl::StatusOr<HttpResponse> HttpGet(absl::string_view url,
                                     absl::Duration timeout) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("HttpGet: not an http:// URL: ", url));
  }
  size_t slash = rest.find('/');
  absl::string_view hostport = rest.substr(0, slash);
  std::string path =
      slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  size_t colon = hostport.rfind(':');
  int port = 80;
  std::string host(hostport.substr(0, colon));
  if (colon != absl::string_view::npos &&
      !absl::SimpleAtoi(hostport.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("HttpGet: bad port in ", url));
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HttpGet: host must be an IPv4 address: ", url));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  timeval tv{
      static_cast<time_t>(absl::ToInt64Seconds(timeout)),
      static_cast<suseconds_t>(absl::ToInt64Microseconds(timeout) % 1000000)};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("connect to ", hostport));
  }
  std::string req = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", hostport,
                                 "\r\nUser-Agent: reqcost-tests\r\n\r\n");
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(req.size())) {
    return absl::ErrnoToStatus(errno, absl::StrCat("send to ", hostport));
  }
  std::string raw;
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int left_ms =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (left_ms <= 0) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "GET %s: no complete response after %s (got %d bytes)", url,
          absl::FormatDuration(timeout), raw.size()));
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, left_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return absl::ErrnoToStatus(errno, "poll");
    if (r == 0) continue;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return absl::ErrnoToStatus(errno, absl::StrCat("recv from ", hostport));
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat(
        "GET ", url,
        ": response without a header block: ", raw.substr(0, 200)));
  }
  HttpResponse resp;
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(raw).substr(0, head_end), "\r\n");
  std::vector<absl::string_view> status_words = absl::StrSplit(lines[0], ' ');
  if (status_words.size() < 2 ||
      !absl::SimpleAtoi(status_words[1], &resp.status)) {
    return absl::DataLossError(
        absl::StrCat("GET ", url, ": bad status line: ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t c = lines[i].find(':');
    if (c == absl::string_view::npos) continue;
    resp.headers[absl::AsciiStrToLower(lines[i].substr(0, c))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(c + 1)));
  }
  resp.body = raw.substr(head_end + 4);
  return resp;
}

// ------------------------------------------------------------ parsers

absl::StatusOr<std::vector<BackendLogEntry>> ParseBackendLog(
    absl::string_view text) {
  std::vector<BackendLogEntry> out;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::MaxSplits(' ', 5));
    BackendLogEntry e;
    if (f.size() != 6 || !absl::SimpleAtoi(f[0], &e.pid) ||
        !absl::SimpleAtoi(f[1], &e.tid) ||
        !absl::SimpleAtoi(f[2], &e.start_ns) ||
        !absl::SimpleAtoi(f[3], &e.end_ns) ||
        !absl::SimpleAtoi(f[4], &e.elapsed_us) || e.end_ns < e.start_ns) {
      return LineError("backend log", line_no, line);
    }
    e.uri = std::string(f[5]);
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<BackendLogEntry>> ReadBackendLog(
    const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) return std::vector<BackendLogEntry>{};
  REQCOST_TS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseBackendLog(text);
}

absl::StatusOr<std::vector<BackendLogEntry>> WaitForBackendLog(
    const std::string& path, size_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<std::vector<BackendLogEntry>> log = ReadBackendLog(path);
    if (!log.ok() || log->size() >= n || absl::Now() >= deadline) return log;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<std::vector<PhpFpmAccessEntry>> ParsePhpFpmAccessLog(
    absl::string_view text) {
  std::vector<PhpFpmAccessEntry> out;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    PhpFpmAccessEntry e;
    if (f.size() != 5 || !absl::SimpleAtod(f[0], &e.duration_us) ||
        !absl::SimpleAtoi(f[1], &e.pid) || !absl::SimpleAtoi(f[4], &e.status)) {
      return LineError("php-fpm access log", line_no, line);
    }
    e.method = std::string(f[2]);
    e.uri = std::string(f[3]);
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<PhpFpmAccessEntry>> ReadPhpFpmAccessLog(
    const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) return std::vector<PhpFpmAccessEntry>{};
  REQCOST_TS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParsePhpFpmAccessLog(text);
}

std::vector<double> ElapsedUs(const std::vector<BackendLogEntry>& entries) {
  std::vector<double> out;
  out.reserve(entries.size());
  for (const auto& e : entries)
    out.push_back(static_cast<double>(e.end_ns - e.start_ns) / 1000.0);
  return out;
}

std::vector<double> DurationsUs(const std::vector<PhpFpmAccessEntry>& entries) {
  std::vector<double> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back(e.duration_us);
  return out;
}

Summary Summarize(std::vector<double> values) {
  Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = values.size();
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  s.min = values.front();
  s.max = values.back();
  auto rank = [&](double q) {
    size_t i =
        static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
    return values[std::min(values.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.p50 = rank(0.5);
  s.p90 = rank(0.9);
  return s;
}

}  // namespace reqcost::stack
