#!/bin/sh
# Runs the C API classifier example on the seeded resnet_tiny package and OpenCV's messi5.jpg,
# with 3 threads; checks that it printed a full top-5 (and its --help and a bad option first).
# Exit 77 (skip) without the image.
set -eu
classifier=$1
# Its command line as a new user meets it: --help is the usage on stdout and exit 0 (it was
# exit 1, as for an error); a bad value exits 2 naming it, before anything is loaded.
help=$("$classifier" --help) || { echo "FAIL: classifier --help exited $?"; exit 1; }
case "$help" in
  *"usage: classifier <model package> <image>"*"(default 2)"*) ;;
  *) echo "FAIL: classifier --help printed: $help"; exit 1 ;;
esac
status=0
bad=$("$classifier" pkg img.jpg --threads x 2>&1) || status=$?
case "$status:$bad" in
  "2:classifier: --threads 'x': expected an integer in 1..1024"*) ;;
  *) echo "FAIL: classifier --threads x: exit $status, $bad"; exit 1 ;;
esac
data_dir=${AXSTREAM_DATA_DIR:-$HOME/.cache/axstream}
examples=$data_dir/opencv-doc/usr/share/doc/opencv-doc/examples/data
image=$examples/messi5.jpg
labels=$examples/dnn/classification_classes_ILSVRC2012.txt
if [ ! -f "$image" ]; then
  echo "SKIP: $image not found (set AXSTREAM_DATA_DIR; scripts/setup.sh fetches it)"
  exit 77
fi
if [ -z "${AXSTREAM_TEST_MODELS:-}" ] || [ ! -f "$AXSTREAM_TEST_MODELS/resnet_tiny/model.json" ]; then
  echo "SKIP: resnet_tiny test package not found under AXSTREAM_TEST_MODELS"
  exit 77
fi
mkdir -p "${AXSTREAM_RUNTIME_DIR:?}"
output=$("$classifier" "$AXSTREAM_TEST_MODELS/resnet_tiny" "$image" "$labels" --threads 3 --iterations 5)
echo "$output"
ranks=$(echo "$output" | grep -cE '^  [1-5]\. +[0-9.]+%') || true
if [ "$ranks" -ne 5 ]; then
  echo "FAIL: expected 5 ranked predictions, got $ranks"
  exit 1
fi
threads=$(echo "$output" | grep -cE '^thread [0-2]: 5 runs') || true
if [ "$threads" -ne 3 ]; then
  echo "FAIL: expected 3 threads reporting, got $threads"
  exit 1
fi
# A package with a preamble is refused, naming it (the example does not run preambles).
if refusal=$("$classifier" "$AXSTREAM_TEST_MODELS/resnet_tiny_pre" "$image" "$labels" 2>&1); then
  echo "FAIL: the example ran resnet_tiny_pre without its preamble: $refusal"
  exit 1
fi
case "$refusal" in
  *preamble.onnx*) ;;
  *) echo "FAIL: expected an error naming preamble.onnx, got: $refusal"; exit 1 ;;
esac
# Bad inputs are one line naming the program and the input (the image was named without the
# program after OpenCV's own warning, and a missing labels file was silently ignored).
for case in "missing.jpg|$labels|cannot read image 'missing.jpg'" \
            "$image|missing.txt|cannot read labels file 'missing.txt'"; do
  img=${case%%|*}; rest=${case#*|}; lab=${rest%%|*}; expected=${rest#*|}
  status=0
  message=$("$classifier" "$AXSTREAM_TEST_MODELS/resnet_tiny" "$img" "$lab" 2>&1) || status=$?
  case "$status:$message" in
    "1:classifier: $expected"*) ;;
    *) echo "FAIL: classifier $img $lab: exit $status, $message"; exit 1 ;;
  esac
done
