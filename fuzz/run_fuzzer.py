#!/usr/bin/python3
"""One short libFuzzer run of a target, as a meson test (suite 'fuzz', issue 10).

  run_fuzzer.py TARGET_EXE --name NAME --models DIR [--models DIR] --corpus DIR
                --regressions DIR --artifacts DIR

Seeds DIR/NAME from the test packages and the demo packages in $AXSTREAM_DATA_DIR/models
(fuzz/make_seeds.py) on first use, then fuzzes for AXSTREAM_FUZZ_SECONDS (default 30) from
seed AXSTREAM_FUZZ_SEED (default 1) with the committed regression inputs as a second corpus
directory (read only). Prints libFuzzer's final stats. Fails when the target crashed, leaked,
timed out or tripped a sanitizer: the reproducer is in the artifacts directory; copy it to
fuzz/regressions/NAME/, fix the bug, and the regression replay test keeps it fixed.
"""
import argparse
import os
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--name", required=True)
    ap.add_argument("--models", action="append", default=[])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--regressions", required=True)
    ap.add_argument("--artifacts", required=True)
    args = ap.parse_args()
    seconds = int(os.environ.get("AXSTREAM_FUZZ_SECONDS", "30"))
    here = os.path.dirname(os.path.abspath(__file__))

    corpus = os.path.join(args.corpus, args.name)
    if not os.path.isdir(corpus):
        # The compiled demo packages (BlazeFace, PP-OCR) when set-up made them.
        data = os.environ.get("AXSTREAM_DATA_DIR", os.path.expanduser("~/.cache/axstream"))
        models = [m for m in args.models + [os.path.join(data, "models")] if os.path.isdir(m)]
        subprocess.run([sys.executable, os.path.join(here, "make_seeds.py"), "--out", args.corpus,
                        "--target", args.name] + [a for m in models for a in ("--models", m)],
                       check=True)
    artifacts = os.path.join(args.artifacts, args.name)
    os.makedirs(artifacts, exist_ok=True)
    env = dict(os.environ)
    # intercept_tls_get_addr=0: see scripts/asan-wrapper.sh (LeakSanitizer tracer crash).
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:intercept_tls_get_addr=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    # 0 s: load (and so replay) the corpus only; libFuzzer reads -max_total_time=0 as "forever".
    limit = f"-max_total_time={seconds}" if seconds > 0 else "-runs=0"
    # A fixed seed (AXSTREAM_FUZZ_SEED, default 1) makes a CI run explore the same mutations each
    # time, so a finding reproduces; set another seed (or 0: random) to explore further.
    seed = int(os.environ.get("AXSTREAM_FUZZ_SEED", "1"))
    command = [args.target, limit, f"-seed={seed}", "-rss_limit_mb=4096", "-timeout=25",
               "-max_len=200000", "-print_final_stats=1", f"-artifact_prefix={artifacts}/",
               corpus, args.regressions]
    print("$", " ".join(command), flush=True)
    run = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, errors="replace")
    stats = [line for line in run.stdout.splitlines() if line.startswith("stat::")]
    print("\n".join(stats))
    if run.returncode != 0:
        # The sanitizer report or libFuzzer's crash message is at the end of the log.
        print("\n".join(run.stdout.splitlines()[-80:]))
        found = re.findall(r"Test unit written to (\S+)", run.stdout)
        print(f"{args.name}: FOUND A BUG (exit {run.returncode}); reproducer: "
              f"{found[-1] if found else 'see the log above'}\n"
              f"copy it to fuzz/regressions/{args.name}/ and fix the code", flush=True)
        return 1
    print(f"{args.name}: {seconds} s, no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
