"""docs/pipelines.md, "From DeepStream or DL Streamer": its two gst-launch-1.0 blocks run as the
page shows them (only the media folder D points at 12-frame clips of the same videos, and the
plugin and test packages at this build): the face cascade writes one JSON line per frame whose
faces carry the classifier's classes and a video with every frame; the two shared streams write
one JSON line per frame each, with their stream ids."""
import os
import re
import subprocess
import tempfile
from pathlib import Path

from pipeline_util import (BUILD, EXAMPLES, SOURCE, check, cut_clip, read_jsonl, require_file,
                           require_package, skip, video_frame_count)

FRAMES = 12
page = (SOURCE / "docs" / "pipelines.md").read_text()
section = page.split("\n## From DeepStream or DL Streamer\n", 1)[1].split("\n## ", 1)[0]
blocks = ["\n".join(line[4:] for line in block.strip("\n").split("\n"))
          for block in re.findall(r"\n\n((?:    .*\n)+)", section)]
check(len(blocks) == 2, f"expected the section's 2 command blocks, found {len(blocks)}")
script = blocks[0] + "\n" + blocks[1]

data = EXAMPLES / "data"
require_file(data / "Megamind.avi", "opencv-doc's Megamind.avi")
require_file(data / "vtest.avi", "opencv-doc's vtest.avi")
require_package("blazeface-front")
models = os.environ.get("AXSTREAM_TEST_MODELS")
if not models or not (Path(models) / "resnet_tiny_post" / "model.json").is_file():
    skip("seeded test package resnet_tiny_post not found (AXSTREAM_TEST_MODELS)")

# The page's D, C and plugin path, pointed at the clips, the test packages and this build.
replacements = {
    r"^D=.*$": "D=$CLIPS",
    r"^C=build/tests/data/models/": f"C={models}/",
    r"^export GST_PLUGIN_PATH=build/": f"export GST_PLUGIN_PATH={BUILD}/",
}
for pattern, replacement in replacements.items():
    script, count = re.subn(pattern, replacement, script, flags=re.M)
    check(count == 1, f"the page's block no longer has a line matching {pattern!r}")

with tempfile.TemporaryDirectory(prefix="porting-doc-") as work:
    clips = Path(work) / "clips"
    clips.mkdir()
    for name in ("Megamind.avi", "vtest.avi"):
        cut_clip(data / name, clips / name, FRAMES)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work,
                            env=dict(os.environ, CLIPS=str(clips)), capture_output=True,
                            text=True, timeout=120)
    check(result.returncode == 0, f"the page's pipelines failed ({result.returncode}):\n"
          f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    out = Path(work) / "out"

    faces = read_jsonl(out / "faces.jsonl")
    check(len(faces) == FRAMES, f"faces.jsonl: {len(faces)} lines, expected {FRAMES}")
    objects = [o for record in faces for o in record["objects"]]
    check(len(objects) >= FRAMES - 2, f"faces.jsonl: only {len(objects)} faces in {FRAMES} frames")
    check(all(o["label"] == "face" and len(o.get("classes", [])) == 2 for o in objects),
          f"a face without its 2 classes: {objects}")
    check(any("track_id" in o for o in objects), "no face got a track id")
    written = video_frame_count(out / "faces.avi")
    check(written == FRAMES, f"faces.avi has {written} frames, expected {FRAMES}")

    for stream_id in (0, 1):
        records = read_jsonl(out / f"stream{stream_id}.jsonl")
        check(len(records) == FRAMES and all(r["stream_id"] == stream_id for r in records),
              f"stream{stream_id}.jsonl: {len(records)} lines or a wrong stream_id")
    check(sum(len(r["objects"]) for r in read_jsonl(out / "stream0.jsonl")) >= FRAMES - 2,
          "stream 0 (Megamind) lost its faces")
print(f"both pipelines of the page ran: {len(objects)} classified faces, 2 shared streams")
