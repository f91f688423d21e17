#!/bin/sh
# Installs every Debian 12 package that dfota-sim's build, tests and test
# peers need. Idempotent: quiet and quick when everything is already there.
# Test and benchmark peers: nginx-light (the HTTP(S) server the download
# tests and bench/bench_http.py start on loopback), openssl (the CLI: their
# certificates, made at test time), curl (the download the benchmark
# compares against, and checking the peers by hand). libcjson-dev: the control
# socket's JSON lines (src/ctl, dfota-simctl).
set -eu
PKGS="build-essential cmake pkg-config git
libuv1-dev libmbedtls-dev libssl-dev libcoap3-dev node-llhttp libzstd-dev libcmocka-dev
libcjson-dev
zstd python3 python3-pytest python3-serial strace
nginx-light openssl curl"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
