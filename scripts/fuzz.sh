#!/bin/sh
# Builds the libFuzzer targets (fuzz/) with clang + ASan + UBSan in build-fuzz, then runs the
# fuzz suite: per target, a replay of its seeds and fuzz/regressions/<target>/ and a fuzzing run
# of SECONDS (default 30; CI runs this through scripts/test.sh). Reproducers of crashes land in
# build-fuzz/fuzz/artifacts/<target>/, the growing corpus in build-fuzz/fuzz/corpus/<target>/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 3600 fuzz_decoders (--help: this)
# Env: BUILD_DIR (build-fuzz), JOBS (ninja -j, default 2), MESON_TEST_ARGS (extra args).
# Exit status: meson test's (0 when every replay passed and no run found anything).
set -eu
cd "$(dirname "$0")/.."
# Checked first: --help or a typo should not configure and build build-fuzz/ (several minutes).
case ${1:-30} in
  -h|--help) sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; exit 0 ;;
  *[!0-9]*) echo "fuzz.sh: SECONDS '$1': expected a whole number of seconds (see --help)" >&2; exit 2 ;;
esac
SECONDS_PER_TARGET=${1:-30}
[ $# -gt 0 ] && shift
TARGETS=${*:-"fuzz_model_package fuzz_onnx_import fuzz_decoders"}
BUILD=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-2}

if [ ! -f "$BUILD/build.ninja" ]; then
  # fuzzer-no-link: every library is coverage-instrumented, so libFuzzer can steer into the
  # loader/engine/decoders code, not only into the small harness files. -Db_ndebug=false: assert()
  # stays on, as in build-asan (buildtype plain would otherwise define NDEBUG).
  CC=clang CXX=clang++ meson setup "$BUILD" -Dfuzz=true -Dbuildtype=plain -Db_ndebug=false \
    -Dcpp_args="-O1 -g1 -fsanitize=fuzzer-no-link" -Dc_args="-O1 -g1 -fsanitize=fuzzer-no-link" \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbenchmarks=disabled
fi
# Only the targets and the test packages they are seeded from, not the whole tree.
# shellcheck disable=SC2046
targets="tests/data/models.stamp $(for t in $TARGETS; do printf 'fuzz/%s ' "$t"; done)"
# BUILD_ONLY=1: configure and build, no runs (scripts/test.sh builds ahead in the background).
# shellcheck disable=SC2086
[ "${BUILD_ONLY:-0}" = 1 ] && exec ninja -C "$BUILD" -j"$JOBS" $targets
# shellcheck disable=SC2086
ninja -C "$BUILD" -j"$JOBS" $targets

tests=""
for t in $TARGETS; do tests="$tests ${t}_regressions ${t}_run"; done
# A run must not be cut by meson's timeout: scale it with the fuzzing time (900 s in meson.build).
multiplier=$(( SECONDS_PER_TARGET / 600 + 1 ))
# shellcheck disable=SC2086
AXSTREAM_FUZZ_SECONDS=$SECONDS_PER_TARGET exec meson test -C "$BUILD" --no-rebuild \
  --num-processes 2 -t "$multiplier" --print-errorlogs $tests ${MESON_TEST_ARGS:-}
