#!/usr/bin/env bash
# Makes docs/report.png, the README's picture: records a real nginx +
# php-fpm stack on loopback (html_integration_test's capture: 200 requests,
# ab -c 1, --payload 64), writes its `reqcost report --html` page, and
# renders it with the same headless browser the tests use. Needs root (BPF).
#   bash scripts/screenshot.sh [OUT.png]     (default docs/report.png)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
out="$(realpath -m "${1:-$root/docs/report.png}")"
"$root/scripts/bootstrap.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target reqcost html_integration_test >/dev/null

work="$(mktemp -d /tmp/reqcost-screenshot-XXXXXX)"
trap 'rm -rf "$work"' EXIT
REQCOST_KEEP_DIR="$work" timeout 300 "$build/tests/integration/html_integration_test" \
  --gtest_filter='*ReportPageShowsTheJsonReportAndTheSlowestRequests' >"$work/test.log" 2>&1 \
  || { tail -20 "$work/test.log" >&2; exit 1; }
# The page again, from the kept capture under a short name (its title).
cd "$work"
"$build/cli/reqcost" report run.cap --html page.html --slowest 3 >/dev/null
timeout 60 chromium-headless-shell --headless --no-sandbox --disable-gpu \
  --hide-scrollbars --user-data-dir="$work/profile" --window-size=1100,1150 \
  --screenshot="$out" "file://$work/page.html" >/dev/null 2>&1
echo "wrote $out"
