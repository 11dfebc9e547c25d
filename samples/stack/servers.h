// Starting and stopping the servers of a web stack on loopback: the sample
// FastCGI backend, php-fpm, nginx and lighttpd, each from the templates in
// samples/, with every file inside one TempDir. The executables and
// templates are read where data_dirs.h says (installed copies, or the build
// tree's); the paths below name them by their place in the source tree.
#ifndef REQCOST_SAMPLES_STACK_SERVERS_H_
#define REQCOST_SAMPLES_STACK_SERVERS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "samples/stack/process.h"

namespace reqcost::stack {

// A running server: its master process (owned: stopped at destruction), where
// it listens, and where it logs.
class Server {
 public:
  Server(Server&&) = default;
  Server& operator=(Server&&) = default;
  ~Server();

  // The master's PID (the process this library started).
  pid_t pid() const { return process_.pid(); }
  // The master's live children right now (nginx/php-fpm workers, the
  // backend's prefork workers, lighttpd's php-cgi), sorted.
  std::vector<pid_t> WorkerPids() const;
  // The master and all its live descendants, sorted.
  std::vector<pid_t> AllPids() const;
  // "unix:/path" or "127.0.0.1:PORT": give it to a front server as upstream.
  const std::string& address() const { return address_; }
  // TCP port for front servers (nginx, lighttpd); 0 otherwise.
  int port() const { return port_; }
  // http://HOST:PORT + path, HOST where it listens (front servers only;
  // https:// for nginx and lighttpd with TLS).
  std::string Url(absl::string_view path) const;
  // The backend's own per-request log: reqcost-fcgi-backend --log, or
  // php-fpm's access log; empty for nginx and lighttpd.
  const std::string& request_log() const { return request_log_; }
  // The server's error log (its stderr for the sample backend).
  const std::string& error_log() const { return error_log_; }
  // The configuration file written from the template (empty if none).
  const std::string& config() const { return config_; }
  // The exact command line that started it.
  const std::vector<std::string>& argv() const { return argv_; }
  // The last lines of the error log and of stderr, for failure messages.
  std::string LogTail(int lines = 20) const;

  // SIGTERM to the master; SIGKILL after `timeout`; reaped. Then waits for
  // every descendant seen before the stop to be gone (SIGKILL after
  // `timeout`). An error says what had to be killed.
  absl::Status Stop(absl::Duration timeout = absl::Seconds(10));

 private:
  friend class ServerBuilder;
  Server() = default;

  std::string name_;
  Subprocess process_;
  std::vector<std::string> argv_;
  std::string address_;
  int port_ = 0;
  std::string host_ = "127.0.0.1";
  std::string scheme_ = "http";
  std::string request_log_;
  std::string error_log_;
  std::string config_;
};

struct FcgiBackendOptions {
  // "unix:/path", "127.0.0.1:PORT", "tcp" (a free port) or empty
  // (unix:<dir>/<name>.sock).
  std::string listen;
  int workers = 1;               // prefork processes; 0 = serve in the master
  int threads = 1;               // per process
  std::string log;               // --log; empty = <dir>/<name>.log
  std::string mode = "fcgi";     // "fcgi" or "http"
  std::string name = "backend";  // file names in the temp dir
};

// Starts samples/fcgi-backend and waits until it accepts and all its workers
// run. request_log() is its --log.
absl::StatusOr<Server> StartFcgiBackend(const TempDir& dir,
                                        const FcgiBackendOptions& opts);

struct PhpFpmOptions {
  // A unix socket path (optionally "unix:"-prefixed), "127.0.0.1:PORT",
  // "tcp" (a free port) or empty (<dir>/php-fpm.sock).
  std::string listen;
  int children = 2;           // pm.max_children
  std::string pm = "static";  // static | dynamic | ondemand
  // pm.max_requests: each child exits after this many requests and the
  // master forks a new one (process churn); 0 = never.
  int max_requests = 0;
};

// Starts php-fpm (-F -R) from samples/php-fpm/php-fpm.conf.in and waits until
// it accepts and, unless ondemand, all its children run. request_log() is the
// access log (first field: php-fpm's own duration in µs).
absl::StatusOr<Server> StartPhpFpm(const TempDir& dir,
                                   const PhpFpmOptions& opts);

struct NginxOptions {
  int port = 0;                    // 0 = a free port
  std::string host = "127.0.0.1";  // listen address: "127.0.0.1" or "[::1]"
  int workers = 1;                 // worker_processes
  // Upstreams as "unix:/path" or "127.0.0.1:PORT"; empty ones point at a
  // socket that does not exist (requests there get 502).
  std::string upstream;       // php-fpm, for \.php$
  std::string fcgi_upstream;  // reqcost-fcgi-backend (fcgi), for /fcgi/
  std::string http_upstream;  // reqcost-fcgi-backend (http), for /proxy/
  bool keep_conn = false;     // fastcgi_keep_conn + upstream keepalive
  std::string docroot;        // empty = SamplesDir() + "/php"
  // Non-empty: HTTPS from samples/nginx/nginx-tls.conf.in with these
  // ssl_protocols ("TLSv1.2", "TLSv1.3", "TLSv1.2 TLSv1.3"); the certificate
  // and key are PEM files (a fresh self-signed pair in the temp dir when
  // empty: MakeSelfSignedCert).
  std::string ssl_protocols;
  std::string cert;
  std::string cert_key;
  // With ssl_protocols: also HTTP/2 on the TLS port (`listen ... ssl
  // http2`, negotiated by ALPN; nginx 1.22's syntax). Without: cleartext
  // HTTP/2 only (h2c with prior knowledge, `listen ... http2`).
  bool http2 = false;
};

// A certificate and its key, PEM files.
struct TlsCert {
  std::string cert;
  std::string key;
};

// A self-signed P-256 certificate for CN=localhost made by `openssl req
// -x509 -newkey ec ... -nodes` in `dir` (tls-cert.pem, tls-key.pem).
absl::StatusOr<TlsCert> MakeSelfSignedCert(const TempDir& dir);

// Starts nginx (daemon off, master + workers) from
// samples/nginx/nginx.conf.in (nginx-tls.conf.in with ssl_protocols) and
// waits until it accepts and its workers run.
absl::StatusOr<Server> StartNginx(const TempDir& dir, const NginxOptions& opts);

struct ResolvingFrontOptions {
  int port = 0;  // 0 = a free port
  // HOST:PORT of reqcost-fcgi-backend (fcgi mode, TCP); HOST is resolved
  // with getaddrinfo on every request, so give a name ("localhost").
  std::string backend;
  int threads = 4;        // serving threads (ab -c N needs N)
  std::string udp_echo;   // 127.0.0.1:PORT of StartDatagramEcho, or empty
  std::string unix_echo;  // its unix datagram path, or empty
};

// Starts samples/resolving-front and waits until it accepts.
absl::StatusOr<Server> StartResolvingFront(const TempDir& dir,
                                           const ResolvingFrontOptions& opts);

// Starts reqcost-resolving-front --echo: a UDP echo on a free 127.0.0.1 port
// (address() is "127.0.0.1:PORT") and, when `unix_path` is non-empty, a unix
// datagram echo there; waits (bounded) until it says it listens.
absl::StatusOr<Server> StartDatagramEcho(const TempDir& dir,
                                         const std::string& unix_path);

struct FrontServerOptions {
  int port = 0;  // 0 = a free port
  // Backend addresses ("unix:/path" or "127.0.0.1:PORT"); a request picks
  // one with ?be=K (default 0).
  std::vector<std::string> backends;
  bool keep_backend = false;  // one kept FastCGI link per backend
};

// Starts samples/front-server and waits until it accepts. request_log() is
// its --log: the server and link time of each request from its own clock.
absl::StatusOr<Server> StartFrontServer(const TempDir& dir,
                                        const FrontServerOptions& opts);

// Starts reqcost-front-server --responder, a FastCGI responder that logs its
// own backend time at reqcost's instants ("start_ns end_ns elapsed_us
// slack_us uri": request_log()), on `listen` ("tcp" for a free 127.0.0.1
// port, "" for unix:<dir>/<name>.sock), and waits until it accepts.
absl::StatusOr<Server> StartFcgiResponder(const TempDir& dir,
                                          const std::string& name,
                                          const std::string& listen);

struct LighttpdOptions {
  int port = 0;  // 0 = a free port
  // php-fpm's address ("unix:/path" or "127.0.0.1:PORT"); ignored when
  // spawn_php_cgi.
  std::string php_fpm;
  bool spawn_php_cgi = false;  // lighttpd starts php-cgi itself (bin-path)
  int php_cgi_children = 2;    // PHP_FCGI_CHILDREN when spawning
  std::string docroot;         // empty = SamplesDir() + "/php"
  // HTTPS (mod_openssl: TLS 1.2 and 1.3, HTTP/2 by ALPN) instead of plain
  // HTTP; the certificate and key are PEM files (a fresh self-signed pair in
  // the temp dir when empty: MakeSelfSignedCert).
  bool tls = false;
  std::string cert;
  std::string cert_key;
};

// Starts lighttpd -D from samples/lighttpd/lighttpd.conf.in and waits until it
// accepts (and, when spawning, php-cgi runs). Url() is https:// with tls.
absl::StatusOr<Server> StartLighttpd(const TempDir& dir,
                                     const LighttpdOptions& opts);

}  // namespace reqcost::stack

#endif  // REQCOST_SAMPLES_STACK_SERVERS_H_
