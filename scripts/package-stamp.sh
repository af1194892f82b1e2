# shellcheck shell=bash
# Sourced by build-demo-models.sh and bench.sh: what a compiled package depends on, as one hash.
# package_stamp AXCOMPILE BUILD SOURCE OPTIONS prints the sha256 of the compiler binary and the
# libraries it loads, the source model and the axcompile options; a package whose
# .axcompile-stamp differs is compiled again (a compiler change can change what it keeps float).
package_stamp() {
  local build=$2 source=$3 options=$4 deps=("$1") lib
  for lib in "$build/runtime/compiler/libaxstream-compiler.so" "$build/runtime/engine/libaxstream-engine.so"; do
    [[ -f "$lib" ]] && deps+=("$lib")
  done
  printf '%s\n%s\n%s\n' "$(sha256sum "${deps[@]}" | sha256sum | cut -c1-64)" \
    "$(sha256sum "$source" | cut -c1-64)" "$options" | sha256sum | cut -c1-64
}
