# Shared by the package tests (sourced): how they skip, how they run the
# installed reqcost where the source and build trees cannot be seen, and
# what they check of its output. Every command that could hang runs under
# `timeout`.

# Exit code ctest reads as "skipped" (SKIP_RETURN_CODE in CMakeLists.txt).
readonly SKIP=77

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Skips without root, or fails when REQCOST_REQUIRE_BPF=1 (CI can load BPF),
# as tests/support/require_bpf.h does for the C++ tests.
require_root() {
  if [ "$(id -u)" -ne 0 ] || [ ! -r /sys/kernel/btf/vmlinux ]; then
    if [ "${REQCOST_REQUIRE_BPF:-}" = 1 ]; then
      fail "REQCOST_REQUIRE_BPF=1 but this test needs root and BTF"
    fi
    echo "SKIP: needs root and /sys/kernel/btf/vmlinux"
    exit "$SKIP"
  fi
}

# hidden_run DIR... -- CMD...: runs CMD in a private mount namespace in
# which every DIR is an empty tmpfs, from / . Nothing CMD (or a server it
# starts) does can reach a file under DIR, and nothing changes for any
# other process: the trees stay where they are.
hidden_run() {
  local dirs=()
  while [ "$1" != "--" ]; do dirs+=("$1"); shift; done
  shift
  unshare --mount --propagation private -- bash -c '
    set -e
    n=$1; shift
    for ((i = 0; i < n; i++)); do
      # A tree inside one hidden before is gone already.
      if [ -d "$1" ]; then mount -t tmpfs -o size=1m,mode=0700 reqcost-hidden "$1"; fi
      shift
    done
    cd /
    exec "$@"' hidden_run "${#dirs[@]}" "${dirs[@]}" "$@"
}

# must_run LOG CMD...: runs CMD with its output in LOG.out and LOG.err;
# fails showing both when it exits non-zero.
must_run() {
  local log="$1" rc=0
  shift
  "$@" > "$log.out" 2> "$log.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$log.out" "$log.err" >&2
    fail "$* exited $rc"
  fi
}

# check_commands REQCOST LOG_DIR HIDDEN_DIR...: --version, check and
# `demo -n 200` with the given trees hidden, and what their output must say.
check_commands() {
  local reqcost="$1" log="$2"
  shift 2
  local out
  # The trees really are out of reach inside the namespace.
  for d in "$@"; do
    hidden_run "$@" -- test ! -e "$d/CMakeLists.txt" -a ! -e "$d/CMakeCache.txt" ||
      fail "$d is still visible inside the namespace"
  done

  must_run "$log/version" hidden_run "$@" -- timeout -k 5 30 "$reqcost" --version
  out="$(cat "$log/version.out")"
  echo "$out"
  [[ "$out" =~ ^reqcost\ [0-9]+\.[0-9]+\.[0-9]+\ \(commit\ [^,]+,\ libbpf\ [0-9]+\.[0-9]+\)$ ]] ||
    fail "--version printed '$out'"

  must_run "$log/check" hidden_run "$@" -- timeout -k 5 30 "$reqcost" check

  local start=$SECONDS
  must_run "$log/demo" hidden_run "$@" -- timeout -k 10 150 "$reqcost" demo -n 200
  echo "demo -n 200: $((SECONDS - start)) s"
  grep -q "ab: 200 requests" "$log/demo.out" || { cat "$log/demo.out"; fail "demo: no ab line"; }
  grep -q "reqcost: 200 complete" "$log/demo.out" ||
    { cat "$log/demo.out"; fail "demo: reqcost did not count the 200 requests"; }
  grep -q "stopped nginx, php-fpm and the sample backend" "$log/demo.out" ||
    { cat "$log/demo.out"; fail "demo: did not stop its servers"; }
}

# no_build_path FILE... : none of the ELF files holds the build directory.
no_build_path() {
  local f
  for f in "$@"; do
    if strings -a "$f" | grep -F -q -- "$BUILD_DIR"; then
      strings -a "$f" | grep -F -- "$BUILD_DIR" | head -5 >&2
      fail "$f contains the build directory $BUILD_DIR"
    fi
  done
}
