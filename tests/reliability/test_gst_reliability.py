"""Reliability of the GStreamer elements (issue 10): odd video sizes, padded strides and plane
offsets (GstVideoMeta), caps changes mid-stream, EOS without data, and a soak run checking RSS,
fds, frame count and pts order. Needs the plugin (GST_PLUGIN_PATH set by tests/reliability/meson.build) and the test packages."""

import json
import os
import pathlib
import sys
import time

import numpy as np
import pytest

gi = pytest.importorskip("gi")
gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

Gst.init(None)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "pipelines"))
from cut_clip import cut_clip  # noqa: E402  (pipelines/cut_clip.py: an exact frame count)

pytestmark = pytest.mark.skipif(Gst.ElementFactory.find("axpreprocess") is None,
                                reason="the axelera GStreamer plugin is not on GST_PLUGIN_PATH")


def run_to_eos(pipeline, timeout=120, feed=None):
    """Plays `pipeline` until EOS, calling feed() once it plays (to push buffers into an appsrc
    and end the stream); returns (eos reached, error message or None)."""
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    try:
        if feed is not None:
            feed()
        msg = bus.timed_pop_filtered(int(timeout * Gst.SECOND),
                                     Gst.MessageType.EOS | Gst.MessageType.ERROR)
        if msg is None:
            return False, "timeout"
        if msg.type == Gst.MessageType.ERROR:
            error, debug = msg.parse_error()
            return False, f"{msg.src.get_name()}: {error.message} ({debug})"
        return True, None
    finally:
        pipeline.set_state(Gst.State.NULL)


def count_buffers(pad, store):
    def probe(pad, info):
        buffer = info.get_buffer()
        store.append(buffer.pts)
        return Gst.PadProbeReturn.OK

    pad.add_probe(Gst.PadProbeType.BUFFER, probe)


def full_chain(model):
    return (f"axpreprocess model={model} ! axinference model={model} ! "
            f"axdecode decoder=classification model={model}")


@pytest.mark.parametrize("fmt,width,height", [
    ("RGB", 33, 17),      # odd width: RGB rows padded to a 4-byte stride
    ("BGRx", 1, 1),
    ("RGB", 1, 1),
    ("I420", 30, 2),      # smallest even sizes with subsampled chroma
    ("NV12", 642, 2),
    ("GRAY8", 3, 1001),
    ("RGB", 7680, 4320),  # 8K
    # Odd-sized 4:2:0 frames (chroma planes ceil(w/2) x ceil(h/2)) as videotestsrc makes them.
    # Their tensors against OpenCV: tests/gst/test_axpreprocess.cc (AxPreprocessOddSize) and
    # test_preprocess_lib.cc.
    ("I420", 31, 7),
    ("NV12", 641, 479),
    ("I420", 1, 1),
    ("NV12", 1, 1),
    ("NV12", 3, 1),
])
def test_odd_and_huge_frame_sizes_give_one_tensor_per_frame(package, fmt, width, height):
    model = package("resnet_tiny")
    frames = 2 if width * height > 10_000_000 else 5
    pipeline = Gst.parse_launch(
        f"videotestsrc num-buffers={frames} pattern=ball ! "
        f"video/x-raw,format={fmt},width={width},height={height} ! {full_chain(model)} ! "
        "fakesink name=sink")
    seen = []
    count_buffers(pipeline.get_by_name("sink").get_static_pad("sink"), seen)
    eos, error = run_to_eos(pipeline)
    assert eos, f"{fmt} {width}x{height}: {error}"
    assert len(seen) == frames


# Faces on an odd-sized scale of a frame against the even size one pixel larger: the same faces,
# boxes and keypoints within 1.5 px + 1 % of the frame (the two scales differ by one pixel, so the
# detector sees slightly different pixels), scores within 0.05 (docs/reliability.md).
ODD_FACE_POSITION_TOLERANCE = 1.5
ODD_FACE_SCORE_TOLERANCE = 0.05


def faces_on_megamind(tmp_path, fmt, width, height):
    data = pathlib.Path(os.environ.get("AXSTREAM_DATA_DIR", os.path.expanduser("~/.cache/axstream")))
    face = data / "models" / "blazeface-front"
    video = data / "opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
    if not (face / "model.json").is_file() or not video.is_file():
        pytest.skip(f"needs {face} and {video} (scripts/setup.sh)")
    # The first 8 frames, cut once: identity eos-after in a decodebin pipeline passes 9 or 10
    # frames, the 10th one the decoder drains at random, which failed the count comparison.
    clip = tmp_path / "megamind-first8.avi"
    if not clip.is_file():
        assert cut_clip(video, clip, 8) == 8
    out = tmp_path / f"faces-{fmt}-{width}x{height}.jsonl"
    pipeline = Gst.parse_launch(
        f"filesrc location={clip} ! decodebin ! videoconvert ! "
        f"videoscale ! video/x-raw,format={fmt},width={width},height={height} ! "
        f"axpreprocess model={face} ! axinference model={face} ! "
        f"axdecode decoder=blazeface model={face} ! axmetapublish location={out} ! "
        "fakesink sync=false")
    eos, error = run_to_eos(pipeline)
    assert eos, f"{fmt} {width}x{height}: {error}"
    return [json.loads(line)["objects"] for line in out.read_text().splitlines()]


@pytest.mark.parametrize("fmt", ["I420", "NV12"])
def test_blazeface_on_odd_sized_frames_finds_the_faces_of_the_even_size(tmp_path, fmt):
    odd = faces_on_megamind(tmp_path, fmt, 641, 479)
    even = faces_on_megamind(tmp_path, fmt, 642, 480)
    assert len(odd) == len(even) == 8
    assert any(even), "no face found on the even-sized frames"
    for index, (odd_faces, even_faces) in enumerate(zip(odd, even)):
        assert len(odd_faces) == len(even_faces), f"frame {index}: {odd_faces} vs {even_faces}"
        for a, b in zip(sorted(odd_faces, key=lambda f: f["box"]),
                        sorted(even_faces, key=lambda f: f["box"])):
            # Frame pixels scale by 641/642 and 479/480: compare in the odd frame's pixels.
            scale = [641 / 642, 479 / 480] * 2
            tolerance = [ODD_FACE_POSITION_TOLERANCE + 0.01 * 641,
                         ODD_FACE_POSITION_TOLERANCE + 0.01 * 479] * 2
            even_box = [v * s for v, s in zip(b["box"], scale)]
            assert all(abs(x - y) <= t for x, y, t in zip(a["box"], even_box, tolerance)), (
                f"frame {index}: box {a['box']} vs {even_box} (even size, scaled)")
            assert abs(a["score"] - b["score"]) <= ODD_FACE_SCORE_TOLERANCE, (
                f"frame {index}: score {a['score']} vs {b['score']}")
            for (x, y), (ex, ey) in zip(a.get("keypoints", []), b.get("keypoints", [])):
                assert abs(x - ex * scale[0]) <= tolerance[0], f"frame {index}: keypoint x"
                assert abs(y - ey * scale[1]) <= tolerance[1], f"frame {index}: keypoint y"


def push_frames(appsrc, caps_string, count, pts_start, duration):
    caps = Gst.Caps.from_string(caps_string)
    appsrc.set_property("caps", caps)
    structure = caps.get_structure(0)
    width, height = structure.get_value("width"), structure.get_value("height")
    stride = (width * 3 + 3) // 4 * 4
    for i in range(count):
        buffer = Gst.Buffer.new_wrapped(bytes([(i * 37) % 256]) * (stride * height))
        buffer.pts = pts_start + i * duration
        buffer.duration = duration
        assert appsrc.emit("push-buffer", buffer) == Gst.FlowReturn.OK
    return pts_start + count * duration


def test_caps_changes_mid_stream_renegotiate_without_losing_frames(package):
    model = package("resnet_tiny")
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time ! {full_chain(model)} ! fakesink name=sink sync=false")
    appsrc = pipeline.get_by_name("src")
    seen = []
    count_buffers(pipeline.get_by_name("sink").get_static_pad("sink"), seen)
    sizes = [(64, 48), (33, 17), (1280, 720), (1, 1), (64, 48)]

    def feed():
        pts, duration = 0, Gst.SECOND // 30
        for width, height in sizes:
            pts = push_frames(appsrc, f"video/x-raw,format=RGB,width={width},height={height},"
                              "framerate=30/1", 4, pts, duration)
        appsrc.emit("end-of-stream")

    eos, error = run_to_eos(pipeline, feed=feed)
    assert eos, f"no EOS after the caps changes: {error}"
    assert len(seen) == 4 * len(sizes)
    assert seen == sorted(seen)


@pytest.mark.parametrize("chain", ["axpreprocess", "full"])
def test_eos_without_any_data_ends_the_stream_cleanly(package, chain):
    model = package("resnet_tiny")
    elements = f"axpreprocess model={model}" if chain == "axpreprocess" else full_chain(model)
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width=64,height=48,"
        f"framerate=30/1 ! {elements} ! fakesink name=sink")
    seen = []
    count_buffers(pipeline.get_by_name("sink").get_static_pad("sink"), seen)
    pipeline.get_by_name("src").emit("end-of-stream")
    eos, error = run_to_eos(pipeline, timeout=60)
    assert eos, error
    assert seen == []


class PtsCounter:
    """Counts buffers passing a pad and checks pts order on the fly, in constant memory (a soak
    must not grow the process it measures: storing every pts did, by ~80 bytes a frame)."""

    def __init__(self, pad):
        self.count, self.last_pts, self.out_of_order = 0, None, 0
        pad.add_probe(Gst.PadProbeType.BUFFER, self.probe)

    def probe(self, pad, info):
        pts = info.get_buffer().pts
        if self.last_pts is not None and pts <= self.last_pts:
            self.out_of_order += 1
        self.last_pts = pts
        self.count += 1
        return Gst.PadProbeReturn.OK


def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def test_soak_pipeline_keeps_rss_and_fds_flat_and_loses_no_frame(package):
    seconds = float(os.environ.get("AXSTREAM_SOAK_SECONDS", "20"))
    model = package("resnet_tiny")
    pipeline = Gst.parse_launch(
        "videotestsrc name=src pattern=ball is-live=false ! "
        "video/x-raw,format=RGB,width=320,height=240,framerate=30/1 ! "
        f"{full_chain(model)} ! fakesink name=sink sync=false")
    pushed = PtsCounter(pipeline.get_by_name("src").get_static_pad("src"))
    seen = PtsCounter(pipeline.get_by_name("sink").get_static_pad("sink"))
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    samples = []
    try:
        start = time.monotonic()
        warmup = min(5.0, seconds / 4)
        while time.monotonic() - start < seconds:
            msg = bus.timed_pop_filtered(Gst.SECOND // 2, Gst.MessageType.ERROR)
            if msg is not None:
                pytest.fail("pipeline error during soak: %s (%s)" % msg.parse_error())
            now = time.monotonic() - start
            # At most ~200 samples, so a long soak does not grow this process either.
            if now >= warmup and (not samples or now - samples[-1][0] >= seconds / 200):
                samples.append((time.monotonic() - start, rss_kib(), fd_count(), seen.count))
        pipeline.send_event(Gst.Event.new_eos())
        msg = bus.timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
        assert msg is not None and msg.type == Gst.MessageType.EOS, "no EOS at the end of the soak"
    finally:
        pipeline.set_state(Gst.State.NULL)
    assert len(samples) >= 2
    # The figures docs/reliability.md records for long runs (shown with pytest -s).
    print(f"\nsoak {seconds:.0f} s: {pushed.count} frames in, {seen.count} out; after warm-up RSS "
          f"{samples[0][1]} -> {samples[len(samples) // 2][1]} -> {samples[-1][1]} KiB, fds "
          f"{samples[0][2]} -> {samples[len(samples) // 2][2]} -> {samples[-1][2]}")
    # Buffer pools may still grow by a buffer or two after the warm-up (a pooled memfd tensor is
    # one fd), so the flatness is checked over the second half of the run, with a small bound on
    # the whole run.
    _, rss_first, fds_first, frames_first = samples[len(samples) // 2]
    _, rss_last, fds_last, frames_last = samples[-1]
    frames_during = frames_last - frames_first
    # The tensor pools have no upper bound, so a load spike that lets more frames queue tops
    # them up, one fd per pooled tensor, even late in a run (41 -> 44 fds was seen in the second
    # half on a loaded machine). What can be in flight at once bounds that: axinference's
    # max-inflight (4, the default) frames plus the one in each element's hands, for the
    # preprocessed tensors and for the outputs alike. A leak adds an fd per frame or per few
    # frames, thousands over the second half, far beyond it.
    pooled_at_most = 2 * (4 + 2)
    assert frames_during >= 20 * pooled_at_most, f"only {frames_during} frames in the second half"
    assert fds_last - fds_first <= pooled_at_most, f"fd count went from {fds_first} to {fds_last}"
    assert samples[-1][2] - samples[0][2] <= pooled_at_most, (
        f"fd count grew: {samples[0][2]} -> {fds_last}")
    # Flat: over the second half, growth below 8 MiB and below 32 bytes a frame beyond 4 MiB of
    # allocator noise (a per-frame leak of a tensor, a meta or a result is far bigger; a 10-minute
    # run passes ~150k frames through the second half, so even ~60 bytes a frame fails it).
    growth = rss_last - rss_first
    # Under ASan freed memory sits in its quarantine (up to 256 MiB), so RSS grows by design;
    # the sanitized run checks fds, frames and pts here and leaks through LSan instead.
    rss_checked = "address" not in os.environ.get("AXSTREAM_SANITIZER", "")
    if rss_checked:
        assert growth < 8192 and growth * 1024 < 32 * max(frames_during, 1) + 4 * 1024 * 1024, (
            f"RSS grew by {growth} KiB over {frames_during} frames: "
            f"{samples[::max(1, len(samples) // 8)]}")
    assert seen.count == pushed.count, f"{pushed.count} frames in, {seen.count} out"
    assert seen.out_of_order == 0, f"{seen.out_of_order} frames with pts not after the previous"


def padded_layout(planes, strides, pad_byte, lead, gap):
    """Lays out 2-D uint8 planes (rows x row bytes) with the given row strides, `lead` bytes
    before the first plane and `gap` bytes between planes, all padding set to `pad_byte`.
    Returns (bytes, plane offsets)."""
    data, offsets = bytearray([pad_byte]) * lead, []
    for plane, stride in zip(planes, strides):
        offsets.append(len(data))
        rows, row_bytes = plane.shape
        block = np.full((rows, stride), pad_byte, np.uint8)
        block[:, :row_bytes] = plane
        data += block.tobytes() + bytes([pad_byte]) * gap
    return bytes(data), offsets


@pytest.mark.parametrize("fmt,width,height", [("RGB", 717, 528), ("I420", 718, 528),
                                              ("NV12", 640, 480)])
def test_frames_with_padded_strides_and_plane_offsets_give_the_same_results(tmp_path, fmt, width,
                                                                            height):
    # The same picture twice: once in GStreamer's default layout (no GstVideoMeta), once with
    # row strides far wider than the row, a leading gap and gaps between planes, all padding
    # filled with a bright value, described by a GstVideoMeta. axpreprocess must read the frame
    # through the meta: the faces found (boxes, scores, keypoints) must be identical.
    gi.require_version("GstVideo", "1.0")
    from gi.repository import GstVideo

    cv2 = pytest.importorskip("cv2")
    data = pathlib.Path(os.environ.get("AXSTREAM_DATA_DIR", os.path.expanduser("~/.cache/axstream")))
    face = data / "models" / "blazeface-front"
    video = data / "opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
    if not (face / "model.json").is_file() or not video.is_file():
        pytest.skip(f"needs {face} and {video} (scripts/setup.sh)")
    capture = cv2.VideoCapture(str(video))
    for _ in range(10):
        ok, bgr = capture.read()
        assert ok, f"cannot read a frame of {video}"
    bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    if fmt == "RGB":
        planes = [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).reshape(height, width * 3)]
    else:
        yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        y = yuv[:height]
        u = yuv[height:height + height // 4].reshape(height // 2, width // 2)
        v = yuv[height + height // 4:].reshape(height // 2, width // 2)
        if fmt == "I420":
            planes = [y, u, v]
        else:
            uv = np.empty((height // 2, width), np.uint8)
            uv[:, 0::2], uv[:, 1::2] = u, v
            planes = [y, uv]
    caps = Gst.Caps.from_string(f"video/x-raw,format={fmt},width={width},height={height},"
                                "framerate=30/1")
    info = GstVideo.VideoInfo.new_from_caps(caps)
    packed, offsets = padded_layout(planes, list(info.stride)[:len(planes)], 0, 0, 0)
    assert offsets == list(info.offset)[:len(planes)] and len(packed) == info.size
    padded_strides = [p.shape[1] + 200 + 8 * i for i, p in enumerate(planes)]
    padded, padded_offsets = padded_layout(planes, padded_strides, 0xF0, 96, 40)

    out = tmp_path / "faces.jsonl"
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time ! axpreprocess model={face} ! axinference model={face} ! "
        f"axdecode decoder=blazeface model={face} ! axmetapublish location={out} ! "
        "fakesink sync=false")
    appsrc = pipeline.get_by_name("src")
    appsrc.set_property("caps", caps)

    def feed():
        for i, (payload, layout) in enumerate([(packed, None), (padded, padded_offsets)] * 2):
            buffer = Gst.Buffer.new_wrapped(payload)
            if layout is not None:
                n = len(planes)
                GstVideo.buffer_add_video_meta_full(
                    buffer, GstVideo.VideoFrameFlags.NONE, info.finfo.format, width, height, n,
                    layout + [0] * (4 - n), padded_strides + [0] * (4 - n))
            buffer.pts = i * (Gst.SECOND // 30)
            buffer.duration = Gst.SECOND // 30
            assert appsrc.emit("push-buffer", buffer) == Gst.FlowReturn.OK
        appsrc.emit("end-of-stream")

    eos, error = run_to_eos(pipeline, feed=feed)
    assert eos, f"no EOS: {error}"
    frames = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(frames) == 4
    assert frames[0]["objects"], f"no face found in the packed {fmt} frame"
    for frame in frames[1:]:
        assert frame["objects"] == frames[0]["objects"], (
            f"{fmt}: padded strides/offsets changed the result:\n{frames[0]}\n{frame}")
