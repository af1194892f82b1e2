"""pipelines/multistream.sh --interval 3: two streams of a 24-frame Megamind.avi clip through one
shared blazeface-front instance, each stream's axpreprocess skipping on its own count. Each
stream's records: exactly frames 0, 3, 6, ... inferred (no inference_skipped), the others marked
inference_skipped with only axtracker's predicted objects, whose track ids are those of the
stream's detections; both streams give the same records (stream_id aside); the script's summary
names the skipped frames."""
import tempfile
from pathlib import Path

from pipeline_util import (EXAMPLES, SOURCE, check, cut_clip, read_jsonl, require_file,
                           require_package, run)

megamind = require_file(EXAMPLES / "data" / "Megamind.avi", "Megamind.avi")
package = require_package("blazeface-front")
script = SOURCE / "pipelines" / "multistream.sh"
FRAMES = 24

with tempfile.TemporaryDirectory(prefix="interval-") as tmp:
    clip = Path(tmp) / "megamind-24.avi"
    cut_clip(megamind, clip, FRAMES)
    out = Path(tmp) / "out"
    result = run([script, 2, "--video", clip, "--quiet", "--interval", 3], timeout=120,
                 env={"AXSTREAM_OUT": str(out), "AXSTREAM_FACE_MODEL": str(package)})
    print(result.stdout)
    streams = [read_jsonl(out / f"stream-{i}.jsonl") for i in range(2)]
    for i, records in enumerate(streams):
        check(len(records) == FRAMES, f"stream {i}: {len(records)} records, expected {FRAMES}")
        inferred = [r["frame"] for r in records if not r.get("inference_skipped")]
        check(inferred == list(range(0, FRAMES, 3)),
              f"stream {i}: inferred frames {inferred}, expected every 3rd from 0")
        detected_ids = {o.get("track_id") for r in records if not r.get("inference_skipped")
                        for o in r["objects"]}
        predicted = [o for r in records if r.get("inference_skipped") for o in r["objects"]]
        check(predicted, f"stream {i}: no predicted object on any skipped frame")
        for o in predicted:
            check(o.get("predicted") is True and o.get("track_id") in detected_ids,
                  f"stream {i}: skipped frame's object {o} is not a prediction of a detected "
                  f"track ({detected_ids})")
        for r in records:
            if not r.get("inference_skipped"):
                check(not any(o.get("predicted") for o in r["objects"]),
                      f"stream {i} frame {r['frame']}: a predicted object on an inferred frame")
        check(f"stream {i}: {FRAMES} frames ({FRAMES - len(inferred)} skipped" in result.stdout,
              f"no skipped count for stream {i} in:\n{result.stdout}")
        print(f"stream {i}: inferred {inferred}, {len(predicted)} predicted objects")
    strip = [[{k: v for k, v in r.items() if k != "stream_id"} for r in s] for s in streams]
    check(strip[0] == strip[1], "the two streams of the same clip differ")
print("PASS")
