#!/bin/sh
# Builds everything with ASan + UBSan in build-asan and runs the test suites under it.
#   scripts/sanitize.sh [SUITE...]        default: every suite (meson test --suite each)
# Env: BUILD_DIR (build-asan), JOBS (ninja -j, default 1), MESON_TEST_ARGS (extra args).
# Not part of the default CI run (time budget); see docs/reliability.md.
#
# Python-hosted suites (python, reliability): the interpreter is not instrumented, so libasan
# must be preloaded before the ASan-instrumented extension/plugin is loaded. tests/reliability
# sets LD_PRELOAD itself; for the others this script exports it around `meson test`. Leak
# detection is off for them (CPython's own allocations at exit are reported otherwise); the
# C++ test programs run with leak detection on.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-1}
SUITES=${*:-"hal runtime engine gst capi compiler python reliability"}

if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
    -Dbenchmarks=disabled
fi
ninja -C "$BUILD" -j"$JOBS"

LIBASAN=$(c++ -print-file-name=libasan.so)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Sanitized code runs several times slower: stretch every test's timeout.
status=0
for suite in $SUITES; do
  case $suite in
    python|reliability)
      env LD_PRELOAD="$LIBASAN" ASAN_OPTIONS=detect_leaks=0 \
        meson test -C "$BUILD" --suite "$suite" --no-rebuild -t 4 --print-errorlogs ${MESON_TEST_ARGS:-} \
        || status=1 ;;
    *)
      env ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        meson test -C "$BUILD" --suite "$suite" --no-rebuild -t 4 --print-errorlogs ${MESON_TEST_ARGS:-} \
        || status=1 ;;
  esac
done
exit $status
