"""Context, devices, configuration, connections and object lifetime (API doc "Objects")."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import axelera.runtime as axr
from conftest import reset_devices


def wait_ready(context, device, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not context.device_ready(device):
        assert time.monotonic() < deadline, f"{device.name} not ready after {timeout} s"
        time.sleep(0.02)


def test_context_as_context_manager_lists_devices_and_releases():
    with axr.Context() as context:
        devices = context.list_devices()
        assert isinstance(context, axr.Object)
    assert [d.name for d in devices] == ["metis-0:1:0"]
    assert context.released
    with pytest.raises(axr.InvalidArgument, match="released"):
        context.list_devices()


def test_release_is_idempotent_and_context_is_its_own_context():
    context = axr.Context()
    assert context.context is context
    context.release()
    context.release()
    assert context.released


def test_device_info_has_every_field_populated():
    with axr.Context() as context:
        (device,) = context.list_devices()
    assert isinstance(device, axr.DeviceInfo)
    assert device.name == "metis-0:1:0"
    assert device.subdevice_count == 4
    assert device.max_memory > 0
    assert device.in_use is False and device.in_use_count == 0 and device.in_use_by == ""
    assert isinstance(device.board_type, axr.BoardType)
    assert device.board_type == axr.BoardType.pcie
    assert device.firmware_version and device.flashed_firmware_version
    assert device.board_controller_firmware_version and device.board_controller_board_type
    assert isinstance(device.board_revision, int)


def test_several_devices_from_the_simulator_environment(monkeypatch):
    monkeypatch.setenv("AXSTREAM_SIM_DEVICES", "2")
    monkeypatch.setenv("AXSTREAM_SIM_BOARD_TYPE", "m2")
    reset_devices()
    with axr.Context() as context:
        devices = context.list_devices()
    assert [d.name for d in devices] == ["metis-0:1:0", "metis-0:2:0"]
    assert all(d.board_type == axr.BoardType.m2 for d in devices)


def test_devices_and_board_data_from_the_simulator_config_file(monkeypatch, tmp_path):
    config = tmp_path / "sim.conf"
    config.write_text("devices = 2\nfirmware_version = v1.3.0-lab\n"
                      "metis-0:2:0.board_type = sbc\nmetis-0:2:0.board_revision = 7\n")
    monkeypatch.setenv("AXSTREAM_SIM_CONFIG", str(config))
    reset_devices()
    with axr.Context() as context:
        first, second = context.list_devices()
    assert (first.board_type, first.firmware_version) == (axr.BoardType.pcie, "v1.3.0-lab")
    assert (second.board_type, second.board_revision) == (axr.BoardType.sbc, 7)
    assert second.firmware_version == "v1.3.0-lab"


def test_malformed_simulator_config_file_is_invalid_configuration(monkeypatch, tmp_path):
    config = tmp_path / "sim.conf"
    config.write_text("devices = 2\nsubdevices = 40\n")
    monkeypatch.setenv("AXSTREAM_SIM_CONFIG", str(config))
    reset_devices()
    with axr.Context() as context:
        with pytest.raises(axr.InvalidConfiguration, match=r"line 2: subdevices='40'"):
            context.list_devices()


def test_device_connect_without_any_device_is_connection_error(monkeypatch):
    monkeypatch.setenv("AXSTREAM_SIM_DEVICES", "0")
    reset_devices()
    with axr.Context() as context:
        assert context.list_devices() == []
        with pytest.raises(axr.ConnectionError, match="no Axelera device found"):
            context.device_connect()


def test_in_use_and_in_use_by_report_this_process():
    with axr.Context() as context:
        connection = context.device_connect(None, 2)
        (device,) = context.list_devices()
        assert device.in_use is True
        assert device.in_use_count == 2
        assert str(os.getpid()) in device.in_use_by
        connection.release()
        (device,) = context.list_devices()
        assert device.in_use is False and device.in_use_count == 0


def test_configure_device_doc_loop_on_two_devices(monkeypatch):
    monkeypatch.setenv("AXSTREAM_SIM_DEVICES", "2")
    reset_devices()
    with axr.Context() as context:
        device0, device1 = context.list_devices()
        # The doc's example, literally.
        res0 = context.configure_device(device0, clock_profile=1000)
        res1 = context.configure_device(device1, clock_profile=1000)
        while not res0 or not res1:
            time.sleep(0.05)
            res0 = context.device_ready(device0)
            res1 = context.device_ready(device1)
        assert context.read_device_configuration(device0)["clock_profile"] == "1000"
        assert context.read_device_configuration(device1)["clock_profile"] == "1000"


def test_configure_is_pending_then_ready_and_read_back_as_strings():
    delay = float(os.environ["AXSTREAM_SIM_CONFIG_DELAY_MS"]) / 1000  # conftest.py's
    with axr.Context() as context:
        (device,) = context.list_devices()
        asked = time.monotonic()
        applied = context.configure_device(device, clock_profile_core_1=400,
                                           mvm_utilisation_core_2=50)
        assert applied is False
        # Pending until the delay has passed since the call: a test descheduled for longer (a
        # loaded machine; CI's interleavings) rightly finds the device ready already.
        ready = context.device_ready(device)
        assert ready is False or time.monotonic() - asked >= delay, (
            f"ready {time.monotonic() - asked:.3f} s after the change, before its {delay} s delay")
        wait_ready(context, device)
        config = context.read_device_configuration(device)
    assert isinstance(config, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in config.items())
    assert config["clock_profile_core_1"] == "400"
    assert config["mvm_utilisation_core_2"] == "50"
    assert config["clock_profile_core_0"] == "800"
    assert config["mvm_utilisation_core_0"] == "100"


def test_default_configuration_has_every_documented_key():
    with axr.Context() as context:
        (device,) = context.list_devices()
        config = context.read_device_configuration(device)
    expected = {"clock_profile"} | {f"clock_profile_core_{i}" for i in range(4)} | {
        f"mvm_utilisation_core_{i}" for i in range(4)}
    assert expected <= set(config)
    assert config["clock_profile"] == "800"


def test_device_name_string_is_accepted_as_device():
    with axr.Context() as context:
        assert isinstance(context.read_device_configuration("metis-0:1:0"), dict)
        assert isinstance(context.device_ready("metis-0:1:0"), bool)


def test_configure_unknown_key_is_invalid_configuration():
    with axr.Context() as context:
        (device,) = context.list_devices()
        with pytest.raises(axr.InvalidConfiguration, match="no_such_key"):
            context.configure_device(device, no_such_key=1)


@pytest.mark.parametrize("key,value", [("clock_profile", 5000), ("clock_profile", -1),
                                       ("mvm_utilisation_core_0", 101),
                                       ("clock_profile_core_3", "fast")])
def test_configure_out_of_range_value_is_invalid_argument(key, value):
    with axr.Context() as context:
        (device,) = context.list_devices()
        with pytest.raises(axr.InvalidArgument, match=key):
            context.configure_device(device, **{key: value})


def test_configure_value_of_unsupported_type_is_invalid_argument():
    with axr.Context() as context:
        (device,) = context.list_devices()
        with pytest.raises(axr.InvalidArgument, match="clock_profile"):
            context.configure_device(device, clock_profile=[800])


def test_configure_value_error_names_the_value_as_given():
    # clock_profile=True goes as 1 (bool values are flags, "1"/"0"), out of range as before; the
    # message said clock_profile='1', a value the user never wrote.
    with axr.Context() as context:
        (device,) = context.list_devices()
        with pytest.raises(axr.InvalidArgument) as raised:
            context.configure_device(device, clock_profile=True)
        message = str(raised.value)
        assert "clock_profile=True (bool, taken as 1) is invalid" in message, message
        assert "'1'" not in message, message
        with pytest.raises(axr.InvalidArgument, match=r"clock_profile=5000\.0 \(float, taken as "
                                                      r"5000\) is invalid"):
            context.configure_device(device, clock_profile=5000.0)
        # The accept/refuse decision is unchanged: device_firmware=True is a flag, 1.
        context.configure_device(device, device_firmware=True)


def test_load_model_of_the_root_names_its_model_json_once():
    # The root "/" as a package directory: the message named "//model.json".
    with axr.Context() as context:
        with pytest.raises(axr.InvalidArgument) as raised:
            context.load_model("/")
    message = str(raised.value)
    assert "/model.json" in message and "//" not in message, message


def test_unknown_device_is_invalid_argument_naming_it():
    with axr.Context() as context:
        with pytest.raises(axr.InvalidArgument, match="metis-9:9:9"):
            context.read_device_configuration("metis-9:9:9")
        with pytest.raises(axr.InvalidArgument, match="DeviceInfo"):
            context.device_ready(4.2)


def test_four_single_core_connections_then_fifth_is_device_in_use():
    with axr.Context() as context:
        connections = [context.device_connect(None, 1) for _ in range(4)]
        assert all(c.num_sub_devices == 1 for c in connections)
        assert all(c.device_name == "metis-0:1:0" for c in connections)
        with pytest.raises(axr.DeviceInUse):
            context.device_connect(None, 1)
        connections[2].release()
        context.device_connect(None, 1)  # a released connection frees its core


def test_device_connect_takes_a_device_info_and_returns_a_connection():
    with axr.Context() as context:
        (device,) = context.list_devices()
        connection = context.device_connect(device, num_sub_devices=4)
        assert isinstance(connection, axr.Connection)
        assert connection.context is context
        assert connection.num_sub_devices == 4
        with pytest.raises(axr.DeviceInUse):
            context.device_connect(device)


def test_device_connect_more_cores_than_the_device_has_is_an_error():
    with axr.Context() as context:
        with pytest.raises(axr.Error):
            context.device_connect(None, 5)
        with pytest.raises(axr.InvalidArgument):
            context.device_connect(None, 0)


def test_device_connect_unknown_kwarg_is_rejected():
    with axr.Context() as context:
        with pytest.raises(axr.Error, match="bogus"):
            context.device_connect(None, 1, bogus=1)


def test_device_connect_accepts_axeleras_device_firmware_check_option():
    with axr.Context() as context:
        for value in (True, False, 0, 1):
            context.device_connect(None, 1, device_firmware_check=value).release()
        with pytest.raises(axr.InvalidArgument, match="device_firmware_check='7'"):
            context.device_connect(None, 1, device_firmware_check=7)


def test_device_argument_may_be_an_index_into_list_devices(monkeypatch):
    # Axelera's reference: device_connect(device=0) connects to the first device; programs for
    # their runtime select devices by index.
    monkeypatch.setenv("AXSTREAM_SIM_DEVICES", "2")
    reset_devices()
    with axr.Context() as context:
        assert context.device_connect(device=1, num_sub_devices=4).device_name == "metis-0:2:0"
        assert context.device_connect(0, 1).device_name == "metis-0:1:0"
        context.configure_device(1, clock_profile=600)
        assert context.read_device_configuration(1)["clock_profile"] == "600"
        assert context.read_device_configuration(0)["clock_profile"] == "800"
        assert isinstance(context.device_ready(1), bool)


@pytest.mark.parametrize("index", [1, -1, 10**30])
def test_device_index_out_of_range_is_invalid_argument_naming_the_devices(index):
    with axr.Context() as context:
        with pytest.raises(axr.InvalidArgument,
                           match=rf"device index {index} is out of range: list_devices\(\) has 1 "
                                 r"device\(s\) \(metis-0:1:0\)"):
            context.device_connect(device=index)


def test_configure_accepts_voyagers_ddr_size_and_device_firmware():
    # Voyager's device manager configures ddr_size (bytes) and device_firmware='1' with the
    # per-core clocks; ddr_size reads back, bounded by the board's memory.
    with axr.Context() as context:
        (device,) = context.list_devices()
        assert context.read_device_configuration(device)["ddr_size"] == str(device.max_memory)
        context.configure_device(device, ddr_size=0x80000000, device_firmware="1",
                                 clock_profile_core_0=600, mvm_utilisation_core_0=50)
        wait_ready(context, device)
        config = context.read_device_configuration(device)
        assert config["ddr_size"] == "2147483648"
        assert config["clock_profile_core_0"] == "600"
        assert "device_firmware" not in config  # an action (reload firmware), not a setting
        with pytest.raises(axr.InvalidArgument, match=f"ddr_size='{device.max_memory + 1}'"):
            context.configure_device(device, ddr_size=device.max_memory + 1)
        with pytest.raises(axr.InvalidArgument, match="device_firmware='2'"):
            context.configure_device(device, device_firmware=2)


HOLD_DEVICE = textwrap.dedent("""
    import sys, axelera.runtime as axr
    context = axr.Context()
    connection = context.device_connect(None, 4)
    print("held", flush=True)
    sys.stdin.readline()
""")


def test_second_process_gets_device_in_use_naming_the_holder():
    holder = subprocess.Popen([sys.executable, "-c", HOLD_DEVICE], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert holder.stdout.readline().strip() == "held"
        with axr.Context() as context:
            with pytest.raises(axr.DeviceInUse, match=str(holder.pid)):
                context.device_connect(None, 1)
            (device,) = context.list_devices()
            assert device.in_use and str(holder.pid) in device.in_use_by
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # The lock died with the process.
    with axr.Context() as context:
        context.device_connect(None, 4).release()


OTHER_USER_USES_THE_DEVICE = textwrap.dedent("""
    import axelera.runtime as axr
    with axr.Context() as context:
        try:
            context.device_connect(None, 4)
        except axr.DeviceInUse as error:
            print("DeviceInUse:", error)
        held = context.device_connect(None, 2)
        context.configure_device("metis-0:1:0", clock_profile=300)
        print("ok")
    """)


def test_a_runtime_directory_shared_by_users_serves_each_after_another(monkeypatch):
    """Lock and configuration files are made 0666 less the umask: in a group-writable directory
    shared by several users (umask 002), one user's files do not lock the others out."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        pytest.skip("needs root and setpriv to run a second user")
    shared = tempfile.mkdtemp(prefix="ax-shared-runtime-")  # not /tmp/axstream-*: per-user only
    os.chmod(shared, 0o777)
    monkeypatch.setenv("AXSTREAM_RUNTIME_DIR", shared)
    reset_devices()
    old_umask = os.umask(0o000)
    try:
        with axr.Context() as context:
            context.configure_device("metis-0:1:0", clock_profile=600)
            held = context.device_connect(None, 2)  # cores 0 and 1, files made by root
            other = subprocess.run(
                [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                 "-c", OTHER_USER_USES_THE_DEVICE],
                capture_output=True, text=True, timeout=60,
                env=dict(os.environ, HOME=shared, PYTHONDONTWRITEBYTECODE="1"))
            assert other.returncode == 0, other.stderr
            lines = other.stdout.splitlines()
            assert lines[0].startswith("DeviceInUse:") and f"root:{os.getpid()}" in lines[0]
            assert lines[1] == "ok"
            held.release()
            context.device_connect(None, 4).release()  # the other user's files, ours again
            assert context.read_device_configuration("metis-0:1:0")["clock_profile"] == "300"
    finally:
        os.umask(old_umask)
        shutil.rmtree(shared, ignore_errors=True)


def test_second_process_can_use_the_cores_this_process_left_free():
    with axr.Context() as context:
        held = context.device_connect(None, 3)
        script = ("import axelera.runtime as axr\n"
                  "c = axr.Context(); first = c.device_connect(None, 1)\n"
                  "try:\n    c.device_connect(None, 1)\nexcept axr.DeviceInUse:\n"
                  "    print('in use')\n")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=60, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "in use"
    assert held.released


def test_releasing_the_context_releases_its_children():
    context = axr.Context()
    connection = context.device_connect(None, 1)
    context.release()
    assert connection.released
    with pytest.raises(axr.InvalidArgument, match="released"):
        connection.load_model_instance(None)
    with axr.Context() as other:
        other.device_connect(None, 4)  # every core is free again


def test_repr_names_the_object():
    with axr.Context() as context:
        connection = context.device_connect(None, 1)
        assert "metis-0:1:0" in repr(connection)
    assert "released" in repr(connection)
