#!/usr/bin/env bash
# The agent soak: reqcost as the systemd unit runs it (attach --cgroup ...
# --duration 0 --metrics 127.0.0.1:PORT) on nginx + php-fpm (pm = dynamic,
# workers recycled every 200 requests) in a cgroup v2 directory of its own,
# under a reload storm: `nginx -s reload` every 10 s, log-reopen signals
# (USR1 to nginx and php-fpm) every 30 s, ab load in between. Every minute
# it samples reqcost's RSS, its open fds, the number of series it exposes,
# the requests it counted against those ab sent and the sum of its anomaly
# counters (each one is printed at the end). Not in CI.
# SIGUSR1 ends the storm early, as if its time were up (the checks and the
# summary still run, on the minutes it ran).
#
#   sudo bash scripts/soak.sh                    # one hour
#   sudo SOAK_MINUTES=5 bash scripts/soak.sh     # the short mode
#
# Pass (exit 0): RSS and fds flat (the last sample within SOAK_RSS_SLACK_KB,
# default 2048, and 2 fds of the sample at the end of warm-up: minute
# SOAK_WARMUP_MIN, default 10, while the histograms' buckets and the tables
# still fill; minute 1 in a run no longer than that), every
# request ab sent counted complete, and no label past its cap (backend 32,
# server 16, reason 32: cli/exporters/metrics.h). Exit 1 on a failed check,
# 2 on bad usage, 77 without root.
# Env: SOAK_MINUTES (60), REQCOST_BUILD_DIR (build), SOAK_DIR (a new temp
# dir, kept), SOAK_RSS_SLACK_KB (2048), SOAK_WARMUP_MIN (10).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${REQCOST_BUILD_DIR:-$root/build}"
minutes="${SOAK_MINUTES:-60}"
slack_kb="${SOAK_RSS_SLACK_KB:-2048}"
warmup="${SOAK_WARMUP_MIN:-10}"
case "$minutes" in
  ''|*[!0-9]*|0) echo "soak.sh: SOAK_MINUTES must be a whole number of minutes >= 1, not '$minutes'" >&2; exit 2 ;;
esac
case "$warmup" in
  ''|*[!0-9]*|0) echo "soak.sh: SOAK_WARMUP_MIN must be a whole number of minutes >= 1, not '$warmup'" >&2; exit 2 ;;
esac
# The reference sample must be one the run takes.
[ "$warmup" -lt "$minutes" ] || warmup=1
if [ "$(id -u)" -ne 0 ]; then
  echo "soak.sh: needs root (loads BPF, makes a cgroup)" >&2
  exit 77
fi
reqcost="$build/cli/reqcost"
[ -x "$reqcost" ] || { echo "soak.sh: $reqcost not built (scripts/build.sh)" >&2; exit 2; }
fpm_bin="$(command -v php-fpm8.2 || command -v php-fpm || true)"
[ -n "$fpm_bin" ] || { echo "soak.sh: php-fpm not installed (scripts/bootstrap.sh)" >&2; exit 2; }
cg_mount="$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)"
[ -n "$cg_mount" ] || { echo "soak.sh: no cgroup v2 mount" >&2; exit 2; }

d="${SOAK_DIR:-$(mktemp -d /tmp/reqcost-soak-XXXXXX)}"
mkdir -p "$d/tmp"
cg_name="reqcost-soak-$$"
cg="$cg_mount/$cg_name"
mkdir "$cg"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
mport="$(free_port)"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  # Whatever is left in the cgroup (workers) goes back to the root first.
  if [ -d "$cg" ]; then
    for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do [ -z "$(cat "$cg/cgroup.procs")" ] && break; sleep 0.1; done
    rmdir "$cg" 2>/dev/null || echo "soak.sh: could not remove $cg" >&2
  fi
}
trap cleanup EXIT

cat > "$d/php-fpm.conf" <<EOF
[global]
pid = $d/php-fpm.pid
error_log = $d/php-fpm-error.log
daemonize = no
[www]
listen = $d/fpm.sock
pm = dynamic
pm.max_children = 8
pm.start_servers = 2
pm.min_spare_servers = 1
pm.max_spare_servers = 3
pm.max_requests = 200
access.log = $d/php-fpm-access.log
EOF
cat > "$d/nginx.conf" <<EOF
user root;
worker_processes 2;
pid $d/nginx.pid;
error_log $d/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log $d/nginx-access.log;
  client_body_temp_path $d/tmp/body;
  fastcgi_temp_path $d/tmp/fastcgi;
  proxy_temp_path $d/tmp/proxy;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root $root/samples/php;
    location ~ \.php\$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_pass unix:$d/fpm.sock;
    }
  }
}
EOF

# Started inside the cgroup: the shell moves itself, then becomes the server.
sh -c "echo \$\$ > '$cg/cgroup.procs' && exec '$fpm_bin' -F -R -y '$d/php-fpm.conf' -p '$d'" \
  > "$d/php-fpm.out" 2>&1 &
fpm=$!; pids+=("$fpm")
sh -c "echo \$\$ > '$cg/cgroup.procs' && exec nginx -p '$d' -c '$d/nginx.conf' -g 'daemon off;'" \
  > "$d/nginx.out" 2>&1 &
nginx=$!; pids+=("$nginx")
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/hello.php" && [ -S "$d/fpm.sock" ] && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/hello.php" || { echo "soak.sh: the stack did not start (see $d)" >&2; exit 1; }

"$reqcost" attach --cgroup "$cg_name" --duration 0 --metrics "127.0.0.1:$mport" \
  > "$d/reqcost.out" 2> "$d/reqcost.err" &
rq=$!; pids=("$rq" "${pids[@]}")
for _ in $(seq 300); do grep -q "attached to" "$d/reqcost.err" 2>/dev/null && break; sleep 0.1; done
grep -q "attached to" "$d/reqcost.err" || { cat "$d/reqcost.err" >&2; exit 1; }

metric() {  # metric NAME_WITH_LABELS: its value in the exposition, 0 if absent
  curl -s "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 == m { print $2; f=1 } END { if (!f) print 0 }'
}
series() { curl -s "http://127.0.0.1:$mport/metrics" | grep -vc '^#'; }
anomalies() {  # the sum of reqcost_anomalies_total over its counters
  curl -s "http://127.0.0.1:$mport/metrics" |
    awk '/^reqcost_anomalies_total\{/ { s += $2 } END { printf "%d\n", s }'
}
labels() {  # labels NAME: distinct values of label NAME
  curl -s "http://127.0.0.1:$mport/metrics" | { grep -o "[{,]$1=\"[^\"]*\"" || true; } | sort -u | wc -l
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$rq/status"; }
fds() { ls "/proc/$rq/fd" | wc -l; }

sent=0
failed=0
storm_start=$(date +%s)
storm_end=$(( storm_start + minutes * 60 ))
next_sample=$(date +%s)
next_reload=$(( next_sample + 10 ))
next_reopen=$(( next_sample + 30 ))
minute=0
first_rss=""; first_fds=""
trap 'storm_end=0' USR1
printf '%-6s %8s %5s %7s %9s %9s %9s %9s\n' minute rss_kb fds series sent counted incompl anomalies | tee "$d/samples.txt"
while :; do
  now=$(date +%s)
  if [ "$now" -ge "$next_sample" ]; then
    c=$(metric 'reqcost_requests_total{status="complete"}')
    i=$(metric 'reqcost_requests_total{status="incomplete"}')
    r=$(rss_kb); f=$(fds); s=$(series); a=$(anomalies)
    printf '%-6s %8s %5s %7s %9s %9s %9s %9s\n' "$minute" "$r" "$f" "$s" "$sent" "${c%.*}" "${i%.*}" "$a" | tee -a "$d/samples.txt"
    if [ "$minute" -eq "$warmup" ]; then first_rss=$r; first_fds=$f; fi
    minute=$((minute + 1))
    next_sample=$((next_sample + 60))
  fi
  [ "$now" -ge "$storm_end" ] && break
  if [ "$now" -ge "$next_reload" ]; then
    nginx -p "$d" -c "$d/nginx.conf" -s reload 2>>"$d/reload.err" || true
    next_reload=$((next_reload + 10))
  fi
  if [ "$now" -ge "$next_reopen" ]; then
    kill -USR1 "$nginx" "$fpm" 2>/dev/null || true
    next_reopen=$((next_reopen + 30))
  fi
  # The load in between: a short ab burst (a reload may land in it).
  out="$(ab -q -n 400 -c 4 "http://127.0.0.1:$port/sleep.php?us=500" 2>&1 || true)"
  n=$(awk '/^Complete requests:/ { print $3 }' <<<"$out"); n=${n:-0}
  fl=$(awk '/^Failed requests:/ { print $3 }' <<<"$out"); fl=${fl:-0}
  sent=$((sent + n)); failed=$((failed + fl))
  sleep 0.2
done

# Quiet: the last requests are finalized and exported (live metrics).
sleep 3
c=$(metric 'reqcost_requests_total{status="complete"}'); c=${c%.*}
i=$(metric 'reqcost_requests_total{status="incomplete"}'); i=${i%.*}
dropped=$(metric 'reqcost_dropped_events_total'); dropped=${dropped%.*}
last_rss=$(rss_kb); last_fds=$(fds)
backends=$(labels backend); servers=$(labels server); reasons=$(labels reason)
curl -s "http://127.0.0.1:$mport/metrics" | grep '^reqcost_anomalies_total{' > "$d/anomalies.txt" || true
kill -INT "$rq"
for _ in $(seq 300); do kill -0 "$rq" 2>/dev/null || break; sleep 0.1; done
wait "$rq" || true
pids=("${pids[@]:1}")
tail -n 3 "$d/reqcost.out"

status=0
check() { if eval "$1"; then echo "ok:   $2"; else echo "FAIL: $2"; status=1; fi; }
echo
ran_s=$(( $(date +%s) - storm_start ))
echo "soak: $minutes min asked, $((ran_s / 60)) min $((ran_s % 60)) s run, $sent requests sent ($failed failed at the client), $c counted complete, $i incomplete, $dropped events dropped"
echo "      reqcost RSS ${first_rss:-?} kB at minute $warmup (end of warm-up) -> $last_rss kB; fds ${first_fds:-?} -> $last_fds"
echo "      label values: backend $backends, server $servers, reason $reasons"
echo "      anomalies at the end:"; sed 's/^/        /' "$d/anomalies.txt"
if [ -n "$first_rss" ]; then
  check '[ $((last_rss - first_rss)) -le '"$slack_kb"' ]' "RSS flat (grew $((last_rss - first_rss)) kB; slack $slack_kb kB)"
  check '[ $((last_fds - first_fds)) -le 2 ] && [ $((first_fds - last_fds)) -le 2 ]' "fds flat ($first_fds -> $last_fds)"
fi
check '[ "$failed" -eq 0 ]' "ab saw no failed request"
check '[ "$c" -eq "$sent" ]' "every request sent counted complete ($c of $sent)"
check '[ "$backends" -le 32 ] && [ "$servers" -le 16 ] && [ "$reasons" -le 32 ]' "labels within their caps"
echo "samples: $d/samples.txt; logs in $d"
exit "$status"
