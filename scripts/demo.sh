#!/usr/bin/env bash
# The demo: installs dependencies, builds, then `reqcost demo` starts nginx,
# php-fpm and the sample FastCGI backend on loopback, profiles them under
# bounded load four ways and prints the comparison. Needs root (BPF).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
"$root/scripts/bootstrap.sh"
REQCOST_BUILD_DIR="$build" "$root/scripts/build.sh" >/dev/null
exec "$build/cli/reqcost" demo "$@"
