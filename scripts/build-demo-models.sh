#!/usr/bin/env bash
# Compiles the model packages the demos and pipelines use into $AXSTREAM_CACHE/models/<name>,
# recompiling a package only when axcompile (binary or its libraries), the source model or the
# compile options changed.
#
#   scripts/build-demo-models.sh [NAME...]     (default: all; --list shows the names, --help this)
#
# Environment: AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${AXSTREAM_BUILD:-$here/build}
cache=${AXSTREAM_CACHE:-$HOME/.cache/axstream}
axcompile=$build/tools/axcompile
models=$cache/models
data=$cache/opencv-doc/usr/share/doc/opencv-doc/examples
log() { printf '\033[1m[models]\033[0m %s\n' "$*" >&2; }

# name | source model | axcompile options
recipes=(
  "blazeface-front|$cache/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx|--calib $data/data/Megamind.avi --num-calib 24 --mean 0.5 --std 0.5"
  # Batch 4: axinference shared=true gathers frames of several streams into one run (multistream).
  "blazeface-front-b4|$cache/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx|--calib $data/data/Megamind.avi --num-calib 24 --mean 0.5 --std 0.5 --batch 4"
  # back: 2 more search rounds and up to 35% float nodes (docs/compiler.md, "Measured accuracy").
  "blazeface-back|$cache/blazeface/package/ONNX/face_detection_back_256x256_barracuda.onnx|--calib $data/data/Megamind.avi --num-calib 24 --mean 0.5 --std 0.5 --fallback-rounds 10 --max-float-fraction 0.35"
  # det calibrates on the word/character crops (the scenetext0* scenes stay held out, as in the
  # real-model test) with entropy ranges and the flat range cut (docs/compiler.md, "Gaps").
  "ppocr-det|$cache/ocr/package/assets/ch_PP-OCRv4_det_infer.onnx|--calib $data/text/scenetext_*.jpg --num-calib 12 --calib-method entropy --flat-range-cut --input-shape x=1,3,640,640 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225"
  # rec calibrates on the text lines the float det finds in the scenes (its real inputs), resized
  # as PaddleOCR feeds them (--calib-text-crops implies --calib-resize pad-right; pipelines/ocr.sh
  # feeds the package the same way); cls uses the range method that reads like float on its
  # images (docs/compiler.md, "Measured accuracy").
  "ppocr-rec|$cache/ocr/package/assets/ch_PP-OCRv4_rec_infer.onnx|--calib $data/text/scenetext0*.jpg --calib-text-crops $cache/ocr/package/assets/ch_PP-OCRv4_det_infer.onnx --num-calib 24 --input-shape x=1,3,48,320 --mean 0.5 --std 0.5"
  "ppocr-cls|$cache/ocr/package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx|--calib $data/text/*.jpg --num-calib 8 --calib-method entropy --input-shape x=1,3,48,192 --mean 0.5 --std 0.5"
)

names=()
for r in "${recipes[@]}"; do names+=("${r%%|*}"); done
case ${1:-} in
  --list) printf '%s\n' "${names[@]}"; exit 0 ;;
  -h|--help) sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; exit 0 ;;
esac
# A misspelt name would otherwise compile nothing and exit 0.
for wanted in "$@"; do
  if [[ " ${names[*]} " != *" $wanted "* ]]; then
    echo "build-demo-models: unknown package '$wanted' (expected one of: ${names[*]})" >&2
    exit 2
  fi
done
if [[ ! -x "$axcompile" ]]; then
  echo "build-demo-models: $axcompile not built (run ninja -C $build tools/axcompile)" >&2
  exit 1
fi

# shellcheck source=scripts/package-stamp.sh
. "$(dirname "${BASH_SOURCE[0]}")/package-stamp.sh"
mkdir -p "$models"
failed=0
for r in "${recipes[@]}"; do
  IFS='|' read -r name source options <<<"$r"
  if (($#)) && [[ " $* " != *" $name "* ]]; then continue; fi
  if [[ ! -f "$source" ]]; then
    log "$name: source model $source missing (run scripts/setup.sh); skipped"
    continue
  fi
  stamp=$(package_stamp "$axcompile" "$build" "$source" "$options")
  if [[ -f "$models/$name/model.json" && "$(cat "$models/$name/.axcompile-stamp" 2>/dev/null)" == "$stamp" ]]; then
    log "$name: up to date"
    continue
  fi
  log "$name: compiling $(basename "$source")"
  # Options split into words on purpose; globs stay unexpanded for axcompile (set -f).
  set -f
  # On a terminal axcompile's progress bars (and an error) show there, the report goes to the log:
  # a compile takes up to a minute, which was silent.
  # shellcheck disable=SC2086
  compile=("$axcompile" "$source" $options --name "$name" --output-dir "$models/$name")
  status=0
  if [[ -t 2 ]]; then "${compile[@]}" >"$models/$name.log" || status=$?
  else "${compile[@]}" >"$models/$name.log" 2>&1 || status=$?; fi
  set +f
  if ((status == 0)); then
    echo "$stamp" >"$models/$name/.axcompile-stamp"
    grep -E "cosine|package" "$models/$name.log" | sed "s/^/[models] $name: /" >&2 || true
  else
    log "$name: axcompile failed; see $models/$name.log"
    tail -n 3 "$models/$name.log" >&2
    failed=1
  fi
done
exit $failed
