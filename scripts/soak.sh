#!/usr/bin/env bash
# The soak: builds, then runs `reqcost attach` on a real nginx + php-fpm under
# sustained load for REQCOST_SOAK_SECONDS (default 600) and checks that its
# memory and descriptors stay flat and every request is counted. Needs root
# (loads BPF). Prints VmRSS at start (after warm-up) and end.
#   sudo bash scripts/soak.sh                       # ten minutes
#   sudo REQCOST_SOAK_SECONDS=120 bash scripts/soak.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
seconds="${REQCOST_SOAK_SECONDS:-600}"
case "$seconds" in
  ''|*[!0-9]*) echo "soak.sh: REQCOST_SOAK_SECONDS must be whole seconds, not '$seconds'" >&2; exit 2 ;;
esac
REQCOST_BUILD_DIR="$build" "$root/scripts/build.sh" >/dev/null
export REQCOST_SOAK_SECONDS="$seconds" REQCOST_REQUIRE_BPF="${REQCOST_REQUIRE_BPF:-1}"
# Run directly (not through ctest) so that the bound follows the duration.
exec timeout --signal=TERM --kill-after=30 "$((seconds + 300))" \
  "$build/tests/soak/soak_test" --gtest_color=no
