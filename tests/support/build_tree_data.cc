// Points the stack launcher of every test binary that links
// reqcost_test_support at the build tree's data (build/lib/reqcost,
// build/share/reqcost). The test binaries are not beside that data (they
// live in build/tests/...), and unlike reqcost they are never installed, so
// they may carry the build path.
#include "samples/stack/data_dirs.h"

#ifndef REQCOST_BUILD_ROOT
#error "REQCOST_BUILD_ROOT must be defined by tests/support/CMakeLists.txt"
#endif

namespace reqcost::testing {
namespace {

// Before main, so that no test can start a server before it is set.
const bool kBuildTreeDataSet = [] {
  stack::UseDataDirs(
      {REQCOST_BUILD_ROOT "/lib/reqcost", REQCOST_BUILD_ROOT "/share/reqcost"});
  return true;
}();

}  // namespace
}  // namespace reqcost::testing
