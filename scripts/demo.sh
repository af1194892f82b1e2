#!/usr/bin/env bash
# Sets up axstream (scripts/setup.sh) and runs the main demo: BlazeFace face detection on
# opencv-doc's Megamind.avi through the GStreamer elements, writing out/face-detect.mp4 and
# out/face-detect.jsonl. Arguments go to pipelines/face-detect.sh ([VIDEO] [--display]).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# --help answers at once: it should not install packages and build first.
for arg in "$@"; do
  if [[ $arg == -h || $arg == --help ]]; then
    sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
    echo
    exec "$here/pipelines/face-detect.sh" --help
  fi
done
"$here/scripts/setup.sh"
exec "$here/pipelines/face-detect.sh" "$@"
