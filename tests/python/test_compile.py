"""axelera.runtime.compile: runs axcompile on the seeded float classifier of tests/compiler and
the package it writes loads and runs through axelera.runtime; failures are InvalidArgument
with axcompile's message."""

import importlib
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import axelera.runtime as axr
compile_module = importlib.import_module("axelera.runtime.compile")

SOURCE_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def axcompile_location(monkeypatch):
    """Under `meson test` PYTHONPATH holds <build>/python: use that build's axcompile."""
    if os.environ.get("AXCOMPILE") or os.environ.get("AXSTREAM_BUILD"):
        return
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        build = pathlib.Path(entry).parent
        if entry and (build / "tools" / "axcompile").is_file():
            monkeypatch.setenv("AXSTREAM_BUILD", str(build))
            return


@pytest.fixture(scope="module")
def float_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("float_models")
    subprocess.run([sys.executable, str(SOURCE_ROOT / "tests" / "compiler" / "make_float_models.py"),
                    str(out)], check=True)
    return out


def require_axcompile():
    try:
        return compile_module.find_axcompile()
    except axr.InvalidArgument as e:
        pytest.skip(f"axcompile is not built: {e}")


def test_compile_seeded_classifier_loads_and_runs(float_models, tmp_path):
    require_axcompile()
    pkg = axr.compile(float_models / "classifier.onnx", float_models / "calib", tmp_path / "pkg",
                      num_calib=12, mean=0.5, std=[0.25, 0.25, 0.25], name="seeded_classifier")
    assert pkg == str(tmp_path / "pkg")
    assert (tmp_path / "pkg" / "model.json").is_file()
    with axr.Context() as context:
        model = context.load_model(pkg)
        (i,) = model.inputs()
        (o,) = model.outputs()
        assert i.shape == (1, 64, 64, 4) and i.dtype == np.int8
        assert o.unpadded_shape[-1] == 10
        instance = context.device_connect(None, 1).load_model_instance(model)
        data = np.full(i.shape, i.zero_point, dtype=np.int8)
        out = np.empty(o.shape, dtype=o.dtype)
        instance.run([data], [out])
        assert np.any(out != o.zero_point)


def test_compile_missing_model_is_invalid_argument_with_the_tools_message(float_models, tmp_path):
    require_axcompile()
    with pytest.raises(axr.InvalidArgument, match="nothing.onnx.*cannot open the file"):
        axr.compile(tmp_path / "nothing.onnx", float_models / "calib", tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_compile_bad_option_value_is_invalid_argument(float_models, tmp_path):
    require_axcompile()
    with pytest.raises(axr.InvalidArgument, match="--calib-method.*'fastest'"):
        axr.compile(float_models / "classifier.onnx", float_models / "calib", tmp_path / "pkg",
                    calib_method="fastest")
    with pytest.raises(axr.InvalidArgument, match="unknown option 'colour'"):
        axr.compile(float_models / "classifier.onnx", float_models / "calib", colour="RGB")


def test_python_m_entry_point_passes_arguments_to_axcompile(float_models, tmp_path):
    require_axcompile()
    result = subprocess.run(
        [sys.executable, "-m", "axelera.runtime.compile", str(float_models / "classifier.onnx"),
         "--calib", str(float_models / "calib"), "--num-calib", "8", "--no-check",
         "--output-dir", str(tmp_path / "cli_pkg")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "package" in result.stdout
    assert (tmp_path / "cli_pkg" / "model.json").is_file()
