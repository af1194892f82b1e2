#!/usr/bin/python3
"""Frame skipping (axpreprocess inference-interval): a detection pipeline on a real video at
interval 1 (the baseline, same run) and larger intervals. --pipeline face (default): Megamind.avi
with blazeface-front, the face-detect pipeline; --pipeline yolov5s: vtest.avi (people) with the
seeded yolov5s bench package (random weights, ~100 boxes a frame; benchmarks/make_bench_models.py)
and axtracker's documented decoder config, its first --frames frames.

Each case runs gst-launch-1.0 as a child process (rounds interleaved across cases, median
printed): frames/s over the whole command (model load and decoding included), host CPU per
frame (user + system of the child, all threads: the simulated AIPU's work runs on the host
too), frames with a face in axmetapublish's records and how many were skipped (predicted by
axtracker). One line per case, with the ratio to interval 1, and the floor no interval reaches:
the same command without the inference elements (filesrc ! decodebin ! videoconvert ! axoverlay
! fakesink: process start, demuxing, decoding and conversion).

  benchmarks/bench_interval.py [--pipeline face|yolov5s] [--intervals 1,2,4] [--rounds 3]
                               [--frames N] [--video FILE] [--model PKG]

Environment: AXSTREAM_BUILD (default build/), AXSTREAM_CACHE (default ~/.cache/axstream).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    cache = os.environ.get("AXSTREAM_CACHE", os.path.expanduser("~/.cache/axstream"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intervals", default="1,2,4",
                        help="comma-separated inference-interval values; 1 is always run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per case (median printed)")
    parser.add_argument("--pipeline", choices=("face", "yolov5s"), default="face")
    parser.add_argument("--frames", type=int, default=0,
                        help="frames of the video (0: all; yolov5s default 60)")
    parser.add_argument("--video", help="default Megamind.avi (face) or vtest.avi (yolov5s)")
    parser.add_argument("--model", help="default models/blazeface-front or bench/pkg/yolov5s")
    args = parser.parse_args()
    data = os.path.join(cache, "opencv-doc/usr/share/doc/opencv-doc/examples/data")
    face = args.pipeline == "face"
    args.video = args.video or os.path.join(data, "Megamind.avi" if face else "vtest.avi")
    args.model = args.model or os.path.join(
        cache, "models/blazeface-front" if face else "bench/pkg/yolov5s")
    args.decode = (["decoder=blazeface"] if face else
                   ["decoder=yolov5", "decoder-config=activations=sigmoid"])
    if not args.frames and not face:
        args.frames = 60
    try:
        intervals = sorted({int(v) for v in args.intervals.split(",")} | {1})
    except ValueError:
        parser.error(f"--intervals '{args.intervals}': expected comma-separated integers >= 1")
    if min(intervals) < 1 or args.rounds < 1 or args.frames < 0:
        parser.error("intervals and --rounds must be >= 1, --frames >= 0")
    for path, what in ((args.video, "video"), (os.path.join(args.model, "model.json"), "package")):
        if not os.path.exists(path):
            print(f"SKIPPED: no {what} at {path} (scripts/setup.sh fetches and builds it)")
            sys.exit(0)
    return args, intervals


def run_case(args, interval, plugin_dir):
    """interval 0: the floor, without axpreprocess, axinference, axdecode and axtracker."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as records:
        inference = [
            "axpreprocess", f"model={args.model}", f"inference-interval={interval}", "!",
            "axinference", f"model={args.model}", "!", "axdecode"] + args.decode + [
            "!", "axtracker", "!"] if interval else []
        limit = ["identity", f"eos-after={args.frames}", "!"] if args.frames else []
        command = [
            "gst-launch-1.0", "-q", "filesrc", f"location={args.video}", "!", "decodebin", "!"
        ] + limit + ["videoconvert", "!"] + inference + [
            "axoverlay", "!", "axmetapublish", f"location={records.name}", "!", "fakesink",
            "sync=false"]
        env = dict(os.environ, GST_PLUGIN_PATH=plugin_dir)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"bench_interval: interval {interval} failed: {done.stderr.strip()}")
        frames = [json.loads(line) for line in open(records.name)]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "frames": len(frames),
        "fps": len(frames) / wall,
        "cpu_ms": 1000.0 * cpu / max(1, len(frames)),
        "with_objects": sum(1 for f in frames if f["objects"]),
        "skipped": sum(1 for f in frames if f.get("inference_skipped")),
    }


def main():
    args, intervals = parse_args()
    build = os.environ.get("AXSTREAM_BUILD", os.path.join(HERE, "build"))
    plugin_dir = os.path.join(build, "gst/elements")
    results = {i: [] for i in [0] + intervals}
    for _ in range(args.rounds):
        for interval in results:
            results[interval].append(run_case(args, interval, plugin_dir))
    print(f"{args.pipeline}: {args.video} with {args.model}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    def medians(interval):
        runs = results[interval]
        return (statistics.median(r["fps"] for r in runs),
                statistics.median(r["cpu_ms"] for r in runs))

    base = medians(1)
    for interval in intervals:
        runs = results[interval]
        fps, cpu = medians(interval)
        last = runs[-1]
        print(f"interval {interval}: {fps:.1f} frames/s ({fps / base[0]:.2f}x interval 1), "
              f"{cpu:.1f} ms host CPU/frame ({cpu / base[1]:.2f}x), {last['frames']} frames, "
              f"{last['with_objects']} with objects, {last['skipped']} skipped "
              f"(median of {len(runs)}; interval 1: {base[0]:.1f} frames/s, "
              f"{base[1]:.1f} ms/frame)")
    floor = medians(0)
    print(f"floor (no inference elements): {floor[0]:.1f} frames/s, {floor[1]:.1f} ms host "
          f"CPU/frame (median of {args.rounds})")


if __name__ == "__main__":
    main()
