#!/usr/bin/env bash
# N video streams into one shared BlazeFace model instance: every stream has its own preprocess,
# decode, FPS counter and JSON Lines output; the axinference elements share one ModelInstance
# (shared=true), so all streams feed the same device cores and results never mix between streams.
#
#   pipelines/multistream.sh [N] [--video FILE] [--quiet] [--batch-timeout US] [--interval K]
#
# N (default 4, at most 64) streams; by default alternating vtest.avi and Megamind.avi
# (opencv-doc), or FILE for every stream; --quiet prints only the summary. Writes
# $AXSTREAM_OUT/stream-I.jsonl (I = 0..N-1; an earlier run's stream files are removed) and prints
# each stream's FPS (periodically and at the end; the end's over the stream's own time, from its
# first frame to its end of stream, as its axfpscounter measures it, not the whole run's). With a
# package of batch > 1 (axcompile --batch; e.g.
# AXSTREAM_FACE_MODEL=$AXSTREAM_CACHE/models/blazeface-front-b4) frames of all streams are
# gathered into batches (a partial batch runs after --batch-timeout microseconds, default 5000)
# and the average batch fill is printed. --interval K (default 1) detects faces on every Kth frame
# of each stream only (axpreprocess inference-interval, counted per stream) and adds an axtracker
# per stream, which carries the faces across the frames between (predicted objects in the JSON
# Lines).
#
# Environment: AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream),
# AXSTREAM_OUT (default out/), AXSTREAM_FACE_MODEL (default the compiled blazeface-front package).
# GStreamer's debug log (GST_DEBUG) goes to GST_DEBUG_FILE, or else to
# $AXSTREAM_OUT/multistream-axinference.log (the script reads the batch statistics there).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
model=${AXSTREAM_FACE_MODEL:-$cache/models/blazeface-front}
streams=4
# Streams at most: each is a decoding branch of one gst-launch-1.0 line (100000 built a command
# line that ran for minutes before anything was said).
max_streams=64
video=
quiet=0
batch_timeout=5000
interval=1
while (($#)); do
  case $1 in
    --video) need_value "$@"; video=$2; shift ;;
    --batch-timeout) need_value "$@"; require_uint --batch-timeout "$2" 0 4294967295
      batch_timeout=$((10#$2)); shift ;;
    --interval) need_value "$@"; require_uint --interval "$2" 1 4294967295
      interval=$((10#$2)); shift ;;
    --quiet) quiet=1 ;;
    -h|--help) print_usage; exit 0 ;;
    -*) die 2 "unknown option '$1' (see --help)" ;;
    *) [[ $1 =~ ^[0-9]+$ ]] && ((10#${1:0:18} >= 1)) ||
         die 2 "'$1': expected a stream count N >= 1 (see --help)"
       ((${#1} <= 18 && 10#$1 <= max_streams)) ||
         die 2 "'$1': expected a stream count N from 1 to $max_streams (see --help)"
       streams=$((10#$1)) ;;
  esac
  shift
done

require_package "$model" "run scripts/build-demo-models.sh blazeface-front, or set AXSTREAM_FACE_MODEL"
if [[ -n $video ]]; then
  require_media "$video" video
else
  require_media "$data/vtest.avi" video "run scripts/setup.sh"
  ((streams == 1)) || require_media "$data/Megamind.avi" video "run scripts/setup.sh"
fi
videos=()
for ((i = 0; i < streams; i++)); do
  if [[ -n $video ]]; then videos+=("$video")
  elif ((i % 2 == 0)); then videos+=("$data/vtest.avi")
  else videos+=("$data/Megamind.avi")
  fi
done
use_plugin
require_output_dir "$out"

branches=()
tracker=()
((interval == 1)) || tracker=(axtracker !)
# Every stream file this script may have written, not only this run's: after 'multistream.sh 4',
# 'multistream.sh 2' left stream-2/3.jsonl of the first run beside its own.
for ((i = 0; i < max_streams; i++)); do rm -f "$out/stream-$i.jsonl"; done
for ((i = 0; i < streams; i++)); do
  branches+=(filesrc location="${videos[i]}" ! decodebin ! videoconvert !
    video/x-raw,format=I420 ! axpreprocess model="$model" inference-interval="$interval" !
    axinference model="$model" shared=true batch-timeout="$batch_timeout" !
    axdecode decoder=blazeface conf-threshold=0.6 ! "${tracker[@]}" axfpscounter stream-id="$i" silent="$((quiet))" !
    axmetapublish stream-id="$i" location="$out/stream-$i.jsonl" ! fakesink sync=false)
done

# axinference logs its instance's batch statistics at INFO when it stops, and each axfpscounter
# its stream's own time at its end of stream (a stream that ended early looked slower divided by
# the whole run's time), into the debug log:
# the user's GST_DEBUG_FILE, else out/multistream-axinference.log. A GST_DEBUG log the user asked
# for goes there too (it went into that file without a word, and GST_DEBUG_FILE was overridden).
stats=${GST_DEBUG_FILE:-$out/multistream-axinference.log}
[[ -n ${GST_DEBUG_FILE:-} ]] || rm -f "$stats"
start=$(date +%s.%N)
status=0
GST_DEBUG="${GST_DEBUG:+$GST_DEBUG,}axinference:4,axfpscounter:4" GST_DEBUG_FILE="$stats" \
  GST_DEBUG_NO_COLOR=1 launch -q -e "${branches[@]}" || status=$?
[[ -z ${GST_DEBUG:-} ]] || echo "multistream: GStreamer's debug log (GST_DEBUG=$GST_DEBUG) -> $stats" >&2
((status == 0 || status == 130)) ||
  die 1 "the pipeline failed with $model (the GStreamer error above)"
end=$(date +%s.%N)
if ((status != 0)); then
  for ((i = 0; i < streams; i++)); do
    [[ -f $out/stream-$i.jsonl ]] || die 130 "interrupted by Ctrl-C before stream $i's first frame"
  done
fi

/usr/bin/python3 - "$out" "$streams" "$start" "$end" "$stats" <<'PY'
import json, re, sys
out, streams, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
stats_log = sys.argv[5]
seconds = end - start
# Each stream's own time (axfpscounter's log at its end of stream); the whole run's when absent.
own_seconds = {}
try:
    for line in open(stats_log, errors="replace"):
        m = re.search(r"stream (\d+): \d+ frames in ([0-9.]+) s \(first buffer to end of stream\)",
                      line)
        if m and "axfpscounter" in line:
            own_seconds[int(m.group(1))] = float(m.group(2))
except FileNotFoundError:
    pass
total = 0
for i in range(streams):
    path = f"{out}/stream-{i}.jsonl"
    frames = faces = skipped = 0
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            assert record["stream_id"] == i, f"{path}: record of stream {record['stream_id']}"
            frames += 1
            faces += sum(1 for o in record["objects"] if o.get("label") == "face")
            skipped += bool(record.get("inference_skipped"))
    total += frames
    detail = f" ({skipped} skipped, faces predicted by axtracker)" if skipped else ""
    if own_seconds.get(i, 0) > 0:
        rate = f"{frames / own_seconds[i]:.1f} frames/s over its own {own_seconds[i]:.2f} s"
    else:
        rate = f"{frames / seconds:.1f} frames/s over the whole run (its own time unknown)"
    print(f"multistream: stream {i}: {frames} frames{detail}, {faces} faces, {rate} -> {path}")
print(f"multistream: {streams} streams, {total} frames in {seconds:.1f} s, "
      f"{total / seconds:.1f} frames/s together (one shared model instance)")
batching = None
try:
    for line in open(stats_log, errors="replace"):
        m = re.search(r"batch statistics of .*: (\d+) runs, (\d+) items, average fill ([0-9.]+) of (\d+)", line)
        if m:
            batching = m
except FileNotFoundError:
    pass
if batching:
    runs, items, fill, batch = batching.groups()
    print(f"multistream: batching: {runs} runs of up to {batch} frames, average fill {fill}")
PY
((status == 0)) || die 130 "interrupted by Ctrl-C: the outputs hold the frames counted above"
