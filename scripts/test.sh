#!/usr/bin/env bash
# The test command: installs dependencies, builds, fuzzes the parsers of
# untrusted bytes for a bounded time, and runs every test but the benchmarks
# and soaks (ctest label `bench`; see README "Performance").
# REQCOST_REQUIRE_BPF=1 turns a privileged test's skip into a failure.
# REQCOST_FUZZ_SECONDS (default 15 per target here; 0 skips fuzzing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
"$root/scripts/bootstrap.sh"
REQCOST_BUILD_DIR="$build" "$root/scripts/build.sh"
fuzz_seconds="${REQCOST_FUZZ_SECONDS:-15}"
if [ "$fuzz_seconds" != 0 ]; then
  REQCOST_FUZZ_SECONDS="$fuzz_seconds" "$root/scripts/fuzz.sh"
fi
cd "$build"
# Every test runs once. Only a test carrying the ctest label `flaky` (the
# short list in docs/testing.md "Tests that fail now and then", each with its
# cause) may run a second time, and each such rerun is printed; any other
# failure, or a flaky test failing twice, fails the command.
status=0
ctest --output-on-failure --label-exclude bench "$@" || status=$?
failed_log="$build/Testing/Temporary/LastTestsFailed.log"
if [ "$status" = 0 ]; then
  exit 0
fi
if [ ! -s "$failed_log" ]; then
  echo "test.sh: ctest exited $status with no failed test listed" >&2
  exit "$status"
fi
mapfile -t failed < <(cut -d: -f2- "$failed_log")
# Why each failed, gathered at the end where a truncated log still shows
# it: gtest's "file:line: Failure" and the 8 lines after, from each failed
# test's first run (read now: the ctest -N below rewrites LastTest.log).
echo "test.sh: the failed assertions of each failed test:"
awk -v names="$(printf '%s\n' "${failed[@]}")" '
  function bare(t) { sub(/  # GetParam.*/, "", t); return t }
  BEGIN { n = split(names, list, "\n"); for (i = 1; i <= n; i++) want[bare(list[i])] = 1 }
  /^[0-9]+\/[0-9]+ Testing: / { sub(/^[0-9]+\/[0-9]+ Testing: /, ""); name = bare($0); on = (name in want); left = 0; next }
  /^<end of output>$/ { left = 0 }
  on && /: Failure$/ {
    if (!(name in shown)) print "  [" name "]"
    shown[name] = 1; left = 9
  }
  on && left > 0 { print "    " $0; left-- }
' "$build/Testing/Temporary/LastTest.log" | head -n 400 || true
# Names of the tests labelled flaky ("  Test  #12: name" lines of ctest -N).
mapfile -t flaky < <(ctest -N -L '^flaky$' | sed -n 's/^ *Test *#[0-9]*: //p')
is_flaky() {
  local t
  for t in "${flaky[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}
hard=0
for name in "${failed[@]}"; do
  if ! is_flaky "$name"; then
    echo "test.sh: FAILED, not rerun (no flaky label): $name"
    hard=1
  fi
done
for name in "${failed[@]}"; do
  is_flaky "$name" || continue
  echo "test.sh: RERUN $name: failed its first run and carries the flaky label (cause: docs/testing.md, Tests that fail now and then)"
  # The exact name as a regex.
  re="^$(printf '%s' "$name" | sed 's/[][\.^$*+?(){}|]/\\&/g')\$"
  if ctest --output-on-failure -R "$re"; then
    echo "test.sh: RERUN passed: $name"
  else
    echo "test.sh: FAILED twice: $name"
    hard=1
  fi
done
if [ "$hard" = 0 ]; then
  echo "test.sh: every first-run failure carried the flaky label and passed on its rerun (above)"
fi
exit "$hard"
