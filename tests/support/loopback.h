// TCP sockets on 127.0.0.1 for tests that serve or send a few requests
// themselves.
#ifndef REQCOST_TESTS_SUPPORT_LOOPBACK_H_
#define REQCOST_TESTS_SUPPORT_LOOPBACK_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace reqcost::testing {

// A listening TCP socket on 127.0.0.1 at a port the kernel picks, stored in
// *port; -1 with errno set when a step fails.
inline int ListenLoopback(int* port, int backlog = 16) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(fd, backlog) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

// A TCP socket connected to 127.0.0.1:`port` with 10 s send and receive
// timeouts, so that every read and write on it is bounded; -1 with errno set
// when it cannot connect.
inline int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_SUPPORT_LOOPBACK_H_
