#!/bin/sh
# Runs the whole test suite: installs what is missing, builds, then the cmocka
# unit tests (ctest) and the end-to-end tests (pytest + pyserial against the
# real executables).
#   scripts/test.sh              normal build in ./build
#   scripts/test.sh --sanitize   ASan + UBSan build in ./build-asan
set -eu
cd "$(dirname "$0")/.."

build=build
flags=""
if [ "${1:-}" = "--sanitize" ]; then
    build=build-asan
    flags="-DDFOTA_SANITIZE=ON"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi

scripts/deps.sh
# shellcheck disable=SC2086
cmake -S . -B "$build" $flags >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure
# Debian's python3 has pytest and pyserial; another python3 may come first on PATH.
DFOTA_BUILD_DIR="$PWD/$build" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
