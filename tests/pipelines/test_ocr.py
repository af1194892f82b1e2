"""pipelines/ocr.sh (PP-OCRv4 det -> dbnet -> axpreprocess roi=objects -> PP-OCRv4 rec -> ctc)
on opencv-doc's scenetext images: the words on the signs (read off the images by hand) are
recovered, each text record sits on a dbnet "text" ROI with 4 corner keypoints, and every image
gets one JSON Lines record. Under the sanitizers: the first two images."""
import re
import tempfile
from pathlib import Path

from pipeline_util import (CACHE, EXAMPLES, SOURCE, check, read_jsonl, require_file,
                           require_package, run, sanitized)

# Words on each image, checked by hand; compared case-insensitively, spaces ignored.
WORDS = {
    "scenetext01": ["NOTICE", "DOUBLE", "PARKING", "PROHIBITED"],
    "scenetext02": ["SportsCentre", "ConferenceCentre", "CarParks"],
    "scenetext03": ["copy", "centre"],
    "scenetext04": ["GM125"],
    "scenetext05": ["NOPARKING"],
    "scenetext06": ["priory", "galleries"],
}
MIN_RECOVERED = 0.8  # fraction of WORDS that must be read
if sanitized():
    WORDS = dict(list(WORDS.items())[:2])

images = [require_file(EXAMPLES / "text" / f"{name}.jpg", f"{name}.jpg") for name in WORDS]
require_package("ppocr-det")
require_package("ppocr-rec")
require_file(CACHE / "ocr" / "package" / "assets" / "ppocr_keys_v1.txt", "ppocr_keys_v1.txt")


def normalise(text):
    return re.sub(r"\s+", "", text).lower()


with tempfile.TemporaryDirectory(prefix="ocr-") as out:
    result = run([SOURCE / "pipelines" / "ocr.sh"] + images, timeout=800,
                 env={"AXSTREAM_OUT": out})
    print(result.stdout)
    recovered, missing = 0, []
    for name, words in WORDS.items():
        records = read_jsonl(Path(out) / f"ocr-{name}.jsonl")
        check(len(records) == 1, f"ocr-{name}.jsonl: {len(records)} records, expected 1")
        texts = [o for o in records[0]["objects"] if o.get("text")]
        for o in texts:
            check(o["label"] == "text" and len(o.get("keypoints", [])) == 4,
                  f"{name}: text on an object that is not a 4-corner dbnet box: {o}")
        found = normalise(" ".join(o["text"] for o in texts))
        for word in words:
            if normalise(word) in found:
                recovered += 1
            else:
                missing.append(f"{name}: {word}")
    total = sum(len(w) for w in WORDS.values())
    print(f"recovered {recovered} of {total} words; missing: {missing}")
    check(recovered >= MIN_RECOVERED * total,
          f"recovered {recovered} of {total} hand-checked words, expected >= "
          f"{MIN_RECOVERED:.0%}; missing: {missing}")
print("PASS")
