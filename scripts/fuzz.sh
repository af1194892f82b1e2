#!/bin/sh
# Builds the libFuzzer targets (fuzz/) with clang + ASan + UBSan in build-fuzz and runs each for
# SECONDS (default 60). Crash reproducers land in build-fuzz/fuzz/artifacts/<target>/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 600 fuzz_decoders
# Env: BUILD_DIR (build-fuzz), JOBS (ninja -j, default 1), FUZZ_ARGS (extra libFuzzer flags).
# Exit status: 0 when no target crashed, 1 otherwise.
set -eu
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-"fuzz_model_package fuzz_onnx_import fuzz_decoders"}
BUILD=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-1}

if [ ! -f "$BUILD/build.ninja" ]; then
  # fuzzer-no-link: every library is coverage-instrumented, so libFuzzer can steer into the
  # loader/engine/decoders code, not only into the small harness files.
  CC=clang CXX=clang++ meson setup "$BUILD" -Dfuzz=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args=-fsanitize=fuzzer-no-link -Dc_args=-fsanitize=fuzzer-no-link \
    -Dbenchmarks=disabled
fi
ninja -C "$BUILD" -j"$JOBS" tests/data/models.stamp $(for t in $TARGETS; do printf 'fuzz/%s ' "$t"; done)

CORPUS="$BUILD/fuzz/corpus"
/usr/bin/python3 fuzz/make_seeds.py --models "$BUILD/tests/data/models" --out "$CORPUS"
export AXSTREAM_FUZZ_CORE_ONNX="$PWD/$BUILD/tests/data/models/two_outputs/core.onnx"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
for t in $TARGETS; do
  mkdir -p "$BUILD/fuzz/artifacts/$t" "$CORPUS/$t"
  echo "== $t: ${SECONDS_PER_TARGET}s"
  if ! "$BUILD/fuzz/$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -timeout=25 \
      -max_len=200000 -print_final_stats=1 -artifact_prefix="$BUILD/fuzz/artifacts/$t/" \
      ${FUZZ_ARGS:-} "$CORPUS/$t" "fuzz/regressions/$t" 2>"$BUILD/fuzz/$t.log"; then
    echo "!! $t found a crash: $(ls "$BUILD/fuzz/artifacts/$t" | head -1) (log: $BUILD/fuzz/$t.log)"
    status=1
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
    "$BUILD/fuzz/$t.log" || tail -5 "$BUILD/fuzz/$t.log"
done
exit $status
