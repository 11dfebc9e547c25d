#!/usr/bin/env bash
# The benchmark command (README "Performance"):
# installs what is missing, builds, then runs every benchmark and prints its
# figures. About 25 minutes; run it as root (the overhead benchmark loads BPF
# and runs strace) on an otherwise idle machine.
#
#   sudo bash scripts/bench.sh
#
# 1. pipeline_bench: decode + request assembly + statistics on one core,
#    events/s (Google Benchmark).
# 2. report_scaling: `reqcost report` on 1M- and 10M-event captures, wall
#    time and peak RSS (the files are deleted afterwards).
# 3. overhead: nginx + php-fpm under ab, 9 rounds of each scenario
#    (hello.php at concurrency 1 and 4, the file-heavy files.php at 2),
#    untraced alternating with each mode in rotating order: reqcost,
#    reqcost --syscall-times, the floors of the new and the old design
#    (empty programs on their hooks) and strace. Medians and spread of the
#    throughput, latency and CPU-per-request ratios, events/s, dropped
#    events, ns per BPF program invocation, and the overhead targets met or
#    missed. Extra arguments go to it, e.g. --rounds=5 --no-strace,
#    --page=hello|files|both, --modes=base,reqcost,floor-one-tp,floor-sock,
#    floor-new,floor-old,floor-rawsys (base always runs); --quick is a
#    one-minute smoke run of the harness (2 short rounds, no strace, no
#    BPF statistics) whose figures mean nothing.
#    Then the calls mode: hello.php and calls.php (25 Redis calls per
#    request to a redis-server it starts and stops) at concurrency 1, base
#    against reqcost, 9 rounds, and the cost of one call against a
#    request's socket events (CALLS_ARGS go to it, e.g. "--rounds=5").
# 4. tls_cost: the TLS uprobes' cost per HTTPS request on nginx (HTTPS/1.1
#    keep-alive and HTTP/2 with 4 streams, by h2load): reqcost without its
#    TLS probes, with them, and with empty uprobes instead (the floor), in
#    alternating rounds; nginx and machine CPU per request, uprobe runs per
#    request and ns per run (bpf_stats). TLS_COST_ARGS go to it (e.g.
#    "--rounds=5 --requests=2000", or "--quick"). Then tls_calls: what one
#    TLS call costs under the probes with nothing else in the way (a client
#    and a server SSL over an in-memory BIO pair, HTTP/1.1 and HTTP/2,
#    probes off, as one session link, as two multi links, with --payload),
#    thread CPU per call in alternating rounds (TLS_CALLS_ARGS go to it).
# The same programs are registered with ctest under the label `bench` only
# (`ctest -L bench`); the default test run excludes them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
"$root/scripts/bootstrap.sh"
REQCOST_BUILD_DIR="$build" "$root/scripts/build.sh"
bench="$build/tests/bench"

echo
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo
echo "== 1/4 user side: decode + assembly + statistics (one core)"
"$bench/pipeline_bench" --benchmark_min_time=0.5
echo
echo "== 2/4 reqcost report on big captures: wall time, peak RSS"
"$bench/report_scaling"
echo
echo "== 3/4 overhead on a live nginx + php-fpm stack"
"$bench/overhead" --rounds=9 "$@"
echo
echo "== 3/4 (calls) the cost of a backend's calls: 25 Redis calls per request"
# shellcheck disable=SC2086  # CALLS_ARGS is a list of flags
"$bench/overhead" --rounds=9 --seconds=5 --page=hello,calls --concurrency=1 \
  --modes=base,reqcost ${CALLS_ARGS:-}
echo
echo "== 4/4 TLS uprobes: cost per HTTPS request (HTTPS/1.1 keep-alive, h2 -m 4)"
# shellcheck disable=SC2086  # TLS_COST_ARGS is a list of flags
"$bench/tls_cost" ${TLS_COST_ARGS:-}
echo
echo "== 4/4 (calls) TLS uprobes: cost per TLS call, in-memory TLS"
# shellcheck disable=SC2086  # TLS_CALLS_ARGS is a list of flags
"$bench/tls_calls" ${TLS_CALLS_ARGS:-}
