"""What the sample scripts write and report when a user's inputs are ordinary but not the default
ones (a second audit as a new user): ocr.sh on two images of the same name from different folders
(one with a space in its path) keeps both results (it wrote ocr-img.jsonl over the first one and
printed both as there), and classify.py --detector with an --object-class that names none of
the detector's labels ('Face' for 'face') exits 1 naming the labels seen (it printed nothing and
exited 0), classify.py --frames 3 on a TIFF classifies 3 frames (1 before), and multistream.sh
says where a GST_DEBUG log went, honours GST_DEBUG_FILE, leaves no stream file of an earlier
run and gives a stream that ended early its frames/s over its own time (not the whole run's). About 20 s; exits 77 without opencv-doc's media or the demo packages."""
import re
import shutil
import tempfile
from pathlib import Path

import cv2

from pipeline_util import (EXAMPLES, SOURCE, check, cut_clip, read_jsonl, require_file,
                           require_package, run)

PYTHON = "/usr/bin/python3"
scenetext = [require_file(EXAMPLES / "text" / f"scenetext0{i}.jpg", "opencv-doc scenetext")
             for i in (1, 2)]
megamind = require_file(EXAMPLES / "data" / "Megamind.avi", "opencv-doc Megamind.avi")
for name in ("ppocr-det", "ppocr-rec"):
    require_package(name)
face_package = require_package("blazeface-front")

with tempfile.TemporaryDirectory(prefix="script-outputs-") as tmp:
    tmp = Path(tmp)
    first, second = tmp / "first folder" / "img.jpg", tmp / "second" / "img.jpg"
    for source, copy in zip(scenetext, (first, second)):
        copy.parent.mkdir()
        shutil.copy(source, copy)
    out = tmp / "out"
    result = run([SOURCE / "pipelines" / "ocr.sh", first, second], timeout=120,
                 env={"AXSTREAM_OUT": str(out)})
    written = sorted(p.name for p in out.glob("ocr-*.jsonl"))
    check(written == ["ocr-img-2.jsonl", "ocr-img.jsonl"],
          f"ocr.sh on two img.jpg: expected ocr-img.jsonl and ocr-img-2.jsonl, got {written}\n"
          f"{result.stdout}")
    for image, json_name in ((first, "ocr-img.jsonl"), (second, "ocr-img-2.jsonl")):
        height, width = cv2.imread(str(image)).shape[:2]
        records = read_jsonl(out / json_name)
        check(len(records) == 1 and (records[0]["width"], records[0]["height"]) == (width, height),
              f"{json_name}: expected one record of {image} ({width}x{height}), got "
              f"{[(r['width'], r['height']) for r in records]}")
        texts = sum(1 for o in records[0]["objects"] if o.get("text"))
        check(f"{texts} with text -> {out / json_name}" in result.stdout,
              f"ocr.sh's summary does not name {json_name} with its {texts} texts:\n"
              f"{result.stdout}")

    classify = [PYTHON, SOURCE / "pipelines" / "classify.py", "--detector", face_package,
                "--frames", "3", megamind]
    result = run(classify + ["--object-class", "Face"], timeout=60, check=False)
    check(result.returncode == 1 and "objects were detected (labels 'face') but none was "
          "classified: --object-class 'Face' names none of them" in result.stderr,
          f"classify.py --object-class Face: expected exit 1 naming the label 'face', got exit "
          f"{result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-2000:]}")
    result = run(classify + ["--object-class", "face"], timeout=60)
    check(" face " in result.stdout and "class " in result.stdout,
          f"classify.py --object-class face classified no face:\n{result.stdout}")
    # An image GStreamer's decoders do not read from a file (TIFF): classify.py took it for a
    # video by its suffix, and --frames 3 classified the one frame OpenCV cut from it.
    tiff = tmp / "messi.tiff"
    cv2.imwrite(str(tiff), cv2.imread(str(EXAMPLES / "data" / "messi5.jpg")))
    result = run([PYTHON, SOURCE / "pipelines" / "classify.py", "--frames", "3", tiff], timeout=60)
    frames = [line for line in result.stdout.splitlines() if line.startswith("frame ")]
    check(len(frames) == 3 and all("class " in line for line in frames),
          f"classify.py --frames 3 on a TIFF: expected 3 classified frames, got\n{result.stdout}")

    # multistream.sh sends GStreamer's debug log into a file to read axinference's batch
    # statistics: a GST_DEBUG log the user asked for went there without a word, and the user's
    # GST_DEBUG_FILE was overridden.
    clip = tmp / "megamind-6.avi"
    cut_clip(megamind, clip, 6)
    multistream = [SOURCE / "pipelines" / "multistream.sh", "2", "--video", clip, "--quiet"]
    result = run(multistream, timeout=60,
                 env={"AXSTREAM_OUT": str(out), "GST_DEBUG": "axdecode:4"})
    default_log = out / "multistream-axinference.log"
    check(f"multistream: GStreamer's debug log (GST_DEBUG=axdecode:4) -> {default_log}"
          in result.stderr and "axdecode" in default_log.read_text(),
          f"multistream.sh with GST_DEBUG does not say where its log went:\n{result.stderr}")
    # A run of fewer streams than the one before: the earlier run's stream-2.jsonl stayed beside
    # this run's files (4 streams, then 2).
    run([SOURCE / "pipelines" / "multistream.sh", "3", "--video", clip, "--quiet"], timeout=60,
        env={"AXSTREAM_OUT": str(out)})
    run(multistream, timeout=60, env={"AXSTREAM_OUT": str(out)})
    streams = sorted(p.name for p in out.glob("stream-*.jsonl"))
    check(streams == ["stream-0.jsonl", "stream-1.jsonl"],
          f"multistream.sh 2 after multistream.sh 3: expected stream-0/1.jsonl only, got {streams}")
    # A stream that ends early: its frames/s divided its frames by the whole run's time (model
    # load and the longer stream included), so it looked slower than it ran. Stream 0 gets 40
    # frames, stream 1 only 4 (the script's default media, replaced in a cache of its own).
    own_cache = tmp / "cache"
    own_data = own_cache / "opencv-doc" / "usr" / "share" / "doc" / "opencv-doc" / "examples"
    own_data = own_data / "data"
    own_data.mkdir(parents=True)
    cut_clip(megamind, own_data / "vtest.avi", 40)
    cut_clip(megamind, own_data / "Megamind.avi", 4)
    result = run([SOURCE / "pipelines" / "multistream.sh", "2", "--quiet"], timeout=60,
                 env={"AXSTREAM_OUT": str(out), "AXSTREAM_CACHE": str(own_cache),
                      "AXSTREAM_FACE_MODEL": str(face_package)})
    per_stream = {int(m[1]): (int(m[2]), float(m[3]), float(m[4])) for m in re.finditer(
        r"stream (\d+): (\d+) frames, \d+ faces, ([0-9.]+) frames/s over its own ([0-9.]+) s",
        result.stdout)}
    whole = re.search(r"2 streams, \d+ frames in ([0-9.]+) s", result.stdout)
    check(sorted(per_stream) == [0, 1] and whole is not None,
          f"multistream.sh 2: no per-stream frames/s over each stream's own time:\n"
          f"{result.stdout}")
    (frames_0, _, seconds_0), (frames_1, rate_1, seconds_1) = per_stream[0], per_stream[1]
    check((frames_0, frames_1) == (40, 4) and seconds_1 < seconds_0 < float(whole[1]) and
          rate_1 > frames_1 / float(whole[1]),
          f"multistream.sh 2 with streams of 40 and 4 frames: expected the short stream's own "
          f"time below the long one's and the run's:\n{result.stdout}")
    batched = require_package("blazeface-front-b4")
    own_log = tmp / "my debug.log"
    result = run(multistream, timeout=60,
                 env={"AXSTREAM_OUT": str(out), "GST_DEBUG_FILE": str(own_log),
                      "AXSTREAM_FACE_MODEL": str(batched)})
    check(own_log.is_file() and "batch statistics" in own_log.read_text()
          and "multistream: batching: " in result.stdout,
          f"multistream.sh with GST_DEBUG_FILE={own_log}: no log there or no batching line:\n"
          f"{result.stdout}")
print("PASS")
