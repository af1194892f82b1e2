#!/bin/bash
# The buffer allocator where a container or a sandbox would run it: in a user namespace
# (unshare --user --map-root-user) and with CAP_SYS_ADMIN dropped from the bounding set
# (setpriv), each alone and both together. In every case the allocator must hand out a working
# buffer from a backend the process can reach (a sealed memfd when neither /dev/dma_heap nor
# /dev/udmabuf opens), log the backend it chose (AXSTREAM_DEBUG=1), and the allocator tests
# (hal_dmabuf) must pass. Exits 77 with the reason where unshare/setpriv are not permitted.
# usage: test_dmabuf_unprivileged.sh DMABUF_PROBE HAL_DMABUF_TEST
set -u
probe=$1
allocator_tests=$2

for tool in unshare setpriv; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (util-linux)"
    exit 77
  fi
done
if ! why=$(unshare --user --map-root-user true 2>&1); then
  echo "SKIP: this kernel or sandbox does not let us create a user namespace: $why"
  exit 77
fi
drop_sys_admin=(setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin)
if ! why=$("${drop_sys_admin[@]}" true 2>&1); then
  echo "SKIP: setpriv cannot drop CAP_SYS_ADMIN here: $why"
  exit 77
fi

passed=0
failed=0
fail() {
  echo "FAIL [$1]: $2"
  failed=$((failed + 1))
}

# run_case NAME EXPECT_USERNS EXPECT_NO_SYS_ADMIN PREFIX...
run_case() {
  local name=$1 want_userns=$2 want_no_admin=$3
  shift 3
  local out err rc
  err=$(mktemp)
  out=$(AXSTREAM_DEBUG=1 "$@" "$probe" 2>"$err")
  rc=$?
  echo "--- $name: $(echo "$out" | tr '\n' ' ')"
  echo "    stderr: $(cat "$err")"
  value() { sed -n "s/^$1=//p" <<<"$out"; }
  if [ $rc -ne 0 ]; then
    fail "$name" "the probe could not allocate and use a buffer (exit $rc)"
  else
    local backend logged
    backend=$(value backend)
    logged=$(sed -n 's/^axstream hal: device buffers come from \([a-z_]*\).*/\1/p' "$err")
    [ -n "$logged" ] || fail "$name" "the chosen backend was not logged with AXSTREAM_DEBUG=1"
    [ "$logged" = "$backend" ] || fail "$name" "logged backend '$logged' but allocated '$backend'"
    if [ "$(value heap_openable)" = 0 ] && [ "$(value udmabuf_openable)" = 0 ] &&
       [ "$backend" != memfd ]; then
      fail "$name" "no dmabuf provider opens, yet the backend is '$backend' (expected memfd)"
    fi
    [ "$want_userns" = 0 ] || [ "$(value user_namespace)" = 1 ] ||
      fail "$name" "the probe did not run in a user namespace"
    [ "$want_no_admin" = 0 ] || [ "$(value cap_sys_admin)" = 0 ] ||
      fail "$name" "the probe still had CAP_SYS_ADMIN"
  fi
  # The allocator's own tests (fallback to a sealed memfd, bad fds, sizes) in the same setting.
  if "$@" "$allocator_tests" --gtest_brief=1 >"$err" 2>&1; then
    passed=$((passed + 1))
  else
    fail "$name" "hal_dmabuf failed here:"
    cat "$err"
  fi
  rm -f "$err"
}

run_case "user namespace" 1 0 unshare --user --map-root-user
run_case "no CAP_SYS_ADMIN" 0 1 "${drop_sys_admin[@]}"
run_case "user namespace, no CAP_SYS_ADMIN" 1 1 \
  unshare --user --map-root-user "${drop_sys_admin[@]}"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
