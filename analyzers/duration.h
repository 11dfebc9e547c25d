// A duration in words for people: the verdicts of compare speak it, and
// every renderer prints it.
#ifndef REQCOST_ANALYZERS_DURATION_H_
#define REQCOST_ANALYZERS_DURATION_H_

#include <string>

namespace reqcost::analyzers {

// "812.0 us", "1.234 ms", "2.500 s".
std::string FormatDuration(double us);

}  // namespace reqcost::analyzers

#endif  // REQCOST_ANALYZERS_DURATION_H_
