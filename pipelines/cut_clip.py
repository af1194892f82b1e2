#!/usr/bin/python3
"""Cuts the first N frames of a video into an MJPEG AVI with OpenCV: an exact frame count for the
demos and tests that run "the first N frames" (identity eos-after in a decodebin pipeline passes
N-1, N or, with avdec, sometimes every frame).

    pipelines/cut_clip.py VIDEO CLIP N

As a module: cut_clip(video, clip, frames) -> frames written (fewer if the video is shorter).
"""
import sys


def cut_clip(video, clip, frames):
    """Writes the first `frames` frames of `video` to `clip` (MJPEG AVI, the video's frame rate);
    returns how many it wrote. Raises ValueError naming the video when no frame can be read."""
    try:
        import cv2
    except ImportError as e:
        raise ValueError(f"{e} in {sys.executable}: run with Debian's /usr/bin/python3, which has "
                         "python3-opencv") from e
    capture = cv2.VideoCapture(str(video))
    writer = None
    written = 0
    for _ in range(frames):
        ok, frame = capture.read()
        if not ok:
            break
        if writer is None:
            fps = capture.get(cv2.CAP_PROP_FPS) or 25
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                                     (frame.shape[1], frame.shape[0]))
        writer.write(frame)
        written += 1
    if writer is None:
        raise ValueError(f"no frame could be read from {video}")
    writer.release()
    return written


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return
    if len(argv) != 4 or not argv[3].isdigit() or int(argv[3]) < 1:
        sys.exit(f"usage: {argv[0]} VIDEO CLIP N (N >= 1 frames), got {argv[1:]}")
    try:
        cut_clip(argv[1], argv[2], int(argv[3]))
    except ValueError as e:
        sys.exit(f"cut_clip: {e}")


if __name__ == "__main__":
    main(sys.argv)
