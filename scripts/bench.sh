#!/usr/bin/env bash
# Builds and runs the benchmarks (issue 9; docs/performance.md). Never part of the tests.
#
#   scripts/bench.sh [engine|preprocess|pipelines|ceiling|interval|meta|overlay|tail|threads|ort|peak ...]
#                                              (default: the first four; --help this)
#
# ort: the engine's int8 against ONNX Runtime f32 and ONNX Runtime's own int8 on the same models and
# threads (design.md's target), through onnxruntime-node from the npm registry (the only ONNX
# Runtime build the allowed sources give; benchmark only, never in tests or CI). Fetches
# onnxruntime-node and onnxruntime-common $AXSTREAM_ORT_VERSION (1.20.1) with `npm pack` into
# $AXSTREAM_DATA_DIR/npm once (no npm install, no install scripts run) and unpacks them by hand
# into npm/node_modules; writes each package's core graph with uint8 activations
# (benchmarks/ort_u8_activations.py) to $AXSTREAM_BENCH_MODELS/ort/; then runs
# benchmarks/bench_ort.mjs, bench_engine's int8 cases for the same models and the ratios, and
# checks ORT's f32 outputs against our f32 engine's on one input. AXSTREAM_ORT_MODELS picks the
# models (default: all eight), AXSTREAM_BENCH_THREADS the thread counts (1,2); ends with peak.
# peak: one core's peak int8 (VNNI) and float32 (FMA) multiply-accumulate rates
# (benchmarks/bench_isa_peak.cc): their ratio bounds int8 over float32 on compute-bound models.
# interval: axpreprocess inference-interval 1, 2, 4 on the face pipeline (Megamind.avi) and the
# people one (vtest.avi, yolov5s) through benchmarks/bench_interval.py.
# meta: axstream.meta's cost per frame against the Python routes before it
# (benchmarks/bench_gst_meta.py).
# overlay: axoverlay drawing on 1080p YUY2 against GStreamer's converter to I420 and back
# (benchmarks/bench_overlay.cc).
# threads: 2 Python threads on one axelera.runtime instance and on two, against 1 thread
# (benchmarks/bench_python_threads.py).
# tail: the engine's TopK + GatherND on a YOLOv5-sized detection tail (axrun) against numpy
# (benchmarks/bench_detection_tail.py).
# ceiling: the int8 engine against oneDNN's own int8 primitives alone on the same layers
# (benchmarks/dnnl_ceiling.h), for AXSTREAM_BENCH_CEILING (default resnet50,yolov5s).
#
# Makes the seeded benchmark models (benchmarks/make_bench_models.py) once and their int8 packages
# (axcompile, calibrated on opencv-doc images) in $AXSTREAM_BENCH_MODELS, again when the compiler
# changed (scripts/package-stamp.sh), compiles the demo packages (scripts/build-demo-models.sh) and prints one line per case: ours | baseline | ratio.
# Environment: AXSTREAM_BENCH_BUILD (default build-bench/), AXSTREAM_DATA_DIR (~/.cache/axstream),
# AXSTREAM_BENCH_MODELS ($AXSTREAM_DATA_DIR/bench), AXSTREAM_BENCH_SECONDS (3 per side),
# AXSTREAM_BENCH_THREADS (f32 threads, default 1,2), JOBS (ninja -j, default 2); pipelines:
# AXSTREAM_BENCH_FRAMES (300 per face-detect run, split over the streams of the multi-stream
# cases), AXSTREAM_BENCH_YOLO_FRAMES (20), AXSTREAM_BENCH_REPEAT (5 runs per case, median),
# AXSTREAM_BENCH_STREAMS (8), AXSTREAM_BENCH_ONLY (face,megamind,yolo,yolov8,ssd,ocr,streams,
# memory),
# AXSTREAM_BENCH_PLUGIN_DIR (another plugin build), AXSTREAM_BENCH_BASELINE_PLUGIN_DIR (a second
# plugin build run in the same rounds, printed as "(baseline)"), AXSTREAM_BENCH_INFERENCE_PROPS
# (extra axinference properties).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${AXSTREAM_BENCH_BUILD:-$here/build-bench}
data=${AXSTREAM_DATA_DIR:-$HOME/.cache/axstream}
models=${AXSTREAM_BENCH_MODELS:-$data/bench}
export AXSTREAM_DATA_DIR=$data AXSTREAM_BENCH_MODELS=$models
images=$data/opencv-doc/usr/share/doc/opencv-doc/examples/data
log() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }

parts=("$@")
((${#parts[@]})) || parts=(engine preprocess pipelines ceiling)
# Checked before the build: a typo or --help should not first build build-bench/ and compile models.
for p in "${parts[@]}"; do
  case $p in
    -h|--help) sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; exit 0 ;;
    engine|preprocess|pipelines|ceiling|interval|meta|overlay|tail|threads|ort|peak) ;;
    *) echo "bench.sh: unknown part '$p' (engine, preprocess, pipelines, ceiling, interval, meta, overlay, tail, threads, ort, peak)" >&2
       exit 2 ;;
  esac
done

[[ -d $build ]] || meson setup "$build" "$here" -Dbenchmarks=enabled >/dev/null
ninja -C "$build" -j "${JOBS:-2}" benchmarks/bench_engine benchmarks/bench_preprocess \
  benchmarks/bench_pipelines benchmarks/bench_overlay tools/axcompile tools/axrun gst/elements/libgstaxelera.so \
  "python/_axstream_meta$(/usr/bin/python3-config --extension-suffix)" \
  "python/_axelera_runtime$(/usr/bin/python3-config --extension-suffix)" >&2

if [[ ! -d $images ]]; then
  log "opencv-doc data missing in $data (run scripts/setup.sh); model cases will be skipped"
else
  mkdir -p "$models/float" "$models/pkg"
  # shellcheck source=scripts/package-stamp.sh
  . "$here/scripts/package-stamp.sh"
  for m in resnet50 mobilenetv2 yolov5s yolov8n ssd_mobilenet; do
    if [[ ! -f $models/float/$m.onnx ]]; then
      log "making the seeded float models in $models/float"
      /usr/bin/python3 "$here/benchmarks/make_bench_models.py" "$models/float" >/dev/null
    fi
    options=(--calib "$images/*.jpg" --num-calib 8 --mean "0.485,0.456,0.406"
      --std "0.229,0.224,0.225" --name "$m")
    # Compiled again when the compiler changed (what it keeps float can change with it).
    stamp=$(package_stamp "$build/tools/axcompile" "$build" "$models/float/$m.onnx" "${options[*]}")
    if [[ ! -f $models/pkg/$m/model.json ||
          "$(cat "$models/pkg/$m/.axcompile-stamp" 2>/dev/null)" != "$stamp" ]]; then
      log "$m: compiling the int8 package (log: $models/pkg/$m.log)"
      if "$build/tools/axcompile" "$models/float/$m.onnx" "${options[@]}" \
        --output-dir "$models/pkg/$m" >"$models/pkg/$m.log" 2>&1; then
        echo "$stamp" >"$models/pkg/$m/.axcompile-stamp"
      else
        log "$m: axcompile failed (see the log); its int8 cases will be skipped"
      fi
    fi
  done
  # Float only (the engine-vs-OpenCV cases crnn-lstm, deconv2d, deconv3d): no int8 package.
  for m in crnn_lstm deconv2d deconv3d; do
    if [[ ! -f $models/float/$m.onnx ]]; then
      /usr/bin/python3 "$here/benchmarks/make_bench_models.py" "$models/float" $m >/dev/null
    fi
  done
  AXSTREAM_BUILD=$build AXSTREAM_CACHE=$data "$here/scripts/build-demo-models.sh" \
    blazeface-front blazeface-back ppocr-det ppocr-rec ||
    log "some demo packages failed to compile; their cases will be skipped"
fi

ort_version=${AXSTREAM_ORT_VERSION:-1.20.1}
ort_models=${AXSTREAM_ORT_MODELS:-resnet50,mobilenetv2,yolov5s,yolov8n,blazeface-front,blazeface-back,ppocr-det,ppocr-rec}
# onnxruntime-node and onnxruntime-common unpacked into $data/npm/node_modules (what npm install
# would lay out, without running onnxruntime-node's postinstall, which fetches CUDA libraries).
fetch_ort() {
  local npm=$data/npm modules=$data/npm/node_modules name have tgz arch
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "ort: needs node and npm (Debian 12: apt-get install nodejs npm)"
    return 1
  fi
  arch=$(node -p process.arch)
  mkdir -p "$modules"
  for name in onnxruntime-common onnxruntime-node; do
    have=$(node -p "require('$modules/$name/package.json').version" 2>/dev/null || true)
    [[ $have == "$ort_version" ]] && continue
    tgz=$npm/$name-$ort_version.tgz
    if [[ ! -f $tgz ]]; then
      log "fetching $name@$ort_version from the npm registry (npm pack)"
      (cd "$npm" && npm pack --silent "$name@$ort_version" >/dev/null)
    fi
    log "unpacking $name@$ort_version into $modules"
    rm -rf "$modules/$name.tmp" && mkdir -p "$modules/$name.tmp"
    if [[ $name == onnxruntime-node ]]; then
      # Only this machine's binding: the pack holds every platform's (70 MB).
      tar xzf "$tgz" -C "$modules/$name.tmp" --strip-components=1 package/package.json \
        package/dist "package/bin/napi-v3/linux/$arch"
    else
      tar xzf "$tgz" -C "$modules/$name.tmp" --strip-components=1
    fi
    rm -rf "${modules:?}/$name" && mv "$modules/$name.tmp" "$modules/$name"
  done
}

echo "# $(date -u '+%F %T UTC') $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for p in "${parts[@]}"; do
  case $p in
    engine) "$build/benchmarks/bench_engine" --threads "${AXSTREAM_BENCH_THREADS:-1,2}" ;;
    preprocess) "$build/benchmarks/bench_preprocess" ;;
    pipelines) "$build/benchmarks/bench_pipelines" ;;
    ceiling) "$build/benchmarks/bench_engine" --ceiling "${AXSTREAM_BENCH_CEILING:-resnet50,yolov5s}" ;;
    interval)
      AXSTREAM_BUILD=$build AXSTREAM_CACHE=$data "$here/benchmarks/bench_interval.py" --rounds 7
      AXSTREAM_BUILD=$build AXSTREAM_CACHE=$data "$here/benchmarks/bench_interval.py" \
        --pipeline yolov5s --rounds 3 --frames 120 ;;
    meta) AXSTREAM_BUILD=$build AXSTREAM_CACHE=$data "$here/benchmarks/bench_gst_meta.py" ;;
    overlay) "$build/benchmarks/bench_overlay" ;;
    tail) AXSTREAM_BUILD=$build "$here/benchmarks/bench_detection_tail.py" ;;
    threads) AXSTREAM_BUILD=$build AXSTREAM_CACHE=$data "$here/benchmarks/bench_python_threads.py" \
      --rounds 5 --seconds 1 ;;
    ort)
      fetch_ort
      IFS=, read -r -a wanted <<<"$ort_models"
      for m in "${wanted[@]}"; do
        case $m in
          resnet50|mobilenetv2|yolov5s|yolov8n) core=$models/pkg/$m/core.onnx ;;
          *) core=$data/models/$m/core.onnx ;;
        esac
        u8=$models/ort/$m/core_u8act.onnx
        if [[ -f $core && ( ! -f $u8 || $core -nt $u8 ) ]]; then
          log "$m: writing its core graph with uint8 activations ($u8)"
          mkdir -p "$models/ort/$m"
          /usr/bin/python3 "$here/benchmarks/ort_u8_activations.py" "$core" "$u8" >&2 ||
            log "$m: no uint8-activation form; only its int8 graph as written is timed"
        fi
      done
      scratch=$(mktemp -d)
      node "$here/benchmarks/bench_ort.mjs" --node-modules "$data/npm/node_modules" \
        --only "$ort_models" --threads "${AXSTREAM_BENCH_THREADS:-1,2}" \
        --dump-f32 "$scratch/f32" | tee "$scratch/ort.txt"
      "$build/benchmarks/bench_engine" --int8-only --only "$ort_models" | tee "$scratch/engine.txt"
      "$build/benchmarks/bench_engine" --compare-f32 "$scratch/f32" --only "$ort_models"
      node "$here/benchmarks/bench_ort.mjs" --ratios "$scratch/ort.txt" "$scratch/engine.txt"
      rm -rf "$scratch"
      "$build/benchmarks/bench_isa_peak" ;;
    peak) "$build/benchmarks/bench_isa_peak" ;;
  esac
  echo "# after $p: $(date -u '+%T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
