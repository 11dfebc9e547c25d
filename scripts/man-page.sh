#!/usr/bin/env bash
# Turns docs/reqcost.8.md into the man page reqcost(8) with go-md2man
# (Debian's go-md2man): the build runs it (CMakeLists.txt); by hand:
#   scripts/man-page.sh docs/reqcost.8.md reqcost.8 0.1.0 && man -l reqcost.8
# The markdown's first line ("# reqcost(8)") becomes the man title line;
# its "##" headings are go-md2man's sections, "###" its subsections. Tables
# get their last column expandable (tbl "lx"), so that man wraps them
# to the terminal instead of running past it.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 IN.md OUT.8 VERSION" >&2
  exit 2
fi
in="$1" out="$2" version="$3"
md2man="${GO_MD2MAN:-go-md2man}"
# The date of the markdown's last change would need git; the build date
# honours SOURCE_DATE_EPOCH for reproducible packages.
date="$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)"
mkdir -p "$(dirname "$out")"
tmp="$(mktemp)"
trap 'rm -f "$tmp" "$tmp.8"' EXIT
{
  printf '%% REQCOST 8 "%s" "reqcost %s" "System Administration"\n' "$date" "$version"
  tail -n +2 "$in"
} > "$tmp"
"$md2man" -in "$tmp" -out "$tmp.8"
sed -e '/^\.TS$/,/\.$/{s/^l l \.$/l lx ./;s/^l l l \.$/l l lx ./;s/^l l $/l lx/;s/^l l l $/l l lx/}' \
  "$tmp.8" > "$out"
