#!/usr/bin/env bash
# Sets up axstream (scripts/setup.sh) and runs every test suite, then (CI, issue 10) every suite
# again under ASan+UBSan (scripts/sanitize.sh, build-asan; suite 'long' left to the plain run) and a
# short fuzzing run per libFuzzer target (scripts/fuzz.sh, build-fuzz). The last line printed is the plain summary
# "N passed, N failed, N skipped" over all three runs.
#   scripts/test.sh [MESON TEST ARGS]   extra args go to the first (plain) run only
# Env: AXSTREAM_CI_SANITIZE=0 / AXSTREAM_CI_FUZZ=0 skip a stage; AXSTREAM_SANITIZE_SUITES: the
# suites of the sanitized stage (default: all of them, listed below); AXSTREAM_FUZZ_SECONDS (20)
# is the fuzzing time per target; AXSTREAM_BUILD (build), AXSTREAM_BUILD_ASAN (build-asan),
# AXSTREAM_BUILD_FUZZ (build-fuzz) are the build directories; AXSTREAM_CI_PREBUILD=0: no
# background build of the next stage while a stage's tests run.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${AXSTREAM_BUILD:-$here/build}
build_asan=${AXSTREAM_BUILD_ASAN:-$here/build-asan}
build_fuzz=${AXSTREAM_BUILD_FUZZ:-$here/build-fuzz}
# Each stamp also gives the CPU time (user + system) all finished child processes used so far, so
# the stages' costs can be compared on a busy machine, where wall time says little.
cpu_file=$(mktemp)
trap 'rm -f "$cpu_file"' EXIT
stamp() {
  times >"$cpu_file"  # in this shell: a $(...) subshell would see no children
  local cpu
  cpu=$(awk 'END { for (i = 1; i <= 2; i++) { split($i, t, "m"); s += t[1] * 60 + t[2] } printf "%.0f", s }' "$cpu_file")
  printf '\033[1m[test %s, %s s CPU]\033[0m %s\n' "$(date -u +%H:%M:%S)" "$cpu" "$*"
}

# --help answers at once (it would otherwise go to meson test after the whole set-up and build).
for arg in "$@"; do
  if [[ $arg == -h || $arg == --help ]]; then
    sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
    exit 0
  fi
done

stamp "set-up"
if ! "$here/scripts/setup.sh"; then
  echo "setup failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

# While a stage's tests run, the next stage's build goes ahead in the background, one job at the
# lowest priority: the tests leave a core idle much of the time (one long test at the end, waits
# on subprocesses). It is stopped when the tests end, and the stage's own build (-j2) goes on from
# where it got to (ninja removes the outputs of the commands it interrupts). Log:
# <build dir>.prebuild.log. AXSTREAM_CI_PREBUILD=0 turns this off.
prebuild_pid=
prebuild() {  # SCRIPT BUILD_DIR, in a process group of its own (setsid) to stop it whole
  [[ ${AXSTREAM_CI_PREBUILD:-1} != 0 ]] || return 0
  BUILD_ONLY=1 JOBS=1 BUILD_DIR=$2 setsid nice -n 19 "$1" >"$2.prebuild.log" 2>&1 &
  prebuild_pid=$!
}
stop_prebuild() {
  [[ -n $prebuild_pid ]] || return 0
  kill -TERM -- "-$prebuild_pid" 2>/dev/null
  wait "$prebuild_pid" 2>/dev/null
  prebuild_pid=
}
sanitize_on=${AXSTREAM_CI_SANITIZE:-1}
fuzz_on=${AXSTREAM_CI_FUZZ:-1}
command -v clang++ >/dev/null || fuzz_on=missing

# Tests reserve simulated devices: give this run its own runtime directory, removed on exit
# unless the caller chose it.
own_runtime_dir=
if [[ -z ${AXSTREAM_RUNTIME_DIR:-} ]]; then
  own_runtime_dir=$(mktemp -d /tmp/axstream-test.XXXXXX)
  export AXSTREAM_RUNTIME_DIR=$own_runtime_dir
fi
trap 'rm -f "$cpu_file"; [[ -z $own_runtime_dir ]] || rm -rf "$own_runtime_dir"' EXIT
logs=()
failed_stages=0

stamp "plain build: meson test"
[[ $sanitize_on != 0 ]] && prebuild "$here/scripts/sanitize.sh" "$build_asan"
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || failed_stages=$((failed_stages + 1))
stop_prebuild
logs+=("plain=$build/meson-logs/testlog.json")

if [[ $sanitize_on != 0 ]]; then
  stamp "ASan+UBSan build ($build_asan): build and the sanitized suites"
  # meson names the log after the --wrapper (scripts/asan-wrapper.sh).
  rm -f "$build_asan/meson-logs/testlog-asan-wrapper.sh.json"
  # Every suite (AXSTREAM_SANITIZE_SUITES picks a subset; "" means every suite, python too).
  # The python suite's files run here inside the reliability suite's leakcheck test (pytest
  # tests/python under ASan with LeakSanitizer on, failing on a failed test or a leak of ours),
  # so they are not run a second time on their own.
  sanitize_suites=${AXSTREAM_SANITIZE_SUITES-hal runtime engine gst capi compiler reliability pipelines}
  # Tests in suite 'long' (the real-model compile, ~6 min under ASan) run in the plain stage only:
  # the CI budget is 30 min on 2 cores.
  # The fuzz build goes ahead once the sanitized build is done and its tests run.
  BUILD_ONLY=1 BUILD_DIR=$build_asan "$here/scripts/sanitize.sh" || failed_stages=$((failed_stages + 1))
  stamp "ASan+UBSan build done: the sanitized suites"
  [[ $fuzz_on == 1 ]] && prebuild "$here/scripts/fuzz.sh" "$build_fuzz"
  # shellcheck disable=SC2086
  MESON_TEST_ARGS="--no-suite long ${MESON_TEST_ARGS:-}" \
    BUILD_DIR=$build_asan "$here/scripts/sanitize.sh" $sanitize_suites \
    || failed_stages=$((failed_stages + 1))
  stop_prebuild
  logs+=("sanitized=$build_asan/meson-logs/testlog-asan-wrapper.sh.json")
fi

if [[ $fuzz_on != 0 ]]; then
  stamp "libFuzzer build ($build_fuzz): replays + ${AXSTREAM_FUZZ_SECONDS:-20} s per target"
  rm -f "$build_fuzz/meson-logs/testlog.json"
  if [[ $fuzz_on == 1 ]]; then
    BUILD_DIR=$build_fuzz "$here/scripts/fuzz.sh" "${AXSTREAM_FUZZ_SECONDS:-20}" \
      || failed_stages=$((failed_stages + 1))
  else
    echo "clang++ not found: the fuzz stage cannot run"
  fi
  logs+=("fuzz=$build_fuzz/meson-logs/testlog.json")
fi
stamp "done"

# One line per stage, then the total. A stage that ran no test (its build failed) counts as one
# failure; so does a stage that failed without a failed test in its log.
/usr/bin/python3 - "$failed_stages" "${logs[@]}" <<'PY'
import json, sys
total = [0, 0, 0]
for stage in sys.argv[2:]:
    name, path = stage.split("=", 1)
    passed = failed = skipped = 0
    try:
        lines = open(path).read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if not line.strip():
            continue
        result = json.loads(line).get("result", "")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
    if passed + failed == 0:
        failed = 1  # running no test at all is a failure
    print(f"{name}: {passed} passed, {failed} failed, {skipped} skipped")
    for i, n in enumerate((passed, failed, skipped)):
        total[i] += n
if total[1] == 0 and int(sys.argv[1]) > 0:
    total[1] = 1  # a stage's script failed (e.g. its build) although every logged test passed
print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
sys.exit(1 if total[1] else 0)
PY
