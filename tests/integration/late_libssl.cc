// A process that maps libssl only when told: the subject of
// TlsProbes.LibsslMappedAfterAttachIsProbed. Linked without OpenSSL; on
// SIGUSR1 it dlopens libssl.so.3 and writes "loaded" to the file named by
// its argument; on SIGUSR2 it makes 100 SSL_read calls on an SSL with no
// connection (each returns -1 at once, through OpenSSL's internal read
// function, where the probes sit) and writes "called"; on SIGTERM it exits.
#include <dlfcn.h>
#include <signal.h>

#include <cstdio>

namespace {

void Say(const char* path, const char* what) {
  if (FILE* f = std::fopen(path, "w")) {
    std::fputs(what, f);
    std::fclose(f);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  using MethodFn = const void* (*)();
  using CtxNewFn = void* (*)(const void*);
  using SslNewFn = void* (*)(void*);
  using ReadFn = int (*)(void*, void*, int);
  void* ssl = nullptr;
  ReadFn ssl_read = nullptr;
  Say(argv[1], "ready");
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0 || sig == SIGTERM) return 0;
    if (sig == SIGUSR1 && ssl == nullptr) {
      void* lib = dlopen("libssl.so.3", RTLD_NOW);
      if (lib == nullptr) return 1;
      auto method = reinterpret_cast<MethodFn>(dlsym(lib, "TLS_method"));
      auto ctx_new = reinterpret_cast<CtxNewFn>(dlsym(lib, "SSL_CTX_new"));
      auto ssl_new = reinterpret_cast<SslNewFn>(dlsym(lib, "SSL_new"));
      ssl_read = reinterpret_cast<ReadFn>(dlsym(lib, "SSL_read"));
      if (!method || !ctx_new || !ssl_new || !ssl_read) return 1;
      ssl = ssl_new(ctx_new(method()));
      if (ssl == nullptr) return 1;
      Say(argv[1], "loaded");
    } else if (sig == SIGUSR2 && ssl != nullptr) {
      char buf[16];
      for (int i = 0; i < 100; ++i) ssl_read(ssl, buf, sizeof(buf));
      Say(argv[1], "called");
    }
  }
}
