"""Every name of the API doc (axelera-runtime-api.md) exists in axelera.runtime with the
documented kind: classes, methods, properties, enum values, exceptions."""

import dataclasses
import enum
import inspect
import os
import pathlib
import re

import numpy as np
import pytest

import axelera.runtime as axr

# The doc's names, by section (kept in the test so it runs without the doc at hand).
DOC_CLASSES = {
    "Object": ["context", "release"],
    "Context": ["configure_device", "device_connect", "device_ready", "list_devices",
                "load_model", "read_device_configuration", "release"],
    "Connection": ["load_model_instance"],
    "Model": ["properties", "inputs", "outputs"],
    "ModelInstance": ["run"],
}
DOC_BOARD_TYPES = {"alpha_pcie": 0, "alpha_m2": 1, "pcie": 2, "m2": 3, "devboard": 4, "sbc": 5,
                   "unknown": 6}
DOC_DEVICE_INFO_FIELDS = ["name", "subdevice_count", "max_memory", "in_use", "in_use_by",
                          "board_type", "firmware_version", "board_revision",
                          "flashed_firmware_version", "board_controller_firmware_version",
                          "board_controller_board_type"]
DOC_TENSOR_INFO_FIELDS = ["shape", "dtype", "name", "padding", "scale", "zero_point"]
DOC_TENSOR_INFO_PROPERTIES = ["size", "unpadded_shape"]
DOC_EXCEPTIONS = ["ConnectionError", "DeviceInUse", "IncompatibleDevice", "InternalError",
                  "InvalidArgument", "InvalidConfiguration", "NotImplemented", "Pending",
                  "UnknownError"]


def doc_path():
    candidates = [os.environ.get("AXSTREAM_API_DOC", "")]
    root = pathlib.Path(__file__).resolve().parents[2]
    candidates += [root.parent / "shared" / "axelera-runtime-api.md",
                   root / "docs" / "axelera-runtime-api.md"]
    for candidate in candidates:
        if candidate and pathlib.Path(candidate).is_file():
            return pathlib.Path(candidate)
    return None


def test_doc_objects_are_classes_with_documented_members():
    for class_name, members in DOC_CLASSES.items():
        cls = getattr(axr, class_name)
        assert inspect.isclass(cls), class_name
        for member in members:
            assert hasattr(cls, member), f"{class_name}.{member}"


def test_objects_derive_from_object():
    for name in ("Context", "Connection", "Model", "ModelInstance"):
        assert issubclass(getattr(axr, name), axr.Object)


def test_context_and_properties_are_properties_not_methods():
    assert isinstance(inspect.getattr_static(axr.Object, "context"), property)
    assert isinstance(inspect.getattr_static(axr.Model, "properties"), property)


def test_board_type_is_an_enum_with_the_documented_values():
    assert issubclass(axr.BoardType, enum.Enum)
    assert {m.name: m.value for m in axr.BoardType} == DOC_BOARD_TYPES


def test_device_info_has_the_documented_fields():
    names = [f.name for f in dataclasses.fields(axr.DeviceInfo)]
    assert names[:len(DOC_DEVICE_INFO_FIELDS)] == DOC_DEVICE_INFO_FIELDS


def test_tensor_info_has_the_documented_fields_and_defaults():
    names = [f.name for f in dataclasses.fields(axr.TensorInfo)]
    assert names == DOC_TENSOR_INFO_FIELDS
    info = axr.TensorInfo((1, 2, 3, 4))
    assert info.dtype == np.int8 and info.name == "" and info.scale == 1.0
    assert info.zero_point == 0
    for prop in DOC_TENSOR_INFO_PROPERTIES:
        assert isinstance(inspect.getattr_static(axr.TensorInfo, prop), property)


def test_exceptions_are_exception_classes_with_a_common_base():
    for name in DOC_EXCEPTIONS:
        cls = getattr(axr, name)
        assert issubclass(cls, Exception), name
        assert issubclass(cls, axr.Error), name
        assert cls.__name__ == name
        assert cls.__module__ == "axelera.runtime"


def test_exceptions_are_also_their_natural_builtins():
    assert issubclass(axr.InvalidArgument, ValueError)
    assert issubclass(axr.InvalidConfiguration, ValueError)
    assert issubclass(axr.NotImplemented, NotImplementedError)
    assert issubclass(axr.ConnectionError, ConnectionError)
    assert issubclass(axr.DeviceInUse, RuntimeError)


def test_every_runtime_exception_is_caught_by_except_runtime_error():
    # User programs guard runtime calls with `except RuntimeError`; a bad argument must not
    # slip past them as a bare ValueError.
    for name in DOC_EXCEPTIONS:
        assert issubclass(getattr(axr, name), RuntimeError), name
    with axr.Context() as ctx:
        try:
            ctx.load_model("/nonexistent/model.json")
        except RuntimeError as error:
            assert isinstance(error, axr.InvalidArgument)
            assert "/nonexistent/model.json" in str(error)
        else:
            raise AssertionError("load_model of a missing path did not raise")


def test_all_lists_every_documented_name():
    documented = set(DOC_CLASSES) | {"BoardType", "DeviceInfo", "TensorInfo"} | set(DOC_EXCEPTIONS)
    assert documented <= set(axr.__all__)
    for name in axr.__all__:
        assert getattr(axr, name).__doc__, f"{name} has no docstring"


def test_every_public_method_has_a_docstring():
    for class_name, members in DOC_CLASSES.items():
        for member in members:
            assert getattr(getattr(axr, class_name), member).__doc__, f"{class_name}.{member}"


def test_every_name_in_the_doc_file_exists():
    path = doc_path()
    if path is None:
        pytest.skip("axelera-runtime-api.md not found (set AXSTREAM_API_DOC)")
    text = path.read_text()
    current = None
    checked = 0
    for line in text.splitlines():
        match = re.match(r"^### \*(class|exception)\* axelera\.runtime\.(\w+)", line)
        if match:
            current = match.group(2)
            assert hasattr(axr, current), current
            checked += 1
            continue
        match = re.match(r"^#### (\w+)", line)
        if match and current:
            assert hasattr(getattr(axr, current), match.group(1)), f"{current}.{match.group(1)}"
            checked += 1
            continue
        match = re.match(r"^- `(\w+): ", line)
        if match and current in ("DeviceInfo", "TensorInfo"):
            field = match.group(1)
            assert field in {f.name for f in dataclasses.fields(getattr(axr, current))} or \
                isinstance(inspect.getattr_static(getattr(axr, current), field), property), \
                f"{current}.{field}"
            checked += 1
        match = re.match(r"^\s+(\w+) = (\d+)$", line)
        if match and current == "BoardType":
            assert axr.BoardType[match.group(1)].value == int(match.group(2))
            checked += 1
    assert checked >= 50


def test_programs_importing_the_objects_module_get_the_same_classes():
    # Programs written for Axelera's runtime do `from axelera.runtime import objects as axr`.
    from axelera.runtime import objects

    for name in objects.__all__:
        assert getattr(objects, name) is getattr(axr, name), name
    assert {"Context", "Connection", "Model", "ModelInstance", "TensorInfo"} <= set(objects.__all__)


def test_version_is_a_dotted_string():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", axr.__version__), axr.__version__


def test_signatures_show_the_documented_parameters_and_defaults():
    signature = inspect.signature(axr.Context.device_connect)
    assert list(signature.parameters) == ["self", "device", "num_sub_devices", "kwargs"]
    assert signature.parameters["device"].default is None
    assert signature.parameters["num_sub_devices"].default == 1
    assert str(inspect.signature(axr.Context.configure_device)) == "(self, device, **kwargs)"
    assert str(inspect.signature(axr.Connection.load_model_instance)) == "(self, model, **kwargs)"
    assert str(inspect.signature(axr.ModelInstance.run)) == "(self, inputs, outputs)"
    assert str(inspect.signature(axr.Context.load_model)) == "(self, path)"
    assert str(inspect.signature(axr.Context)) == "()"
    for name in ("device_ready", "read_device_configuration"):
        assert str(inspect.signature(getattr(axr.Context, name))) == "(self, device)"
    for cls, name in ((axr.Object, "release"), (axr.Context, "list_devices"),
                      (axr.Model, "inputs"), (axr.Model, "outputs")):
        assert str(inspect.signature(getattr(cls, name))) == "(self)"
    with axr.Context() as context:
        assert str(inspect.signature(context.device_connect)) == \
            "(device=None, num_sub_devices=1, **kwargs)"
