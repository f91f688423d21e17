#!/bin/sh
# Usage: scripts/bench.sh [CMAKE_ARG...]
# Installs what the build and the benchmarks need (scripts/deps.sh: the
# compiler, libraries and the zstd CLI bench_apply compares against; quick
# when all is there), builds a Release build in ./build-bench (any arguments
# go to cmake's configure step) and runs the benchmarks: AT round-trip
# latency and COM upload throughput (bench/bench_at_latency.c,
# bench/bench_com_upload.c:
# dfota-sim beside a bare pty peer measured in the same run, then paced
# uploads when dfota-sim has --pace-uart) and delta apply
# (bench/bench_apply.c, beside zstd --patch-from; needs the zstd CLI), and
# two modems on one loop (bench/bench_loop.c: one uploads and updates, the
# other answers AT; its round trip and the loop's stalls against idle),
# then HTTP(S) downloads (bench/bench_http.py: a 7 MB package from nginx on
# loopback, dfota-sim beside curl; needs nginx-light, openssl, curl).
# They print numbers and ratios and assert nothing; each takes under a
# minute and removes what it made. Exits 1 if a benchmark failed.
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh

build="build-bench"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

rc=0
for bench in bench_at_latency bench_com_upload bench_apply bench_loop; do
    echo "== $bench"
    "$build/$bench" || rc=1
    echo
done
echo "== bench_http"
/usr/bin/python3 bench/bench_http.py "$build" || rc=1
exit $rc
