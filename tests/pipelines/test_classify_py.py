"""pipelines/classify.py (a Python GStreamer app embedding axpreprocess/axinference/axdecode and
reading the metas in a pad probe) on messi5.jpg with the seeded resnet_tiny test package: one
result line per frame with top-k classes, identical across frames of the still image; --frames N
on a video gives exactly its first N frames; with --detector blazeface-front on Megamind.avi,
classes read back from each detected face's ROI."""
import os
import re
from pathlib import Path

from pipeline_util import CACHE, EXAMPLES, SOURCE, check, require_file, run, skip

image = require_file(EXAMPLES / "data" / "messi5.jpg", "messi5.jpg")
models = os.environ.get("AXSTREAM_TEST_MODELS")
package = Path(models or "") / "resnet_tiny"
if not models or not (package / "model.json").is_file():
    skip("seeded test package resnet_tiny not found (AXSTREAM_TEST_MODELS)")
script = SOURCE / "pipelines" / "classify.py"


def frames_seen(result):
    """The frame count classify.py reports on stderr ("classify.py: N frames")."""
    m = re.search(r"^classify\.py: (\d+) frames$", result.stderr, re.M)
    check(m is not None, f"no frame count in classify.py's stderr:\n{result.stderr}")
    return int(m.group(1))


result = run(["/usr/bin/python3", script, "--model", package, "--frames", 3, "--top-k", 2, image],
             timeout=240)
print(result.stdout)
lines = [l for l in result.stdout.splitlines() if l.startswith("frame ")]
check(len(lines) == 3, f"expected 3 result lines, got:\n{result.stdout}\n{result.stderr}")
pattern = re.compile(r"^frame (\d+): (class \d+ -?[0-9.]+)(, class \d+ -?[0-9.]+)$")
for n, line in enumerate(lines):
    m = pattern.match(line)
    check(m is not None, f"unexpected result line {line!r}")
    check(int(m.group(1)) == n, f"line {line!r}: expected frame {n}")
check(len({l.split(": ", 1)[1] for l in lines}) == 1,
      f"a still image gave different classes on different frames:\n" + "\n".join(lines))
check(frames_seen(result) == 3, f"the image frozen into 3 frames gave {frames_seen(result)}")

# A video with --frames N: exactly its first N frames (a clip cut by pipelines/cut_clip.py).
video = EXAMPLES / "data" / "Megamind.avi"
if not video.is_file():
    print(f"video parts skipped: {video} absent")
else:
    clip = run(["/usr/bin/python3", script, "--model", package, "--frames", 4, "--top-k", 1,
                video], timeout=240)
    print(clip.stdout)
    numbers = [int(n) for n in re.findall(r"^frame (\d+): class \d+ -?[0-9.]+$", clip.stdout,
                                          re.M)]
    check(numbers == [0, 1, 2, 3] and frames_seen(clip) == 4,
          f"expected exactly frames 0-3 of the video:\n{clip.stdout}\n{clip.stderr}")

# Secondary classification: the classifier on each face blazeface-front finds in Megamind.avi.
detector = CACHE / "models" / "blazeface-front"
if not (detector / "model.json").is_file() or not video.is_file():
    print(f"per-object part skipped: {detector} or {video} absent")
else:
    objects = run(["/usr/bin/python3", script, "--model", package, "--frames", 5, "--top-k", 1,
                   "--detector", detector, "--object-class", "face", video], timeout=240)
    print(objects.stdout)
    roi_lines = re.findall(r"^frame (\d+): roi \d+ face [0-9.]+ \(\d+,\d+ \d+x\d+\): "
                           r"class \d+ -?[0-9.]+$", objects.stdout, re.M)
    check(len({int(f) for f in roi_lines}) >= 4,
          f"expected a classified face in at least 4 of 5 frames:\n{objects.stdout}\n"
          f"{objects.stderr}")
    check(frames_seen(objects) == 5 and max(int(f) for f in roi_lines) <= 4,
          f"expected exactly 5 frames:\n{objects.stdout}\n{objects.stderr}")
print("PASS")
