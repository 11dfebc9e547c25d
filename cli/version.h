// `reqcost --version`: what was built, from which commit, against which
// libbpf.
#ifndef REQCOST_CLI_VERSION_H_
#define REQCOST_CLI_VERSION_H_

#include <string>

namespace reqcost::cli {

// "reqcost VERSION (commit COMMIT, libbpf MAJOR.MINOR)": the project
// version, the git commit the build was made from ("unknown" when built
// outside git; "-dirty" when it had uncommitted changes) and the version of
// the libbpf reqcost runs with.
std::string VersionText();

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_VERSION_H_
