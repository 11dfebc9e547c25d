// Where the stack finds its data: the sample servers' executables and the
// configuration templates and PHP pages they run with. Nothing here is
// compiled in: an installed reqcost finds them relative to itself, and the
// build tree has the same layout as an install, so the same rule serves both.
//
//   <prefix>/bin/reqcost             build/cli/reqcost
//   <prefix>/lib/reqcost/            build/lib/reqcost/     sample servers
//   <prefix>/share/reqcost/          build/share/reqcost/   templates, pages
#ifndef REQCOST_SAMPLES_STACK_DATA_DIRS_H_
#define REQCOST_SAMPLES_STACK_DATA_DIRS_H_

#include <string>

#include "absl/status/statusor.h"

namespace reqcost::stack {

// The two directories of the stack's data.
struct DataDirs {
  std::string libexec;  // reqcost-fcgi-backend and the other sample servers
  std::string share;    // nginx/, php-fpm/, lighttpd/ templates and php/ pages
};

// <prefix>/lib/reqcost and <prefix>/share/reqcost, when both exist and hold
// the demo's backend and nginx template; NotFound naming the missing file
// otherwise.
absl::StatusOr<DataDirs> DataDirsUnder(const std::string& prefix);

// DataDirsUnder(the parent of the directory that holds the running
// executable, read from /proc/self/exe).
absl::StatusOr<DataDirs> DataDirsBesideExecutable();

// Makes `dirs` the data every Start* function and the accessors below use
// from now on in this process. Until it is called they use
// DataDirsBesideExecutable() (empty paths if that failed, so that a start
// fails naming the file it could not run).
void UseDataDirs(DataDirs dirs);

// The templates' root: nginx/, php-fpm/, lighttpd/ and php/ under it.
std::string SamplesDir();

// The sample FastCGI backend (samples/fcgi-backend).
std::string FcgiBackendBinary();

// The resolving front server (samples/resolving-front).
std::string ResolvingFrontBinary();

// The front server and FastCGI responder with its own clock
// (samples/front-server).
std::string FrontServerBinary();

}  // namespace reqcost::stack

#endif  // REQCOST_SAMPLES_STACK_DATA_DIRS_H_
