"""Shared helpers of the pipeline tests: where the media and packages are, skipping (exit 77),
running a pipeline script with a time limit."""
import json
import os
import subprocess
import sys
from pathlib import Path

SKIP = 77
SOURCE = Path(os.environ.get("AXSTREAM_SOURCE", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE / "pipelines"))
from cut_clip import cut_clip  # noqa: E402  (pipelines/cut_clip.py, shared with the demos)
BUILD = Path(os.environ.get("AXSTREAM_BUILD", SOURCE / "build"))
DATA_DIR = Path(os.environ.get("AXSTREAM_DATA_DIR", Path.home() / ".cache" / "axstream"))
CACHE = Path(os.environ.get("AXSTREAM_CACHE", Path.home() / ".cache" / "axstream"))
EXAMPLES = DATA_DIR / "opencv-doc" / "usr" / "share" / "doc" / "opencv-doc" / "examples"


def skip(message):
    print(f"SKIP: {message}")
    sys.exit(SKIP)


def require_file(path, what):
    if not Path(path).is_file():
        skip(f"{what} not found at {path} (set AXSTREAM_DATA_DIR / run scripts/setup.sh)")
    return Path(path)


def require_package(name):
    package = CACHE / "models" / name
    if not (package / "model.json").is_file():
        skip(f"model package {package} not found (run scripts/build-demo-models.sh {name}; "
             f"AXSTREAM_CACHE sets the cache)")
    return package


def run(args, timeout, env=None, check=True):
    full_env = dict(os.environ)
    full_env["AXSTREAM_BUILD"] = str(BUILD)
    if env:
        full_env.update(env)
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited with {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}")
    return result


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def video_frame_count(path):
    import cv2
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.grab():
        frames += 1
    return frames


def sanitized():
    """True in the ASan+UBSan stage (scripts/asan-wrapper.sh sets AXSTREAM_SANITIZER): there the
    tests take shorter inputs. The sanitizers look for memory errors on the code paths, which the
    first frames already walk; the plain stage runs the full inputs."""
    return "address" in os.environ.get("AXSTREAM_SANITIZER", "")


def test_video(video, directory, sanitized_frames=40):
    """`video`, or under the sanitizers a clip of its first `sanitized_frames` frames (MJPEG AVI,
    written with OpenCV into `directory` by pipelines/cut_clip.py: an exact frame count, unlike
    identity eos-after)."""
    if not sanitized():
        return Path(video)
    clip = Path(directory) / f"{Path(video).stem}-first{sanitized_frames}.avi"
    try:
        cut_clip(video, clip, sanitized_frames)
    except ValueError as e:
        raise AssertionError(f"the sanitized clip: {e}")
    print(f"sanitized stage: the first {sanitized_frames} frames of {video} ({clip})")
    return clip


def check(condition, message):
    if not condition:
        raise AssertionError(message)
