"""Shared fixtures of the axelera.runtime tests.

Environment (set by tests/python/meson.build):
  PYTHONPATH             <src>/python:<build>/python
  AXSTREAM_TEST_MODELS   directory of the generated test packages (resnet_tiny, resnet_tiny_b4,
                         two_outputs); tests needing them skip when it is unset.
Every test gets its own AXSTREAM_RUNTIME_DIR (device lock files and configuration state), so
tests run in parallel processes never see each other's reservations.
"""

import importlib.util
import os
import pathlib
import sys

import numpy as np
import pytest

SOURCE_ROOT = pathlib.Path(__file__).resolve().parents[2]
TEST_DATA_DIR = SOURCE_ROOT / "tests" / "data"

# A process-wide default before anything imports the runtime, in case the HAL reads the
# directory once; the autouse fixture below then gives each test a fresh one.
if "AXSTREAM_RUNTIME_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _process_runtime_dir = tempfile.mkdtemp(prefix="axstream-pytest-")
    os.environ["AXSTREAM_RUNTIME_DIR"] = _process_runtime_dir
    atexit.register(shutil.rmtree, _process_runtime_dir, ignore_errors=True)


def reset_devices():
    """Make the HAL enumerate devices again from the current environment."""
    import axelera.runtime as axr

    axr._ext._reset_devices_for_testing()


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path, monkeypatch):
    """A fresh AXSTREAM_RUNTIME_DIR for every test (also inherited by its subprocesses), with
    the default simulated device (one metis-0:1:0 with 4 sub-devices) and a short
    configuration delay. Tests wanting other devices set AXSTREAM_SIM_* and call
    reset_devices()."""
    directory = tmp_path / "axstream-runtime"
    directory.mkdir()
    monkeypatch.setenv("AXSTREAM_RUNTIME_DIR", str(directory))
    for name in ("AXSTREAM_SIM_DEVICES", "AXSTREAM_SIM_SUBDEVICES", "AXSTREAM_SIM_BOARD_TYPE",
                 "AXSTREAM_SIM_PACING", "AXSTREAM_SIM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AXSTREAM_SIM_CONFIG_DELAY_MS", "100")
    reset_devices()
    yield directory
    reset_devices()


@pytest.fixture
def axr():
    import axelera.runtime as axr

    return axr


def _models_dir():
    value = os.environ.get("AXSTREAM_TEST_MODELS")
    if not value or not pathlib.Path(value).is_dir():
        pytest.skip("AXSTREAM_TEST_MODELS is not set to the generated test packages "
                    "(run through `meson test --suite python`)")
    return pathlib.Path(value)


@pytest.fixture
def models_dir():
    return _models_dir()


@pytest.fixture
def package(models_dir):
    """package('resnet_tiny') -> path of that generated package directory."""

    def get(name):
        path = models_dir / name
        if not path.is_dir():
            pytest.skip(f"test package {name} was not generated in {models_dir}")
        return path

    return get


@pytest.fixture(scope="session")
def reference():
    """tests/data/qdq_reference.py: numpy reference run_reference(onnx_path, inputs)."""
    path = TEST_DATA_DIR / "qdq_reference.py"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    spec = importlib.util.spec_from_file_location("qdq_reference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["qdq_reference"] = module
    spec.loader.exec_module(module)
    return module


def random_inputs(model, seed=0):
    """Padded int8 device inputs: random values in the unpadded region, zero_point in the pads
    (what the doc's quantise-and-pad snippet produces)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for info in model.inputs():
        core = rng.integers(-128, 128, size=info.unpadded_shape).astype(info.dtype)
        arrays.append(np.pad(core, info.padding, constant_values=info.zero_point))
    return arrays


def empty_outputs(model):
    return [np.zeros(info.shape, dtype=info.dtype) for info in model.outputs()]

