// The test harness for real web stacks on loopback, in one include:
// processes and temp dirs (process.h), config templates (template.h),
// servers (servers.h), load and the backends' own logs (load.h).
#ifndef REQCOST_TESTS_SUPPORT_STACK_H_
#define REQCOST_TESTS_SUPPORT_STACK_H_

#include "tests/support/load.h"
#include "tests/support/process.h"
#include "tests/support/servers.h"
#include "tests/support/template.h"

#endif  // REQCOST_TESTS_SUPPORT_STACK_H_
