#!/bin/sh
# `meson test --wrapper` for the ASan+UBSan build (scripts/sanitize.sh): runs one test with
# GCC's libasan preloaded, so uninstrumented hosts (python3, gst-launch-1.0) can load our
# instrumented libraries, the plugin and the Python extension. Our C++ test programs link
# libasan themselves; preloading the same library again changes nothing for them.
# Leak detection: on for our test programs; off for tests hosted by an interpreter or a shell
# script (python's and GStreamer's own allocations at exit are not ours; scripts/leakcheck.py
# checks those hosts for leaks of ours with a filter). A test's own ASAN_OPTIONS wins.
# libstdc++ is preloaded too: python3 does not link it, and ASan resolves its __cxa_throw
# interceptor at start-up ("CHECK failed: ... real___cxa_throw != 0" at the first C++ throw).
libasan=${AXSTREAM_LIBASAN:-$(c++ -print-file-name=libasan.so) $(c++ -print-file-name=libstdc++.so.6)}
case $(basename "$1") in
  python*|*.sh|*.py|sh|bash) leaks=0 ;;
  *) leaks=1 ;;
esac
# Tests that measure memory (the soak's RSS bound) skip what ASan's quarantine distorts.
export AXSTREAM_SANITIZER=address
export LD_PRELOAD="$libasan${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=$leaks}"
# One-time allocations of GLib/GStreamer/oneDNN/... made through our code (docs/reliability.md).
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(dirname "$0")/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$@"
