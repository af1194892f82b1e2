#!/usr/bin/env bash
# Sets up axstream (scripts/setup.sh) and runs the main demo: BlazeFace face detection on
# opencv-doc's Megamind.avi through the GStreamer elements, writing out/face-detect.mp4 and
# out/face-detect.jsonl.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh"
exec "$here/pipelines/face-detect.sh" "$@"
