"""Bad arguments that parse but name what the device or the rig cannot take: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.sim.pty_port import PtyPort
from vasopilot.cli import main
from vasopilot.core.errors import ConfigError


@pytest.mark.parametrize("argv", [
    ["emulate", "new-era", "--baud", "9601"],
    ["emulate", "harvard", "--baud", "300"],
    ["emulate", "balance", "--baud", "9601"],
], ids=" ".join)
def test_emulate_refuses_a_baud_the_device_does_not_speak(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vasopilot: --baud {argv[-1]} is not a rate the {argv[1]} speaks")
    assert err.count("\n") == 1


class _Mute:
    def on_bytes(self, data: bytes) -> bytes:
        return b""

    def poll(self) -> bytes:
        return b""


def test_a_pty_link_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(ConfigError, match=r"cannot link .*file/pump to the emulator's pty"):
        PtyPort(_Mute(), link=not_a_folder / "pump")
    assert not_a_folder.read_text() == ""


@pytest.mark.parametrize(("verb", "said"), [
    (["set-dose", "5000"], "set-dose: dose_mcg_min: Input should be less than or equal to 1000"),
    (["set-target", "1000"], "set-target: target_map_mmhg: Input should be less than or equal"),
    (["acknowledge", ""], "acknowledge: code: String should have at least 1 character"),
])
def test_cmd_refuses_what_the_rig_would_refuse_before_connecting(
        verb: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    # port 9 (discard) on loopback: a connection attempt would be an error of its own
    assert main(["cmd", "--broker", "mqtt://u@127.0.0.1:9", "--rig", "r", *verb]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vasopilot: {said}") and err.count("\n") == 1, err


def test_cmd_refuses_a_timeout_longer_than_a_command_lives(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cmd", "--broker", "mqtt://u@127.0.0.1:9", "--rig", "r", "--timeout", "61",
                 "stop"]) == 2
    assert capsys.readouterr().err == "vasopilot: --timeout must be at most 60 s, got 61\n"



@pytest.mark.parametrize("dry_run", [["--dry-run"], []], ids=["dry-run", "flash"])
def test_firmware_flash_to_no_port_is_refused(dry_run: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "flash", "--port", " ", *dry_run]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("vasopilot: --port must name") and captured.err.count("\n") == 1
