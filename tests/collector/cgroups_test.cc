// collector/cgroups.h on a fake tree: the v2 mount read from a mounts
// file, a unit looked up with and without systemd, and a cgroup's members.
#include "collector/cgroups.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace reqcost::collector {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class CgroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/reqcost-cgroups-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    ASSERT_FALSE(root_.empty());
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + root_ + "'";
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  std::string Make(const std::string& rel) {
    std::string path = root_;
    size_t start = 0;
    while (start <= rel.size()) {
      size_t slash = rel.find('/', start);
      if (slash == std::string::npos) slash = rel.size();
      path += "/" + rel.substr(start, slash - start);
      mkdir(path.c_str(), 0755);
      start = slash + 1;
    }
    return path;
  }
  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(root_ + "/" + rel) << text;
  }
  std::string root_;
};

TEST_F(CgroupsTest, FindsTheV2MountOfAHybridLayout) {
  Write("mounts",
        "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
        "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n");
  absl::StatusOr<std::string> m = Cgroup2Mount(root_ + "/mounts");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, "/sys/fs/cgroup/unified");

  Write("mounts-v1", "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n");
  absl::StatusOr<std::string> none = Cgroup2Mount(root_ + "/mounts-v1");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.status().message(), HasSubstr("none is mounted"));
}

TEST_F(CgroupsTest, AMissingUnitSaysWhetherSystemdRuns) {
  const std::string mount = Make("cg");
  Make("cg/system.slice/other.service");
  Make("proc/1");
  Write("proc/1/comm", "process_api\n");
  absl::StatusOr<CgroupTarget> t = ResolveUnit("nginx", mount, root_ + "/proc");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(t.status().message(),
              HasSubstr("does not run systemd (PID 1 is process_api)"));

  Write("proc/1/comm", "systemd\n");
  t = ResolveUnit("nginx", mount, root_ + "/proc");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(t.status().message(), HasSubstr("nginx.service"));

  EXPECT_EQ(ResolveUnit("a/b", mount, root_ + "/proc").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CgroupsTest, AUnitFoundOutsideCgroupV2IsRefused) {
  // Found by name (".service" added), but the fake tree is no cgroup2.
  const std::string mount = Make("cg");
  Make("cg/system.slice/nginx.service");
  absl::StatusOr<CgroupTarget> t = ResolveUnit("nginx", mount, root_ + "/proc");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("not a cgroup v2 directory"));
  absl::StatusOr<CgroupTarget> missing = ResolveCgroup("nope", mount);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CgroupsTest, MembersOfACgroupAndEveryCgroupBelowIt) {
  Make("cg/app/worker");
  Write("cg/cgroup.procs", "10\n11\n");
  Write("cg/app/cgroup.procs", "20\n");
  Write("cg/app/worker/cgroup.procs", "30\n31\n20\n");
  std::vector<pid_t> pids = CgroupMembers(root_ + "/cg");
  EXPECT_THAT(pids, UnorderedElementsAre(10, 11, 20, 30, 31));
}

}  // namespace
}  // namespace reqcost::collector
