#!/usr/bin/env bash
# The .deb: made by CPack from this build, installed with dpkg -i, run from
# /usr/bin/reqcost with the source and build trees out of reach (--version,
# check, demo -n 200), then removed with dpkg -r (not --purge): nothing it
# installed may be left, and dpkg keeps no record of it (no conffiles).
#   deb_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SOURCE_DIR="$(cd "$1" && pwd)"
BUILD_DIR="$(cd "$2" && pwd)"
source "$(dirname "$0")/common.sh"
require_root

if dpkg-query -W -f='${Status}' reqcost 2>/dev/null | grep -q "ok installed"; then
  # Not ours to replace or remove.
  echo "SKIP: a reqcost package is installed already; dpkg -r reqcost to run this test"
  exit "$SKIP"
fi

tmp="$(mktemp -d /tmp/reqcost-deb-test-XXXXXX)"
installed=0
cleanup() {
  if [ "$installed" = 1 ]; then dpkg --purge reqcost > /dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# dpkg -i and --purge wait (bounded) for another dpkg or apt to finish.
dpkg_locked() {
  local i
  for ((i = 0; i < 60; i++)); do
    if dpkg "$@" > "$tmp/dpkg.log" 2>&1; then return 0; fi
    grep -q "lock" "$tmp/dpkg.log" || { cat "$tmp/dpkg.log" >&2; return 1; }
    sleep 1
  done
  cat "$tmp/dpkg.log" >&2
  return 1
}

# cpack first builds whatever is out of date in the build tree (its
# preinstall step): run the tests on a built tree, as scripts/test.sh does.
(cd "$BUILD_DIR" && timeout -k 5 180 cpack -G DEB -B "$tmp/out" > "$tmp/cpack.log" 2>&1) ||
  { tail -20 "$tmp/cpack.log"; fail "cpack -G DEB failed (or timed out rebuilding a stale tree)"; }
deb="$(ls "$tmp"/out/reqcost_*.deb)"
echo "package: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
dpkg-deb -f "$deb" Depends Recommends
dpkg-deb -f "$deb" Depends | grep -q "libbpf" || fail "Depends does not name libbpf"
dpkg-deb -f "$deb" Recommends | grep -q "nginx" || fail "Recommends does not name nginx"

installed=1
dpkg_locked -i "$deb" || fail "dpkg -i $deb"
[ "$(command -v reqcost)" = /usr/bin/reqcost ] || fail "reqcost is not /usr/bin/reqcost"
dpkg -L reqcost > "$tmp/files"
grep -qx /usr/bin/reqcost "$tmp/files" || fail "the package does not own /usr/bin/reqcost"
for f in /usr/lib/systemd/system/reqcost.service /usr/share/reqcost/grafana/reqcost-dashboard.json \
         /usr/share/bash-completion/completions/reqcost; do
  grep -qx "$f" "$tmp/files" || fail "the package does not ship $f"
done
no_build_path /usr/bin/reqcost /usr/lib/reqcost/reqcost-fcgi-backend
man -w reqcost > /dev/null 2>&1 || fail "man reqcost finds no page"

mkdir "$tmp/log"
check_commands /usr/bin/reqcost "$tmp/log" "$SOURCE_DIR" "$BUILD_DIR"

dpkg_locked -r reqcost || fail "dpkg -r reqcost"
left=0
while IFS= read -r path; do
  [ "$path" = "/." ] && continue
  [ -e "$path" ] || [ -L "$path" ] || continue
  # A directory another package owns (/usr/bin, /usr/share/man/man8) stays.
  if [ -d "$path" ] && [ ! -L "$path" ] && dpkg-query -S "$path" > /dev/null 2>&1; then
    continue
  fi
  echo "left behind: $path" >&2
  left=1
done < "$tmp/files"
[ "$left" = 0 ] || fail "dpkg -r reqcost left files behind"
# Nothing for a purge to do: no conffiles, no configuration state.
status="$(dpkg-query -W -f='${db:Status-Status}' reqcost 2>/dev/null || true)"
[ -z "$status" ] || [ "$status" = "not-installed" ] ||
  fail "after dpkg -r, dpkg still knows reqcost as '$status' (conffiles left?)"
installed=0
echo "PASS ($(grep -c . "$tmp/files") paths installed, none left by dpkg -r)"
