"""pipelines/detect.sh with the three seeded detector builders (benchmarks/make_bench_models.py:
yolov8n DFL heads, yolov5s anchor heads, ssd_mobilenet with priors): each model is made,
compiled, loaded and run on the first 3 frames of vtest.avi, and its decoder must parse the outputs (an
error stops the pipeline), giving one JSON line per frame with well-formed objects and a video.
The packages are compiled once into AXSTREAM_BENCH_MODELS (default $AXSTREAM_CACHE/bench)."""
import tempfile
from pathlib import Path

from pipeline_util import EXAMPLES, SOURCE, check, read_jsonl, require_file, run

video = require_file(EXAMPLES / "data" / "vtest.avi", "vtest.avi")
script = SOURCE / "pipelines" / "detect.sh"

with tempfile.TemporaryDirectory(prefix="detect-") as tmp:
    # The script's default conf-threshold per model (random weights).
    for model, conf in [("yolov8n", 0.5), ("yolov5s", 0.3), ("ssd_mobilenet", 0.2)]:
        out = Path(tmp) / model
        result = run([script, "--model", model, "--frames", 3, video], timeout=900,
                     env={"AXSTREAM_OUT": str(out)})
        print(result.stdout.strip())
        records = read_jsonl(out / f"detect-{model}.jsonl")
        check(len(records) == 3, f"{model}: {len(records)} JSON lines, expected 3")
        for record in records:
            for obj in record["objects"]:
                x, y, w, h = obj["box"]
                check(w > 0 and h > 0, f"{model}: empty box in {record}")
                check(conf <= obj["score"] <= 1.0, f"{model}: score outside {conf}..1 in {record}")
        # Seeded weights: every model finds objects at its threshold (a decode that silently
        # dropped everything would otherwise pass).
        check(any(r["objects"] for r in records), f"{model}: no object in 3 frames")
        check((out / f"detect-{model}.avi").stat().st_size > 0, f"{model}: no video written")
        check(f"detect: {model}: {len(records)} frames" in result.stdout,
              f"{model}: no summary line for {len(records)} frames")
print("PASS")
