#!/usr/bin/python3
"""axstream.meta's cost per frame, against the Python route it replaces, measured in one run.

Cases (one line each: ours, the baseline, the ratio; median of --rounds, each timing --calls
calls on the same buffer):
  structures N   a buffer with N ROIs, each with a full ax-detection structure (label,
                 confidence, class-id, track-id, 6 keypoints), as axdecode + axtracker leave
                 them: axstream.meta.detections() (Detection objects with every field) against
                 the GstVideo loop over ROI ids reading the same fields from the structures
                 (docs/metadata-schema.md's route before the module).
  typed metas    a frame after videoscale and videoconvert (a real BlazeFace + axtracker frame
                 of Megamind.avi, whose ROIs have no structure left): detections() against
                 json.loads() of axmetapublish's line for the same frame (the only Python
                 route there before). Skipped without blazeface-front or Megamind.avi.

  benchmarks/bench_gst_meta.py [--rounds 5] [--calls 2000]

Environment: AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("AXSTREAM_BUILD", HERE / "build"))
CACHE = Path(os.environ.get("AXSTREAM_CACHE", Path.home() / ".cache" / "axstream"))
sys.path[:0] = [str(HERE / "python"), str(BUILD / "python"), str(HERE / "pipelines")]
os.environ["GST_PLUGIN_PATH"] = str(BUILD / "gst" / "elements")

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstApp, GstVideo  # noqa: E402,F401  (GstApp: appsink methods)

import axstream.meta  # noqa: E402


def per_call_us(function, buffer, calls, rounds):
    """Median over `rounds` of the microseconds one call of function(buffer) takes."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            function(buffer)
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def structure_buffer(count):
    buffer = Gst.Buffer.new_allocate(None, 16, None)
    for i in range(count):
        roi = GstVideo.buffer_add_video_region_of_interest_meta(buffer, "face", i, i, 40, 40)
        roi.id = i  # as axdecode numbers them (GStreamer gives every ROI id 0)
        roi.add_param(Gst.Structure.from_string(
            f'ax-detection, label=(string)face, confidence=(double)0.9, class-id=(int)0, '
            f'track-id=(gint64){i}, keypoints=(double)<1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, '
            f'9.0, 10.0, 11.0, 12.0>')[0])
    return buffer


def gstvideo_detections(buffer):
    """The route before axstream.meta: ROI ids from 0, the fields read from each structure."""
    found, roi_id = [], 0
    while (roi := GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, roi_id)):
        params = roi.get_param("ax-detection")
        keypoints = list(params.get_value("keypoints"))
        found.append(((roi.x, roi.y, roi.w, roi.h), params.get_string("label"),
                      params.get_double("confidence")[1], params.get_int("class-id")[1],
                      params.get_int64("track-id")[1], list(zip(keypoints[::2], keypoints[1::2]))))
        roi_id += 1
    return found


def scaled_face_frame():
    """A BlazeFace + axtracker frame of Megamind.avi after videoscale/videoconvert (its sample,
    kept so the buffer lives) and axmetapublish's line for it; None without the media."""
    package = CACHE / "models" / "blazeface-front"
    video = CACHE / "opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
    if not (package / "model.json").is_file() or not video.is_file():
        return None
    from cut_clip import cut_clip
    with tempfile.TemporaryDirectory() as scratch:
        clip, jsonl = Path(scratch) / "clip.avi", Path(scratch) / "after.jsonl"
        cut_clip(video, clip, 4)
        pipeline = Gst.parse_launch(
            f"filesrc location={clip} ! decodebin ! videoconvert ! axpreprocess model={package} ! "
            f"axinference model={package} ! axdecode decoder=blazeface ! axtracker min-hits=1 ! "
            f"videoscale ! video/x-raw,width=360,height=264 ! videoconvert ! "
            f"video/x-raw,format=RGB ! axmetapublish location={jsonl} ! appsink name=sink")
        pipeline.set_state(Gst.State.PLAYING)
        samples = []
        while (sample := pipeline.get_by_name("sink").try_pull_sample(60 * Gst.SECOND)):
            samples.append(sample)
        pipeline.set_state(Gst.State.NULL)
        lines = jsonl.read_text().splitlines()
    # The last frame: the tracker has confirmed its face by then.
    return samples[-1], lines[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    Gst.init(None)
    print(f"axstream.meta per frame, median of {args.rounds} x {args.calls} calls")
    for count in (1, 10, 100):
        buffer = structure_buffer(count)
        assert len(axstream.meta.detections(buffer)) == len(gstvideo_detections(buffer)) == count
        calls = max(args.calls // count, 20)
        ours = per_call_us(axstream.meta.detections, buffer, calls, args.rounds)
        baseline = per_call_us(gstvideo_detections, buffer, calls, args.rounds)
        print(f"structures {count:3d}: detections() {ours:8.1f} us, GstVideo loop "
              f"{baseline:8.1f} us, ratio {baseline / ours:.2f}x")
    frame = scaled_face_frame()
    if frame is None:
        print("typed metas: skipped (blazeface-front or Megamind.avi absent)")
        return 0
    sample, line = frame
    buffer = sample.get_buffer()
    faces = axstream.meta.detections(buffer)
    assert len(faces) == len(json.loads(line)["objects"]) >= 1
    ours = per_call_us(axstream.meta.detections, buffer, args.calls, args.rounds)
    baseline = per_call_us(lambda _: json.loads(line), buffer, args.calls, args.rounds)
    print(f"typed metas ({len(faces)} face after videoscale): detections() {ours:8.1f} us, "
          f"json.loads(axmetapublish line) {baseline:8.1f} us, ratio {baseline / ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
