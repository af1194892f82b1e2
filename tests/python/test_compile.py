"""axelera.runtime.compile: runs axcompile on the seeded float classifier of tests/compiler and
the package it writes loads and runs through axelera.runtime; failures are InvalidArgument
with axcompile's message."""

import importlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import axelera.runtime as axr
compile_module = importlib.import_module("axelera.runtime._compile")

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


def test_compile_calib_resize_is_passed_and_recorded_in_the_package(float_models, tmp_path):
    """calib_resize="pad-right" (PaddleOCR's recogniser resize) reaches axcompile, which records
    how it fitted the images in the manifest; a bad value is axcompile's usage error."""
    require_axcompile()
    pkg = axr.compile(float_models / "classifier.onnx", float_models / "calib", tmp_path / "pkg",
                      num_calib=4, check=False, accuracy_target=0, calib_resize="pad-right")
    manifest = json.loads((pathlib.Path(pkg) / "manifest.json").read_text())
    assert manifest["compiler"]["calibration_resize"] == "pad-right"
    with pytest.raises(axr.InvalidArgument, match="--calib-resize.*'letterbox'"):
        axr.compile(float_models / "classifier.onnx", float_models / "calib", tmp_path / "bad",
                    calib_resize="letterbox")


def test_compile_output_activation_in_core_outputs_the_quantised_probabilities(float_models,
                                                                              tmp_path):
    """output_activation_in_core=True keeps the classifier's Softmax in the core: no postamble,
    the output quantised over [0, 1] (scale 1/255, zero point -128); the default leaves it to
    the postamble with the logits out of the core."""
    require_axcompile()
    args = dict(num_calib=4, check=False, accuracy_target=0)
    fused = axr.compile(float_models / "classifier.onnx", float_models / "calib",
                        tmp_path / "fused", output_activation_in_core=True, **args)
    default = axr.compile(float_models / "classifier.onnx", float_models / "calib",
                          tmp_path / "default", **args)
    with axr.Context() as context:
        model = context.load_model(fused)
        (o,) = model.outputs()
        assert model.properties["postamble_graph"] == ""
        assert o.scale == pytest.approx(1 / 255) and o.zero_point == -128
        assert context.load_model(default).properties["postamble_graph"] == "postamble.onnx"


def test_compile_batch_makes_a_package_whose_tensors_carry_n_items(float_models, tmp_path):
    """batch=N is axcompile's --batch (it was refused as an unknown option): every tensor's
    leading dimension is N and one run takes N items."""
    require_axcompile()
    pkg = axr.compile(float_models / "classifier.onnx", float_models / "calib", tmp_path / "b3",
                      num_calib=4, check=False, accuracy_target=0, batch=3)
    with axr.Context() as context:
        model = context.load_model(pkg)
        (i,), (o,) = model.inputs(), model.outputs()
        assert i.shape[0] == 3 and o.shape[0] == 3
        instance = context.device_connect(None, 1).load_model_instance(model)
        out = np.zeros(o.shape, np.int8)
        instance.run([np.full(i.shape, i.zero_point, np.int8)], [out])
        assert (out[0] == out[2]).all()


@pytest.mark.parametrize("half", ["classifier_f16.onnx", "classifier_bf16_io.onnx"])
def test_compile_half_model_gives_int8_tensor_infos_like_its_float32_model(float_models, tmp_path,
                                                                           half):
    """A float16 model (float16 I/O) or a bfloat16 one (float32 I/O) compiles from its float32
    equivalent: the package's TensorInfos are the int8 device tensors of the float32 package,
    so the Python API never reports a half dtype, and it runs."""
    require_axcompile()
    args = dict(num_calib=4, check=False, accuracy_target=0)
    half_pkg = axr.compile(float_models / half, float_models / "calib", tmp_path / "half", **args)
    float_pkg = axr.compile(float_models / "classifier.onnx", float_models / "calib",
                            tmp_path / "float", **args)
    with axr.Context() as context:
        model, reference = context.load_model(half_pkg), context.load_model(float_pkg)
        (i,), (o,) = model.inputs(), model.outputs()
        assert i.dtype == np.int8 and o.dtype == np.int8
        assert (i.shape, o.shape) == (reference.inputs()[0].shape, reference.outputs()[0].shape)
        assert i.scale == pytest.approx(reference.inputs()[0].scale)
        instance = context.device_connect(None, 1).load_model_instance(model)
        out = np.zeros(o.shape, np.int8)
        instance.run([np.full(i.shape, i.zero_point, np.int8)], [out])
        with pytest.raises(axr.InvalidArgument, match="float16"):
            instance.run([np.zeros(i.shape, np.float16)], [out])


def test_compile_module_docstring_example_runs_as_written(float_models, tmp_path, monkeypatch):
    """The module docstring's example, with only its file names filled in, compiles and loads
    the package (it called a Context.create() that only the C++ API has)."""
    require_axcompile()
    doc = compile_module.__doc__
    example = doc[doc.index("    import axelera.runtime as axr"):doc.index("\n\nor from a shell")]
    code = "\n".join(line[4:] for line in example.splitlines())
    # The example's model takes input 'x' (1,3,640,640): the seeded classifier's shape instead.
    code = code.replace('input_shape={"x": [1, 3, 640, 640]}', 'num_calib=4, accuracy_target=0')
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.onnx").symlink_to(float_models / "classifier.onnx")
    (tmp_path / "calib_images").symlink_to(float_models / "calib")
    scope = {}
    exec(compile(code, "compile.__doc__", "exec"), scope)  # noqa: S102 - the doc's own example
    assert scope["pkg"] == str(tmp_path / "model_pkg")
    assert isinstance(scope["model"], axr.Model)
    with axr.Context() as context:
        assert context.load_model(scope["pkg"]).inputs()[0].shape == (1, 64, 64, 4)


def test_compile_missing_model_is_invalid_argument_with_the_tools_message(float_models, tmp_path):
    require_axcompile()
    with pytest.raises(axr.InvalidArgument, match="nothing.onnx.*cannot open the file"):
        axr.compile(tmp_path / "nothing.onnx", float_models / "calib", tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_compile_op_nothing_can_run_is_not_implemented_naming_the_node(float_models, tmp_path):
    # axcompile says "error (NotImplemented)": the same exception the runtime raises for it.
    require_axcompile()
    with pytest.raises(axr.NotImplemented, match="frobnicate_node.*Frobnicate.*reading 'relu_8'") as raised:
        axr.compile(float_models / "unsupported.onnx", float_models / "calib", tmp_path / "pkg")
    assert str(raised.value).startswith(f"axcompile {float_models / 'unsupported.onnx'}: ")
    assert "error (" not in str(raised.value)
    assert not (tmp_path / "pkg").exists()


def test_compile_unreadable_calibration_images_say_why(float_models, tmp_path):
    require_axcompile()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_text("not an image")
    with pytest.raises(axr.InvalidArgument, match=r"none of its 1 image/video files decodes "
                       r"\(first: '.*a\.jpg'\)"):
        axr.compile(float_models / "classifier.onnx", tmp_path / "junk", tmp_path / "pkg")
    with pytest.raises(axr.InvalidArgument, match="no such file or directory, and no file "
                       "matches it as a glob"):
        axr.compile(float_models / "classifier.onnx", tmp_path / "none" / "*.png",
                    tmp_path / "pkg")
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
    # runpy warned when the package had imported the module before it ran as __main__.
    assert "RuntimeWarning" not in result.stderr, result.stderr


def test_python_m_entry_point_on_ctrl_c_exits_130_with_axcompiles_message_only(float_models,
                                                                              tmp_path):
    """Ctrl-C reaches the wrapper and axcompile (one process group, as from a terminal): axcompile
    stops and exits 130, the wrapper returns that; it printed a KeyboardInterrupt traceback."""
    import signal

    import cv2

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
    from terminal import run_on_terminal_then_signal

    require_axcompile()
    images = tmp_path / "images"  # 400: calibrating them takes long enough to be interrupted
    images.mkdir()
    rng = np.random.default_rng(5)
    for i in range(400):
        cv2.imwrite(str(images / f"{i:03d}.png"), rng.integers(0, 256, (32, 32, 3), np.uint8))
    # Progress bars show on a terminal: the sign it calibrates.
    status, text, _, _ = run_on_terminal_then_signal(
        [sys.executable, "-m", "axelera.runtime.compile", str(float_models / "classifier.onnx"),
         "--calib", str(images), "--num-calib", "400", "--output-dir", str(tmp_path / "pkg")],
        signal.SIGINT, wait_for=b"calibrating [", wait_at_most=60)
    assert status == 130, text
    assert "axcompile: interrupted by SIGINT (Ctrl-C): no package written" in text, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert not (tmp_path / "pkg").exists()


def test_axcompile_is_found_in_the_build_tree_of_the_loaded_extension(monkeypatch, tmp_path):
    """With only the README's PYTHONPATH=python:build/python (no AXSTREAM_BUILD, no AXCOMPILE,
    nothing on PATH) compile() finds <build>/tools/axcompile beside <build>/python; before, a
    user had to know to set AXSTREAM_BUILD."""
    from axelera.runtime import _ext

    build = pathlib.Path(_ext.__file__).resolve().parent.parent
    if not (build / "tools" / "axcompile").is_file():
        pytest.skip(f"{build}/tools/axcompile is not built (installed layout)")
    monkeypatch.delenv("AXCOMPILE", raising=False)
    monkeypatch.delenv("AXSTREAM_BUILD", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert compile_module.find_axcompile() == str(build / "tools" / "axcompile")


def test_python_m_entry_point_without_axcompile_names_it_once(monkeypatch, capsys):
    def not_found():
        raise axr.InvalidArgument("axelera.runtime.compile: axcompile not found (searched x)")

    monkeypatch.setattr(compile_module, "find_axcompile", not_found)
    assert compile_module.main(["--help"]) == 1
    assert capsys.readouterr().err == "axelera.runtime.compile: axcompile not found (searched x)\n"


def test_compile_splits_an_unquantisable_head_into_a_preamble_the_caller_runs(float_models,
                                                                               tmp_path):
    """preamble_nhwc starts with Cast + Sqrt: axcompile writes them to preamble.onnx, the model
    exposes it as a property and the caller runs it before quantising into the core input."""
    require_axcompile()
    import json
    import onnx
    pkg = pathlib.Path(axr.compile(float_models / "preamble_nhwc.onnx", float_models / "calib",
                                   tmp_path / "pre", num_calib=8, check=False))
    model_json = json.loads((pkg / "model.json").read_text())
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert model_json["preamble_graph"] == "preamble.onnx"
    assert manifest["preprocess_graph"] == "preamble.onnx"
    assert model_json["host_ops"]["preamble"] == {"Cast": 1, "Sqrt": 1}
    preamble = onnx.load(str(pkg / "preamble.onnx"))
    assert [n.op_type for n in preamble.graph.node] == ["Cast", "Sqrt"]
    assert preamble.graph.input[0].name == "image"
    assert preamble.graph.output[0].name == manifest["input_names"][0]
    assert manifest["input_info"] == [{"original_shape": [1, 32, 32, 3], "layout": "none"}]
    assert manifest["input_preprocess"][0]["layout"] == "NHWC"

    with axr.Context() as context:
        model = context.load_model(str(pkg))
        assert model.properties["preamble_graph"] == "preamble.onnx"
        (i,) = model.inputs()
        (o,) = model.outputs()
        # The host side: pixels 0..255 -> model input (pixel_scale 1/255) -> preamble -> quantise.
        pixels = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3)).astype(np.float32)
        core_input = np.sqrt(pixels / 255.0)
        q = np.clip(np.round(core_input / i.scale) + i.zero_point, -128, 127).astype(np.int8)
        data = np.full(i.shape, i.zero_point, dtype=np.int8)
        data[..., :3] = q
        out = np.empty(o.shape, dtype=o.dtype)
        context.device_connect(None, 1).load_model_instance(model).run([data], [out])
        assert np.any(out != o.zero_point)
        # Sqrt of 0..1 is 0..1: the core input's range is the calibrated one, not the pixels'.
        assert 0.9 / 255 < i.scale < 1.1 / 255


def test_compile_model_without_a_head_to_split_has_no_preamble(float_models, tmp_path):
    require_axcompile()
    import json
    pkg = pathlib.Path(axr.compile(float_models / "detector.onnx", float_models / "calib",
                                   tmp_path / "det", num_calib=6, check=False))
    assert json.loads((pkg / "model.json").read_text())["preamble_graph"] is None
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["preprocess_graph"] is None and "input_info" not in manifest
    assert not (pkg / "preamble.onnx").exists()


def test_compiled_classifier_output_is_4d_nhwc_and_a_2d_package_from_before_still_runs(
        float_models, tmp_path):
    """axcompile gives a classifier's logits as Axelera's packages do, (1, 1, 1, C) padded in C
    (the API doc's TensorInfo((1, 1, 1, 1024), padding=[..., (0, 24)]) shape), with
    output_info's original_shape the float model's (1, 10). A package from before, whose core
    output is (1, C), is still valid: it loads and runs to the same values."""
    onnx = pytest.importorskip("onnx")
    import onnx.numpy_helper  # noqa: F401 (onnx.numpy_helper below)
    require_axcompile()
    pkg = pathlib.Path(axr.compile(float_models / "classifier.onnx", float_models / "calib",
                                   tmp_path / "new", num_calib=4, check=False, accuracy_target=0))
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["output_shapes"] == [[1, 1, 1, 16]]
    assert manifest["n_padded_ch_outputs"] == [[0, 0, 0, 0, 0, 0, 0, 6]]
    assert manifest["output_shapes_original"] == [[1, 10]]
    assert manifest["output_info"][0]["original_shape"] == [1, 10]

    # The same package as axcompile wrote it before: the core's (1, 10) int8 logits padded to
    # (1, 16) are its output, without the Reshape to 4-D, and the manifest says (1, 16).
    old = tmp_path / "old"
    old.mkdir()
    for f in pkg.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    core = onnx.load(str(pkg / "core.onnx"))
    (output,) = core.graph.output
    (pad,) = [n for n in core.graph.node if list(n.output) == [output.name]]
    (reshape,) = [n for n in core.graph.node if list(n.output) == [pad.input[0]]]
    assert (pad.op_type, reshape.op_type) == ("Pad", "Reshape")
    pad.input[0] = reshape.input[0]
    core.graph.node.remove(reshape)
    (pads,) = [t for t in core.graph.initializer if t.name == pad.input[1]]
    pads.CopyFrom(onnx.numpy_helper.from_array(np.array([0, 0, 0, 6], np.int64), pads.name))
    del output.type.tensor_type.shape.dim[1:3]
    onnx.save(core, str(old / "core.onnx"))
    manifest["output_shapes"] = [[1, 16]]
    manifest["n_padded_ch_outputs"] = [[0, 0, 0, 6]]
    (old / "manifest.json").write_text(json.dumps(manifest))

    with axr.Context() as context:
        new_model, old_model = context.load_model(str(pkg)), context.load_model(str(old))
        (o_new,), (o_old,) = new_model.outputs(), old_model.outputs()
        assert o_new.shape == (1, 1, 1, 16)
        assert o_new.padding == [(0, 0), (0, 0), (0, 0), (0, 6)]
        assert o_old.shape == (1, 16) and o_old.padding == [(0, 0), (0, 6)]
        (i,) = new_model.inputs()
        data = np.random.default_rng(5).integers(-128, 128, i.shape).astype(np.int8)
        connection = context.device_connect(None, 1)
        results = []
        for model, info in ((new_model, o_new), (old_model, o_old)):
            out = np.zeros(info.shape, np.int8)
            connection.load_model_instance(model).run([data], [out])
            # The API doc's depad and dequantise, reshaped to output_info's original_shape.
            depadded = out[tuple(slice(b, -e if e else None) for b, e in info.padding)]
            dequant = (depadded.astype(np.float32) - info.zero_point) * info.scale
            results.append(dequant.reshape(manifest["output_info"][0]["original_shape"]))
        assert results[0].shape == (1, 10)
        np.testing.assert_array_equal(results[0], results[1])
        assert np.ptp(results[0]) > 0


def test_compile_refuses_a_scalar_core_output_naming_it(tmp_path):
    """A core output without a batch dimension (a ReduceMean over every axis, keepdims=0) is
    NotImplemented naming the tensor; axcompile read past its empty shape (a segfault) when it
    padded the last dimension."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    require_axcompile()
    weights = np.random.default_rng(3).normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("ReduceMean", ["r"], ["mean"], keepdims=0)],
        "scalar_out", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(weights, "w")])
    model = tmp_path / "scalar.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    calib = tmp_path / "calib"
    calib.mkdir()
    import cv2
    for k in range(2):
        image = np.random.default_rng(k).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        cv2.imwrite(str(calib / f"{k}.png"), image)
    with pytest.raises(axr.NotImplemented, match="core output 'mean' is a scalar"):
        axr.compile(model, calib, tmp_path / "pkg", check=False, accuracy_target=0)
    assert not (tmp_path / "pkg").exists()
