#!/usr/bin/python3
"""BlazeFace through axelera.runtime alone, no GStreamer: a real image in, a face score out.

What a program needs beyond the README's zeros: the pixels made into the float tensor the
package was calibrated on (manifest.json's input_preprocess: channel order, pixel scale, mean,
std), quantised and padded as TensorInfo describes, and the outputs depadded and dequantised
(TensorInfo's docstring). The score is BlazeFace's best anchor logit through a sigmoid; boxes
need the anchors and the decoding axdecode decoder=blazeface does.

    examples/python/face_score.py PACKAGE IMAGE_OR_VIDEO [--frame N]

PACKAGE is a compiled BlazeFace package (scripts/build-demo-models.sh makes
~/.cache/axstream/models/blazeface-front). A video is read at frame N (default 0). Prints the
input, the best face score and the anchors above 0.5; exits 0, 1 on an unreadable image or a
runtime error (axelera.runtime's message), 2 on a bad command line.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

import axelera.runtime as axr


def read_frame(path, frame):
    """The image at `path` as BGR, or frame `frame` of a video; None when neither reads."""
    cv2.setLogLevel(0)  # silent: OpenCV warns on stderr per backend tried; we say what failed
    if frame == 0:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is not None:
            return image
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)  # its GStreamer backend warns on non-videos
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, image = capture.read()
    return image if ok else None


def to_input(bgr, info, preprocess):
    """The padded int8 device input for `bgr`, made as the package's input_preprocess says."""
    height, width = info.unpadded_shape[1:3]  # NHWC
    image = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    if preprocess.get("color_format", "RGB") == "RGB":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    pixels = image.astype(np.float32) * preprocess.get("pixel_scale", 1 / 255)
    floats = (pixels - np.float32(preprocess.get("mean", 0))) / np.float32(preprocess.get("std", 1))
    quantised = np.round(floats / info.scale + info.zero_point).clip(-128, 127).astype(np.int8)
    return np.pad(quantised[None], info.padding, constant_values=info.zero_point)


def dequantise(array, info):
    """Depadded float values of a device output."""
    depadded = array[tuple(slice(low, -high if high else None) for low, high in info.padding)]
    return (depadded.astype(np.float32) - info.zero_point) * info.scale


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", help="compiled BlazeFace package directory")
    parser.add_argument("image", help="image or video file")
    parser.add_argument("--frame", type=int, default=0, help="frame of a video (default 0)")
    args = parser.parse_args()
    if args.frame < 0:
        parser.error(f"--frame {args.frame}: expected an integer >= 0")

    if not os.path.isfile(args.image):
        print(f"face_score.py: no file at {args.image}", file=sys.stderr)
        return 1
    bgr = read_frame(args.image, args.frame)
    if bgr is None:
        print(f"face_score.py: cannot read an image (or frame {args.frame}) from {args.image}",
              file=sys.stderr)
        return 1
    try:
        with axr.Context() as context:
            model = context.load_model(args.package)
            manifest = os.path.join(args.package, "manifest.json")
            with open(manifest) as f:
                preprocess = json.load(f).get("input_preprocess", [{}])[0]
            inputs = [to_input(bgr, model.inputs()[0], preprocess)]
            outputs = [np.zeros(o.shape, o.dtype) for o in model.outputs()]
            with context.device_connect(None, 1) as connection:
                instance = connection.load_model_instance(model, num_sub_devices=1, aipu_cores=1)
                instance.run(inputs, outputs)
            # BlazeFace front: outputs 0 and 1 are the score logits of the 16x16 and 8x8 anchors.
            logits = np.concatenate([dequantise(outputs[i], model.outputs()[i]).ravel()
                                     for i in (0, 1)])
    except (axr.Error, OSError) as error:
        print(f"face_score.py: {error}", file=sys.stderr)
        return 1
    scores = 1 / (1 + np.exp(-logits))
    print(f"{args.image} ({bgr.shape[1]}x{bgr.shape[0]}): best face score {scores.max():.3f}, "
          f"{int((scores > 0.5).sum())} anchors above 0.5")
    return 0


if __name__ == "__main__":
    sys.exit(main())
