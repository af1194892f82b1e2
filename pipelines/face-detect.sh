#!/usr/bin/env bash
# Face detection with BlazeFace on a real video: writes an annotated video and JSON Lines results,
# then prints frames, faces found and frames per second.
#
#   pipelines/face-detect.sh [VIDEO] [--display]
#
# Environment: AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream),
# AXSTREAM_OUT (default out/), AXSTREAM_FACE_MODEL (default the compiled blazeface-front package).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
model=${AXSTREAM_FACE_MODEL:-$cache/models/blazeface-front}
video=$data/Megamind.avi
display=0
video_given=0
for arg in "$@"; do
  case $arg in
    --display) display=1 ;;
    -h|--help) print_usage; exit 0 ;;
    -*) die 2 "unknown option '$arg' (see --help)" ;;
    *) ((!video_given)) || die 2 "more than one VIDEO: '$video' and '$arg'"
       video=$arg; video_given=1 ;;
  esac
done

# Headless, autovideosink falls back to a fake sink: the run "succeeded" and showed nothing.
if ((display)) && [[ -z ${DISPLAY:-} && -z ${WAYLAND_DISPLAY:-} ]]; then
  die 1 "--display: no display to show the video on (DISPLAY and WAYLAND_DISPLAY are unset);" \
    "without --display the annotated video is written to $out"
fi
# A display that cannot be reached (a stale DISPLAY) or no video sink for it: autovideosink then
# picks its fake sink (with gst-launch-1.0 -q not even a warning), and the run reported the
# video shown in a window. autovideosink chooses its sink on the way to READY.
if ((display)) && ! env -u GST_DEBUG -u GST_DEBUG_FILE -u GST_TRACERS /usr/bin/python3 -c '
import gi, sys
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
sink = Gst.ElementFactory.make("autovideosink")
usable = sink is not None and sink.set_state(Gst.State.READY) == Gst.StateChangeReturn.SUCCESS \
    and all(kid.get_factory().get_name() != "fakesink" for kid in sink.iterate_elements())
if sink is not None:
    sink.set_state(Gst.State.NULL)
sys.exit(0 if usable else 1)' 2>/dev/null; then
  die 1 "--display: GStreamer finds no usable video sink for DISPLAY='${DISPLAY:-}'" \
    "WAYLAND_DISPLAY='${WAYLAND_DISPLAY:-}' (autovideosink would show nothing);" \
    "without --display the annotated video is written to $out"
fi
require_media "$video" video "$( ((video_given)) || echo "run scripts/setup.sh")"
require_package "$model" "run scripts/build-demo-models.sh blazeface-front, or set AXSTREAM_FACE_MODEL"
use_plugin
require_output_dir "$out"

# The sink as an array: each word one gst-launch argument, so an output path with spaces stays whole.
if ((display)); then
  sink=(videoconvert ! autovideosink)
  video_out="(window)"
elif gst-inspect-1.0 x264enc >/dev/null 2>&1; then
  video_out=$out/face-detect.mp4
  sink=(videoconvert ! x264enc speed-preset=veryfast ! mp4mux ! filesink location="$video_out")
else
  video_out=$out/face-detect.avi
  sink=(videoconvert ! jpegenc ! avimux ! filesink location="$video_out")
fi
json=$out/face-detect.jsonl
# An earlier run's outputs go first: a Ctrl-C before the pipeline wrote anything reported the
# earlier run's results as this run's.
rm -f "$json"
[[ $video_out == "(window)" ]] || rm -f "$video_out"

start=$(date +%s.%N)
status=0
launch -q -e \
  filesrc location="$video" ! decodebin ! videoconvert ! video/x-raw,format=I420 ! \
  axpreprocess model="$model" ! \
  axinference model="$model" ! \
  axdecode decoder=blazeface conf-threshold=0.6 ! \
  axoverlay ! \
  axmetapublish location="$json" ! \
  "${sink[@]}" || status=$?
((status == 0 || status == 130)) ||
  die 1 "the pipeline failed on $video with $model (the GStreamer error above)"
end=$(date +%s.%N)
((status == 0)) || [[ -s $json ]] || die 130 "interrupted by Ctrl-C before the first frame"

/usr/bin/python3 - "$json" "$start" "$end" "$video_out" <<'PY'
import json, sys
path, start, end, video_out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
frames = faces = frames_with_faces = 0
for line in open(path):
    record = json.loads(line)
    frames += 1
    n = sum(1 for o in record["objects"] if o.get("label") == "face")
    faces += n
    frames_with_faces += n > 0
seconds = end - start
print(f"face-detect: {frames} frames, {faces} faces found, faces in {frames_with_faces} frames, "
      f"{frames / seconds:.1f} frames/s (whole pipeline incl. decode and encode)")
print(f"face-detect: video -> {video_out}")
print(f"face-detect: results -> {path}")
PY
((status == 0)) || die 130 "interrupted by Ctrl-C: the outputs hold the frames counted above"
