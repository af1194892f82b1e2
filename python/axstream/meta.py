"""axstream.meta — read the results axstream's elements put on a Gst.Buffer, from Python.

What DeepStream users get from pyds and DL Streamer users from gstgva's VideoFrame: the typed
metas of ``axstream/gst/axresultmeta.h`` and ``axtensormeta.h`` (which PyGObject cannot
introspect) as plain Python objects, in a pad probe or from an appsink::

    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    import axstream.meta

    def on_frame(pad, info):
        buffer = info.get_buffer()
        for d in axstream.meta.detections(buffer):
            print(d.label, d.score, d.box, d.track_id)
        return Gst.PadProbeReturn.OK

Functions: ``detections``, ``frame_classes``, ``inference_skipped``, ``tensors``. Each takes a
Gst.Buffer (``info.get_buffer()`` of a pad probe, ``sample.get_buffer()`` of an appsink; anything
else raises TypeError) and copies the values out, so what they return outlives the buffer, except
the tensors' numpy arrays: read-only zero-copy views of the tensor memory (see ``tensors``).
Read-only: nothing here changes the buffer. The detection values survive videoscale and
videoconvert (they come from GstAxDetectionMeta once those elements have dropped the ROI's
``ax-detection`` structure), and are what axmetapublish writes as JSON for the same frame
(docs/metadata-schema.md).
"""

from __future__ import annotations

import importlib.util as _importlib_util
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as _np

# Installed, the extension sits inside this package; in a build tree it is the top-level module
# `_axstream_meta` found through PYTHONPATH=<build>/python (as axelera.runtime's).
if _importlib_util.find_spec("axstream._axstream_meta") is not None:
    from . import _axstream_meta as _ext  # type: ignore[attr-defined]
else:
    try:
        import _axstream_meta as _ext  # type: ignore[import]
    except ModuleNotFoundError as _error:
        if _error.name != "_axstream_meta":
            raise
        raise ModuleNotFoundError(
            "axstream.meta: its compiled part _axstream_meta is not on sys.path; from the "
            "repository root use PYTHONPATH=python:build/python (<source>/python:<build>/python), "
            "or meson install (it is built with the GStreamer plugin, for /usr/bin/python3)",
            name="_axstream_meta") from None

__all__ = ["Classification", "Detection", "InferenceSkipped", "TensorMeta", "Transform",
           "detections", "frame_classes", "inference_skipped", "tensors"]


@dataclass(frozen=True)
class Classification:
    """One ranked class of a classification (of the whole frame or of one detection)."""
    class_id: int
    score: float
    label: Optional[str]  # None when the decoder had no label for the class
    model: Optional[str]  # the model package the result came from, when the decoder named it


@dataclass(frozen=True)
class Detection:
    """One GstVideoRegionOfInterestMeta of the frame with the values axstream put on it."""
    roi_id: int
    parent_id: int  # the ROI a secondary result belongs to; axstream's top-level ROIs have -1
    box: Tuple[int, int, int, int]  # x, y, width, height in the buffer's own pixels
    label: str  # the detection's label, else the ROI's type
    class_id: int  # -1: unknown
    score: Optional[float]  # confidence in [0, 1]; None: none
    track_id: Optional[int]  # axtracker's id once it confirmed the track; None: not tracked
    keypoints: Tuple[Tuple[float, float], ...]  # (x, y) in the buffer's own pixels
    text: Optional[str]  # recognised text (OCR)
    text_confidence: Optional[float]
    predicted: bool  # axtracker's prediction on a frame whose inference was skipped
    classes: Tuple[Classification, ...]  # this ROI's classification, best first


@dataclass(frozen=True)
class InferenceSkipped:
    """The marker of a frame axpreprocess's inference-interval skipped: no inference ran on it."""
    model: Optional[str]  # the package skipped (axpreprocess's model property)
    per_object: bool  # a per-object second stage (axpreprocess roi=objects), not a whole frame
    interval: int  # the inference-interval


@dataclass(frozen=True)
class Transform:
    """How tensor pixels map back to frame pixels: frame = crop + (tensor - offset) / scale."""
    crop_x: float
    crop_y: float
    crop_width: float
    crop_height: float
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    tensor_width: int  # model input size without padding
    tensor_height: int

    def to_frame(self, tensor_x: float, tensor_y: float) -> Tuple[float, float]:
        """The frame pixel of tensor pixel (tensor_x, tensor_y)."""
        return (self.crop_x + (tensor_x - self.offset_x) / self.scale_x,
                self.crop_y + (tensor_y - self.offset_y) / self.scale_y)


@dataclass(frozen=True, eq=False)
class TensorMeta:
    """One GstAxTensorMeta: a model's input (axpreprocess) or output (axinference) tensors."""
    kind: str  # "input" or "output"
    model: Optional[str]  # the model package path
    roi_id: int  # -1: the whole frame; else the ROI the tensors were cropped from
    stream_id: int
    transform: Transform
    # One flat read-only int8 array per tensor, in the model's order, in the device layout
    # (padded NHWC): reshape with the package's TensorInfo.shape (axelera.runtime).
    arrays: Tuple[_np.ndarray[Any, _np.dtype[_np.int8]], ...]


def detections(buffer: Any) -> list[Detection]:
    """The frame's detections: one per GstVideoRegionOfInterestMeta, in the buffer's order,
    with its box, label, class, score, track id, keypoints, text and classes (values from the
    ROI's ``ax-detection`` structure, or after videoscale/videoconvert from GstAxDetectionMeta,
    GstAxKeypointsMeta and GstAxClassificationMeta). An ROI another element added has its type as
    label and no values. Empty when the buffer has none."""
    return [Detection(**dict(d, classes=tuple(Classification(**c) for c in d["classes"])))
            for d in _ext.detections(buffer)]


def frame_classes(buffer: Any) -> list[Classification]:
    """The whole frame's classes (axdecode decoder=classification without ROIs), best first;
    several models' classes follow each other. Empty when the frame has none."""
    return [Classification(**c) for c in _ext.frame_classes(buffer)]


def inference_skipped(buffer: Any, model: Optional[str] = None) -> Optional[InferenceSkipped]:
    """The marker when axpreprocess's inference-interval skipped this frame, else None (also on
    a frame where inference ran and found nothing). With ``model`` (a package path, exactly as
    given to axpreprocess) the marker of that model, else that of a whole-frame stage."""
    marker = _ext.inference_skipped(buffer, model)
    return InferenceSkipped(**marker) if marker is not None else None


def tensors(buffer: Any) -> list[TensorMeta]:
    """The frame's tensor metas, in the buffer's order. Zero-copy: each array is a read-only
    view of the tensor memory, mapped for as long as the array (or a view of it) lives, which
    also keeps that tensor buffer out of its pool; copy (``array.copy()``) what you keep beyond
    the frame so the pool can reuse it. RuntimeError naming the tensor when its memory cannot be
    mapped for reading."""
    return [TensorMeta(kind=t["kind"], model=t["model"], roi_id=t["roi_id"],
                       stream_id=t["stream_id"], transform=Transform(**t["transform"]),
                       arrays=t["arrays"]) for t in _ext.tensors(buffer)]
