#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets from the test model packages
(tests/data/make_test_models.py output) plus the small hand-written seeds in fuzz/corpus/.

Packages: the generated test packages and, when given, the compiled demo packages
(~/.cache/axstream/models: BlazeFace, PP-OCR).
  fuzz_model_package/  model.json + "\\n@@MANIFEST@@\\n" + manifest.json of every package,
                       and the committed fuzz/corpus/model_package/*.txt
  fuzz_onnx_import/    every *.onnx of the packages (core, preamble, postamble) up to 200 kB
  fuzz_decoders/       the committed fuzz/corpus/decoders/* (libFuzzer also starts from empty)

Run: /usr/bin/python3 make_seeds.py --models BUILD/tests/data/models --out DIR [--target T]
(--target: write only that target's corpus, so parallel fuzz runs do not race on the others.)
"""
import argparse
import glob
import os
import shutil

SEP = b"\n@@MANIFEST@@\n"
MAX_ONNX_SEED = 200000
TARGETS = ("fuzz_model_package", "fuzz_onnx_import", "fuzz_decoders")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, action="append",
                    help="a directory of packages (repeatable: test packages, demo packages)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--target", choices=TARGETS)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = {t: os.path.join(args.out, t) for t in TARGETS if args.target in (None, t)}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    packages = [p for d in args.models for p in sorted(glob.glob(os.path.join(d, "*", "model.json")))]
    for pkg in packages:
        pdir = os.path.dirname(pkg)
        name = os.path.basename(pdir)
        with open(pkg, "rb") as f:
            model = f.read()
        with open(os.path.join(pdir, "manifest.json"), "rb") as f:
            manifest = f.read()
        if "fuzz_model_package" in dirs:
            with open(os.path.join(dirs["fuzz_model_package"], name + ".seed"), "wb") as f:
                f.write(model + SEP + manifest)
        for onnx in glob.glob(os.path.join(pdir, "*.onnx")) if "fuzz_onnx_import" in dirs else []:
            if os.path.getsize(onnx) > MAX_ONNX_SEED:
                continue  # beyond the runs' -max_len: it would be cut, not parsed
            shutil.copy(onnx, os.path.join(dirs["fuzz_onnx_import"],
                                           name + "_" + os.path.basename(onnx)))
    for sub, target in (("model_package", "fuzz_model_package"), ("decoders", "fuzz_decoders"),
                        ("onnx_import", "fuzz_onnx_import")):
        if target not in dirs:
            continue
        for seed in glob.glob(os.path.join(here, "corpus", sub, "*")):
            shutil.copy(seed, dirs[target])
    for t, d in dirs.items():
        print("%s: %d seeds" % (t, len(os.listdir(d))))


if __name__ == "__main__":
    main()
