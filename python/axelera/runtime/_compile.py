"""axelera.runtime.compile: float ONNX model + calibration images -> model package.

Runs the ``axcompile`` tool (docs/compiler.md) with keyword options mapped to its flags::

    import axelera.runtime as axr
    pkg = axr.compile("model.onnx", "calib_images/", "model_pkg",
                      mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                      input_shape={"x": [1, 3, 640, 640]})
    with axr.Context() as context:
        model = context.load_model(pkg)

or from a shell: ``python3 -m axelera.runtime.compile model.onnx --calib imgs/ -o pkg ...``
(the arguments are axcompile's).

axcompile is found, in this order, at $AXCOMPILE, $AXSTREAM_BUILD/tools/axcompile, in the build
tree whose extension module is loaded (PYTHONPATH=<src>/python:<build>/python: <build>/tools),
next to this package (installed layouts: <prefix>/bin relative to the site directory), or on PATH.

(The function lives here, in _compile; axelera/runtime/compile.py is the ``-m`` entry point, kept
out of the package's own imports so that runpy does not warn that it was imported before it ran.)
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
from typing import Any, Mapping, Sequence

__all__ = ["compile", "find_axcompile"]

# keyword -> axcompile flag, for options that take one value
_VALUE_FLAGS = {
    "num_calib": "--num-calib",
    "calib_text_crops": "--calib-text-crops",
    "calib_resize": "--calib-resize",
    "pixel_scale": "--pixel-scale",
    "input_format": "--input-format",
    "input_layout": "--input-layout",
    "calib_method": "--calib-method",
    "percentile": "--percentile",
    "logit_clip": "--logit-clip",
    "accuracy_target": "--accuracy-target",
    "sensitivity_images": "--sensitivity-images",
    "fallback_rounds": "--fallback-rounds",
    "max_float_fraction": "--max-float-fraction",
    "min_float_gain": "--min-float-gain",
    "name": "--name",
    "batch": "--batch",
}

# Options that are one axcompile flag, given when the option's truth is the second value.
_SWITCH_FLAGS = {
    "check": ("--no-check", False),
    "verbose": ("--verbose", True),
    "bias_correction": ("--no-bias-correction", False),
    "equalise_channels": ("--equalise-channels", True),
    "output_activation_in_core": ("--output-activation-in-core", True),
    "flat_range_cut": ("--flat-range-cut", True),
}

# keyword -> (axcompile flag, what each value is), for options given as a mapping name -> numbers
_MAPPING_FLAGS = {
    "input_shape": ("--input-shape", "input name -> shape, e.g. {'x': [1, 3, 640, 640]}"),
    "output_range": ("--output-range", "output name -> (low, high)"),
}


def _invalid_argument(message: str) -> Exception:
    from . import InvalidArgument

    return InvalidArgument(message)


def _error_class(kind: str):
    """The axelera.runtime exception named ``kind`` (axcompile prints the runtime's kinds)."""
    from . import Error

    found = getattr(sys.modules[__package__], kind, None)
    return found if isinstance(found, type) and issubclass(found, Error) else None


def find_axcompile() -> str:
    """Path of the axcompile binary; raises InvalidArgument naming the places searched."""
    searched = []
    env = os.environ.get("AXCOMPILE")
    if env:
        searched.append(env)
        if os.access(env, os.X_OK):
            return env
    build = os.environ.get("AXSTREAM_BUILD")
    if build:
        candidate = os.path.join(build, "tools", "axcompile")
        searched.append(candidate)
        if os.access(candidate, os.X_OK):
            return candidate
    # The build tree this package runs from: <build>/python/_axelera_runtime*.so -> <build>/tools.
    from . import _ext

    extension_dir = pathlib.Path(_ext.__file__).resolve().parent
    if extension_dir.name == "python":
        candidate = extension_dir.parent / "tools" / "axcompile"
        searched.append(str(candidate))
        if os.access(candidate, os.X_OK) and candidate.is_file():
            return str(candidate)
    here = pathlib.Path(__file__).resolve().parent
    # <prefix>/lib/python3*/(site|dist)-packages/axelera/runtime -> <prefix>/bin
    places = [here] + [p / "bin" for p in here.parents[3:5]]
    for up in places:
        installed = up / "axcompile"
        searched.append(str(installed))
        if os.access(installed, os.X_OK) and installed.is_file():
            return str(installed)
    found = shutil.which("axcompile")
    if found:
        return found
    searched.append("PATH")
    raise _invalid_argument(
        "axelera.runtime.compile: axcompile not found (searched " + ", ".join(searched) +
        "); set AXSTREAM_BUILD to the build directory or AXCOMPILE to the binary")


def _numbers(key: str, value: Any) -> str:
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value
    try:
        return ",".join(repr(float(v)) for v in value)
    except (TypeError, ValueError):
        raise _invalid_argument(
            f"axelera.runtime.compile: option {key}={value!r}: expected a number or a sequence "
            "of numbers") from None


def _flags(options: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        if value is None:
            continue
        if key in _VALUE_FLAGS:
            args += [_VALUE_FLAGS[key], str(value)]
        elif key in ("mean", "std"):
            args += ["--" + key, _numbers(key, value)]
        elif key in _MAPPING_FLAGS:
            flag, expected = _MAPPING_FLAGS[key]
            if not isinstance(value, Mapping):
                raise _invalid_argument(
                    f"axelera.runtime.compile: {key}={value!r}: expected a mapping {expected}")
            for name, numbers in value.items():
                args += [flag, f"{name}={_numbers(key, numbers)}"]
        elif key in _SWITCH_FLAGS:
            flag, when = _SWITCH_FLAGS[key]
            if bool(value) == when:
                args.append(flag)
        elif key == "float_nodes":
            if isinstance(value, str) or not isinstance(value, Sequence) or not value:
                raise _invalid_argument(
                    f"axelera.runtime.compile: float_nodes={value!r}: expected a non-empty "
                    "sequence of node names")
            args += ["--float-nodes", ",".join(str(v) for v in value)]
        else:
            known = sorted(list(_VALUE_FLAGS) + list(_MAPPING_FLAGS) + list(_SWITCH_FLAGS) +
                           ["mean", "std", "float_nodes"])
            raise _invalid_argument(f"axelera.runtime.compile: unknown option {key!r}; expected one "
                                    f"of {', '.join(known)}")
    return args


def _run(args: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run([find_axcompile(), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)


def compile(model: os.PathLike | str, calib: os.PathLike | str,
            output_dir: os.PathLike | str | None = None, **options: Any) -> str:
    """Compile the float ONNX ``model`` into a model package, calibrating on ``calib`` (a
    directory, a glob, one image or a video file). Returns the package directory (default: the
    model's base name in the current directory).

    Options (axcompile flags): num_calib, calib_text_crops (float text detector ONNX: an OCR
    recogniser calibrates on the text lines it finds in ``calib``), calib_resize ("stretch", or
    "pad-right": PaddleOCR's recogniser resize, the default with calib_text_crops), mean, std
    (number or per-channel sequence),
    pixel_scale, input_format ("RGB"/"BGR"), input_shape ({name: shape}), input_layout
    ("NCHW"/"NHWC"), calib_method ("percentile" default, "mse", "entropy", "minmax"),
    percentile, logit_clip, output_range ({name: (low, high)}), accuracy_target (mixed
    precision, default 0.99, 0 disables), float_nodes (sequence of node names kept float),
    sensitivity_images, fallback_rounds, max_float_fraction, min_float_gain (cosine a round
    must gain per added float node to be kept, default 0.0005), bias_correction (False disables),
    output_activation_in_core (True: an output Sigmoid/Softmax after a conv/matmul runs in the
    core, the output is the quantised probability), flat_range_cut (True cuts ranges where the
    elementwise function reading them is flat), batch (device tensors of N items, for
    axinference shared=true batching; default 1), name, check (False: skip the float
    comparison), verbose.

    Raises the axelera.runtime exception of axcompile's error kind (NotImplemented for an op
    nothing can run) with its message, InvalidArgument for a usage error.
    """
    args = [os.fspath(model), "--calib", os.fspath(calib)]
    if output_dir is not None:
        args += ["--output-dir", os.fspath(output_dir)]
    args += _flags(options)
    result = _run(args)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        message = next((line for line in reversed(lines) if line.startswith("axcompile:")),
                       lines[-1] if lines else f"exit code {result.returncode}")
        # A usage error ends with a pointer to `axcompile --help`: here the options are this
        # function's keywords (its docstring).
        message = message.removesuffix(" (axcompile --help lists the options)")
        # "axcompile: error (NotImplemented): ..." raises that exception (an op the compiler
        # cannot run is NotImplemented, as from the runtime); usage errors are InvalidArgument.
        kind = re.match(r"axcompile: error \((\w+)\): (.*)", message, re.S)
        error_class = _error_class("InvalidArgument")
        if kind:
            error_class = _error_class(kind.group(1)) or error_class
            message = kind.group(2)
        raise error_class(f"axcompile {os.fspath(model)}: {message}")
    package = output_dir
    if package is None:
        package = options.get("name") or pathlib.Path(os.fspath(model)).stem
    return os.path.abspath(os.fspath(package))


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m axelera.runtime.compile`` passes its arguments to axcompile."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        binary = find_axcompile()
    except Exception as e:  # InvalidArgument: no binary; its message names the function
        print(e, file=sys.stderr)
        return 1
    # Ctrl-C reaches axcompile too (one process group): it stops cleanly and exits 130, which is
    # returned. This process only waits, with SIGINT ignored (a KeyboardInterrupt in the wait
    # printed a traceback over axcompile's message); axcompile gets SIGINT's action as it was.
    original = signal.getsignal(signal.SIGINT)
    child_action = signal.SIG_IGN if original == signal.SIG_IGN else signal.SIG_DFL
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call([binary, *argv],
                               preexec_fn=lambda: signal.signal(signal.SIGINT, child_action))
    finally:
        signal.signal(signal.SIGINT, original)

