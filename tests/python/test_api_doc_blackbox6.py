"""Sixth black-box audit of axelera.runtime against the API document
(/work/shared/axelera-runtime-api.md), read sentence by sentence before the implementation.

Angle of this audit: what the five earlier files do not assert. They cover the names,
signatures, defaults, return types, enum members, release and ownership rules, the doc's
examples and the misuse of every call by type (None, lists, floats, bytes, huge ints). Left
over were the *values* a program hands over as text, and the DeviceInfo a program makes itself:

  D1 "DeviceInfo is also used to indicate which device to configure, read configuration, and
     select desired device." with the fields as the doc lists them, including its own values
     for the unpopulated ones ("... will always be 0", also for `in_use_by: str`)
     -> test_device_info_made_from_the_docs_field_list_selects_its_device
     (docs/python-api.md: a hand-made DeviceInfo is read by `name` only)
  D2 a device name that is a str but no text the runtime can hold (a lone surrogate, as
     os.fsdecode makes of a non-UTF-8 name; a NUL) -> the documented InvalidArgument naming it
     whole, never pybind11's bare RuntimeError or a message cut at the NUL
     -> test_device_names_utf8_cannot_hold_are_invalid_argument_naming_them,
        test_a_nul_in_a_device_name_is_refused_and_shown_whole
  K1 configure_device(device, **kwargs) / device_connect(**kwargs) /
     load_model_instance(model, **kwargs): kwarg keys and str values of that kind get the
     call's own documented error (InvalidConfiguration for an unknown configure_device key as
     for any other, InvalidArgument for a value) and nothing is applied
     -> test_kwarg_keys_and_values_that_are_no_text_get_the_calls_own_error
  K2 the property table's values are integers in MHz / percent; the doc does not say whether
     a float that is an integer (1000.0, numpy.float64(50): what arithmetic and config arrays
     give) is one. docs/python-api.md counts integral floats as ints for TensorInfo, so the
     kwargs do the same, and a fraction stays an error
     -> test_integral_float_kwarg_values_count_as_integers

Every test here failed on the code before this audit (the fixes are in python/src/module.cc).
"""

import dataclasses
import os

import numpy as np
import pytest

NOT_TEXT = ("\udcff", os.fsdecode(b"metis-0:1:0\xff"))  # lone surrogates: no UTF-8 for them


def model_path(package_dir):
    return package_dir / "model.json"


def test_device_info_made_from_the_docs_field_list_selects_its_device(axr):
    with axr.Context() as context:
        (listed,) = context.list_devices()
        # The doc's eleven fields in its order, with its values where it says "not populated
        # and will always be 0" (in_use_by included, although typed str).
        made = axr.DeviceInfo(listed.name, 4, 0, 0, 0, axr.BoardType.pcie, "v1.1.0-rc5-2-g1234567",
                              1, "v1.1.0", "v1.0", "metis")
        assert context.read_device_configuration(made)["clock_profile"] == "800"
        assert context.configure_device(made, clock_profile=800) is True
        assert context.device_ready(made) is True
        connection = context.device_connect(made, 2)
        assert context.list_devices()[0].in_use_count == 2
        connection.release()
        # Only the name selects: the other fields, whatever they hold, are not the device's.
        stale = dataclasses.replace(listed, subdevice_count=1, max_memory=-1, in_use_by=None,
                                    board_type="pcie", board_revision=2**70)
        with context.device_connect(stale, 4) as connection:
            assert connection.num_sub_devices == 4


@pytest.mark.parametrize("name", NOT_TEXT, ids=["surrogate", "fsdecoded"])
def test_device_names_utf8_cannot_hold_are_invalid_argument_naming_them(axr, name):
    with axr.Context() as context:
        calls = (
            lambda device: context.device_ready(device),
            lambda device: context.read_device_configuration(device),
            lambda device: context.configure_device(device, clock_profile=1000),
            lambda device: context.device_connect(device),
        )
        for call in calls:
            for device in (name, axr.DeviceInfo(name)):
                with pytest.raises(axr.InvalidArgument) as caught:
                    call(device)
                assert "\\udcff" in str(caught.value)
        assert context.read_device_configuration(0)["clock_profile"] == "800"
        assert context.list_devices()[0].in_use is False


def test_a_nul_in_a_device_name_is_refused_and_shown_whole(axr):
    with axr.Context() as context:
        name = context.list_devices()[0].name + "\x00spare"
        for call in (context.device_ready, context.read_device_configuration,
                     context.device_connect):
            with pytest.raises(axr.InvalidArgument) as caught:
                call(name)
            # The runtime's messages are C strings: the NUL must not end this one.
            assert "\\x00spare" in str(caught.value)
            assert "devices: metis-0:1:0" in str(caught.value)


def test_kwarg_keys_and_values_that_are_no_text_get_the_calls_own_error(axr, package):
    with axr.Context() as context:
        (device,) = context.list_devices()
        for key in ("\udcff", "clock_profile\x00"):
            with pytest.raises(axr.InvalidConfiguration) as caught:
                context.configure_device(device, **{key: 1000})
            assert repr(key)[1:-1] in str(caught.value)
        for value in ("\udcff", "1000\x00", "10\x0000"):
            with pytest.raises(axr.InvalidArgument) as caught:
                context.configure_device(device, clock_profile_core_1=value)
            assert f"clock_profile_core_1='{repr(value)[1:-1]}'" in str(caught.value)
        assert context.device_ready(device) is True
        assert context.read_device_configuration(device)["clock_profile_core_1"] == "800"

        with pytest.raises(axr.InvalidArgument, match="udcff"):
            context.device_connect(device, **{"\udcff": 1})
        with pytest.raises(axr.InvalidArgument, match="device_firmware_check"):
            context.device_connect(device, device_firmware_check="1\x00")
        assert context.list_devices()[0].in_use is False

        model = context.load_model(model_path(package("resnet_tiny")))
        connection = context.device_connect(device)
        with pytest.raises(axr.InvalidArgument, match="udcff"):
            connection.load_model_instance(model, **{"\udcff": 1})
        for value in ("\udcff", "1\x002"):
            with pytest.raises(axr.InvalidArgument) as caught:
                connection.load_model_instance(model, aipu_cores=value)
            assert f"aipu_cores='{repr(value)[1:-1]}'" in str(caught.value)


def test_integral_float_kwarg_values_count_as_integers(axr, package):
    with axr.Context() as context:
        (device,) = context.list_devices()
        assert context.configure_device(device, clock_profile=1000.0,
                                        mvm_utilisation_core_2=np.float64(50)) is False
        configuration = context.read_device_configuration(device)
        assert configuration["clock_profile"] == "1000"
        assert configuration["clock_profile_core_3"] == "1000"
        assert configuration["mvm_utilisation_core_2"] == "50"
        for value in (1000.5, float("inf"), float("nan"), 1e30):
            with pytest.raises(axr.InvalidArgument, match="clock_profile"):
                context.configure_device(device, clock_profile=value)
        assert context.read_device_configuration(device)["clock_profile"] == "1000"

        model = context.load_model(model_path(package("resnet_tiny")))
        connection = context.device_connect(device)
        instance = connection.load_model_instance(model, aipu_cores=1.0, num_sub_devices=1.0,
                                                  double_buffer=0.0)
        inputs = [np.zeros(info.shape, info.dtype) for info in model.inputs()]
        outputs = [np.zeros(info.shape, info.dtype) for info in model.outputs()]
        assert instance.run(inputs, outputs) is None
        with pytest.raises(axr.InvalidArgument, match="aipu_cores"):
            connection.load_model_instance(model, aipu_cores=0.5)
