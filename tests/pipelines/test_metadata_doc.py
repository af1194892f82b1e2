"""docs/metadata-schema.md's Python snippet, run as the page shows it in a python3-gi app:
frame_classes() reads with axstream.meta the classes of each frame the seeded resnet_tiny package
classifies (the same classes axmetapublish writes), and detections() finds, frame by frame, every
face blazeface-front puts on Megamind.avi (the same as axmetapublish writes)."""
import os
import re
import sys
import tempfile
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from pipeline_util import (BUILD, CACHE, EXAMPLES, SOURCE, check, read_jsonl, skip,  # noqa: E402
                           test_video)

page = (SOURCE / "docs" / "metadata-schema.md").read_text()
python_section = page.split("\n## Python\n", 1)[1].split("\n#", 1)[0]
snippets = re.findall(r"```python\n(.*?)```", python_section, re.S)
check(len(snippets) == 1, f"expected the page's 1 Python snippet, found {len(snippets)}")
# axstream.meta from this tree and its build, as an uninstalled app would (PYTHONPATH).
sys.path[:0] = [str(SOURCE / "python"), str(BUILD / "python")]
exec(snippets[0])  # defines detections(buffer) and frame_classes(buffer)

models = os.environ.get("AXSTREAM_TEST_MODELS")
classifier = Path(models or "") / "resnet_tiny"
if not models or not (classifier / "model.json").is_file():
    skip("seeded test package resnet_tiny not found (AXSTREAM_TEST_MODELS)")
# The build's plugin, as an app would name an installed one (GST_PLUGIN_PATH).
os.environ["GST_PLUGIN_PATH"] = str(BUILD / "gst" / "elements")
Gst.init(None)


def run_and_read(launch, reader, jsonl):
    """Runs `launch` (its axdecode named 'decode', an axmetapublish writing `jsonl` after it) with
    `reader` applied to each buffer leaving axdecode; returns the per-frame results and the
    JSON Lines."""
    pipeline = Gst.parse_launch(launch)
    results = []

    def probe(_pad, info):
        results.append(reader(info.get_buffer()))
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("decode").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(
        120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if message is None or message.type != Gst.MessageType.EOS:
        reason = message.parse_error()[0].message if message else "no EOS within 120 s"
        check(False, f"{launch}: {reason}")
    return results, read_jsonl(jsonl)


with tempfile.TemporaryDirectory() as scratch:
    jsonl = Path(scratch) / "classes.jsonl"
    classes, lines = run_and_read(
        f"videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48 ! "
        f"axpreprocess model={classifier} ! axinference model={classifier} ! "
        f"axdecode name=decode decoder=classification top-k=3 ! axmetapublish location={jsonl} ! "
        f"fakesink", lambda buffer: frame_classes(buffer), jsonl)  # noqa: F821
    print("frame_classes:", classes[0])
    check(len(classes) == 3 and len(lines) == 3, f"3 frames expected: {classes} {lines}")
    for got, line in zip(classes, lines):
        want = [(c["class_id"], c["score"], c["label"]) for c in line["classes"]]
        check(len(got) == 3 and [g[0] for g in got] == [w[0] for w in want]
              and all(abs(g[1] - w[1]) < 1e-4 and g[2] == w[2] for g, w in zip(got, want)),
              f"frame_classes() {got} != axmetapublish's classes {want}")

    detector = CACHE / "models" / "blazeface-front"
    video = EXAMPLES / "data" / "Megamind.avi"
    if not (detector / "model.json").is_file() or not video.is_file():
        print(f"detections() part skipped: {detector} or {video} absent")
    else:
        video = test_video(video, scratch)
        jsonl = Path(scratch) / "faces.jsonl"
        found, lines = run_and_read(
            f"filesrc location={video} ! decodebin ! axpreprocess model={detector} ! "
            f"axinference model={detector} ! axdecode name=decode decoder=blazeface ! "
            f"axmetapublish location={jsonl} ! fakesink",
            lambda buffer: [(label, score) for _, label, score in detections(buffer)],  # noqa: F821
            jsonl)
        faces = sum(len(f) for f in found)
        print(f"detections(): {faces} faces on {len(found)} frames")
        check(len(found) == len(lines) and faces >= len(found) * 9 // 10,
              f"{faces} faces on {len(found)} frames ({len(lines)} JSON lines)")
        for n, (got, line) in enumerate(zip(found, lines)):
            want = [(o["label"], o["score"]) for o in line["objects"]]
            check(len(got) == len(want) and all(g[0] == w[0] and abs(g[1] - w[1]) < 1e-4
                                                for g, w in zip(got, want)),
                  f"frame {n}: detections() {got} != axmetapublish's objects {want}")
