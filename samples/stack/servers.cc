#include "samples/stack/servers.h"

#include <signal.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "samples/stack/status_macros.h"
#include "samples/stack/template.h"

namespace reqcost::stack {

constexpr absl::Duration kStartTimeout = absl::Seconds(15);

// Builds Server objects (the only code that fills their fields).
class ServerBuilder {
 public:
  // Starts argv and wraps it; `wait_address` is connected to until it
  // accepts, then `workers` children are waited for.
  static absl::StatusOr<Server> Launch(const TempDir& dir, std::string name,
                                       std::vector<std::string> argv, std::string address,
                                       std::string wait_address, int port, size_t workers,
                                       std::string request_log, std::string error_log,
                                       std::string config) {
    Server s;
    s.name_ = std::move(name);
    s.argv_ = argv;
    s.address_ = std::move(address);
    s.port_ = port;
    s.request_log_ = std::move(request_log);
    s.error_log_ = std::move(error_log);
    s.config_ = std::move(config);
    REQCOST_TS_ASSIGN_OR_RETURN(
        s.process_, Subprocess::Start(argv, dir.File(s.name_ + ".stdout"),
                                      dir.File(s.name_ + ".stderr")));
    absl::Status listening = WaitForListening(wait_address, kStartTimeout, &s.process_);
    if (!listening.ok()) {
      return absl::Status(listening.code(),
                          absl::StrFormat("%s did not start (%s): %s\n%s", s.name_,
                                          absl::StrJoin(argv, " "), listening.message(),
                                          s.LogTail()));
    }
    if (workers > 0) {
      absl::StatusOr<std::vector<pid_t>> children =
          WaitForChildren(s.pid(), workers, kStartTimeout);
      if (!children.ok()) {
        return absl::Status(children.status().code(),
                            absl::StrFormat("%s: %s\n%s", s.name_, children.status().message(),
                                            s.LogTail()));
      }
    }
    return s;
  }
};

namespace {

// "unix:/p" or "/p" -> "/p"; anything else unchanged.
std::string UnixPath(absl::string_view address) {
  absl::ConsumePrefix(&address, "unix:");
  return std::string(address);
}

bool IsUnix(absl::string_view address) {
  return absl::StartsWith(address, "unix:") || absl::StartsWith(address, "/");
}

// Resolves "tcp" to a free 127.0.0.1 port and "" to `default_unix`.
absl::StatusOr<std::string> ResolveListen(const std::string& listen,
                                          const std::string& default_unix) {
  if (listen.empty()) return "unix:" + default_unix;
  if (listen == "tcp") {
    REQCOST_TS_ASSIGN_OR_RETURN(int port, FreeTcpPort());
    return absl::StrCat("127.0.0.1:", port);
  }
  if (absl::StartsWith(listen, "/")) return "unix:" + listen;
  return listen;
}

}  // namespace

// ----------------------------------------------------------------- Server

Server::~Server() {
  if (process_.pid() > 0) (void)Stop();
}

std::vector<pid_t> Server::WorkerPids() const {
  std::vector<pid_t> out;
  if (process_.pid() <= 0) return out;
  for (pid_t p : ChildPids(process_.pid())) {
    if (ProcessAlive(p)) out.push_back(p);
  }
  return out;
}

std::vector<pid_t> Server::AllPids() const {
  std::vector<pid_t> out;
  if (process_.pid() <= 0) return out;
  out.push_back(process_.pid());
  for (pid_t p : DescendantPids(process_.pid())) {
    if (ProcessAlive(p)) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string Server::Url(absl::string_view path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

std::string Server::LogTail(int lines) const {
  std::string out;
  if (!error_log_.empty() && error_log_ != process_.stderr_path()) {
    absl::StrAppend(&out, "--- ", error_log_, ":\n", FileTail(error_log_, lines), "\n");
  }
  absl::StrAppend(&out, "--- ", process_.stderr_path(), ":\n",
                  FileTail(process_.stderr_path(), lines));
  return out;
}

absl::Status Server::Stop(absl::Duration timeout) {
  if (process_.pid() <= 0) return absl::OkStatus();
  std::vector<pid_t> descendants = DescendantPids(process_.pid());
  absl::Status result = process_.Stop(timeout).status();
  absl::Status rest = WaitForGoneOrKill(descendants, timeout);
  if (result.ok() && !rest.ok()) result = rest;
  if (!result.ok()) {
    return absl::Status(result.code(), absl::StrFormat("stopping %s (PID %d): %s\n%s", name_,
                                                       process_.pid(), result.message(),
                                                       LogTail()));
  }
  return absl::OkStatus();
}

// -------------------------------------------------------------- starters

absl::StatusOr<Server> StartFcgiBackend(const TempDir& dir, const FcgiBackendOptions& opts) {
  if (opts.mode != "fcgi" && opts.mode != "http") {
    return absl::InvalidArgumentError(absl::StrCat("FcgiBackendOptions.mode must be fcgi or http, not ", opts.mode));
  }
  REQCOST_TS_ASSIGN_OR_RETURN(std::string listen,
                              ResolveListen(opts.listen, dir.File(opts.name + ".sock")));
  std::string log = opts.log.empty() ? dir.File(opts.name + ".log") : opts.log;
  std::vector<std::string> argv = {FcgiBackendBinary(),
                                   "--listen",
                                   listen,
                                   "--mode",
                                   opts.mode,
                                   "--workers",
                                   absl::StrCat(opts.workers),
                                   "--threads",
                                   absl::StrCat(opts.threads),
                                   "--log",
                                   log};
  return ServerBuilder::Launch(dir, opts.name, argv, listen, listen, 0,
                               static_cast<size_t>(opts.workers), log,
                               dir.File(opts.name + ".stderr"), "");
}

absl::StatusOr<Server> StartPhpFpm(const TempDir& dir, const PhpFpmOptions& opts) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string php_fpm, FindBinary("php-fpm"));
  REQCOST_TS_ASSIGN_OR_RETURN(std::string address,
                              ResolveListen(opts.listen, dir.File("php-fpm.sock")));
  std::string config = dir.File("php-fpm.conf");
  REQCOST_TS_RETURN_IF_ERROR(FillTemplateFile(
      SamplesDir() + "/php-fpm/php-fpm.conf.in",
      {{"PREFIX", dir.path()},
       {"LISTEN", IsUnix(address) ? UnixPath(address) : address},
       {"PM", opts.pm},
       {"CHILDREN", absl::StrCat(opts.children)}},
      config));
  std::vector<std::string> argv = {php_fpm, "-F", "-R", "-y", config, "-p", dir.path()};
  size_t workers = opts.pm == "ondemand" ? 0 : static_cast<size_t>(opts.children);
  return ServerBuilder::Launch(dir, "php-fpm", argv, address, address, 0, workers,
                               dir.File("php-fpm-access.log"), dir.File("php-fpm-error.log"),
                               config);
}

absl::StatusOr<Server> StartNginx(const TempDir& dir, const NginxOptions& opts) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string nginx, FindBinary("nginx"));
  int port = opts.port;
  if (port == 0) {
    REQCOST_TS_ASSIGN_OR_RETURN(port, FreeTcpPort());
  }
  std::string unused = "unix:" + dir.File("no-such-upstream.sock");
  auto or_unused = [&](const std::string& s) {
    if (s.empty()) return unused;
    return absl::StartsWith(s, "/") ? "unix:" + s : s;
  };
  std::string config = dir.File("nginx.conf");
  std::string error_log = dir.File("nginx-error.log");
  REQCOST_TS_RETURN_IF_ERROR(FillTemplateFile(
      SamplesDir() + "/nginx/nginx.conf.in",
      {{"PREFIX", dir.path()},
       {"WORKERS", absl::StrCat(opts.workers)},
       {"PORT", absl::StrCat(port)},
       {"DOCROOT", opts.docroot.empty() ? SamplesDir() + "/php" : opts.docroot},
       {"UPSTREAM", or_unused(opts.upstream)},
       {"FCGI_UPSTREAM", or_unused(opts.fcgi_upstream)},
       {"HTTP_UPSTREAM", or_unused(opts.http_upstream)},
       {"KEEP_CONN", opts.keep_conn ? "on" : "off"},
       {"KEEPALIVE", opts.keep_conn ? "keepalive 8;" : ""},
       {"PROXY_HTTP_VERSION", opts.keep_conn ? "1.1" : "1.0"},
       {"PROXY_CONNECTION", opts.keep_conn ? "" : "close"}},
      config));
  std::vector<std::string> argv = {nginx, "-p", dir.path() + "/", "-c", config, "-e", error_log};
  std::string address = absl::StrCat("127.0.0.1:", port);
  return ServerBuilder::Launch(dir, "nginx", argv, address, address, port,
                               static_cast<size_t>(opts.workers), "", error_log, config);
}

absl::StatusOr<Server> StartLighttpd(const TempDir& dir, const LighttpdOptions& opts) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string lighttpd, FindBinary("lighttpd"));
  int port = opts.port;
  if (port == 0) {
    REQCOST_TS_ASSIGN_OR_RETURN(port, FreeTcpPort());
  }
  std::string fastcgi;
  if (opts.spawn_php_cgi) {
    REQCOST_TS_ASSIGN_OR_RETURN(std::string php_cgi, FindBinary("php-cgi"));
    fastcgi = absl::StrFormat(
        "\"socket\" => \"%s\", \"bin-path\" => \"%s\", \"max-procs\" => 1, "
        "\"bin-environment\" => ( \"PHP_FCGI_CHILDREN\" => \"%d\", "
        "\"PHP_FCGI_MAX_REQUESTS\" => \"100000\" )",
        dir.File("php-cgi.sock"), php_cgi, opts.php_cgi_children);
  } else if (opts.php_fpm.empty()) {
    return absl::InvalidArgumentError(
        "LighttpdOptions: give php_fpm (its address) or set spawn_php_cgi");
  } else if (IsUnix(opts.php_fpm)) {
    fastcgi = absl::StrFormat("\"socket\" => \"%s\", \"check-local\" => \"disable\"",
                              UnixPath(opts.php_fpm));
  } else {
    size_t colon = opts.php_fpm.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("LighttpdOptions.php_fpm: bad address ", opts.php_fpm));
    }
    fastcgi = absl::StrFormat(
        "\"host\" => \"%s\", \"port\" => %s, \"check-local\" => \"disable\"",
        opts.php_fpm.substr(0, colon), opts.php_fpm.substr(colon + 1));
  }
  std::string config = dir.File("lighttpd.conf");
  std::string error_log = dir.File("lighttpd-error.log");
  REQCOST_TS_RETURN_IF_ERROR(FillTemplateFile(
      SamplesDir() + "/lighttpd/lighttpd.conf.in",
      {{"PREFIX", dir.path()},
       {"PORT", absl::StrCat(port)},
       {"DOCROOT", opts.docroot.empty() ? SamplesDir() + "/php" : opts.docroot},
       {"FASTCGI", fastcgi}},
      config));
  std::vector<std::string> argv = {lighttpd, "-D", "-f", config};
  std::string address = absl::StrCat("127.0.0.1:", port);
  return ServerBuilder::Launch(dir, "lighttpd", argv, address, address, port,
                               opts.spawn_php_cgi ? 1 : 0, "", error_log, config);
}

}  // namespace reqcost::stack
