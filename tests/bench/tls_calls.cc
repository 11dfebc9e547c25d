// What one TLS call costs the thread that makes it under reqcost's TLS
// probes, with nothing else in the way: a child process of this program
// runs a client and a server SSL over an in-memory BIO pair (no sockets, no
// syscalls: only the TLS library, its uprobes and reqcost's programs), and
// makes per request the calls of nginx's HTTPS keep-alive request plus the
// client's: the client writes the request, the server reads it and writes
// the response, the client reads it, and the server reads again and gets
// SSL_ERROR_WANT_READ. Five calls a request, three of them the server's.
//
// Two protocols, each on a fresh connection per run:
//   http1  "GET / HTTP/1.1" and "HTTP/1.1 200 OK": once a connection's
//          first read showed HTTP/1.x, reqcost leaves its calls at their
//          entry unless --payload asks for plaintext (docs/definitions.md)
//   h2     the client preface and SETTINGS, then per request a HEADERS
//          frame with END_STREAM, answered by HEADERS and DATA with
//          END_STREAM: every call followed to its return, frames walked
// and three modes, in rotating order per round, with reqcost's tracer
// attached to the child in-process:
//   off        the tracer without its TLS probes
//   session    the probes as reqcost attaches them on this kernel: one
//              uprobe session link (6.12+), no return trap for a call left
//              at its entry
//   two-links  the same probes as two uprobe_multi links (entries, returns)
//   payload    the session link with --payload 64: the plaintext wanted, so
//              every call is followed to its return and emits a record
//   floor      the tracer without its probes, plus floor.bpf.c's empty
//              uprobe and uretprobe at the same sites: two traps a call
//   floor-entry  the empty uprobe alone: one trap a call
// Per run: the child's thread CPU per call (CLOCK_THREAD_CPUTIME_ID around
// the requests), and reqcost's counters (calls, return traps). Prints, per
// protocol and mode, the median (min..max) over the rounds, and the median
// of the per-round differences to off: what a call costs, and times three
// what an nginx HTTPS request pays. Root; exits 77 (skipped) without BPF
// unless REQCOST_REQUIRE_BPF=1.
//
//   tls_calls [--rounds=N] [--requests=N] [--quick]
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "analyzers/http2_frames.h"
#include "collector/tracer.h"
#include "tests/bench/floor_uprobes.h"
#include "tests/bench/round_figures.h"

namespace reqcost::bench {
namespace {

enum class Mode { kOff, kSession, kTwoLinks, kPayload, kFloor, kFloorEntry };
constexpr Mode kModes[] = {Mode::kOff,     Mode::kSession, Mode::kTwoLinks,
                           Mode::kPayload, Mode::kFloor,   Mode::kFloorEntry};
constexpr int kModeCount = 6;
const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kOff: return "off";
    case Mode::kSession: return "session";
    case Mode::kTwoLinks: return "two-links";
    case Mode::kPayload: return "payload";
    case Mode::kFloor: return "floor";
    case Mode::kFloorEntry: return "floor-entry";
  }
  return "?";
}

constexpr int kCallsPerRequest = 5;
constexpr int kWarmupRequests = 200;

// ---- The child: a TLS client and server in one thread.

// A self-signed P-256 certificate for the server, made in memory.
bool UseNewCertificate(SSL_CTX* ctx) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (key == nullptr || cert == nullptr) return false;
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("reqcost"),
                             -1, -1, 0);
  X509_set_issuer_name(cert, name);
  const bool ok = X509_sign(cert, key, EVP_sha256()) > 0 &&
                  SSL_CTX_use_certificate(ctx, cert) == 1 &&
                  SSL_CTX_use_PrivateKey(ctx, key) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

struct Connection {
  SSL* client = nullptr;
  SSL* server = nullptr;
  ~Connection() {
    SSL_free(client);  // each frees its end of the BIO pair
    SSL_free(server);
  }
};

// A handshaken pair of SSLs over an in-memory BIO pair.
std::unique_ptr<Connection> Connect(SSL_CTX* client_ctx, SSL_CTX* server_ctx) {
  auto c = std::make_unique<Connection>();
  BIO *a = nullptr, *b = nullptr;
  if (BIO_new_bio_pair(&a, 0, &b, 0) != 1) return nullptr;
  c->client = SSL_new(client_ctx);
  c->server = SSL_new(server_ctx);
  SSL_set_bio(c->client, a, a);
  SSL_set_bio(c->server, b, b);
  SSL_set_connect_state(c->client);
  SSL_set_accept_state(c->server);
  for (int i = 0; i < 20; ++i) {
    const int rc = SSL_do_handshake(c->client);
    const int rs = SSL_do_handshake(c->server);
    if (rc == 1 && rs == 1) return c;
  }
  return nullptr;
}

bool WriteAll(SSL* ssl, const std::string& bytes) {
  return SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) ==
         static_cast<int>(bytes.size());
}

bool ReadSome(SSL* ssl) {
  char buf[4096];
  return SSL_read(ssl, buf, sizeof(buf)) > 0;
}

// The server's last read of a request finds nothing: WANT_READ.
bool ReadNothing(SSL* ssl) {
  char buf[4096];
  return SSL_read(ssl, buf, sizeof(buf)) <= 0 &&
         SSL_get_error(ssl, -1) == SSL_ERROR_WANT_READ;
}

using analyzers::EncodeHttp2Frame;

// One request's five calls; false when one did not do what it should.
bool Request(Connection& c, bool h2, uint32_t stream) {
  std::string request, response;
  if (h2) {
    // HEADERS (END_STREAM | END_HEADERS), ":method: GET" indexed; the
    // answer HEADERS (END_HEADERS) ":status: 200", then DATA (END_STREAM).
    request = EncodeHttp2Frame(1, 0x5, stream, "\x82");
    response = EncodeHttp2Frame(1, 0x4, stream, "\x88") +
               EncodeHttp2Frame(0, 0x1, stream, "hello\n");
  } else {
    request = "GET / HTTP/1.1\r\nHost: reqcost\r\n\r\n";
    response = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";
  }
  return WriteAll(c.client, request) && ReadSome(c.server) &&
         WriteAll(c.server, response) && ReadSome(c.client) &&
         ReadNothing(c.server);
}

double ThreadCpuNs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

// Serves the parent's runs: a byte '1' or '2' (protocol) starts one on a
// fresh connection, and the thread CPU per call goes back as a double (a
// negative one when a call failed); EOF ends it.
int ChildMain(int in, int out, int requests) {
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  if (server_ctx == nullptr || client_ctx == nullptr ||
      !UseNewCertificate(server_ctx)) {
    return 1;
  }
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, nullptr);
  char what;
  while (read(in, &what, 1) == 1) {
    const bool h2 = what == '2';
    double per_call = -1;
    std::unique_ptr<Connection> c = Connect(client_ctx, server_ctx);
    bool ok = c != nullptr;
    if (ok && h2) {
      // The client preface and SETTINGS; the server's SETTINGS.
      ok = WriteAll(c->client, std::string(analyzers::kHttp2ClientPreface) +
                                   EncodeHttp2Frame(4, 0, 0, "")) &&
           ReadSome(c->server) &&
           WriteAll(c->server, EncodeHttp2Frame(4, 0, 0, "")) &&
           ReadSome(c->client) && ReadNothing(c->server);
    }
    uint32_t stream = 1;
    for (int i = 0; ok && i < kWarmupRequests; ++i, stream += 2) {
      ok = Request(*c, h2, stream);
    }
    if (ok) {
      const double t0 = ThreadCpuNs();
      for (int i = 0; ok && i < requests; ++i, stream += 2) {
        ok = Request(*c, h2, stream);
      }
      const double t1 = ThreadCpuNs();
      if (ok) per_call = (t1 - t0) / (static_cast<double>(requests) *
                                      kCallsPerRequest);
    }
    ERR_clear_error();
    if (write(out, &per_call, sizeof(per_call)) != sizeof(per_call)) return 1;
  }
  return 0;
}

// ---- The parent: the tracer, the rounds, the figures.

struct Figures {
  double ns_per_call = 0;
  double returns_per_call = 0;  // return traps per call (reqcost's counters)
  double records_per_call = 0;  // TLS data records per call
};

int Main(int argc, char** argv) {
  RoundsFlags flags{9, 20000};
  if (int rc = StartBench(argc, argv, "tls_calls", {2, 2000}, &flags); rc != 0) {
    return rc;
  }
  const int rounds = flags.rounds;
  const int requests = flags.requests;
  int to_child[2], from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) return 1;
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    close(to_child[1]);
    close(from_child[0]);
    _exit(ChildMain(to_child[0], from_child[1], requests));
  }
  close(to_child[0]);
  close(from_child[1]);
  auto stop_child = [&] {
    close(to_child[1]);
    int status = 0;
    waitpid(child, &status, 0);
  };

  std::printf("tls_calls: %d rounds x %d requests (%d TLS calls each) per "
              "protocol and mode, one thread, an in-memory BIO pair\n",
              rounds, requests, kCallsPerRequest);
  for (const bool h2 : {false, true}) {
    std::map<Mode, std::vector<Figures>> by_mode;
    for (int round = 0; round < rounds; ++round) {
      for (int k = 0; k < kModeCount; ++k) {
        const Mode mode = kModes[(round + k) % kModeCount];
        CountingSink sink;
        const bool probes = mode == Mode::kSession ||
                            mode == Mode::kTwoLinks || mode == Mode::kPayload;
        std::unique_ptr<collector::Tracer> tracer = StartTlsTracer(
            "tls_calls", child, probes, mode != Mode::kTwoLinks,
            mode == Mode::kPayload ? 64 : 0, &sink);
        if (tracer == nullptr) {
          stop_child();
          return 1;
        }
        std::unique_ptr<FloorUprobes> floor;
        if (mode == Mode::kFloor || mode == Mode::kFloorEntry) {
          absl::StatusOr<std::unique_ptr<FloorUprobes>> f =
              FloorUprobes::Attach({child}, false, mode == Mode::kFloor);
          if (!f.ok()) {
            std::fprintf(stderr, "tls_calls: %s\n",
                         f.status().ToString().c_str());
            stop_child();
            return 1;
          }
          floor = std::move(*f);
        }
        if (probes &&
            tracer->tls_uprobe_session() != (mode != Mode::kTwoLinks)) {
          std::fprintf(stderr, "tls_calls: this kernel takes no uprobe "
                               "session links: the session mode is the "
                               "two-links mode\n");
        }
        const char what = h2 ? '2' : '1';
        if (write(to_child[1], &what, 1) != 1) return 1;
        double per_call = 0;
        pollfd pfd = {from_child[0], POLLIN, 0};
        // The ring buffer drained while the child runs (h2 emits records).
        while (poll(&pfd, 1, 0) == 0) (void)tracer->Poll(10);
        if (read(from_child[0], &per_call, sizeof(per_call)) !=
                sizeof(per_call) ||
            per_call < 0) {
          std::fprintf(stderr, "tls_calls: a TLS call in the child failed\n");
          stop_child();
          return 1;
        }
        for (int i = 0; i < 4; ++i) (void)tracer->Poll(10);
        const KernelCounters counters = tracer->counters();
        const double calls = static_cast<double>(
            (requests + kWarmupRequests) * kCallsPerRequest);
        Figures f;
        f.ns_per_call = per_call;
        f.returns_per_call = counters.tls_returns / calls;
        f.records_per_call = sink.tls_data / calls;
        by_mode[mode].push_back(f);
        if (sink.drops > 0) {
          std::printf("  (round %d %s: %llu events dropped)\n", round,
                      ModeName(mode),
                      static_cast<unsigned long long>(sink.drops));
        }
      }
    }
    std::printf("\n== %s\n", h2 ? "HTTP/2 (frames walked, every return)"
                                : "HTTP/1.1");
    std::printf("  %-12s %-26s %-26s %-22s %s\n", "mode", "ns per call",
                "- off, per round", "return traps/call",
                "TLS records/call");
    for (Mode m : kModes) {
      std::vector<double> ns, diff, rets, recs;
      for (int i = 0; i < rounds; ++i) {
        const Figures& f = by_mode[m][i];
        ns.push_back(f.ns_per_call);
        diff.push_back(f.ns_per_call - by_mode[Mode::kOff][i].ns_per_call);
        rets.push_back(f.returns_per_call);
        recs.push_back(f.records_per_call);
      }
      std::printf("  %-12s %-26s %-26s %-22s %s\n", ModeName(m),
                  Spread(ns, "%.0f").c_str(),
                  m == Mode::kOff ? "-" : Spread(diff, "%+.0f").c_str(),
                  Spread(rets, "%.2f").c_str(), Spread(recs, "%.2f").c_str());
    }
  }
  stop_child();
  return 0;
}

}  // namespace
}  // namespace reqcost::bench

int main(int argc, char** argv) { return reqcost::bench::Main(argc, argv); }
