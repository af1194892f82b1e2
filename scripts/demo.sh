#!/usr/bin/env bash
# Sets up axstream (scripts/setup.sh) and runs the main demo: BlazeFace face detection on
# opencv-doc's Megamind.avi through the GStreamer elements, writing out/face-detect.mp4 and
# out/face-detect.jsonl. Arguments go to pipelines/face-detect.sh ([VIDEO] [--display]).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# --help answers at once, and a bad command line or a missing VIDEO is said at once: neither
# should wait for set-up to install packages and build first (it did, then failed).
video_given=0
for arg in "$@"; do
  case $arg in
    -h|--help)
      sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
      echo
      exec "$here/pipelines/face-detect.sh" --help ;;
    --display) ;;
    -*) echo "demo.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    *) ((!video_given)) || { echo "demo.sh: more than one VIDEO (see --help)" >&2; exit 2; }
       [[ -f $arg ]] || { echo "demo.sh: no video at $arg" >&2; exit 1; }
       video_given=1 ;;
  esac
done
"$here/scripts/setup.sh"
exec "$here/pipelines/face-detect.sh" "$@"
