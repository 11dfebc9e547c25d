#!/usr/bin/env bash
# Installs what reqcost needs to build, test and run its demo, from Debian's
# packages, when missing. Idempotent and non-interactive; `apt-get update`
# runs at most once, and only when something is missing. Needs root.
set -euo pipefail

PACKAGES=(
  # build
  cmake make g++ pkg-config clang llvm libbpf-dev bpftool
  libcli11-dev libabsl-dev nlohmann-json3-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev libfcgi-dev
  # the real stacks the tests, benchmarks and demo profile
  nginx lighttpd php-fpm php-cgi apache2-utils wrk strace
  # the TLS tests make their self-signed certificate with openssl
  openssl
  # the HTTP/2 test drives nginx with curl --http2 (Debian's curl has nghttp2)
  curl
  # the TLS probe tests and their cost figures load nginx over HTTP/2 with
  # h2load
  nghttp2-client
  # lighttpd's TLS (mod_openssl, a package of its own): the lighttpd HTTP/2
  # tests put it in front of php-fpm over TLS
  lighttpd-mod-openssl
  # the --html tests render the page in a real headless browser and decode
  # its PNG screenshots with zlib
  chromium-headless-shell zlib1g-dev
  # fleet exporters: Prometheus metrics, OTLP over HTTP; the
  # Prometheus server and promtool check the exposition in the tests
  prometheus-cpp-dev libcurl4-openssl-dev prometheus
  # the OTLP exporter tests serve their receiver over TLS with OpenSSL
  libssl-dev
  # the package: the man page is made from docs/reqcost.8.md by go-md2man;
  # cpack -G DEB reads the shared-library dependencies with dpkg-shlibdeps
  # (dpkg-dev); the package tests render the page with man (man-db)
  go-md2man dpkg-dev man-db
  # the --interval test runs reqcost in a real terminal: tmux send-keys and
  # capture-pane
  tmux
  # the backend-call tests: a PHP page calls real MariaDB (started from
  # mariadb-install-db in a temp dir), Redis and an HTTP service with curl
  mariadb-server redis-server php-mysql php-redis php-curl
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: missing packages: ${missing[*]}" >&2
  echo "bootstrap: run as root (sudo $0) to install them" >&2
  exit 1
fi

echo "bootstrap: installing ${missing[*]}"
# Packaged nginx and php-fpm must not start as system services (port 80,
# a system socket): reqcost starts its own on loopback. A policy-rc.d that
# refuses every start does that for this install only.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
