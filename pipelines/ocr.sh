#!/usr/bin/env bash
# Text detection and recognition (OCR cascade) on still images: PP-OCRv4 det -> axdecode dbnet
# (rotated text boxes) -> axpreprocess roi=objects (each box cut along its rotated rectangle,
# warped upright and resized as PaddleOCR feeds rec: height 48, aspect kept, right-padded) ->
# PP-OCRv4 rec -> axdecode ctc (ppocr_keys_v1 dictionary); prints the text
# found in each image and writes its JSON Lines results.
#
#   pipelines/ocr.sh [IMAGE...] [--color-format RGB|BGR]
#
# Default images: opencv-doc's examples/text/scenetext0[1-6].jpg. Writes
# $AXSTREAM_OUT/ocr-<image name>.jsonl (one record per image: text boxes with label "text",
# keypoints = the 4 corners, text; a name met again, as in a/img.jpg b/img.jpg, gets -2, -3,
# ...). Prints, per image, one line per box that has text:
# "<image>: <text> (box score 0.93) at x,y wxh", best detection first. --color-format sets the
# channel order fed to both models (default BGR, as PaddleOCR was trained; the packages say RGB).
#
# Environment: AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream),
# AXSTREAM_OUT (default out/), AXSTREAM_OCR_DET / AXSTREAM_OCR_REC (default the compiled
# ppocr-det / ppocr-rec packages), AXSTREAM_OCR_DICT (default the OCR package's ppocr_keys_v1.txt).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
det=${AXSTREAM_OCR_DET:-$cache/models/ppocr-det}
rec=${AXSTREAM_OCR_REC:-$cache/models/ppocr-rec}
dict=${AXSTREAM_OCR_DICT:-$cache/ocr/package/assets/ppocr_keys_v1.txt}
color=BGR  # PaddleOCR feeds its models OpenCV BGR images
images=()
while (($#)); do
  case $1 in
    --color-format) need_value "$@"; color=$2; shift
       [[ $color == RGB || $color == BGR ]] || die 2 "--color-format '$color': expected RGB or BGR" ;;
    -h|--help) print_usage; exit 0 ;;
    -*) die 2 "unknown option '$1' (see --help)" ;;
    *) images+=("$1") ;;
  esac
  shift
done
if ((${#images[@]} == 0)); then
  for i in 1 2 3 4 5 6; do
    images+=("$cache/opencv-doc/usr/share/doc/opencv-doc/examples/text/scenetext0$i.jpg")
  done
fi
for p in "$det" "$rec"; do
  require_package "$p" "run scripts/build-demo-models.sh ppocr-det ppocr-rec"
done
[[ -f "$dict" ]] || die 1 "no dictionary at $dict (run scripts/setup.sh, or set AXSTREAM_OCR_DICT)"
# Every image is checked before the first one runs.
for image in "${images[@]}"; do
  require_media "$image" image
done
use_plugin
require_output_dir "$out"
color_prop=color-format=$color

# Images with the same name from different folders (a/img.jpg b/img.jpg, or img.jpg img.png) get
# ocr-img.jsonl, ocr-img-2.jsonl, ...: each wrote ocr-img.jsonl over the one before.
declare -A name_used=()
for image in "${images[@]}"; do
  name=$(basename "${image%.*}")
  if [[ -n ${name_used[$name]:-} ]]; then
    n=2
    while [[ -n ${name_used[$name-$n]:-} ]]; do n=$((n + 1)); done
    name=$name-$n
  fi
  name_used[$name]=1
  json=$out/ocr-$name.jsonl
  status=0
  launch -q \
    filesrc location="$image" ! decodebin ! imagefreeze num-buffers=1 ! videoconvert ! \
    video/x-raw,format=RGB ! \
    axpreprocess model="$det" "$color_prop" ! axinference model="$det" ! \
    axdecode decoder=dbnet model="$det" ! \
    axpreprocess roi=objects object-class=text resize=pad-right model="$rec" "$color_prop" ! \
    axinference model="$rec" ! axdecode decoder=ctc model="$rec" labels="$dict" ! \
    axmetapublish location="$json" ! fakesink || status=$?
  ((status != 130)) || die 130 "interrupted by Ctrl-C at $image (the images before it are done)"
  ((status == 0)) ||
    die 1 "the pipeline failed on $image with $det and $rec (the GStreamer error above)"
  /usr/bin/python3 - "$json" "$name" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
found = 0
for line in open(path):
    record = json.loads(line)
    texts = [o for o in record["objects"] if o.get("text")]
    # "score" is null when the box came with no confidence (docs/metadata-schema.md).
    texts.sort(key=lambda o: -(o.get("score") or 0))
    for o in texts:
        x, y, w, h = o["box"]
        score = "unknown" if o.get("score") is None else f"{o['score']:.2f}"
        print(f"{name}: {o['text']} (box score {score}) "
              f"at {x},{y} {w}x{h}")
        found += 1
boxes = sum(1 for line in open(path) for o in json.loads(line)["objects"] if o["label"] == "text")
print(f"{name}: {boxes} text boxes, {found} with text -> {path}")
PY
done
