#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test but
# the benchmarks (ctest label `bench`, see README "Performance").
# REQCOST_REQUIRE_BPF=1 turns a privileged test's skip into a failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
"$root/scripts/bootstrap.sh"
REQCOST_BUILD_DIR="$build" "$root/scripts/build.sh"
cd "$build"
ctest --output-on-failure --label-exclude bench "$@"
