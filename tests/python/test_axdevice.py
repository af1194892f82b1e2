"""The axdevice CLI: list (every DeviceInfo field), config (waits until ready), read; clear
errors and exit codes."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

AXDEVICE = pathlib.Path(__file__).resolve().parents[2] / "tools" / "axdevice"


def axdevice(*args, env_extra=None):
    env = os.environ.copy()
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(AXDEVICE), *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_list_prints_every_device_info_field():
    result = axdevice("list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("0: metis-0:1:0")
    for field in ("subdevice_count: 4", "max_memory:", "in_use: False", "in_use_by:",
                  "board_type: pcie", "firmware_version:", "board_revision:",
                  "flashed_firmware_version:", "board_controller_firmware_version:",
                  "board_controller_board_type:"):
        assert field in out, field


def test_list_json_with_two_devices():
    result = axdevice("--json", "list", env_extra={"AXSTREAM_SIM_DEVICES": "2"})
    assert result.returncode == 0, result.stderr
    devices = json.loads(result.stdout)
    assert [d["name"] for d in devices] == ["metis-0:1:0", "metis-0:2:0"]
    assert devices[0]["subdevice_count"] == 4 and devices[0]["board_type"] == "pcie"


def test_a_reader_closing_the_pipe_early_gives_no_traceback():
    # As `axdevice read 0 | head -1`, made certain: the pipe's reader is gone before the write.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, str(AXDEVICE), "read", "0"], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr


def test_json_flag_is_taken_after_the_command_too():
    for args in (("list", "--json"), ("--json", "list"), ("read", "0", "--json")):
        result = axdevice(*args)
        assert result.returncode == 0, (args, result.stderr)
        json.loads(result.stdout)
    assert not axdevice("list").stdout.lstrip().startswith(("[", "{"))


def test_config_waits_until_ready_and_prints_the_configuration():
    result = axdevice("config", "metis-0:1:0", "clock_profile=600", "mvm_utilisation_core_1=40")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "clock_profile=600" in lines
    assert "mvm_utilisation_core_1=40" in lines
    # The setting persists for other processes (same AXSTREAM_RUNTIME_DIR).
    read = axdevice("read", "metis-0:1:0")
    assert read.returncode == 0, read.stderr
    assert "clock_profile=600" in read.stdout.splitlines()


def test_read_by_index_prints_every_key():
    result = axdevice("--json", "read", "0")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["clock_profile"] == "800"
    assert {f"mvm_utilisation_core_{i}" for i in range(4)} <= set(config)


def test_unknown_key_exits_1_with_invalid_configuration():
    result = axdevice("config", "metis-0:1:0", "turbo=1")
    assert result.returncode == 1
    assert "InvalidConfiguration" in result.stderr and "turbo" in result.stderr


def test_out_of_range_value_exits_1_with_invalid_argument():
    result = axdevice("config", "metis-0:1:0", "clock_profile=99999")
    assert result.returncode == 1
    assert "InvalidArgument" in result.stderr and "clock_profile" in result.stderr


def test_unknown_device_exits_2_naming_the_known_ones():
    result = axdevice("read", "metis-7:7:7")
    assert result.returncode == 2
    assert "metis-7:7:7" in result.stderr and "metis-0:1:0" in result.stderr


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["config", "metis-0:1:0"],
                                  ["config", "metis-0:1:0", "novalue"]])
def test_bad_command_lines_exit_2(args):
    result = axdevice(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "soon"])
def test_timeout_must_be_finite_seconds_above_zero(timeout):
    # nan made the wait endless; 0 or less gave up before the device could be ready.
    result = axdevice("config", "0", "clock_profile=800", "--timeout", timeout)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"argument --timeout: expected seconds > 0, got '{timeout}'" in result.stderr


def test_ctrl_c_while_waiting_for_the_device_exits_130_without_a_traceback():
    env = dict(os.environ, AXSTREAM_SIM_CONFIG_DELAY_MS="5000")
    process = subprocess.Popen([sys.executable, str(AXDEVICE), "config", "0", "clock_profile=600"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               # SIGINT's default, as for a terminal's job (not an ignored one
                               # inherited from the harness: Python would then not raise).
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Once the setting is stored, axdevice is in its wait for the device to be ready.
    stored = pathlib.Path(os.environ["AXSTREAM_RUNTIME_DIR"]) / "metis-0:1:0.config"
    deadline = time.monotonic() + 60
    while not stored.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, (stdout, stderr)
    assert stderr == "axdevice: interrupted by SIGINT (Ctrl-C)\n" and not stdout
