#!/usr/bin/python3
"""Image classification from a Python GStreamer app: the axelera elements are embedded in a
pipeline built with python3-gi, and a pad probe after axdecode reads the results of every frame.

    pipelines/classify.py [--model PKG] [--labels FILE] [--top-k K] [--frames N]
                          [--detector PKG [--object-class LABEL]] [SOURCE]

SOURCE is an image (by GStreamer's typefind; frozen into --frames frames, default 1; one that
GStreamer does not decode, such as TIFF or WebP, read by OpenCV) or a video (its first --frames
frames, cut into an MJPEG clip by cut_clip.py so the count is exact, default all); default
opencv-doc's messi5.jpg. --model is any classifier package
(default: the seeded resnet_tiny test package in $AXSTREAM_TEST_MODELS or
$AXSTREAM_BUILD/tests/data/models). The results are read with axstream.meta (the frame's
classes, or with --detector, e.g. the blazeface-front package, each detected object's: the
classifier then runs on each object, axpreprocess roi=objects).

Prints one line per frame (whole frame) or per object:
    frame 0: class 7 0.4123 (label), class 3 0.1000
    frame 0: roi 0 face 0.93 (198,177 140x140): class 7 0.4123, ...
Prints the elements' warnings. Exits 1 with the pipeline's error, or when no frame got a
classification (not a classifier package), or with --detector when objects were detected and
none was classified (an --object-class naming none of their labels), or when the source yields
no frame within 20 s (a damaged file); 2 on a bad command line; 130 on Ctrl-C (the frames so far
are printed, the pipeline is stopped).

Environment: AXSTREAM_BUILD (default build/), AXSTREAM_DATA_DIR or else AXSTREAM_CACHE (the
media; default ~/.cache/axstream), AXSTREAM_TEST_MODELS (default $AXSTREAM_BUILD/tests/data/models).
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

try:
    import gi
except ImportError as e:
    sys.exit(f"classify.py: {e} in {sys.executable}: run it with Debian's /usr/bin/python3, which "
             "has python3-gi (or as pipelines/classify.py)")

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
from gi.repository import GLib, Gst, GstBase  # noqa: E402

from cut_clip import cut_clip  # noqa: E402  (pipelines/, this script's folder)

HERE = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("AXSTREAM_BUILD", HERE / "build"))
DATA = Path(os.environ.get("AXSTREAM_DATA_DIR") or os.environ.get("AXSTREAM_CACHE")
            or Path.home() / ".cache" / "axstream")
# A damaged file can leave decodebin waiting forever without an error (its demuxer's error is
# sometimes dropped), so the first frame must arrive within this time.
PREROLL_TIMEOUT_S = 20
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def is_image(path):
    """Whether GStreamer's typefind takes the file for an image (image/*), as the shell demos
    check it; by its suffix when typefind cannot tell. By suffix alone a .tif, .webp or .gif went
    the video way (an OpenCV-cut one-frame clip) and --frames 3 classified one frame."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    caps, _ = GstBase.type_find_helper_for_data(None, head)
    if caps is not None and caps.get_size() > 0:
        return caps.get_structure(0).get_name().startswith("image/")
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def load_meta():
    """axstream.meta from this tree and its build when built there, as the plugin
    (GST_PLUGIN_PATH); else the installed one."""
    if any((BUILD / "python").glob("_axstream_meta*.so")):
        sys.path[:0] = [str(HERE / "python"), str(BUILD / "python")]
    try:
        import axstream.meta
    except ModuleNotFoundError as e:
        sys.exit(f"classify.py: {e} (run scripts/setup.sh, or set AXSTREAM_BUILD)")
    return axstream.meta


def format_classes(classes):
    parts = []
    for c in classes:
        label = c.label if c.label != f"class {c.class_id}" else None  # the decoder's own name
        parts.append(f"class {c.class_id} {c.score:.4f}" + (f" ({label})" if label else ""))
    return ", ".join(parts)


def wait_for(bus, types, seconds=None):
    """The first message of `types` within `seconds` (None: no limit), else None, printing the
    elements' warnings on the way (as gst-launch-1.0 does: axinference's "ran nothing ..." names
    the labels an --object-class missed). Pops in short steps: one pop blocked in C until the
    end of the video held Ctrl-C back that long (Python raises KeyboardInterrupt only between
    bytecodes of the main thread)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        message = bus.timed_pop_filtered(100 * Gst.MSECOND, types | Gst.MessageType.WARNING)
        if message is not None and message.type == Gst.MessageType.WARNING:
            warning, _ = message.parse_warning()
            print(f"classify.py: warning from {message.src.get_name()}: {warning.message}",
                  file=sys.stderr)
        elif message is not None:
            return message
    return None


def main():
    parser = argparse.ArgumentParser(prog="classify.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    default_image = DATA / "opencv-doc/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
    parser.add_argument("source", nargs="?", default=str(default_image),
                        help="image or video (default: messi5.jpg)")
    test_models = Path(os.environ.get("AXSTREAM_TEST_MODELS", BUILD / "tests/data/models"))
    parser.add_argument("--model", default=str(test_models / "resnet_tiny"),
                        help="classifier package directory (default: resnet_tiny)")
    parser.add_argument("--labels", help="labels file, one per line (class id = line number)")
    parser.add_argument("--top-k", type=int, default=3, help="classes per result (default 3)")
    parser.add_argument("--frames", type=int, help="frames to classify (>= 1)")
    parser.add_argument("--detector",
                        help="detection package (blazeface) whose objects to classify")
    parser.add_argument("--object-class", default="", help="with --detector: labels to classify")
    args = parser.parse_args()
    # imagefreeze's num-buffers is a 32-bit int: more made "cannot build the pipeline".
    if args.frames is not None and not 1 <= args.frames <= 2**31 - 1:
        parser.error(f"--frames {args.frames}: expected a frame count in 1..{2**31 - 1}")
    if args.top_k < 1:
        parser.error(f"--top-k {args.top_k}: expected at least 1 class")
    # Without a detector there are no objects to pick from: it was ignored, the whole frame
    # classified as if the user had not asked for faces only.
    if args.object_class and not args.detector:
        parser.error(f"--object-class {args.object_class}: only with --detector (the objects "
                     "to classify come from it)")
    if args.labels and Path(args.labels).is_dir():
        sys.exit(f"classify.py: labels file {args.labels} is a directory, not a file")
    if args.labels and not Path(args.labels).is_file():
        sys.exit(f"classify.py: labels file {args.labels} not found")

    checks = [(args.source, "source"), (Path(args.model) / "model.json", "model package")]
    if args.detector:
        checks.append((Path(args.detector) / "model.json", "detector package"))
    for path, what in checks:
        if Path(path).is_dir():
            sys.exit(f"classify.py: {what} {path} is a directory, not a file")
        if not Path(path).is_file():
            sys.exit(f"classify.py: {what} {path} not found")
    os.environ["GST_PLUGIN_PATH"] = str(BUILD / "gst" / "elements") + (
        ":" + os.environ["GST_PLUGIN_PATH"] if os.environ.get("GST_PLUGIN_PATH") else "")
    Gst.init(None)
    if Gst.ElementFactory.find("axinference") is None:
        sys.exit(f"classify.py: GStreamer finds no axelera plugin (not in {BUILD}/gst/elements nor "
                 "installed; run scripts/setup.sh, or set AXSTREAM_BUILD)")

    with tempfile.TemporaryDirectory(prefix="classify-") as clip_dir:
        return classify(args, clip_dir)


def classify(args, clip_dir):
    meta = load_meta()
    source_file = Path(args.source)
    image = is_image(source_file)
    if image and source_file.suffix.lower() not in IMAGE_SUFFIXES:
        # Debian 12's GStreamer reads JPEG, PNG and BMP from a file; a TIFF, WebP or PNM image
        # fails in its decoder ("No valid frames decoded"): OpenCV reads it into a PNG first.
        import cv2
        pixels = cv2.imread(str(source_file))
        if pixels is None:
            sys.exit(f"classify.py: cannot decode the image {args.source} (GStreamer's typefind "
                     "calls it an image; neither OpenCV nor GStreamer decodes it)")
        source_file = Path(clip_dir) / "image.png"
        cv2.imwrite(str(source_file), pixels)
    if args.frames and not image:
        # Exactly the first N frames: identity eos-after passes N-1, N or sometimes all of them.
        source_file = Path(clip_dir) / "clip.avi"
        try:
            cut_clip(args.source, source_file, args.frames)
        except ValueError as e:
            sys.exit(f"classify.py: {e}")
    source = f'filesrc location="{source_file}" ! decodebin ! '
    if image:
        source += f"imagefreeze num-buffers={args.frames or 1} ! "
    source += "videoconvert ! video/x-raw,format=RGB ! "
    labels = f' labels="{args.labels}"' if args.labels else ""
    classify = (f'axinference model="{args.model}" ! '
                f'axdecode name=decode decoder=classification model="{args.model}" '
                f"top-k={args.top_k}{labels} ! fakesink")
    if args.detector:
        objects = f' object-class="{args.object_class}"' if args.object_class else ""
        launch = (source + f'axpreprocess model="{args.detector}" ! '
                  f'axinference model="{args.detector}" ! axdecode decoder=blazeface ! '
                  f'axpreprocess roi=objects{objects} model="{args.model}" ! ' + classify)
    else:
        launch = source + f'axpreprocess model="{args.model}" ! ' + classify
    try:
        pipeline = Gst.parse_launch(launch)
    except GLib.Error as e:
        sys.exit(f"classify.py: cannot build the pipeline: {e.message}\n  {launch}")
    frame = [0]
    frames_with_result = [0]
    detected_labels = set()  # with --detector: the labels of every object seen

    def probe(pad, info):
        buffer = info.get_buffer()
        n = frame[0]
        frame[0] += 1
        if args.detector:
            for d in meta.detections(buffer):
                detected_labels.add(d.label)
                if not d.classes:
                    continue
                x, y, width, height = d.box
                frames_with_result[0] += 1
                print(f"frame {n}: roi {d.roi_id} {d.label} {d.score or 0.0:.2f} "
                      f"({x},{y} {width}x{height}): {format_classes(d.classes)}", flush=True)
        else:
            classes = meta.frame_classes(buffer)
            frames_with_result[0] += bool(classes)
            print(f"frame {n}: {format_classes(classes) if classes else 'no result'}", flush=True)
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("decode").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    done = Gst.MessageType.EOS | Gst.MessageType.ERROR
    try:
        # Until the pipeline has prerolled (its first frame reached the sink), a bounded time.
        message = wait_for(bus, done | Gst.MessageType.ASYNC_DONE, PREROLL_TIMEOUT_S)
        if message is not None and message.type == Gst.MessageType.ASYNC_DONE:
            message = wait_for(bus, done)
    except KeyboardInterrupt:
        pipeline.set_state(Gst.State.NULL)
        print(f"classify.py: interrupted by SIGINT (Ctrl-C) after {frame[0]} frames",
              file=sys.stderr)
        return 130
    status = 0
    if message is None:
        print(f"classify.py: no frame from {args.source} within {PREROLL_TIMEOUT_S} s "
              "(a damaged or unsupported file?)", file=sys.stderr)
        status = 1
    elif message.type == Gst.MessageType.ERROR:
        error, debug = message.parse_error()
        print(f"classify.py: error from {message.src.get_name()}: {error.message}\n{debug}",
              file=sys.stderr)
        status = 1
    pipeline.set_state(Gst.State.NULL)
    print(f"classify.py: {frame[0]} frames", file=sys.stderr)
    if status == 0 and not args.detector and frame[0] and not frames_with_result[0]:
        print(f"classify.py: no classification result in {frame[0]} frames: is {args.model} a "
              "classifier package (one output of class scores)?", file=sys.stderr)
        status = 1
    # Objects came and none was classified: an --object-class naming none of their labels
    # ('Face' for 'face') printed nothing and exited 0. No object at all is a valid result.
    if status == 0 and args.detector and detected_labels and not frames_with_result[0]:
        labels = ", ".join(f"'{label}'" for label in sorted(map(str, detected_labels)))
        why = (f"--object-class '{args.object_class}' names none of them" if args.object_class
               else f"is {args.model} a classifier package?")
        print(f"classify.py: objects were detected (labels {labels}) but none was classified: "
              f"{why}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before the pipeline ran (cutting the clip, loading GStreamer)
        print("classify.py: interrupted by SIGINT (Ctrl-C)", file=sys.stderr)
        sys.exit(130)
