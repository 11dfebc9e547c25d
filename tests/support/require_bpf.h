// Gate for tests that load real BPF. Without the privileges a test skips with
// the reason; under REQCOST_REQUIRE_BPF=1 (our CI, which can load BPF) the
// same situation is a failure, so a silently skipped suite cannot pass CI.
#ifndef REQCOST_TESTS_SUPPORT_REQUIRE_BPF_H_
#define REQCOST_TESTS_SUPPORT_REQUIRE_BPF_H_

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace reqcost::testing {

// True when this environment demands that privileged tests run.
inline bool BpfRequired() {
  const char* v = std::getenv("REQCOST_REQUIRE_BPF");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// Empty when BPF tests can run here, else why not.
inline std::string WhyNoBpf() {
  if (geteuid() != 0)
    return "not root (loading BPF needs root or CAP_BPF+CAP_PERFMON)";
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    return "no /sys/kernel/btf/vmlinux";
  return "";
}

}  // namespace reqcost::testing

// Skips the current test when BPF cannot be loaded, or fails it when
// REQCOST_REQUIRE_BPF=1.
#define REQCOST_REQUIRE_BPF_OR_SKIP()                                   \
  do {                                                                  \
    std::string why_ = ::reqcost::testing::WhyNoBpf();                  \
    if (!why_.empty()) {                                                \
      if (::reqcost::testing::BpfRequired()) {                          \
        FAIL() << "REQCOST_REQUIRE_BPF=1 but BPF cannot run: " << why_; \
      }                                                                 \
      GTEST_SKIP() << "BPF unavailable: " << why_;                      \
    }                                                                   \
  } while (0)

#endif  // REQCOST_TESTS_SUPPORT_REQUIRE_BPF_H_
