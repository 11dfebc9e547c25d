#!/usr/bin/env bash
# `cmake --install` into a temp prefix, moved to another place, then run
# with the source and build trees out of reach: reqcost --version, check and
# `demo -n 200` must work from the install alone, and no built binary may
# carry the build directory.
#   install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SOURCE_DIR="$(cd "$1" && pwd)"
BUILD_DIR="$(cd "$2" && pwd)"
source "$(dirname "$0")/common.sh"
require_root

tmp="$(mktemp -d /tmp/reqcost-install-test-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# The build tree itself: nothing names where it was built.
no_build_path "$BUILD_DIR/cli/reqcost" "$BUILD_DIR"/lib/reqcost/*

timeout 60 cmake --install "$BUILD_DIR" --prefix "$tmp/first" > "$tmp/install.log"
# Moved after installing: nothing may depend on the prefix it was installed
# to either.
mv "$tmp/first" "$tmp/moved"
prefix="$tmp/moved"
for f in bin/reqcost lib/reqcost/reqcost-fcgi-backend share/reqcost/nginx/nginx.conf.in \
         share/reqcost/php-fpm/php-fpm.conf.in share/reqcost/php/hello.php \
         share/man/man8/reqcost.8.gz lib/systemd/system/reqcost.service \
         share/reqcost/grafana/reqcost-dashboard.json \
         share/bash-completion/completions/reqcost; do
  [ -e "$prefix/$f" ] || fail "cmake --install did not install $f"
done
no_build_path "$prefix/bin/reqcost" "$prefix/lib/reqcost/reqcost-fcgi-backend"
MANWIDTH=80 man -l "$prefix/share/man/man8/reqcost.8.gz" 2>/dev/null | grep -q "^EXIT STATUS" ||
  fail "the installed man page does not render"

mkdir "$tmp/log"
check_commands "$prefix/bin/reqcost" "$tmp/log" "$SOURCE_DIR" "$BUILD_DIR"

# Without its data beside it, the demo says what is missing (and starts
# nothing).
rm -rf "$prefix/lib/reqcost"
if hidden_run "$SOURCE_DIR" "$BUILD_DIR" -- timeout 30 "$prefix/bin/reqcost" demo -n 10 \
    > "$tmp/log/bare.out" 2>&1; then
  fail "demo ran without its sample backend"
fi
grep -q "reqcost-fcgi-backend is missing" "$tmp/log/bare.out" ||
  { cat "$tmp/log/bare.out"; fail "demo without its data did not say what is missing"; }
echo "PASS"
