// Where the TLS uprobes go (collector/ssl_sites.h): the call target two
// wrappers share, on hand-built bytes, and the sites in this machine's own
// libssl when it has one.
#include "collector/ssl_sites.h"

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reqcost::collector {
namespace {

using ::testing::Eq;
using ::testing::Optional;

// `call rel32` at `at` in a function read at `addr`, to `target`.
std::string CallAt(std::string code, size_t at, uint64_t addr,
                   uint64_t target) {
  const int32_t rel = static_cast<int32_t>(target - (addr + at + 5));
  code[at] = static_cast<char>(0xe8);
  for (int i = 0; i < 4; ++i) {
    code[at + 1 + i] = static_cast<char>((static_cast<uint32_t>(rel) >> (8 * i)) & 0xff);
  }
  return code;
}

TEST(CommonCallTargetTest, TheTargetBothWrappersCallAtDifferentPlaces) {
  // OpenSSL 3.0's SSL_read calls at +0x1e, SSL_read_ex at +0x04; the
  // internal function sits below both.
  std::string read = CallAt(std::string(64, '\x90'), 0x1e, 0x35430, 0x35290);
  std::string read_ex = CallAt(std::string(64, '\x90'), 0x04, 0x354c0, 0x35290);
  EXPECT_THAT(CommonCallTarget(read, 0x35430, read_ex, 0x354c0),
              Optional(Eq(0x35290u)));
}

TEST(CommonCallTargetTest, NoneWithoutACommonTargetOrWithTwo) {
  std::string a = CallAt(std::string(64, '\x90'), 0x10, 0x1000, 0x500);
  std::string b = CallAt(std::string(64, '\x90'), 0x10, 0x2000, 0x600);
  EXPECT_THAT(CommonCallTarget(a, 0x1000, b, 0x2000), Eq(std::nullopt));
  // Both also call one other function: which one is meant is not known.
  std::string a2 = CallAt(a, 0x20, 0x1000, 0x700);
  std::string b2 = CallAt(CallAt(b, 0x10, 0x2000, 0x500), 0x30, 0x2000, 0x700);
  EXPECT_THAT(CommonCallTarget(a2, 0x1000, b2, 0x2000), Eq(std::nullopt));
  // A call cut off at the excerpt's end is no call.
  std::string cut = CallAt(std::string(64, '\x90'), 59, 0x1000, 0x500);
  EXPECT_THAT(CommonCallTarget(cut.substr(0, 62), 0x1000, a, 0x1000),
              Eq(std::nullopt));
}

TEST(BeginsWithPushTest, PushesOfRegistersOnly) {
  EXPECT_TRUE(BeginsWithPush("\x55"));              // push %rbp
  EXPECT_TRUE(BeginsWithPush("\x41\x55"));          // push %r13
  EXPECT_TRUE(BeginsWithPush("\x53\x48"));          // push %rbx
  EXPECT_FALSE(BeginsWithPush("\x48\x83\xec\x18"));  // sub $0x18,%rsp
  EXPECT_FALSE(BeginsWithPush("\xf3\x0f\x1e\xfa"));  // endbr64
  EXPECT_FALSE(BeginsWithPush("\x41"));
  EXPECT_FALSE(BeginsWithPush(""));
}

TEST(FindSslSitesTest, FilesThatAreNoLibsslSayWhy) {
  char path[] = "/tmp/ssl_sites_testXXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "not ELF", 7), 7);
  close(fd);
  EXPECT_FALSE(FindSslSites(path).ok());
  unlink(path);
  EXPECT_FALSE(FindSslSites("/nonexistent/libssl.so.3").ok());
  // An x86-64 ELF file without the four functions.
  EXPECT_FALSE(FindSslSites("/proc/self/exe").ok());
}

// Debian 12's OpenSSL 3.0 (what CI runs): SSL_read and SSL_read_ex call one
// function, which begins with a push; the same for writes.
TEST(FindSslSitesTest, ThisMachinesLibsslHasEmulatedInternalSites) {
  const std::string lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
  if (!std::ifstream(lib)) GTEST_SKIP() << "no " << lib;
  absl::StatusOr<SslSites> sites = FindSslSites(lib);
  ASSERT_TRUE(sites.ok()) << sites.status();
  EXPECT_TRUE(sites->internal());
  EXPECT_NE(sites->read, sites->write);
  EXPECT_NE(sites->read, sites->ssl_read);
  EXPECT_NE(sites->ssl_read_ex, 0u);
  EXPECT_NE(sites->ssl_write_ex, 0u);
  EXPECT_NE(sites->ssl_free, 0u);
  EXPECT_TRUE(sites->read_emulated);
  EXPECT_TRUE(sites->write_emulated);
}

}  // namespace
}  // namespace reqcost::collector
