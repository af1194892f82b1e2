"""The type stubs (axelera/runtime/__init__.pyi, _types.py, axstream/meta.py; all ship
py.typed) as a user's type checker sees them: a program using the documented API passes
`mypy --strict`, and the same checker flags a program that misuses it, so the stubs constrain
something. mypy is Debian's `mypy` (scripts/setup.sh installs it)."""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("mypy") is None,
                                reason="mypy not installed (scripts/setup.sh installs it)")

USER_PROGRAM = """
    import pathlib
    from typing import List, Optional

    import numpy as np
    import numpy.typing as npt

    import axstream.meta
    from axelera import runtime


    def run_once(path: pathlib.Path, device: Optional[runtime.DeviceInfo]) -> List[npt.NDArray[np.int8]]:
        with runtime.Context() as context:
            devices: List[runtime.DeviceInfo] = context.list_devices()
            name: str = devices[0].name
            cores: int = devices[0].subdevice_count
            ready: bool = context.configure_device(device or name, clock_profile=800)
            config = context.read_device_configuration(devices[0])
            assert ready or context.device_ready(0)
            model = context.load_model(path)
            connection = context.device_connect(device, num_sub_devices=1)
            instance = connection.load_model_instance(model, aipu_cores=1, double_buffer=False)
            inputs = [np.zeros(info.shape, info.dtype) for info in model.inputs()]
            outputs = [np.zeros(info.shape, np.int8) for info in model.outputs()]
            instance.run(inputs, outputs)
            first: runtime.TensorInfo = model.outputs()[0]
            value: float = (float(outputs[0].flat[0]) - first.zero_point) * first.scale
            size: int = first.size + len(first.unpadded_shape) + len(config) + cores
            buffer = runtime.DmaBuffer(size)
            view = buffer.array((size,), np.uint8)
            instance.run(inputs, [buffer.fd])
            profile = instance.profile()
            seconds: float = profile.host_total + value + float(view[0])
            info = runtime.TensorInfo((1, 3), np.float32, name="x", padding=[(0, 0), (0, 1)])
            print(seconds, info.size, runtime.BoardType.__members__)
            return outputs


    def frame_labels(buffer: object) -> List[str]:
        return [d.label or "" for d in axstream.meta.detections(buffer)]


    try:
        run_once(pathlib.Path("model.json"), None)
    except runtime.DeviceInUse as holder:
        print(holder)
    except runtime.Error as error:
        print(error)
"""


def mypy(tmp_path, source):
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(source))
    env = dict(os.environ, MYPYPATH=str(ROOT / "python"))
    return subprocess.run(["mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
                           str(program)], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_a_program_using_the_documented_api_passes_mypy_strict(tmp_path):
    result = mypy(tmp_path, USER_PROGRAM)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_flags_misuse_of_the_api(tmp_path):
    # Wrong argument types and a misspelt method: each must be an error the stubs produce.
    result = mypy(tmp_path, """
        import numpy as np
        from axelera import runtime

        with runtime.Context() as context:
            model = context.load_model(42)
            instance = context.device_connect(None, "two").load_model_instance(model)
            instance.run_model([np.zeros(1)], [np.zeros(1)])
    """)
    assert result.returncode == 1, result.stdout
    assert 'Argument 1 to "load_model" of "Context"' in result.stdout
    assert 'Argument 2 to "device_connect" of "Context"' in result.stdout
    assert '"ModelInstance" has no attribute "run_model"' in result.stdout
