#!/usr/bin/python3
"""Image classification from a Python GStreamer app: the axelera elements are embedded in a
pipeline built with python3-gi, and a pad probe after axdecode reads the results of every frame.

    pipelines/classify.py [--model PKG] [--labels FILE] [--top-k K] [--frames N]
                          [--detector PKG [--object-class LABEL]] [SOURCE]

SOURCE is an image (frozen into --frames frames, default 1) or a video (its first --frames
frames, cut into an MJPEG clip by cut_clip.py so the count is exact, default all); default
opencv-doc's messi5.jpg. --model is any classifier package
(default: the seeded resnet_tiny test package in $AXSTREAM_TEST_MODELS or
$AXSTREAM_BUILD/tests/data/models). Whole-frame results are read from the typed
GstAxClassificationMeta (axstream/gst/axresultmeta.h, through ctypes); with --detector (e.g. the
blazeface-front package) the classifier runs on each detected object (axpreprocess roi=objects)
and the results are read from each GstVideoRegionOfInterestMeta's "ax-classification" param.

Prints one line per frame (whole frame) or per object:
    frame 0: class 7 0.4123 (label), class 3 0.1000
    frame 0: roi 0 face 0.93 (198,177 140x140): class 7 0.4123, ...
Exits 1 with the pipeline's error, or when no frame got a classification (not a classifier
package), or when the source yields no frame within 20 s (a damaged file).

Environment: AXSTREAM_BUILD (default build/), AXSTREAM_DATA_DIR or else AXSTREAM_CACHE (the
media; default ~/.cache/axstream), AXSTREAM_TEST_MODELS (default $AXSTREAM_BUILD/tests/data/models).
"""
import argparse
import ctypes
import os
import sys
import tempfile
from pathlib import Path

try:
    import gi
except ImportError as e:
    sys.exit(f"classify.py: {e} in {sys.executable}: run it with Debian's /usr/bin/python3, which "
             "has python3-gi (or as pipelines/classify.py)")

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

from cut_clip import cut_clip  # noqa: E402  (pipelines/, this script's folder)

HERE = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("AXSTREAM_BUILD", HERE / "build"))
DATA = Path(os.environ.get("AXSTREAM_DATA_DIR") or os.environ.get("AXSTREAM_CACHE")
            or Path.home() / ".cache" / "axstream")
# A damaged file can leave decodebin waiting forever without an error (its demuxer's error is
# sometimes dropped), so the first frame must arrive within this time.
PREROLL_TIMEOUT_S = 20
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class ClassificationMeta(ctypes.Structure):
    """GstAxClassificationMeta from axstream/gst/axresultmeta.h."""
    _fields_ = [("flags", ctypes.c_uint), ("info", ctypes.c_void_p), ("roi_id", ctypes.c_int),
                ("model", ctypes.c_char_p), ("n_classes", ctypes.c_uint),
                ("class_ids", ctypes.POINTER(ctypes.c_int)),
                ("scores", ctypes.POINTER(ctypes.c_float)),
                ("labels", ctypes.POINTER(ctypes.c_char_p))]


def load_meta_library():
    """libaxstream-gstmeta (already loaded by the plugin; dlopen finds the same copy)."""
    candidates = [BUILD / "gst" / "metas" / "libaxstream-gstmeta.so", "libaxstream-gstmeta.so"]
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(str(candidate))
        except OSError:
            continue
        lib.gst_buffer_get_ax_classification_meta.restype = ctypes.POINTER(ClassificationMeta)
        lib.gst_buffer_get_ax_classification_meta.argtypes = [ctypes.c_void_p, ctypes.c_int]
        return lib
    sys.exit(f"classify.py: libaxstream-gstmeta.so not found (tried {candidates})")


def format_classes(ids, scores, labels):
    parts = []
    for i, (class_id, score) in enumerate(zip(ids, scores)):
        label = labels[i] if labels and i < len(labels) and labels[i] else None
        if label == f"class {class_id}":  # the decoder's name for an unlabelled class
            label = None
        parts.append(f"class {class_id} {score:.4f}" + (f" ({label})" if label else ""))
    return ", ".join(parts)


def whole_frame_result(lib, buffer):
    # PyGObject's hash of a boxed GstBuffer is its C pointer.
    meta = lib.gst_buffer_get_ax_classification_meta(hash(buffer), -1)
    if not meta:
        return None
    m = meta.contents
    ids = [m.class_ids[i] for i in range(m.n_classes)]
    scores = [m.scores[i] for i in range(m.n_classes)]
    labels = ([m.labels[i].decode() if m.labels[i] else None for i in range(m.n_classes)]
              if m.labels else None)
    return format_classes(ids, scores, labels)


def roi_results(buffer):
    """(roi, detection params, classification params) of the buffer's ROIs, by id."""
    results, misses, roi_id = [], 0, 0
    while misses < 64:  # ids are given out consecutively by axdecode
        roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, roi_id)
        roi_id += 1
        if roi is None:
            misses += 1
            continue
        misses = 0
        results.append((roi, roi.get_param("ax-detection"), roi.get_param("ax-classification")))
    return results


def array_field(structure, name):
    value = structure.get_value(name)
    return list(value) if value is not None else []


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
    if args.frames is not None and args.frames < 1:
        sys.exit(f"classify.py: --frames {args.frames}: expected at least 1 frame")
    if args.top_k < 1:
        sys.exit(f"classify.py: --top-k {args.top_k}: expected at least 1 class")
    if args.labels and not Path(args.labels).is_file():
        sys.exit(f"classify.py: labels file {args.labels} not found")

    checks = [(args.source, "source"), (Path(args.model) / "model.json", "model package")]
    if args.detector:
        checks.append((Path(args.detector) / "model.json", "detector package"))
    for path, what in checks:
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
    source_file = Path(args.source)
    is_image = source_file.suffix.lower() in IMAGE_SUFFIXES
    if args.frames and not is_image:
        # Exactly the first N frames: identity eos-after passes N-1, N or sometimes all of them.
        source_file = Path(clip_dir) / "clip.avi"
        try:
            cut_clip(args.source, source_file, args.frames)
        except ValueError as e:
            sys.exit(f"classify.py: {e}")
    source = f'filesrc location="{source_file}" ! decodebin ! '
    if is_image:
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
    lib = load_meta_library()
    frame = [0]
    frames_with_result = [0]

    def probe(pad, info):
        buffer = info.get_buffer()
        n = frame[0]
        frame[0] += 1
        if args.detector:
            for roi, detection, classes in roi_results(buffer):
                if classes is None:
                    continue
                label = GLib.quark_to_string(roi.roi_type)
                score = detection.get_value("confidence") if detection else 0.0
                result = format_classes(array_field(classes, "class-ids"),
                                        array_field(classes, "scores"),
                                        array_field(classes, "labels"))
                print(f"frame {n}: roi {roi.id} {label} {score:.2f} "
                      f"({roi.x},{roi.y} {roi.w}x{roi.h}): {result}", flush=True)
        else:
            result = whole_frame_result(lib, buffer)
            frames_with_result[0] += result is not None
            print(f"frame {n}: {result if result is not None else 'no result'}", flush=True)
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("decode").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    done = Gst.MessageType.EOS | Gst.MessageType.ERROR
    # Until the pipeline has prerolled (its first frame reached the sink), wait a bounded time.
    message = bus.timed_pop_filtered(PREROLL_TIMEOUT_S * Gst.SECOND,
                                     done | Gst.MessageType.ASYNC_DONE)
    if message is not None and message.type == Gst.MessageType.ASYNC_DONE:
        message = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, done)
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
    return status


if __name__ == "__main__":
    sys.exit(main())
