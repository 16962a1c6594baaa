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
