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
# A test that fails is run once more before it counts: the integration
# tests time real servers on a VM whose speed drifts, and a few of them
# (listed in docs/testing.md) fail now and then under load. The first
# failure's output stays in the log.
ctest --output-on-failure --label-exclude bench --repeat until-pass:2 "$@"
