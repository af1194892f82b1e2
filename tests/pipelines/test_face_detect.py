"""pipelines/face-detect.sh on Megamind.avi with the compiled blazeface-front package: a face in
>= 90% of the frames (the float model finds one in 269 of 270), one JSON line per frame, a
non-empty video, and GST_TRACERS=leaks reports no object alive at exit. The output folder has a
space in its name (the video's sink once split there). The same detection on the video as YUY2 (a
webcam's format, taken by axpreprocess without videoconvert) finds the same faces: the same count
in >= 95% of the frames. Under the sanitizers: the first 40 frames (pipeline_util.test_video)."""
import re
import tempfile
from pathlib import Path

from pipeline_util import (BUILD, EXAMPLES, SOURCE, check, read_jsonl, require_file,
                           require_package, run, test_video, video_frame_count)

megamind = require_file(EXAMPLES / "data" / "Megamind.avi", "Megamind.avi")
package = require_package("blazeface-front")

with tempfile.TemporaryDirectory(prefix="face detect-") as out, \
        tempfile.TemporaryDirectory(prefix="face-detect-clip-") as clip_dir:
    video = test_video(megamind, clip_dir)
    env = {"AXSTREAM_OUT": out, "AXSTREAM_FACE_MODEL": str(package),
           "GST_TRACERS": "leaks", "GST_DEBUG": "GST_TRACER:7"}
    result = run([SOURCE / "pipelines" / "face-detect.sh", video], timeout=500, env=env)
    print(result.stdout)

    frames = video_frame_count(video)
    records = read_jsonl(Path(out) / "face-detect.jsonl")
    check(len(records) == frames,
          f"face-detect.jsonl has {len(records)} lines: expected one per frame ({frames})")
    check([r["frame"] for r in records] == list(range(frames)),
          "face-detect.jsonl frame numbers are not 0..N-1 in order")
    with_face = sum(1 for r in records if any(o["label"] == "face" for o in r["objects"]))
    print(f"faces in {with_face} of {frames} frames")
    check(with_face >= 0.9 * frames,
          f"faces found in {with_face} of {frames} frames: expected >= 90%")

    videos = [p for p in Path(out).iterdir() if p.name.startswith("face-detect.") and
              p.suffix in (".mp4", ".avi")]
    check(len(videos) == 1 and videos[0].stat().st_size > 0,
          f"expected one non-empty face-detect video in {out}, found "
          f"{[(p.name, p.stat().st_size) for p in videos]}")
    check(video_frame_count(videos[0]) == frames,
          f"{videos[0].name} has {video_frame_count(videos[0])} frames: expected {frames}")

    # The leaks tracer logs one "object-alive" record per object still alive at gst_deinit.
    alive = [line for line in result.stderr.splitlines()
             if re.search(r"object-alive, type-name=\(string\)\w", line)]
    check(not alive, f"GST_TRACERS=leaks found {len(alive)} objects alive at exit:\n" +
          "\n".join(alive[:20]))
    check("leaks" in result.stderr.lower() or "GST_TRACER" in result.stderr,
          "the leaks tracer did not run (no GST_TRACER output on stderr)")

    # The same frames as YUY2, straight into axpreprocess (the script converts to I420).
    yuy2_json = Path(out) / "face-detect-yuy2.jsonl"
    run(["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!",
         "videoconvert", "!", "video/x-raw,format=YUY2", "!", "axpreprocess", f"model={package}",
         "!", "axinference", f"model={package}", "!", "axdecode", "decoder=blazeface",
         "conf-threshold=0.6", "!", "axmetapublish", f"location={yuy2_json}", "!", "fakesink"],
        timeout=300, env={"GST_PLUGIN_PATH": str(BUILD / "gst" / "elements")})
    yuy2 = read_jsonl(yuy2_json)
    check(len(yuy2) == frames, f"{yuy2_json.name} has {len(yuy2)} lines: expected {frames}")
    def face_count(record):
        return sum(1 for o in record["objects"] if o["label"] == "face")
    same = sum(1 for a, b in zip(records, yuy2) if face_count(a) == face_count(b))
    print(f"YUY2 input: the I420 run's face count in {same} of {frames} frames")
    check(same >= 0.95 * frames,
          f"YUY2 input found as many faces as I420 in {same} of {frames} frames: expected >= 95%")
print("PASS")
