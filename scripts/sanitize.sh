#!/bin/sh
# Builds everything with ASan + UBSan (GCC) in build-asan and runs the test suites under it in
# one `meson test` run (so build-asan/meson-logs/testlog.json holds every result; scripts/test.sh
# counts it in CI).
#   scripts/sanitize.sh [SUITE...]        default: every suite (--help: this)
# Env: BUILD_DIR (build-asan), JOBS (ninja -j, default 2), MESON_TEST_ARGS (extra args),
# BUILD_ONLY=1 (configure and build only).
#
# Every test runs through scripts/asan-wrapper.sh: libasan preloaded (uninstrumented python3
# and gst-launch-1.0 then load our instrumented extension/plugin), leak detection on for our
# C++ test programs and off for interpreter-hosted tests; UBSan halts on the first report, so
# any undefined behaviour fails the test. See docs/reliability.md.
set -eu
cd "$(dirname "$0")/.."
# Checked first: --help or an option should not configure and build build-asan/ (tens of minutes).
for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; exit 0 ;;
    -*) echo "sanitize.sh: unknown option '$arg' (arguments are suite names; meson test options go in MESON_TEST_ARGS)" >&2
        exit 2 ;;
  esac
done
BUILD=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-2}

if [ ! -f "$BUILD/build.ninja" ]; then
  # -O1 -g1: ASan's usual level (fast enough, readable stacks) and a shorter build than -O2 -g.
  # -Db_ndebug=false: assert() stays on (the sanitizers are where an assert should fire); Meson's
  # default b_ndebug=if-release would define NDEBUG for plain as for release.
  meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=plain \
    -Db_ndebug=false \
    -Dcpp_args="-O1 -g1 -fno-omit-frame-pointer" -Dc_args="-O1 -g1 -fno-omit-frame-pointer" \
    -Dbenchmarks=disabled
fi
# BUILD_ONLY=1: configure and build, no tests (scripts/test.sh builds ahead in the background).
[ "${BUILD_ONLY:-0}" = 1 ] && exec ninja -C "$BUILD" -j"$JOBS"
ninja -C "$BUILD" -j"$JOBS"

suites=""
for suite in "$@"; do suites="$suites --suite $suite"; done
# Sanitized code runs several times slower: stretch every test's timeout.
# shellcheck disable=SC2086
exec meson test -C "$BUILD" --no-rebuild --num-processes 2 -t 4 --print-errorlogs \
  --wrapper "$PWD/scripts/asan-wrapper.sh" $suites ${MESON_TEST_ARGS:-}
