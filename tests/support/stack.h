// The stack launcher (samples/stack) as the tests use it: in
// reqcost::testing, next to the tests' own helpers.
#ifndef REQCOST_TESTS_SUPPORT_STACK_H_
#define REQCOST_TESTS_SUPPORT_STACK_H_

#include "samples/stack/data_dirs.h"
#include "samples/stack/load.h"
#include "samples/stack/process.h"
#include "samples/stack/servers.h"
#include "samples/stack/template.h"

namespace reqcost::testing {
using namespace ::reqcost::stack;  // NOLINT: the launcher is the tests'
                                   // vocabulary
}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_SUPPORT_STACK_H_
