#!/bin/bash
# `meson test --wrapper` for the ASan+UBSan build (scripts/sanitize.sh): runs one test with
# GCC's libasan preloaded, so uninstrumented hosts (python3, gst-launch-1.0) can load our
# instrumented libraries, the plugin and the Python extension. Our C++ test programs link
# libasan themselves; preloading the same library again changes nothing for them.
# Leak detection: on for our test programs; off for tests hosted by an interpreter or a shell
# script (python's and GStreamer's own allocations at exit are not ours; scripts/leakcheck.py
# checks those hosts for leaks of ours with a filter). A test's own ASAN_OPTIONS wins.
# libstdc++ is preloaded too: python3 does not link it, and ASan resolves its __cxa_throw
# interceptor at start-up ("CHECK failed: ... real___cxa_throw != 0" at the first C++ throw).
# intercept_tls_get_addr=0: GCC 12's runtime takes a dynamic TLS block that malloc happened to
# place 16 bytes past a 4096 boundary for a pre-2.25 glibc block and reads its range from the
# two words before it; LeakSanitizer then scans that garbage range and its tracer dies
# ("Tracer caught signal 11", google/sanitizers#1322). Without the interception the blocks are
# still scanned, as heap chunks reachable from the thread's dtv.
case ${1:-} in
  ''|-h|--help)  # a command to wrap is required; these print this header
    sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
    [ -n "${1:-}" ] && exit 0
    exit 2 ;;
esac
libasan=${AXSTREAM_LIBASAN:-$(c++ -print-file-name=libasan.so) $(c++ -print-file-name=libstdc++.so.6)}
case $(basename "$1") in
  python*|*.sh|*.py|sh|bash) leaks=0 ;;
  *) leaks=1 ;;
esac
# Tests that measure memory (the soak's RSS bound) skip what ASan's quarantine distorts.
export AXSTREAM_SANITIZER=address
export LD_PRELOAD="$libasan${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=$leaks:intercept_tls_get_addr=0}"
# One-time allocations of GLib/GStreamer/oneDNN/... made through our code (docs/reliability.md).
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(dirname "$0")/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
[ "$leaks" = 1 ] || exec "$@"

# LeakSanitizer's stop-the-world tracer itself sometimes segfaults at exit ("Tracer caught
# signal 11" then "LeakSanitizer has encountered a fatal error"; google/sanitizers#1353): the
# crashes seen fault in ScanRangeForPointers at an address like 0x4170, a bogus low range among
# its roots. That is a crash of the checker, not a leak and not a failure of the test, so a run
# that fails with exactly that signature runs once more, leak detection still on; any other
# failure, and a leak report in the second run, fail the test as usual.
stderr_copy=$(mktemp)
trap 'rm -f "$stderr_copy"' EXIT
run_once() {
  "$@" 2> >(tee "$stderr_copy" >&2)
  local rc=$?
  wait $! 2>/dev/null  # let tee finish copying before stderr_copy is read
  return $rc
}
run_once "$@" && exit 0
rc=$?
if grep -q '^Tracer caught signal' "$stderr_copy" &&
   grep -q 'LeakSanitizer has encountered a fatal error' "$stderr_copy"; then
  echo "asan-wrapper.sh: LeakSanitizer's tracer crashed at exit (a sanitizer fault, not a leak); running the test again" >&2
  run_once "$@"
  exit $?
fi
exit $rc
