#!/usr/bin/env bash
# Sets up axstream (scripts/setup.sh) and runs every test suite. The last line printed is the
# plain summary "N passed, N failed[, N skipped]".
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${AXSTREAM_BUILD:-$here/build}

if ! "$here/scripts/setup.sh"; then
  echo "setup failed"
  echo "0 passed, 1 failed"
  exit 1
fi

# Tests reserve simulated devices: give this run its own runtime directory.
export AXSTREAM_RUNTIME_DIR=${AXSTREAM_RUNTIME_DIR:-$(mktemp -d /tmp/axstream-test.XXXXXX)}
meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
rc=$?

/usr/bin/python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
try:
    lines = open(sys.argv[1]).read().splitlines()
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
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
summary_rc=$?
exit $(( rc != 0 || summary_rc != 0 ))
