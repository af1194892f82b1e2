"""axstream.meta: the typed metas of a Gst.Buffer read from Python, in real pipelines through a pad
probe and an appsink, checked against what axmetapublish writes as JSON for the same frames
(before and after videoscale/videoconvert, which drop the ROIs' ax-detection structures), and the
tensors against a run of the same input through axelera.runtime.

Environment (tests/python/meson.build): GST_PLUGIN_PATH (the build's plugin), AXSTREAM_TEST_MODELS
(resnet_tiny); the detection tests also need the blazeface-front package and Megamind.avi
(scripts/setup.sh puts both in ~/.cache/axstream, AXSTREAM_CACHE) and skip without them.
"""
import gc
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

gi = pytest.importorskip("gi")
gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstApp, GstVideo  # noqa: E402,F401  (GstApp: appsink's methods)

import axstream.meta as meta  # noqa: E402

SOURCE_ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE = pathlib.Path(os.environ.get("AXSTREAM_CACHE", pathlib.Path.home() / ".cache" / "axstream"))
DATA = pathlib.Path(os.environ.get("AXSTREAM_DATA_DIR", CACHE))
MEGAMIND = DATA / "opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
FACE_PACKAGE = CACHE / "models" / "blazeface-front"

Gst.init(None)


@pytest.fixture(scope="module", autouse=True)
def plugin():
    if Gst.ElementFactory.find("axinference") is None:
        pytest.skip("the axelera plugin is not on GST_PLUGIN_PATH (run through meson test)")


@pytest.fixture
def classifier(package):
    return package("resnet_tiny")


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    """The first 6 frames of Megamind.avi (MJPEG AVI) and the blazeface-front package."""
    if not (FACE_PACKAGE / "model.json").is_file() or not MEGAMIND.is_file():
        pytest.skip(f"{FACE_PACKAGE} or {MEGAMIND} absent (scripts/setup.sh)")
    sys.path.insert(0, str(SOURCE_ROOT / "pipelines"))
    from cut_clip import cut_clip
    clip = tmp_path_factory.mktemp("clip") / "megamind-first6.avi"
    assert cut_clip(MEGAMIND, clip, 6) == 6
    return clip


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def run(launch, read, probe_element=None):
    """Runs `launch` to EOS; `read(buffer)` on every buffer leaving `probe_element`'s src pad (a
    pad probe) and on every sample of the appsink named 'sink'. Returns (probed, sunk)."""
    pipeline = Gst.parse_launch(launch)
    probed, sunk = [], []
    if probe_element:
        def probe(_pad, info):
            probed.append(read(info.get_buffer()))
            return Gst.PadProbeReturn.OK
        pad = pipeline.get_by_name(probe_element).get_static_pad("src")
        pad.add_probe(Gst.PadProbeType.BUFFER, probe)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    try:
        while (sample := sink.try_pull_sample(60 * Gst.SECOND)) is not None:
            sunk.append(read(sample.get_buffer()))
        error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        assert error is None, f"{launch}: {error.parse_error()[0].message}"
        assert sink.is_eos(), f"{launch}: no EOS within 60 s"
    finally:
        pipeline.set_state(Gst.State.NULL)
    return probed, sunk


def frame_values(buffer):
    return {"detections": meta.detections(buffer), "classes": meta.frame_classes(buffer),
            "skipped": meta.inference_skipped(buffer), "tensors": meta.tensors(buffer)}


def assert_classes_equal(got, want):
    """`got` (Classification list) equals axmetapublish's `classes` (JSON, %.6g numbers)."""
    assert [(c.class_id, c.label) for c in got] == [(w["class_id"], w.get("label")) for w in want]
    assert [c.score for c in got] == pytest.approx([w["score"] for w in want], rel=1e-5)


def assert_detections_equal(got, want):
    """`got` (Detection list) equals axmetapublish's `objects` (JSON) of the same frame."""
    assert len(got) == len(want), f"{got} != {want}"
    for d, w in zip(got, want):
        assert d.roi_id == w["roi_id"]
        assert d.parent_id == w.get("parent_id", -1)
        assert d.label == w["label"] and d.class_id == w["class_id"]
        assert (d.score if d.score is not None else 0.0) == pytest.approx(w["score"], rel=1e-5)
        assert d.box == pytest.approx(tuple(w["box"]))
        assert d.track_id == w.get("track_id")
        assert d.predicted == w.get("predicted", False)
        assert d.text == w.get("text")
        np.testing.assert_allclose(np.reshape(d.keypoints, (-1, 2)),
                                   np.reshape(w.get("keypoints", []), (-1, 2)), rtol=1e-5)
        assert_classes_equal(d.classes, w.get("classes", []))


@pytest.mark.parametrize("function", [meta.detections, meta.frame_classes,
                                      meta.inference_skipped, meta.tensors])
@pytest.mark.parametrize("wrong", [None, 42, "buffer", b"\0" * 64, "caps", "structure"])
def test_anything_but_a_buffer_is_a_type_error(function, wrong):
    if wrong == "caps":
        wrong = Gst.Caps.from_string("video/x-raw")  # a boxed mini-object, not a buffer
    elif wrong == "structure":
        wrong = Gst.Structure.new_empty("ax-detection")
    with pytest.raises(TypeError, match=r"expected a Gst\.Buffer .* got " + type(wrong).__name__):
        function(wrong)


def test_buffer_without_metas_gives_empty_results():
    buffer = Gst.Buffer.new_allocate(None, 64, None)
    assert meta.detections(buffer) == []
    assert meta.frame_classes(buffer) == []
    assert meta.inference_skipped(buffer) is None
    assert meta.tensors(buffer) == []


def test_roi_values_come_from_its_ax_detection_structure():
    """A ROI an application attached with its ax-detection structure (text, keypoints, track id:
    every field), and a bare ROI of another element (its type, no values)."""
    buffer = Gst.Buffer.new_allocate(None, 64, None)
    roi = GstVideo.buffer_add_video_region_of_interest_meta(buffer, "plate", 10, 20, 30, 40)
    params = Gst.Structure.from_string(
        'ax-detection, label=(string)"licence plate", confidence=(double)0.75, class-id=(int)3, '
        'track-id=(gint64)12, text=(string)"AB 123", text-confidence=(double)0.5, '
        "predicted=(boolean)true, keypoints=(double)<11.5, 21.25, 12.0, 22.0>")[0]
    roi.add_param(params)
    GstVideo.buffer_add_video_region_of_interest_meta(buffer, "car", 1, 2, 3, 4)
    plate, car = meta.detections(buffer)
    assert plate == meta.Detection(
        roi_id=roi.id, parent_id=roi.parent_id, box=(10, 20, 30, 40), label="licence plate",
        class_id=3, score=0.75, track_id=12, keypoints=((11.5, 21.25), (12.0, 22.0)), text="AB 123",
        text_confidence=0.5, predicted=True, classes=())
    assert (car.label, car.box, car.class_id, car.score, car.track_id, car.keypoints) == (
        "car", (1, 2, 3, 4), -1, None, None, ())


def test_frame_classes_and_skipped_frames_match_axmetapublish(classifier, tmp_path):
    """resnet_tiny with inference-interval=2 on 4 frames, read from an appsink: classes on frames
    0 and 2, the skip marker on 1 and 3, as axmetapublish writes them."""
    jsonl = tmp_path / "classes.jsonl"
    _, frames = run(
        f"videotestsrc num-buffers=4 pattern=ball ! video/x-raw,width=64,height=48 ! "
        f"axpreprocess model={classifier} inference-interval=2 ! axinference model={classifier} ! "
        f"axdecode decoder=classification top-k=3 ! axmetapublish location={jsonl} ! "
        f"appsink name=sink sync=false", frame_values)
    lines = read_jsonl(jsonl)
    assert len(frames) == len(lines) == 4
    for n, (got, line) in enumerate(zip(frames, lines)):
        assert_classes_equal(got["classes"], line.get("classes", []))
        assert got["detections"] == [] and line["objects"] == []
        assert (got["skipped"] is not None) == line.get("inference_skipped", False), n
    assert [len(f["classes"]) for f in frames] == [3, 0, 3, 0]
    assert all(c.model is None or c.model == str(classifier) for c in frames[0]["classes"])
    assert frames[1]["skipped"] == meta.InferenceSkipped(model=str(classifier), per_object=False,
                                                        interval=2)
    assert meta.inference_skipped(Gst.Buffer.new(), model="another") is None


def test_output_tensors_are_the_models_outputs_of_the_input_tensors(classifier, axr):
    """The tensor metas' arrays are the device bytes: running the input tensor axpreprocess made
    through axelera.runtime gives exactly the output tensor axinference attached."""
    _, frames = run(
        f"videotestsrc num-buffers=2 pattern=smpte ! video/x-raw,width=64,height=48 ! "
        f"axpreprocess model={classifier} ! axinference model={classifier} ! "
        f"appsink name=sink sync=false", frame_values)
    assert len(frames) == 2
    with axr.Context() as context:
        model = context.load_model(str(classifier))
        instance = context.device_connect(None, 1).load_model_instance(model)
        for frame in frames:
            by_kind = {t.kind: t for t in frame["tensors"]}
            assert sorted(by_kind) == ["input", "output"]
            inputs, outputs = by_kind["input"], by_kind["output"]
            assert inputs.model == outputs.model == str(classifier)
            assert inputs.roi_id == outputs.roi_id == -1
            assert (inputs.transform.tensor_width, inputs.transform.tensor_height) == (32, 32)
            transform = inputs.transform
            assert (transform.crop_x, transform.crop_y, transform.crop_width,
                    transform.crop_height) == (0, 0, 64, 48)
            assert transform.to_frame(transform.offset_x, transform.offset_y) == (0, 0)
            assert [a.size for a in inputs.arrays] == [i.size for i in model.inputs()]
            assert all(a.dtype == np.int8 and not a.flags.writeable for a in inputs.arrays)
            expected = [np.zeros(o.shape, o.dtype) for o in model.outputs()]
            instance.run(list(inputs.arrays), expected)
            assert len(outputs.arrays) == len(expected)
            for got, want in zip(outputs.arrays, expected):
                np.testing.assert_array_equal(got, want.ravel())


def test_tensor_arrays_outlive_the_buffer_and_pipeline(classifier):
    """An array is a view of the mapped tensor memory that holds it: kept after the pipeline
    stopped and the buffers are gone, it still reads the same bytes."""
    _, frames = run(
        f"videotestsrc num-buffers=3 pattern=ball ! video/x-raw,width=64,height=48 ! "
        f"axpreprocess model={classifier} ! axinference model={classifier} ! "
        f"appsink name=sink sync=false", meta.tensors)
    arrays = [a for metas in frames for t in metas for a in t.arrays]
    copies = [a.copy() for a in arrays]
    del frames
    gc.collect()
    assert len(arrays) == 6 and any(c.any() for c in copies)
    for array, copy in zip(arrays, copies):
        np.testing.assert_array_equal(array, copy)
    with pytest.raises(ValueError, match="read-only"):
        arrays[0][0] = 1


def read_faces(buffer):
    """The detections, the skip marker and how many of their ROIs have an ax-detection structure
    (read here: the ROI meta lives only as long as the buffer)."""
    detections = meta.detections(buffer)
    structures = sum(GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, d.roi_id)
                     .get_param("ax-detection") is not None for d in detections)
    return detections, meta.inference_skipped(buffer), structures


def test_detections_match_axmetapublish_before_and_after_videoscale(face_clip, tmp_path):
    """BlazeFace with axtracker on 6 frames, inference-interval=2: in a pad probe after axtracker
    (with the ROIs' ax-detection structures; on a queue, in the queue's thread: PyGObject leaks a
    little in every Python pad probe, which the ASan stage's leak check would lay at the door of
    the streaming thread's element, axinference) and in an appsink after videoscale and videoconvert
    (without them: the values come from the typed metas), every value equals axmetapublish's
    JSON at the same place; after the scale the boxes and keypoints are halved, the rest kept."""
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    probed, sunk = run(
        f"filesrc location={face_clip} ! decodebin ! videoconvert ! "
        f"axpreprocess model={FACE_PACKAGE} inference-interval=2 ! "
        f"axinference model={FACE_PACKAGE} ! axdecode decoder=blazeface ! "
        f"axtracker min-hits=1 ! queue name=track ! axmetapublish location={before} ! "
        f"videoscale ! video/x-raw,width=360,height=264 ! videoconvert ! video/x-raw,format=RGB ! "
        f"axmetapublish location={after} ! appsink name=sink sync=false",
        read_faces, probe_element="track")
    before_lines, after_lines = read_jsonl(before), read_jsonl(after)
    assert len(probed) == len(sunk) == len(before_lines) == len(after_lines) == 6
    assert after_lines[0]["width"] == 360 and before_lines[0]["width"] == 720
    faces = 0
    for n in range(6):
        (detections, skipped, structures), (scaled, scaled_skipped, scaled_structures) = (
            probed[n], sunk[n])
        assert_detections_equal(detections, before_lines[n]["objects"])
        assert_detections_equal(scaled, after_lines[n]["objects"])
        assert (skipped is not None) == (scaled_skipped is not None) == (n % 2 == 1)
        assert all(d.predicted == (n % 2 == 1) for d in detections)
        assert structures == len(detections) and scaled_structures == 0, (
            "the structures were not there before videoscale, or are still there after it")
        faces += len(detections)
        for d, s in zip(detections, scaled):
            assert (s.label, s.class_id, s.score, s.track_id, s.predicted) == (
                d.label, d.class_id, d.score, d.track_id, d.predicted)
            assert s.box == pytest.approx(tuple(v / 2 for v in d.box), abs=1)
            np.testing.assert_allclose(np.reshape(s.keypoints, (-1, 2)),
                                       np.reshape(d.keypoints, (-1, 2)) / 2, atol=0.01)
    # The clip's first frames have no face: the face on frames 2 and 4, predicted on 3 and 5.
    assert faces >= 4, "BlazeFace found fewer than 4 faces in 6 frames of Megamind.avi"
    tracked = [d for frame in probed for d in frame[0]]
    assert any(d.predicted for d in tracked) and not all(d.predicted for d in tracked)
    assert all(d.track_id is not None and d.class_id == 0 and d.label == "face" and
               len(d.keypoints) == (0 if d.predicted else 6) for d in tracked)


def test_object_classes_match_axmetapublish_after_videoscale(face_clip, classifier, tmp_path):
    """resnet_tiny on each face BlazeFace finds (axpreprocess roi=objects): each detection's
    classes in an appsink after videoscale, as axmetapublish writes them there."""
    jsonl = tmp_path / "objects.jsonl"
    _, frames = run(
        f"filesrc location={face_clip} ! decodebin ! videoconvert ! "
        f"axpreprocess model={FACE_PACKAGE} ! axinference model={FACE_PACKAGE} ! "
        f"axdecode decoder=blazeface ! axpreprocess roi=objects model={classifier} ! "
        f"axinference model={classifier} ! axdecode decoder=classification top-k=2 ! "
        f"videoscale ! video/x-raw,width=360,height=264 ! axmetapublish location={jsonl} ! "
        f"appsink name=sink sync=false", meta.detections)
    lines = read_jsonl(jsonl)
    assert len(frames) == len(lines) == 6
    for detections, line in zip(frames, lines):
        assert_detections_equal(detections, line["objects"])
    classified = [d for detections in frames for d in detections if d.classes]
    assert len(classified) >= 4 and all(len(d.classes) == 2 for d in classified)


# A Python process of axelera.runtime, OpenCV, GStreamer and onnx, imported in that order, each
# raising its C++ exceptions: Debian's libgstreamer brings libunwind into the global symbol scope,
# and before one_unwinder.h the libraries loaded after it (onnx) resumed exceptions with it while
# libstdc++ raised them with libgcc_s: the first error aborted (onnx) or crashed (cv2) Python.
MIXED_UNWINDERS = """
import sys
import {first}
import cv2
try:
    cv2.resize(None, (0, 0))
except cv2.error:
    print("cv2 error")
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
import onnx, onnx.checker
model = onnx.ModelProto()
model.graph.node.add().op_type = "NoSuchOp"
try:
    onnx.checker.check_model(model)
except onnx.checker.ValidationError:
    print("onnx error")
import axelera.runtime as axr
context = axr.Context()
context.release()
try:
    context.list_devices()
except axr.InvalidArgument as error:
    print("axelera error:", error)
"""


@pytest.mark.parametrize("first", ["axelera.runtime", "axstream.meta"])
def test_errors_of_every_library_are_caught_in_a_process_with_gstreamer_and_onnx(first):
    pytest.importorskip("onnx")
    pytest.importorskip("cv2")
    done = subprocess.run([sys.executable, "-c", MIXED_UNWINDERS.format(first=first)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["cv2 error", "onnx error",
                                        "axelera error: Context was released"], done.stdout
