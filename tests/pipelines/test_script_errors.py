"""The scripts in pipelines/ (and scripts/build-demo-models.sh) as a new user meets them: --help
prints the usage without comment marks and exits 0; a bad command line (unknown option, an option
without its value, a value out of range, an unknown package name) exits 2 and a bad input
(missing, empty, audio-only or non-video file, a damaged video, a corrupt or wrong model package,
an output folder that cannot be written, no axelera plugin, a python3 without Debian's packages)
exits 1, each with a message naming the problem, and none runs a pipeline first or waits. Fast:
every case stops before inference or at its first frame. The cases needing opencv-doc's media or
the demo packages are left out (and said so) when those are absent."""
import subprocess
import tempfile
from pathlib import Path

from pipeline_util import BUILD, CACHE, EXAMPLES, SOURCE, check, run

PIPELINES = SOURCE / "pipelines"
PYTHON = "/usr/bin/python3"
classify = PIPELINES / "classify.py"
cases = 0


def expect(args, status, message, env=None, timeout=30):
    """Runs args and requires exit `status` with `message` in its stderr (stdout for status 0)."""
    global cases
    result = run(args, timeout=timeout, env=env, check=False)
    output = result.stdout if status == 0 else result.stderr
    check(result.returncode == status and message in output,
          f"{' '.join(map(str, args))}: expected exit {status} and {message!r}, got exit "
          f"{result.returncode}\nstdout:\n{result.stdout[-2000:]}\n"
          f"stderr:\n{result.stderr[-2000:]}")
    cases += 1
    return result


with tempfile.TemporaryDirectory(prefix="script-errors-") as tmp:
    tmp = Path(tmp)
    env = {"AXSTREAM_OUT": str(tmp / "out")}
    text_file = tmp / "notes.avi"
    text_file.write_text("not a video\n" * 20)
    empty_file = tmp / "empty.avi"
    empty_file.touch()
    corrupt_package = tmp / "corrupt"
    corrupt_package.mkdir()
    (corrupt_package / "model.json").write_text("junk")

    scripts = {"detect": "--frames N", "face-detect": "[VIDEO]", "multistream": "[N]",
               "ocr": "[IMAGE...]"}
    for name, usage in scripts.items():
        script = PIPELINES / f"{name}.sh"
        result = expect([script, "--help"], 0, f"pipelines/{name}.sh")
        check(usage in result.stdout, f"{name} --help: no {usage!r} in\n{result.stdout}")
        check(not any(line.startswith("#") for line in result.stdout.splitlines()),
              f"{name} --help prints comment marks or the script:\n{result.stdout}")
        check("set -euo" not in result.stdout, f"{name} --help prints code:\n{result.stdout}")
        expect([script, "--bogus"], 2, f"{name}: unknown option '--bogus'", env)

    face = PIPELINES / "face-detect.sh"
    expect([face, "--display"], 1, "--display: no display to show the video on",
           dict(env, DISPLAY="", WAYLAND_DISPLAY=""))
    # A DISPLAY with no X server behind it: autovideosink picks its fake sink and the run said
    # "video -> (window)" with nothing shown (gst-launch-1.0 -q hid even the warning). Left out
    # where autovideosink finds a sink that needs no display (kmssink on a console, say).
    no_x = dict(env, DISPLAY=":77", WAYLAND_DISPLAY="")
    probe = run([PYTHON, "-c", "import gi; gi.require_version('Gst', '1.0'); "
                 "from gi.repository import Gst; Gst.init(None); "
                 "s = Gst.ElementFactory.make('autovideosink'); s.set_state(Gst.State.READY); "
                 "print(*[k.get_factory().get_name() for k in s.iterate_elements()]); "
                 "s.set_state(Gst.State.NULL)"], timeout=30, env=no_x)
    if probe.stdout.split() == ["fakesink"]:
        expect([face, "--display"], 1, "--display: GStreamer finds no usable video sink for "
               "DISPLAY=':77'", no_x)
    else:
        print(f"autovideosink uses {probe.stdout.strip()!r} without a display: case left out")

    detect = PIPELINES / "detect.sh"
    expect([detect, "--frames"], 2, "--frames needs a value", env)
    expect([detect, "--frames", "abc"], 2, "--frames 'abc': expected an integer >= 1", env)
    expect([detect, "--frames", "0"], 2, "--frames '0': expected an integer >= 1", env)
    # Too long for bash's arithmetic: it wrapped around and the whole video ran.
    expect([detect, "--frames", "99999999999999999999"], 2,
           "--frames '99999999999999999999': expected an integer from 1 to 2147483647", env)
    expect([detect, "--frames", "08x"], 2, "--frames '08x': expected an integer >= 1", env)
    expect([detect, "--conf", "2"], 2, "--conf '2': expected a score threshold in 0..1", env)
    expect([detect, "--model", "yolov9"], 2, "--model 'yolov9': expected", env)
    expect([detect, "--model"], 2, "--model needs a value", env)
    expect([detect, "--frames", "2", text_file], 1, f"{text_file} is not a video", env)
    multistream = PIPELINES / "multistream.sh"
    expect([multistream, "0"], 2, "'0': expected a stream count N >= 1", env)
    # 100000 built a 100000-branch gst-launch-1.0 line that ran for minutes.
    expect([multistream, "100000"], 2, "'100000': expected a stream count N from 1 to 64", env)
    expect([multistream, "--interval", "4294967296"], 2,
           "--interval '4294967296': expected an integer from 1 to 4294967295", env)
    expect([multistream, "--video"], 2, "--video needs a value", env)
    expect([multistream, "--batch-timeout", "soon"], 2, "--batch-timeout 'soon'", env)
    expect([multistream, "--interval", "0"], 2, "--interval '0': expected an integer >= 1", env)
    ocr = PIPELINES / "ocr.sh"
    expect([ocr, "--color-format", "XYZ"], 2, "--color-format 'XYZ': expected RGB or BGR", env)
    expect([ocr, "--color-format"], 2, "--color-format needs a value", env)
    no_build = {"AXSTREAM_BUILD": str(tmp / "no-build"), "GST_PLUGIN_PATH": "",
                "AXSTREAM_FACE_MODEL": str(corrupt_package), **env}
    if (EXAMPLES / "data" / "Megamind.avi").is_file():
        expect([face], 1, "installed; run scripts/setup.sh, or set AXSTREAM_BUILD)", no_build)
    expect([PYTHON, classify, "--model", corrupt_package, text_file], 1,
           "GStreamer finds no axelera plugin", no_build)
    expect([face, tmp / "missing.avi"], 1, f"no video at {tmp / 'missing.avi'}", env)
    expect([face, tmp], 1, f"face-detect: {tmp} is a directory, not a video file", env)
    expect([face, empty_file], 1, f"video {empty_file} is empty", env)
    expect([face, text_file], 1, f"{text_file} is not a video (GStreamer's typefind: text/plain)",
           env)
    expect([face, "a.avi", "b.avi"], 2, "more than one VIDEO", env)

    # Audio only: typefind already says audio/x-matroska; the probe itself names the stream.
    audio_only = tmp / "audio.mkv"
    run(["gst-launch-1.0", "-q", "audiotestsrc", "num-buffers=5", "!", "audioconvert", "!",
         "vorbisenc", "!", "matroskamux", "!", "filesink", f"location={audio_only}"], timeout=30)
    expect([face, audio_only], 1, f"{audio_only} is not a video (GStreamer's typefind: audio/", env)
    expect([PYTHON, PIPELINES / "probe_media.py", audio_only], 1,
           f"no frame could be decoded from {audio_only}: no video stream (only audio/")

    # The README's first command: --help must not run set-up (apt, fetches, a build) first.
    result = expect([SOURCE / "scripts" / "demo.sh", "--help"], 0, "pipelines/face-detect.sh")
    check("[setup]" not in result.stderr, f"demo.sh --help ran set-up:\n{result.stderr}")
    # Nor a bad command line or a missing video (they were said only after the whole set-up).
    for args, status, message in ((["--bogus"], 2, "demo.sh: unknown option '--bogus'"),
                                  ([tmp / "none.avi"], 1, f"demo.sh: no video at {tmp / 'none.avi'}")):
        result = expect([SOURCE / "scripts" / "demo.sh", *args], status, message)
        check("[setup]" not in result.stderr, f"demo.sh {args} ran set-up:\n{result.stderr}")
    demo_models = SOURCE / "scripts" / "build-demo-models.sh"
    expect([demo_models, "--help"], 0, "scripts/build-demo-models.sh [NAME...]")
    expect([demo_models, "blazeface"], 2,
           "unknown package 'blazeface' (expected one of: blazeface-front")
    expect([demo_models, "--fast"], 2, "unknown package '--fast'")
    # The other scripts/ commands the docs name: --help prints the usage and a bad argument
    # exits 2, both before any set-up, configure or build (before, test.sh --help ran the whole
    # set-up and recompiled the demo packages; bench/fuzz/sanitize.sh configured a build dir).
    # The build dirs point into tmp: none of them may appear.
    scripts_env = dict(env, AXSTREAM_BUILD=str(tmp / "b-build"),
                       AXSTREAM_BENCH_BUILD=str(tmp / "b-bench"), BUILD_DIR=str(tmp / "b-dir"))
    script_usages = {"setup.sh": "scripts/setup.sh", "test.sh": "scripts/test.sh [MESON TEST ARGS]",
                     "bench.sh": ("scripts/bench.sh [engine|preprocess|pipelines|ceiling|"
                                  "interval|meta|overlay|tail|threads|ort|peak ...]"),
                     "fuzz.sh": "scripts/fuzz.sh [SECONDS] [TARGET...]",
                     "sanitize.sh": "scripts/sanitize.sh [SUITE...]",
                     "gen-element-docs.sh": "scripts/gen-element-docs.sh",
                     # meson's: --help ran ldconfig, and the wrapper ran "--help" as the test.
                     "install-ldconfig.sh": "Run by `meson install`",
                     "asan-wrapper.sh": "`meson test --wrapper` for the ASan+UBSan build"}
    for name, usage in script_usages.items():
        result = expect([SOURCE / "scripts" / name, "--help"], 0, usage, scripts_env)
        check("[setup]" not in result.stderr and not result.stdout.startswith("#"),
              f"{name} --help:\n{result.stdout}\n{result.stderr}")
    expect([SOURCE / "scripts" / "setup.sh", "now"], 2, "setup.sh: unexpected argument 'now'",
           scripts_env)
    # Checked before anything is installed or built (a shared machine's -j2 build: AXSTREAM_JOBS).
    expect([SOURCE / "scripts" / "setup.sh"], 2,
           "setup.sh: AXSTREAM_JOBS 'two': expected an integer from 1 to 9999",
           {**(scripts_env or {}), "AXSTREAM_JOBS": "two"})
    expect([SOURCE / "scripts" / "bench.sh", "enigne"], 2, "bench.sh: unknown part 'enigne'",
           scripts_env)
    expect([SOURCE / "scripts" / "fuzz.sh", "1m"], 2, "fuzz.sh: SECONDS '1m'", scripts_env)
    expect([SOURCE / "scripts" / "sanitize.sh", "--suite", "gst"], 2,
           "sanitize.sh: unknown option '--suite'", scripts_env)
    made = [d.name for d in tmp.iterdir() if d.name.startswith("b-")]
    check(not made, f"a scripts/ --help or bad argument made build dirs: {made}")
    # detect.sh's and bench.sh's model builder: --help wrote five models into a folder "--help".
    bench_models = SOURCE / "benchmarks" / "make_bench_models.py"
    for args, status, message in ((["--help"], 0, "usage: make_bench_models.py OUTDIR [NAME...]"),
                                  ([], 2, "make_bench_models.py: no OUTDIR"),
                                  (["--out", tmp / "m"], 2, "unknown option '--out'"),
                                  ([tmp / "m", "yolov9"], 2, "unknown model(s) yolov9")):
        run_in = tmp / "cwd"
        run_in.mkdir(exist_ok=True)
        result = subprocess.run([PYTHON, str(bench_models), *map(str, args)], cwd=run_in,
                                capture_output=True, text=True, timeout=30)
        output = result.stdout if status == 0 else result.stderr
        check(result.returncode == status and message in output and not any(run_in.iterdir())
              and not (tmp / "m").exists(),
              f"make_bench_models.py {args}: expected exit {status}, {message!r} and nothing "
              f"written, got exit {result.returncode}, {list(run_in.iterdir())}\n{output}")
        cases += 1
    # The test-data writers docs/performance.md and docs/compiler.md name took --help as OUTDIR.
    for writer in (SOURCE / "tests" / "runtime" / "engine" / "make_qlinearconv_bench.py",
                   SOURCE / "tests" / "compiler" / "make_float_models.py"):
        for args, status, message in ((["--help"], 0, f"usage: {writer.name} OUTDIR"),
                                      ([], 2, "expected one argument, OUTDIR"),
                                      (["-o", tmp / "m"], 2, "expected one argument, OUTDIR")):
            run_in = tmp / "cwd"
            result = subprocess.run([PYTHON, str(writer), *map(str, args)], cwd=run_in,
                                    capture_output=True, text=True, timeout=30)
            output = result.stdout if status == 0 else result.stderr
            check(result.returncode == status and message in output and not any(run_in.iterdir()),
                  f"{writer.name} {args}: expected exit {status}, {message!r} and nothing written, "
                  f"got exit {result.returncode}, {list(run_in.iterdir())}\n{output}")
            cases += 1
    gen_cases = SOURCE / "tests" / "runtime" / "engine" / "gen_cases.py"
    for args, status, message in ((["--help"], 0, "usage: gen_cases.py OUTDIR STAMP"),
                                  ([tmp / "m"], 2, "expected 2 arguments, OUTDIR STAMP"),
                                  (["--out", tmp / "m"], 2, "expected 2 arguments, OUTDIR STAMP")):
        result = subprocess.run([PYTHON, str(gen_cases), *map(str, args)], cwd=tmp / "cwd",
                                capture_output=True, text=True, timeout=30)
        output = result.stdout if status == 0 else result.stderr
        check(result.returncode == status and message in output
              and not any((tmp / "cwd").iterdir()) and not (tmp / "m").exists(),
              f"gen_cases.py {args}: expected exit {status}, {message!r} and nothing written, "
              f"got exit {result.returncode}\n{output}")
        cases += 1
    # The benchmark binaries (docs/performance.md): bench_pipelines ran its whole several-minute
    # run on --help, bench_preprocess took it for a filter; bench_engine printed it as an error.
    bench_usages = {"bench_engine": "[--threads 1,2]", "bench_preprocess": "[FILTER]",
                    "bench_pipelines": "AXSTREAM_BENCH_ONLY"}
    for name, usage in bench_usages.items():
        binary = BUILD / "benchmarks" / name
        if binary.is_file():  # -Dbenchmarks=auto builds them
            expect([binary, "--help"], 0, usage, timeout=10)
            expect([binary, "--frobnicate", "x", "y"], 2, "usage:", timeout=10)

    cut_clip = PIPELINES / "cut_clip.py"
    expect([PYTHON, cut_clip, "--help"], 0, "pipelines/cut_clip.py VIDEO CLIP N")
    expect([PYTHON, cut_clip, text_file, tmp / "clip.avi", "0"], 2, "cut_clip.py: usage:")
    expect([PYTHON, cut_clip, text_file, tmp / "clip.avi", "3"], 1,
           f"no frame could be read from {text_file}")
    expect([PYTHON, classify, "--help"], 0, "AXSTREAM_DATA_DIR")
    # A python3 without Debian's packages (-S: no dist-packages), e.g. a pyenv one first on PATH.
    expect([PYTHON, "-S", classify, "--help"], 1, "run it with Debian's /usr/bin/python3")
    expect([PYTHON, "-S", cut_clip, text_file, tmp / "clip.avi", "3"], 1,
           "run with Debian's /usr/bin/python3")
    expect([PYTHON, classify, "--top-k", "0"], 2, "--top-k 0: expected at least 1 class")
    expect([PYTHON, classify, "--object-class", "face"], 2,
           "--object-class face: only with --detector")
    expect([PYTHON, classify, "--frames", "0"], 2, "--frames 0: expected a frame count in 1..")
    expect([PYTHON, classify, "--frames", "99999999999"], 2,
           "--frames 99999999999: expected a frame count in 1..2147483647")
    expect([PYTHON, classify, tmp], 1, f"classify.py: source {tmp} is a directory, not a file")
    expect([PYTHON, PIPELINES / "probe_media.py"], 2, "probe_media.py: usage:")
    # An option was probed as a file name (exit 1, "no frame could be decoded from --bogus").
    expect([PYTHON, PIPELINES / "probe_media.py", "--bogus"], 2,
           "probe_media.py: unknown option '--bogus' (see --help)")
    expect([PYTHON, classify, "--labels", tmp / "none.txt"], 1,
           f"labels file {tmp / 'none.txt'} not found")
    expect([PYTHON, classify, "--detector", tmp / "none", text_file], 1,
           f"detector package {tmp / 'none'}/model.json not found")
    expect([PYTHON, classify, "--model", corrupt_package, text_file], 1, "classify.py: error from")
    # A clip that cannot be written: the cut was reported done (exit 0) with nothing written.
    video = tmp / "test.avi"
    run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=3", "!", "video/x-raw,width=64,"
         "height=48", "!", "jpegenc", "!", "avimux", "!", "filesink", f"location={video}"],
        timeout=30)
    expect([PYTHON, cut_clip, video, tmp / "none" / "clip.avi", "2"], 1,
           f"cut_clip.py: cannot write the clip {tmp / 'none' / 'clip.avi'}: no directory")
    expect([PYTHON, cut_clip, video, tmp, "2"], 1,
           f"cut_clip.py: cannot write the clip {tmp}: it is a directory")
    expect([PYTHON, cut_clip, video, tmp / "clip.avi", "2"], 0, "")
    check((tmp / "clip.avi").stat().st_size > 0, "cut_clip.py wrote an empty clip")
    # More frames than the video has: all of them, and it says so (it said nothing).
    result = expect([PYTHON, cut_clip, video, tmp / "clip5.avi", "5"], 0, "")
    check(f"{video} has only 3 frames: {tmp / 'clip5.avi'} holds all 3, not 5" in result.stderr,
          f"cut_clip.py 5 frames of a 3-frame video: no word of it on stderr:\n{result.stderr}")

    megamind = EXAMPLES / "data" / "Megamind.avi"
    face_package = CACHE / "models" / "blazeface-front"
    if megamind.is_file() and (face_package / "model.json").is_file():
        # The first 4000 bytes of an AVI: typefind says video, the demuxer fails (and decodebin
        # sometimes drops that error, which made the pipeline wait forever).
        truncated = tmp / "truncated.avi"
        truncated.write_bytes(megamind.read_bytes()[:4000])
        expect([face, truncated], 1, f"no frame could be decoded from {truncated}", env)
        expect([detect, "--package", tmp / "none", megamind], 1,
               f"no model package at {tmp / 'none'}", env)
        # The error names the user's video, not the temporary clip of its first frames.
        expect([detect, "--frames", "1", "--package", face_package, megamind], 1,
               f"the pipeline failed on {megamind} with {face_package}", env)
        expect([face, megamind], 1, "no model package at",
               dict(env, AXSTREAM_FACE_MODEL=str(tmp / "none")))
        expect([face, megamind], 1, "the pipeline failed on",
               dict(env, AXSTREAM_FACE_MODEL=str(corrupt_package)))
        blocker = tmp / "a-file"
        blocker.touch()
        expect([face, megamind], 1, f"cannot write the outputs into {blocker / 'out'}",
               {"AXSTREAM_OUT": str(blocker / "out")})
        messi = EXAMPLES / "data" / "messi5.jpg"
        expect([PYTHON, classify, "--model", face_package, messi], 1,
               "a classifier package")
        expect([ocr, megamind], 1, f"{megamind} is not an image", env)
    else:
        print(f"media or package absent ({megamind}, {face_package}): their cases left out")
print(f"PASS ({cases} cases)")
