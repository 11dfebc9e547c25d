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
#include "absl/time/clock.h"
#include "samples/stack/data_dirs.h"
#include "samples/stack/status_macros.h"
#include "samples/stack/template.h"

namespace reqcost::stack {

constexpr absl::Duration kStartTimeout = absl::Seconds(15);

// Builds Server objects (the only code that fills their fields).
class ServerBuilder {
 public:
  // Starts argv and wraps it; `wait_address` is connected to until it
  // accepts, then `workers` children are waited for.
  static absl::StatusOr<Server> Launch(
      const TempDir& dir, std::string name, std::vector<std::string> argv,
      std::string address, std::string wait_address, int port, size_t workers,
      std::string request_log, std::string error_log, std::string config,
      std::string scheme = "http", std::string host = "127.0.0.1") {
    Server s;
    s.scheme_ = std::move(scheme);
    s.host_ = std::move(host);
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
    absl::Status listening =
        wait_address.empty()
            ? absl::OkStatus()
            : WaitForListening(wait_address, kStartTimeout, &s.process_);
    if (!listening.ok()) {
      return absl::Status(listening.code(),
                          absl::StrFormat("%s did not start (%s): %s\n%s",
                                          s.name_, absl::StrJoin(argv, " "),
                                          listening.message(), s.LogTail()));
    }
    if (workers > 0) {
      absl::StatusOr<std::vector<pid_t>> children =
          WaitForChildren(s.pid(), workers, kStartTimeout);
      if (!children.ok()) {
        return absl::Status(
            children.status().code(),
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
  return absl::StrCat(scheme_, "://", host_, ":", port_, path);
}

std::string Server::LogTail(int lines) const {
  std::string out;
  if (!error_log_.empty() && error_log_ != process_.stderr_path()) {
    absl::StrAppend(&out, "--- ", error_log_, ":\n",
                    FileTail(error_log_, lines), "\n");
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
    return absl::Status(
        result.code(),
        absl::StrFormat("stopping %s (PID %d): %s\n%s", name_, process_.pid(),
                        result.message(), LogTail()));
  }
  return absl::OkStatus();
}

// -------------------------------------------------------------- starters

absl::StatusOr<Server> StartFcgiBackend(const TempDir& dir,
                                        const FcgiBackendOptions& opts) {
  if (opts.mode != "fcgi" && opts.mode != "http") {
    return absl::InvalidArgumentError(absl::StrCat(
        "FcgiBackendOptions.mode must be fcgi or http, not ", opts.mode));
  }
  REQCOST_TS_ASSIGN_OR_RETURN(
      std::string listen,
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

absl::StatusOr<Server> StartPhpFpm(const TempDir& dir,
                                   const PhpFpmOptions& opts) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string php_fpm, FindBinary("php-fpm"));
  REQCOST_TS_ASSIGN_OR_RETURN(
      std::string address,
      ResolveListen(opts.listen, dir.File("php-fpm.sock")));
  std::string config = dir.File("php-fpm.conf");
  REQCOST_TS_RETURN_IF_ERROR(FillTemplateFile(
      SamplesDir() + "/php-fpm/php-fpm.conf.in",
      {{"PREFIX", dir.path()},
       {"LISTEN", IsUnix(address) ? UnixPath(address) : address},
       {"PM", opts.pm},
       {"CHILDREN", absl::StrCat(opts.children)},
       {"MAX_REQUESTS", absl::StrCat(opts.max_requests)}},
      config));
  std::vector<std::string> argv = {php_fpm, "-F", "-R",      "-y",
                                   config,  "-p", dir.path()};
  size_t workers =
      opts.pm == "ondemand" ? 0 : static_cast<size_t>(opts.children);
  return ServerBuilder::Launch(dir, "php-fpm", argv, address, address, 0,
                               workers, dir.File("php-fpm-access.log"),
                               dir.File("php-fpm-error.log"), config);
}

absl::StatusOr<TlsCert> MakeSelfSignedCert(const TempDir& dir) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string openssl, FindBinary("openssl"));
  TlsCert c{dir.File("tls-cert.pem"), dir.File("tls-key.pem")};
  std::vector<std::string> argv = {openssl,
                                   "req",
                                   "-x509",
                                   "-newkey",
                                   "ec",
                                   "-pkeyopt",
                                   "ec_paramgen_curve:prime256v1",
                                   "-keyout",
                                   c.key,
                                   "-out",
                                   c.cert,
                                   "-days",
                                   "2",
                                   "-nodes",
                                   "-subj",
                                   "/CN=localhost"};
  REQCOST_TS_ASSIGN_OR_RETURN(
      Subprocess p, Subprocess::Start(argv, dir.File("openssl.stdout"),
                                      dir.File("openssl.stderr")));
  absl::StatusOr<int> status = p.WaitForExit(absl::Seconds(30));
  if (!status.ok()) {
    (void)p.Stop(absl::Seconds(2));
    return status.status();
  }
  if (*status != 0) {
    return absl::InternalError(absl::StrFormat(
        "%s %s: %s", absl::StrJoin(argv, " "), DescribeWaitStatus(*status),
        FileTail(dir.File("openssl.stderr"))));
  }
  return c;
}

absl::StatusOr<Server> StartNginx(const TempDir& dir,
                                  const NginxOptions& opts) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string nginx, FindBinary("nginx"));
  const bool tls = !opts.ssl_protocols.empty();
  TlsCert cert{opts.cert, opts.cert_key};
  if (tls && (cert.cert.empty() || cert.key.empty())) {
    REQCOST_TS_ASSIGN_OR_RETURN(cert, MakeSelfSignedCert(dir));
  }
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
      SamplesDir() +
          (tls ? "/nginx/nginx-tls.conf.in" : "/nginx/nginx.conf.in"),
      {{"PREFIX", dir.path()},
       {"WORKERS", absl::StrCat(opts.workers)},
       {"PORT", absl::StrCat(port)},
       {"HOST", opts.host},
       {"DOCROOT", opts.docroot.empty() ? SamplesDir() + "/php" : opts.docroot},
       {"UPSTREAM", or_unused(opts.upstream)},
       {"FCGI_UPSTREAM", or_unused(opts.fcgi_upstream)},
       {"HTTP_UPSTREAM", or_unused(opts.http_upstream)},
       {"KEEP_CONN", opts.keep_conn ? "on" : "off"},
       {"KEEPALIVE", opts.keep_conn ? "keepalive 8;" : ""},
       {"PROXY_HTTP_VERSION", opts.keep_conn ? "1.1" : "1.0"},
       {"PROXY_CONNECTION", opts.keep_conn ? "" : "close"},
       {"CERT", cert.cert},
       {"CERT_KEY", cert.key},
       {"SSL_PROTOCOLS", opts.ssl_protocols},
       {"HTTP2", opts.http2 ? " http2" : ""}},
      config));
  std::vector<std::string> argv = {nginx,  "-p", dir.path() + "/", "-c",
                                   config, "-e", error_log};
  std::string address = absl::StrCat(opts.host, ":", port);
  return ServerBuilder::Launch(dir, "nginx", argv, address, address, port,
                               static_cast<size_t>(opts.workers), "", error_log,
                               config, tls ? "https" : "http", opts.host);
}

absl::StatusOr<Server> StartResolvingFront(const TempDir& dir,
                                           const ResolvingFrontOptions& opts) {
  if (opts.backend.empty()) {
    return absl::InvalidArgumentError(
        "ResolvingFrontOptions.backend (HOST:PORT) is required");
  }
  int port = opts.port;
  if (port == 0) {
    REQCOST_TS_ASSIGN_OR_RETURN(port, FreeTcpPort());
  }
  std::string address = absl::StrCat("127.0.0.1:", port);
  std::vector<std::string> argv = {ResolvingFrontBinary(),
                                   "--listen",
                                   address,
                                   "--backend",
                                   opts.backend,
                                   "--threads",
                                   absl::StrCat(opts.threads)};
  if (!opts.udp_echo.empty()) {
    argv.push_back("--udp-echo");
    argv.push_back(opts.udp_echo);
  }
  if (!opts.unix_echo.empty()) {
    argv.push_back("--unix-echo");
    argv.push_back(opts.unix_echo);
  }
  return ServerBuilder::Launch(dir, "resolving-front", argv, address, address,
                               port, 0, "", dir.File("resolving-front.stderr"),
                               "");
}

absl::StatusOr<Server> StartDatagramEcho(const TempDir& dir,
                                         const std::string& unix_path) {
  REQCOST_TS_ASSIGN_OR_RETURN(
      int port, FreeTcpPort());  // free for TCP; UDP is checked by bind
  std::string address = absl::StrCat("127.0.0.1:", port);
  std::vector<std::string> argv = {ResolvingFrontBinary(), "--echo",
                                   "--udp-listen", address};
  if (!unix_path.empty()) {
    argv.push_back("--unix-listen");
    argv.push_back(unix_path);
  }
  // No stream socket to connect to: the empty wait address makes Launch skip
  // WaitForListening; the "listening on" line is awaited below.
  REQCOST_TS_ASSIGN_OR_RETURN(
      Server s,
      ServerBuilder::Launch(dir, "datagram-echo", argv, address, "", 0, 0, "",
                            dir.File("datagram-echo.stderr"), ""));
  absl::Time deadline = absl::Now() + kStartTimeout;
  while (true) {
    absl::StatusOr<std::string> err = ReadFileToString(s.error_log());
    if (err.ok() && absl::StrContains(*err, "listening on")) return s;
    if (absl::Now() >= deadline || !ProcessAlive(s.pid())) {
      return absl::DeadlineExceededError(
          absl::StrCat("datagram echo did not start: ", s.LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<Server> StartFrontServer(const TempDir& dir,
                                        const FrontServerOptions& opts) {
  if (opts.backends.empty()) {
    return absl::InvalidArgumentError("FrontServerOptions.backends is empty");
  }
  int port = opts.port;
  if (port == 0) {
    REQCOST_TS_ASSIGN_OR_RETURN(port, FreeTcpPort());
  }
  std::string address = absl::StrCat("127.0.0.1:", port);
  std::string log = dir.File("front-server.log");
  std::vector<std::string> argv = {FrontServerBinary(), "--listen", address,
                                   "--log", log};
  for (const std::string& b : opts.backends) {
    argv.push_back("--backend");
    argv.push_back(IsUnix(b) ? "unix:" + UnixPath(b) : b);
  }
  if (opts.keep_backend) argv.push_back("--keep-backend");
  return ServerBuilder::Launch(dir, "front-server", argv, address, address,
                               port, 0, log, dir.File("front-server.stderr"),
                               "");
}

absl::StatusOr<Server> StartFcgiResponder(const TempDir& dir,
                                          const std::string& name,
                                          const std::string& listen) {
  REQCOST_TS_ASSIGN_OR_RETURN(std::string address,
                              ResolveListen(listen, dir.File(name + ".sock")));
  std::string log = dir.File(name + ".log");
  std::vector<std::string> argv = {
      FrontServerBinary(), "--responder", "--listen", address, "--log", log};
  return ServerBuilder::Launch(dir, name, argv, address, address, 0, 0, log,
                               dir.File(name + ".stderr"), "");
}

absl::StatusOr<Server> StartLighttpd(const TempDir& dir,
                                     const LighttpdOptions& opts) {
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
    fastcgi =
        absl::StrFormat("\"socket\" => \"%s\", \"check-local\" => \"disable\"",
                        UnixPath(opts.php_fpm));
  } else {
    size_t colon = opts.php_fpm.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("LighttpdOptions.php_fpm: bad address ", opts.php_fpm));
    }
    fastcgi = absl::StrFormat(
        "\"host\" => \"%s\", \"port\" => %s, \"check-local\" => \"disable\"",
        opts.php_fpm.substr(0, colon), opts.php_fpm.substr(colon + 1));
  }
  std::string tls;
  if (opts.tls) {
    TlsCert cert{opts.cert, opts.cert_key};
    if (cert.cert.empty() || cert.key.empty()) {
      REQCOST_TS_ASSIGN_OR_RETURN(cert, MakeSelfSignedCert(dir));
    }
    tls = absl::StrFormat(
        "server.modules += ( \"mod_openssl\" )\n"
        "ssl.engine = \"enable\"\n"
        "ssl.pemfile = \"%s\"\n"
        "ssl.privkey = \"%s\"\n"
        "ssl.openssl.ssl-conf-cmd = ( \"MinProtocol\" => \"TLSv1.2\" )\n",
        cert.cert, cert.key);
  }
  std::string config = dir.File("lighttpd.conf");
  std::string error_log = dir.File("lighttpd-error.log");
  REQCOST_TS_RETURN_IF_ERROR(FillTemplateFile(
      SamplesDir() + "/lighttpd/lighttpd.conf.in",
      {{"PREFIX", dir.path()},
       {"PORT", absl::StrCat(port)},
       {"DOCROOT", opts.docroot.empty() ? SamplesDir() + "/php" : opts.docroot},
       {"FASTCGI", fastcgi},
       {"TLS", tls}},
      config));
  std::vector<std::string> argv = {lighttpd, "-D", "-f", config};
  std::string address = absl::StrCat("127.0.0.1:", port);
  REQCOST_TS_ASSIGN_OR_RETURN(
      Server s, ServerBuilder::Launch(dir, "lighttpd", argv, address, address,
                                      port, opts.spawn_php_cgi ? 1 : 0, "",
                                      error_log, config,
                                      opts.tls ? "https" : "http"));
  if (opts.spawn_php_cgi) {
    // Launch waited for lighttpd's child, the php-cgi master; its
    // PHP_FCGI_CHILDREN workers come a moment later.
    absl::StatusOr<std::vector<pid_t>> tree = WaitForDescendants(
        s.pid(), 1 + static_cast<size_t>(opts.php_cgi_children),
        kStartTimeout);
    if (!tree.ok()) {
      return absl::Status(tree.status().code(),
                          absl::StrFormat("lighttpd: %s\n%s",
                                          tree.status().message(),
                                          s.LogTail()));
    }
  }
  return s;
}

}  // namespace reqcost::stack
