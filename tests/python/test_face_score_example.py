"""examples/python/face_score.py: BlazeFace through axelera.runtime on real frames finds the face
of a Megamind.avi frame (the pipeline's face-detect finds one there too) and none in an image
without faces; bad input exits 1 or 2 with one line naming it. Needs the compiled
blazeface-front package and opencv-doc's media (scripts/setup.sh), else skipped."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "python" / "face_score.py"
CACHE = pathlib.Path(os.environ.get("AXSTREAM_CACHE", pathlib.Path.home() / ".cache/axstream"))
PACKAGE = CACHE / "models" / "blazeface-front"
DATA = CACHE / "opencv-doc/usr/share/doc/opencv-doc/examples/data"

pytestmark = pytest.mark.skipif(
    not (PACKAGE / "model.json").is_file() or not (DATA / "Megamind.avi").is_file(),
    reason="needs the blazeface-front package and opencv-doc media (scripts/setup.sh)")


def run(*args):
    return subprocess.run([sys.executable, str(EXAMPLE), *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def best_score(result):
    assert result.returncode == 0, result.stderr
    return float(re.search(r"best face score ([0-9.]+)", result.stdout).group(1))


def test_finds_the_face_on_a_megamind_frame_and_none_on_an_image_without_faces():
    assert best_score(run(PACKAGE, DATA / "Megamind.avi", "--frame", 50)) > 0.75
    assert best_score(run(PACKAGE, DATA / "box.png")) < 0.5


def test_bad_input_is_one_line_naming_it():
    missing = run(PACKAGE, DATA / "no-such.jpg")
    assert missing.returncode == 1 and "no file at" in missing.stderr and "no-such.jpg" in missing.stderr
    negative = run(PACKAGE, DATA / "Megamind.avi", "--frame", -1)
    assert negative.returncode == 2 and "--frame -1" in negative.stderr
