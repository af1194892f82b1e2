"""pipelines/multistream.sh: 4 streams of the same video (Megamind.avi: it has faces, vtest.avi
has none BlazeFace finds) through one shared blazeface-front
instance give, per stream, exactly the results of a single-stream run (JSON Lines compared
record by record, ignoring only stream_id), and each record carries its own stream's id.
Then the same with the batch-4 package blazeface-front-b4: the 4 streams' frames are gathered
into batches (average fill above 1, read from the script's batching line) and every stream still
equals a single-stream run. Under the sanitizers: the first 40 frames
(pipeline_util.test_video)."""
import re
import tempfile
from pathlib import Path

from pipeline_util import (CACHE, EXAMPLES, SOURCE, check, read_jsonl, require_file, require_package,
                           run, test_video, video_frame_count)

megamind = require_file(EXAMPLES / "data" / "Megamind.avi", "Megamind.avi")
package = require_package("blazeface-front")
script = SOURCE / "pipelines" / "multistream.sh"


def without_stream_id(records):
    return [{k: v for k, v in r.items() if k != "stream_id"} for r in records]


def compare_streams(package, tmp, label):
    """Runs 1 and 4 streams of `package`; returns the 4-stream run's stdout."""
    tag = label.replace(" ", "")
    single_out, multi_out = Path(tmp) / f"single-{tag}", Path(tmp) / f"multi-{tag}"
    common = ["--video", video, "--quiet"]
    single = run([script, 1] + common, timeout=300,
                 env={"AXSTREAM_OUT": str(single_out), "AXSTREAM_FACE_MODEL": str(package)})
    print(single.stdout)
    multi = run([script, 4] + common, timeout=700,
                env={"AXSTREAM_OUT": str(multi_out), "AXSTREAM_FACE_MODEL": str(package)})
    print(multi.stdout)

    reference = read_jsonl(single_out / "stream-0.jsonl")
    frames = video_frame_count(video)
    check(len(reference) == frames, f"single run: {len(reference)} records, expected {frames}")
    check(any(r["objects"] for r in reference),
          "single run found no object at all: the comparison would be vacuous")
    for i in range(4):
        records = read_jsonl(multi_out / f"stream-{i}.jsonl")
        check(all(r["stream_id"] == i for r in records),
              f"stream-{i}.jsonl holds records of other streams")
        got = without_stream_id(records)
        want = without_stream_id(reference)
        check(len(got) == len(want), f"stream {i}: {len(got)} records, single run {len(want)}")
        for a, b in zip(got, want):
            check(a == b, f"stream {i} frame {b['frame']} differs from the single-stream run:\n"
                          f"  4 streams: {a}\n  1 stream:  {b}")
        print(f"{label}: stream {i}: {len(got)} records identical to the single-stream run")
    for i in range(4):
        check(f"stream {i}:" in multi.stdout, f"no FPS line for stream {i} in:\n{multi.stdout}")
    return multi.stdout


with tempfile.TemporaryDirectory(prefix="multistream-") as tmp:
    video = test_video(megamind, tmp)
    unbatched = compare_streams(package, tmp, "batch 1")
    check("batching:" not in unbatched, f"a batch-1 package reported batching:\n{unbatched}")
    batched_package = CACHE / "models" / "blazeface-front-b4"
    if not (batched_package / "model.json").is_file():
        print(f"batch 4: {batched_package} not built (scripts/build-demo-models.sh "
              "blazeface-front-b4); the batched comparison is skipped")
    else:
        batched = compare_streams(batched_package, tmp, "batch 4")
        m = re.search(r"batching: (\d+) runs of up to 4 frames, average fill ([0-9.]+)", batched)
        check(m is not None, f"no batching line in:\n{batched}")
        check(float(m.group(2)) > 1.0,
              f"4 streams through the batch-4 package ran {m.group(1)} batches of "
              f"{m.group(2)} frames on average: nothing was batched")
        print(f"batch 4: {m.group(1)} runs, average fill {m.group(2)}")
print("PASS")
