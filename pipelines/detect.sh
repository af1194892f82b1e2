#!/usr/bin/env bash
# Object detection with the seeded YOLOv8n / YOLOv5s / SSD-MobileNet builders
# (benchmarks/make_bench_models.py, random weights: the boxes are meaningless but deterministic;
# the pipeline, tensor shapes and decoding are the real ones): video -> axpreprocess ->
# axinference -> axdecode (yolov8 DFL heads / yolov5 anchor heads / ssd priors) -> axoverlay ->
# annotated video + JSON Lines. Makes and compiles the model on first use.
#
#   pipelines/detect.sh [--model yolov8n|yolov5s|ssd_mobilenet] [--frames N] [--conf T]
#                       [--package DIR] [VIDEO]
#
# --model (default yolov8n) picks the builder and its decoder; --package uses an already compiled
# package of that architecture instead (e.g. one made with axcompile --batch); --frames runs
# the first N frames only (default: the whole video; cut into a temporary MJPEG clip first by
# pipelines/cut_clip.py, since identity eos-after passes N-1, N or sometimes every frame);
# --conf sets axdecode's conf-threshold (default per model, for the random weights: yolov8n
# 0.5, yolov5s 0.3 (objectness x class), ssd_mobilenet 0.2 (softmax over 21 classes)). VIDEO defaults to opencv-doc's vtest.avi.
# Environment: AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream),
# AXSTREAM_OUT (default out/), AXSTREAM_BENCH_MODELS (default $AXSTREAM_CACHE/bench: float/ and
# pkg/, shared with scripts/bench.sh).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
models=${AXSTREAM_BENCH_MODELS:-$cache/bench}
video=$data/vtest.avi
video_given=0
name=yolov8n
frames=-1
conf=
package=
while (($#)); do
  case $1 in
    --model) need_value "$@"; name=$2; shift ;;
    --frames) need_value "$@"; require_uint --frames "$2" 1; frames=$((10#$2)); shift ;;
    --conf) need_value "$@"; conf=$2; shift ;;
    --package) need_value "$@"; package=$2; shift ;;
    -h|--help) print_usage; exit 0 ;;
    -*) die 2 "unknown option '$1' (see --help)" ;;
    *) ((!video_given)) || die 2 "more than one VIDEO: '$video' and '$1'"
       video=$1; video_given=1 ;;
  esac
  shift
done

# The decoder of each builder's outputs (docs/pipelines.md: detect.sh).
ssd_priors="feature-maps=19,10,5,3,2,1; image-size=300; min-sizes=60,105,150,195,240,285;"
ssd_priors+=" max-sizes=105,150,195,240,285,300; aspect-ratios=2|2,3|2,3|2,3|2|2;"
ssd_priors+=" variances=0.1,0.2; clip=1"
case $name in
  # Both YOLO builders end their heads with a Sigmoid (class channels for yolov8n).
  yolov8n) decoder=yolov8; config="activations=sigmoid"; default_conf=0.5 ;;
  yolov5s) decoder=yolov5; config="activations=sigmoid"; default_conf=0.3 ;;
  ssd_mobilenet) decoder=ssd; config=$ssd_priors; default_conf=0.2 ;;
  *) echo "detect: --model '$name': expected yolov8n, yolov5s or ssd_mobilenet" >&2; exit 2 ;;
esac
conf=${conf:-$default_conf}
[[ $conf =~ ^(0(\.[0-9]*)?|1(\.0*)?|\.[0-9]+)$ ]] ||
  die 2 "--conf '$conf': expected a score threshold in 0..1"
require_media "$video" video "$( ((video_given)) || echo "run scripts/setup.sh")"
[[ -z $package ]] || require_package "$package" "--package: a directory made by axcompile"

if [[ -z $package ]]; then
  package=$models/pkg/$name
  if [[ ! -f $package/model.json ]]; then
    mkdir -p "$models/float" "$models/pkg"
    [[ -f $models/float/$name.onnx ]] ||
      /usr/bin/python3 "$here/benchmarks/make_bench_models.py" "$models/float" "$name" >/dev/null
    [[ -x $build/tools/axcompile ]] || { echo "detect: $build/tools/axcompile not built" >&2; exit 1; }
    echo "detect: compiling $name (once; log $models/pkg/$name.log)" >&2
    # On a terminal axcompile's progress bars (and an error) show there; the report goes to the log.
    log=$models/pkg/$name.log
    compile=("$build/tools/axcompile" "$models/float/$name.onnx" --calib "$data/*.jpg"
      --num-calib 8 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --name "$name"
      --output-dir "$package")
    status=0
    if [[ -t 2 ]]; then "${compile[@]}" >"$log" || status=$?
    else "${compile[@]}" >"$log" 2>&1 || status=$?; fi
    # Ctrl-C (or SIGTERM) reached axcompile too, which stops cleanly and exits 130 (143): that
    # was reported as "axcompile failed" and exit 1.
    ((status != 130 && status != 143)) ||
      die 130 "interrupted while compiling $name: no package written (the next run compiles it)"
    ((status == 0)) ||
      die 1 "axcompile failed on $models/float/$name.onnx (its error above, or in $log)"
  fi
fi
require_package "$package" "axcompile did not make it"

use_plugin
require_output_dir "$out"
json=$out/detect-$name.jsonl
video_out=$out/detect-$name.avi
rm -f "$json"

input=$video
if ((frames > 0)); then
  clip_dir=$(mktemp -d)
  trap 'rm -rf "$clip_dir"' EXIT
  /usr/bin/python3 "$here/pipelines/cut_clip.py" "$video" "$clip_dir/clip.avi" "$frames"
  input=$clip_dir/clip.avi
fi

start=$(date +%s.%N)
status=0
launch -q -e \
  filesrc location="$input" ! decodebin ! videoconvert ! video/x-raw,format=I420 ! \
  axpreprocess model="$package" ! \
  axinference model="$package" ! \
  axdecode decoder="$decoder" decoder-config="$config" conf-threshold="$conf" max-detections=50 ! \
  axmetapublish location="$json" ! \
  axoverlay ! videoconvert ! jpegenc ! avimux ! filesink location="$video_out" || status=$?
((status == 0 || status == 130)) ||
  die 1 "the pipeline failed on $video with $package (the GStreamer error above)"
end=$(date +%s.%N)
((status == 0)) || [[ -s $json ]] || die 130 "interrupted by Ctrl-C before the first frame"

/usr/bin/python3 - "$json" "$start" "$end" "$video_out" "$name" <<'PY'
import json, sys
path, start, end, video_out, name = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
frames = objects = 0
for line in open(path):
    record = json.loads(line)
    frames += 1
    objects += len(record["objects"])
seconds = end - start
print(f"detect: {name}: {frames} frames, {objects} objects, {frames / seconds:.1f} frames/s "
      f"(whole pipeline incl. decode and encode)")
print(f"detect: video -> {video_out}")
print(f"detect: results -> {path}")
PY
((status == 0)) || die 130 "interrupted by Ctrl-C: the outputs hold the frames counted above"
