#!/bin/sh
# What a user outside the tree gets from `meson install`: installs the build into a scratch
# DESTDIR, then builds a C11 program with `pkg-config axruntime` and a C++17 program with both
# `pkg-config axruntime` and `pkg-config axstream-runtime` (axruntime.hpp and runtime.h in one
# file), and runs them, and the installed axrun, axcompile and GStreamer plugin. Fails naming the
# missing header, module or symbol.
#   installed_sdk.sh BUILD_DIR CC CXX
set -eu
build=$1 cc=$2 cxx=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
stage=$scratch/stage

meson install -C "$build" --no-rebuild --quiet --destdir "$stage" >"$scratch/install.log" 2>&1 || {
  cat "$scratch/install.log"; echo "FAIL: meson install into $stage failed"; exit 1; }
pc=$(find "$stage" -name axruntime.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: meson install wrote no axruntime.pc"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
# The .pc files name the real prefix; the sysroot maps their -I/-L into the scratch DESTDIR.
export PKG_CONFIG_PATH="$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
# Nothing of the build tree (meson test puts it on LD_LIBRARY_PATH): the installed libraries must
# find each other (libaxruntime -> libaxstream-runtime -> -hal, -engine) by their $ORIGIN runpath,
# at link time and at run time, where only the program's own lookup needs the directory.
unset LD_LIBRARY_PATH
for module in axruntime axstream-runtime; do
  pkg-config --exists --print-errors "$module" || { echo "FAIL: pkg-config module $module"; exit 1; }
  # The headers need nothing else: no other module (libdrm, protobuf) may be required to build.
  required=$(pkg-config --print-requires --print-requires-private "$module")
  [ -z "$required" ] || { echo "FAIL: $module requires other modules: $required"; exit 1; }
done

cat >"$scratch/app.c" <<'C'
#include <stdio.h>
#include "axruntime/axruntime.h"
int main(void) {
  axrContext *context = axr_create_context();
  axrDeviceInfo *devices = NULL;
  size_t count = axr_list_devices(context, &devices);
  printf("C: api %#x, %zu device(s), first %s\n", axr_api_version(), count,
         count ? devices[0].name : "-");
  axr_destroy(AXR_OBJECT(context));
  return count ? 0 : 1;
}
C
cat >"$scratch/app.cpp" <<'CPP'
#include <cstdio>
#include "axruntime/axruntime.hpp"
#include "axstream/runtime/runtime.h"
int main() {
  auto c_context = axr::to_ptr(axr_create_context());
  auto context = axstream::runtime::Context::create();
  auto devices = context->list_devices();
  std::printf("C++: %zu device(s), first %s with %d sub-devices\n", devices.size(),
              devices.empty() ? "-" : devices[0].name.c_str(),
              devices.empty() ? 0 : devices[0].subdevice_count);
  try {
    context->device_connect(nullptr, 0);
  } catch (const axstream::InvalidArgument &error) {
    return devices.empty() || axr_list_devices(c_context.get(), nullptr) != devices.size();
  }
  return 1;
}
CPP
# shellcheck disable=SC2046  # pkg-config output is a list of flags
"$cc" -std=c11 -Wall -Wpedantic -Werror "$scratch/app.c" $(pkg-config --cflags --libs axruntime) \
  -o "$scratch/app_c"
# shellcheck disable=SC2046
"$cxx" -std=c++17 -Wall -Werror "$scratch/app.cpp" \
  $(pkg-config --cflags --libs axruntime axstream-runtime) -o "$scratch/app_cpp"
LD_LIBRARY_PATH="$libdir" "$scratch/app_c"
LD_LIBRARY_PATH="$libdir" "$scratch/app_cpp"

# The installed tools and the plugin load the installed libraries by their own runpath (before,
# only libaxruntime had one: bin/axrun stopped with "libaxstream-runtime.so: cannot open shared
# object file" and GStreamer skipped the plugin unless LD_LIBRARY_PATH named the libdir).
bindir=$(dirname "$(find "$stage" -path '*/bin/axrun' | head -n 1)")
for tool in axrun axcompile; do
  "$bindir/$tool" --help >"$scratch/$tool.txt" 2>&1 || {
    cat "$scratch/$tool.txt"; echo "FAIL: the installed $tool does not start"; exit 1; }
done
if [ -f "$libdir/gstreamer-1.0/libgstaxelera.so" ]; then
  GST_PLUGIN_PATH="$libdir/gstreamer-1.0" GST_REGISTRY="$scratch/registry.bin" \
    gst-inspect-1.0 axelera >"$scratch/inspect.txt" 2>&1
  grep -q '7 elements' "$scratch/inspect.txt" || {
    cat "$scratch/inspect.txt"; echo "FAIL: GStreamer does not load the installed plugin"; exit 1; }
fi
echo "installed headers, pkg-config modules and libraries work"
