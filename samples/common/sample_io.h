// What the sample servers share: the clock their logs use, whole writes,
// query values and the per-request work they are asked to do. Header-only:
// each sample is one self-contained binary.
#ifndef REQCOST_SAMPLES_COMMON_SAMPLE_IO_H_
#define REQCOST_SAMPLES_COMMON_SAMPLE_IO_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace reqcost::samples {

// CLOCK_MONOTONIC in nanoseconds: the clock reqcost's events carry, so the
// samples' logs compare with them directly.
inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline std::string ErrnoMessage(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

inline std::string Lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Sends all of `data` on socket `fd` (no SIGPIPE); false on error.
inline bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

// The value of `key` in a query string, if present ("" for a bare key; no
// percent-decoding: the keys and values the tests use are plain).
inline std::optional<std::string> QueryValue(const std::string& query,
                                             const std::string& key) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    std::string part = query.substr(pos, amp - pos);
    size_t eq = part.find('=');
    if (part.substr(0, eq) == key) {
      return eq == std::string::npos ? std::string() : part.substr(eq + 1);
    }
    pos = amp + 1;
  }
  return std::nullopt;
}

// Work a request asks for: `us` microseconds, spent spinning or asleep.
struct Work {
  int64_t us = 0;
  bool spin = false;
};

// The work in `query`: microseconds in `us_key` (clamped to 0..max_us),
// spinning when `mode_key` is "spin".
inline Work ParseWork(const std::string& query, const std::string& us_key,
                      const std::string& mode_key, int64_t max_us) {
  Work w;
  if (auto v = QueryValue(query, us_key)) {
    long long us = std::strtoll(v->c_str(), nullptr, 10);
    w.us = us < 0 ? 0 : (us > max_us ? max_us : us);
  }
  if (auto v = QueryValue(query, mode_key)) w.spin = (*v == "spin");
  return w;
}

// Spins or sleeps until `from_ns + work.us`; signals do not shorten it.
inline void DoWork(int64_t from_ns, const Work& work) {
  if (work.us <= 0) return;
  int64_t deadline = from_ns + work.us * 1000;
  if (work.spin) {
    while (NowNs() < deadline) {
    }
    return;
  }
  timespec ts{static_cast<time_t>(deadline / 1'000'000'000),
              static_cast<long>(deadline % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) ==
         EINTR) {
  }
}

}  // namespace reqcost::samples

#endif  // REQCOST_SAMPLES_COMMON_SAMPLE_IO_H_
