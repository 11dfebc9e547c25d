#!/usr/bin/env bash
# The test command: installs dependencies, builds, fuzzes the parsers of
# untrusted bytes for a bounded time, and runs every test but the benchmarks
# and soaks (ctest label `bench`; see README "Performance").
# REQCOST_REQUIRE_BPF=1 turns a privileged test's skip into a failure.
# REQCOST_FUZZ_SECONDS (default 20 per target here; 0 skips fuzzing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
"$root/scripts/bootstrap.sh"
REQCOST_BUILD_DIR="$build" "$root/scripts/build.sh"
fuzz_seconds="${REQCOST_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
  REQCOST_FUZZ_SECONDS="$fuzz_seconds" "$root/scripts/fuzz.sh"
fi
cd "$build"
ctest --output-on-failure --label-exclude bench "$@"
