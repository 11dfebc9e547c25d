#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/*_fuzz.cc) with clang-14 into
# build-fuzz/ (or $REQCOST_FUZZ_BUILD_DIR) and runs each for a bounded time:
# REQCOST_FUZZ_SECONDS (default 30; 0 builds only) each, up to `nproc` at once. Exits
# non-zero on a build failure or on any finding (crash, sanitizer report,
# timeout, out-of-memory); the input that caused it is kept under
# build-fuzz/findings/ and named in the output. The corpus grows across runs
# in build-fuzz/corpus/<target>/; tests/fuzz/corpus/<target>/, when present,
# holds committed seeds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${REQCOST_FUZZ_SECONDS:-30}"
cc="${REQCOST_FUZZ_CC:-clang-14}"
cxx="${REQCOST_FUZZ_CXX:-clang++-14}"

case "$seconds" in
  ''|*[!0-9]*) echo "fuzz.sh: REQCOST_FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac
for tool in "$cc" "$cxx"; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found: apt-get install clang-14" >&2; exit 2; }
done

targets=()
for src in "$root"/tests/fuzz/*_fuzz.cc; do
  targets+=("$(basename "$src" .cc)")
done
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz.sh: no tests/fuzz/*_fuzz.cc" >&2; exit 2; }

echo "fuzz.sh: building ${targets[*]} with $cxx into $build"
mkdir -p "$build"
CC="$cc" CXX="$cxx" cmake -S "$root" -B "$build" -DREQCOST_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; echo "fuzz.sh: configure failed" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

if [ "$seconds" = 0 ]; then
  echo "fuzz.sh: REQCOST_FUZZ_SECONDS=0: built, not run"
  exit 0
fi
mkdir -p "$build/findings"
pids=()
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$build/findings/$t-")
  dict="$root/tests/fuzz/${t%_fuzz}.dict"
  [ -f "$dict" ] && args+=(-dict="$dict")
  # Committed seeds (hand-built inputs) are read, never written.
  seeds=()
  [ -d "$root/tests/fuzz/corpus/$t" ] && seeds=("$root/tests/fuzz/corpus/$t")
  echo "fuzz.sh: running $t for ${seconds}s"
  "$build/tests/fuzz/$t" "${args[@]}" "$corpus" "${seeds[@]}" >"$build/$t.log" 2>&1 &
  pids+=($!)
  # No more runs at once than cores.
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 1; done
done

failed=0
for i in "${!targets[@]}"; do
  t="${targets[$i]}"
  if wait "${pids[$i]}"; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/$t.log" | grep -o '[0-9]*$' || true)"
    echo "fuzz.sh: $t: no finding (${runs:-?} inputs in ${seconds}s)"
  else
    failed=1
    echo "fuzz.sh: $t: FINDING, log $build/$t.log" >&2
    tail -n 40 "$build/$t.log" >&2
    ls "$build/findings/$t-"* 2>/dev/null | sed 's/^/fuzz.sh:   input: /' >&2 || true
  fi
done
exit "$failed"
