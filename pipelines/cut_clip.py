#!/usr/bin/python3
"""Cuts the first N frames of a video into an MJPEG AVI with OpenCV: an exact frame count for the
demos and tests that run "the first N frames" (identity eos-after in a decodebin pipeline passes
N-1, N or, with avdec, sometimes every frame).

    pipelines/cut_clip.py VIDEO CLIP N

As a module: cut_clip(video, clip, frames) -> frames written (fewer if the video is shorter).
Exit status: 0 written (a video shorter than N: all its frames, and a line on stderr saying so),
1 no frame read or CLIP not writable, 2 bad command line.
"""
import os
import sys
from pathlib import Path


def cut_clip(video, clip, frames):
    """Writes the first `frames` frames of `video` to `clip` (MJPEG AVI, the video's frame rate);
    returns how many it wrote. Raises ValueError naming the video when no frame can be read, or
    the clip when it cannot be written (OpenCV's writer only logs that, and nothing was written
    while the cut was reported done)."""
    try:
        import cv2
    except ImportError as e:
        raise ValueError(f"{e} in {sys.executable}: run with Debian's /usr/bin/python3, which has "
                         "python3-opencv") from e
    clip = Path(clip)
    if clip.is_dir():
        raise ValueError(f"cannot write the clip {clip}: it is a directory (CLIP is a file name)")
    folder = clip.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write the clip {clip}: no directory {folder}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write the clip {clip}: directory {folder} is not writable")
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
            if not writer.isOpened():
                raise ValueError(f"cannot write the clip {clip}: OpenCV's VideoWriter could not "
                                 "open it")
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
        print(f"cut_clip.py: usage: {argv[0]} VIDEO CLIP N (N >= 1 frames), got {argv[1:]}",
              file=sys.stderr)
        sys.exit(2)
    try:
        written = cut_clip(argv[1], argv[2], int(argv[3]))
    except ValueError as e:
        sys.exit(f"cut_clip.py: {e}")
    # A shorter video is no error, but the clip is not the N frames asked for: say so (it said
    # nothing, and a test or demo took the clip for N frames).
    if written < int(argv[3]):
        print(f"cut_clip.py: {argv[1]} has only {written} frames: {argv[2]} holds all "
              f"{written}, not {int(argv[3])}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        print("cut_clip.py: interrupted by SIGINT (Ctrl-C)", file=sys.stderr)
        sys.exit(130)
