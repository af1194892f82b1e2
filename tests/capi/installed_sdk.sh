#!/bin/sh
# What a user outside the tree gets from `meson install`: installs the build into a scratch
# DESTDIR, then builds a C11 program with `pkg-config axruntime` and a C++17 program with both
# `pkg-config axruntime` and `pkg-config axstream-runtime` (axruntime.hpp and runtime.h in one
# file), and runs them, and the installed axrun, axcompile and GStreamer plugin. With the plugin
# built: every installed axstream/gst header compiles as C11 with `pkg-config axstream-gst` alone,
# and docs/metadata-schema.md's program (an app reading results in a pad probe) builds with it and
# runs on the plugin found through the module's pluginsdir, as does a Python app reading them with
# the installed axstream.meta. The same programs build with the build tree's uninstalled modules
# (build/meson-uninstalled). Fails naming the missing header, module or symbol.
#   installed_sdk.sh BUILD_DIR CC CXX [METADATA_EXAMPLE.c CLASSIFIER_PACKAGE]
set -eu
build=$1 cc=$2 cxx=$3 metadata_example=${4:-} classifier=${5:-}
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

# An application embedding the elements: pkg-config axstream-gst is all it needs to build, and its
# pluginsdir is where GStreamer finds the plugin (before, no module named libaxstream-gstmeta: the
# result metas' functions were undefined at link time).
if [ -n "$metadata_example" ]; then
  # Its Requires (gstreamer-1.0, -video) are the system's, which a sysroot would move into the
  # stage: this module alone is read relocated to the stage, as from an install under that prefix.
  gst_pc=$(find "$stage" -name axstream-gst.pc | head -n 1)
  [ -n "$gst_pc" ] || { echo "FAIL: meson install wrote no axstream-gst.pc"; exit 1; }
  mkdir "$scratch/pc"
  sed "s|^prefix=|prefix=$stage|" "$gst_pc" >"$scratch/pc/axstream-gst.pc"
  unset PKG_CONFIG_SYSROOT_DIR
  export PKG_CONFIG_PATH="$scratch/pc"
  pkg-config --exists --print-errors axstream-gst || { echo "FAIL: pkg-config module axstream-gst"; exit 1; }
  pluginsdir=$(pkg-config --variable=pluginsdir axstream-gst)
  [ -f "$pluginsdir/libgstaxelera.so" ] || {
    echo "FAIL: axstream-gst's pluginsdir $pluginsdir does not hold libgstaxelera.so"; exit 1; }
  headers=$(find "$stage" -path '*/include/axstream/gst/*.h' | sort)
  [ "$(echo "$headers" | grep -c 'axresultmeta.h\|axtensormeta.h')" = 2 ] || {
    echo "FAIL: axresultmeta.h and axtensormeta.h are not installed under include/axstream/gst"
    exit 1; }
  for header in $headers; do
    printf '#include "axstream/gst/%s"\nint main(void) { return 0; }\n' "$(basename "$header")" \
      >"$scratch/header.c"
    # shellcheck disable=SC2046
    "$cc" -std=c11 -Wall -Wpedantic -Werror -c "$scratch/header.c" \
      $(pkg-config --cflags axstream-gst) -o "$scratch/header.o" ||
      { echo "FAIL: $(basename "$header") does not compile as C11 with pkg-config axstream-gst"; exit 1; }
  done
  # shellcheck disable=SC2046
  "$cc" -std=c11 -Wall -Wpedantic -Werror "$metadata_example" \
    $(pkg-config --cflags --libs axstream-gst) -o "$scratch/metadata_app"
  export GST_PLUGIN_PATH="$pluginsdir" GST_REGISTRY="$scratch/registry.bin"
  LD_LIBRARY_PATH="$libdir" "$scratch/metadata_app" "$classifier" classification 2 \
    >"$scratch/metadata_app.txt" 2>&1 || {
    cat "$scratch/metadata_app.txt"; echo "FAIL: docs/metadata-schema.md's program failed"; exit 1; }
  cat "$scratch/metadata_app.txt"
  [ "$(grep -c '^frame [01]: class [0-9]' "$scratch/metadata_app.txt")" = 2 ] || {
    echo "FAIL: the program did not read a classification meta on each of its 2 frames"; exit 1; }
  if LD_LIBRARY_PATH="$libdir" "$scratch/metadata_app" "$scratch/no-such-package" classification \
       >"$scratch/metadata_bad.txt" 2>&1 ||
     ! grep -q "no-such-package" "$scratch/metadata_bad.txt"; then
    cat "$scratch/metadata_bad.txt"
    echo "FAIL: a missing package did not fail the program with the element's message naming it"
    exit 1
  fi

  # The same for a Python application: the installed axstream.meta (its extension inside the
  # package, nothing of the build tree on the path) reads each frame's classes in an appsink.
  meta_py=$(find "$stage" -path '*/axstream/meta.py' | head -n 1)
  [ -n "$meta_py" ] || { echo "FAIL: meson install wrote no axstream/meta.py"; exit 1; }
  site=$(dirname "$(dirname "$meta_py")")
  PYTHONPATH="$site" LD_LIBRARY_PATH="$libdir" /usr/bin/python3 - "$classifier" "$site" \
    >"$scratch/meta_py.txt" 2>&1 <<'PY' || {
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: F401  (GstApp: the appsink's methods)
import axstream.meta
extension = axstream.meta._ext.__file__
assert extension.startswith(sys.argv[2] + "/axstream/"), f"not the installed extension: {extension}"
Gst.init(None)
pipeline = Gst.parse_launch(
    f"videotestsrc num-buffers=2 ! axpreprocess model={sys.argv[1]} ! "
    f"axinference model={sys.argv[1]} ! axdecode decoder=classification ! appsink name=sink")
pipeline.set_state(Gst.State.PLAYING)
sink = pipeline.get_by_name("sink")
while (sample := sink.try_pull_sample(60 * Gst.SECOND)) is not None:
    classes = axstream.meta.frame_classes(sample.get_buffer())
    print(f"frame: class {classes[0].class_id} {classes[0].score:.3f}")
pipeline.set_state(Gst.State.NULL)
PY
    cat "$scratch/meta_py.txt"; echo "FAIL: the installed axstream.meta failed"; exit 1; }
  cat "$scratch/meta_py.txt"
  [ "$(grep -c '^frame: class [0-9]' "$scratch/meta_py.txt")" = 2 ] || {
    echo "FAIL: the installed axstream.meta did not read a classification on each of 2 frames"
    exit 1; }
fi
# The uninstalled modules (build/meson-uninstalled/*-uninstalled.pc): the same programs build
# against the build tree's headers and libraries (before, those modules had no -I and named a
# build/lib/<triplet> that does not exist) and run on its libraries.
uninstalled_pkg_config() {
  env -u PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH="$build/meson-uninstalled" pkg-config "$@"
}
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wpedantic -Werror "$scratch/app.c" \
  $(uninstalled_pkg_config --cflags --libs axruntime-uninstalled) -o "$scratch/app_c_uninstalled" ||
  { echo "FAIL: app.c does not build with pkg-config axruntime-uninstalled"; exit 1; }
# shellcheck disable=SC2046
"$cxx" -std=c++17 -Wall -Werror "$scratch/app.cpp" \
  $(uninstalled_pkg_config --cflags --libs axruntime-uninstalled axstream-runtime-uninstalled) \
  -o "$scratch/app_cpp_uninstalled" || { echo "FAIL: app.cpp does not build with pkg-config" \
  "axruntime-uninstalled axstream-runtime-uninstalled"; exit 1; }
build_libdirs=$(uninstalled_pkg_config --libs-only-L axruntime-uninstalled \
  axstream-runtime-uninstalled | sed 's/-L//g; s/ *$//; s/  */:/g')
LD_LIBRARY_PATH="$build_libdirs" "$scratch/app_c_uninstalled"
LD_LIBRARY_PATH="$build_libdirs" "$scratch/app_cpp_uninstalled"
if [ -n "$metadata_example" ]; then
  [ -f "$(uninstalled_pkg_config --variable=pluginsdir axstream-gst-uninstalled)/libgstaxelera.so" ] ||
    { echo "FAIL: axstream-gst-uninstalled's pluginsdir does not hold libgstaxelera.so"; exit 1; }
  # shellcheck disable=SC2046
  "$cc" -std=c11 -Wall -Wpedantic -Werror "$metadata_example" \
    $(uninstalled_pkg_config --cflags --libs axstream-gst-uninstalled) \
    -o "$scratch/metadata_app_uninstalled" ||
    { echo "FAIL: docs/metadata-schema.md's program does not build with pkg-config" \
      "axstream-gst-uninstalled"; exit 1; }
fi
echo "installed headers, pkg-config modules and libraries work"
