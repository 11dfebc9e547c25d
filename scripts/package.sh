#!/usr/bin/env bash
# Builds reqcost (scripts/build.sh) and makes its .deb from that same build
# with CPack: build/reqcost_VERSION_ARCH.deb (or under $REQCOST_BUILD_DIR).
# Install it with `sudo apt install ./build/reqcost_*.deb` (apt also fetches
# the Recommends the demo needs: nginx, php-fpm, apache2-utils).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
REQCOST_BUILD_DIR="$build" bash "$root/scripts/build.sh"
cd "$build"
cpack -G DEB >/dev/null
ls -1 "$build"/reqcost_*.deb
