"""`vasopilot run` tells the truth: the pump's host-loss contract at start and at the end, a
journaled end (Ctrl-C or --minutes) with the dose, and one process per serial port."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pump_fixtures import MECHANICS, SYRINGE

from drivers.pump.serial_link import SerialLink
from drivers.sim.emulated import start_emulated_pump
from drivers.sim.syringe_pump import SimSyringePump
from vasopilot.cli import main
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import PumpConnectionError
from vasopilot.core.events import PumpContract, RunEnded
from vasopilot.core.types import HostLossBehaviour, RunEndReason, host_loss_text
from vasopilot.journal import JournalReader, summary_line

CONFIG = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    """The sim profile, copied with its library and catalogue, journaling into tmp_path."""
    for name in ("drug-library.toml", "syringes.toml"):
        shutil.copy(CONFIG / name, tmp_path / name)
    text = (CONFIG / "sim.toml").read_text().replace(
        'journal = "../out/sim-journal.sqlite"', 'journal = "journal.sqlite"')
    path = tmp_path / "sim.toml"
    path.write_text(text)
    return path


class InterruptedClock(VirtualClock):
    """A virtual clock whose operator presses Ctrl-C at ``at_s``."""

    def __init__(self, at_s: float) -> None:
        super().__init__()
        self.at_s = at_s

    async def sleep_async(self, seconds: float) -> None:
        if self.now_s() >= self.at_s:
            raise KeyboardInterrupt
        await super().sleep_async(seconds)


def _run(profile: Path, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch,
         *extra: str) -> int:
    monkeypatch.setattr("vasopilot.core.clock.MonotonicClock", lambda: clock)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    return main(["run", "--rig", str(profile), "--start-dose", "8", *extra])


def _ended(profile: Path) -> list[RunEnded]:
    with JournalReader(profile.parent / "journal.sqlite") as reader:
        return [e for e in reader.iter_events() if isinstance(e, RunEnded)]


def test_a_timed_end_is_journaled_with_the_dose_and_the_contract_is_said(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(profile, VirtualClock(), monkeypatch, "--minutes", "3", "--mode", "manual") == 0
    out, err = capsys.readouterr()
    assert "vasopilot run: if this process stops, the pump keeps its last rate" in err
    assert "time is up at 8.00 mcg/min" in out and "now the pump keeps its last rate" in out
    [ended] = _ended(profile)
    assert ended.reason is RunEndReason.TIMED
    assert ended.running and ended.dose_mcg_min == pytest.approx(8.0)
    # 8 mcg/min at 80 mcg/mL, rounded down to the pump's step
    assert ended.rate_ml_h == pytest.approx(6.0, rel=1e-4)
    assert ended.t_s >= 180.0
    assert "end (timed): infusing at 8.00 mcg/min" in summary_line(ended)


def test_ctrl_c_is_journaled_as_the_operators_end(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(profile, InterruptedClock(at_s=30.0), monkeypatch, "--mode", "manual") == 0
    assert "stopped by the operator at 8.00 mcg/min" in capsys.readouterr().out
    [ended] = _ended(profile)
    assert ended.reason is RunEndReason.OPERATOR and ended.dose_mcg_min == pytest.approx(8.0)


def test_a_crash_journals_no_end(profile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Crash(VirtualClock):
        async def sleep_async(self, seconds: float) -> None:
            raise RuntimeError("loop died")

    with pytest.raises(RuntimeError, match="loop died"):
        _run(profile, Crash(), monkeypatch, "--mode", "manual")
    assert _ended(profile) == []  # S13: the next start resumes it as a restart


@pytest.mark.parametrize(("behaviour", "after_s", "text"), [
    (HostLossBehaviour.KEEPS_RATE, None, "the pump keeps its last rate"),
    (HostLossBehaviour.STOPS_AND_ALARMS, 10.0,
     "the pump stops and alarms 10 s after the host goes quiet"),
    (HostLossBehaviour.STOPS_SILENTLY, None, "the pump stops at once"),
])
def test_the_contract_in_words(behaviour: HostLossBehaviour, after_s: float | None,
                               text: str) -> None:
    assert host_loss_text(behaviour, after_s).startswith(text)


def test_a_safe_mode_ne1000_states_its_timeout_in_the_contract(clock: VirtualClock) -> None:
    rig = start_emulated_pump("new-era", clock, SYRINGE, MECHANICS, safe_mode_timeout_s=10,
                              timeout_s=0.2)
    try:
        caps = rig.pump.capabilities
        assert caps.host_loss is HostLossBehaviour.STOPS_AND_ALARMS
        assert caps.host_loss_after_s == 10
    finally:
        rig.close()


def test_the_journaled_contract_carries_the_timeout(clock: VirtualClock) -> None:
    from safety.supervisor import Supervisor
    from vasopilot.runtime import MemorySink
    from vasopilot.settings import load_rig

    config = load_rig(None)
    pump = SimSyringePump(clock, SYRINGE, MECHANICS, host_loss=HostLossBehaviour.STOPS_AND_ALARMS,
                          watchdog_timeout_s=10.0)
    sink = MemorySink()
    supervisor = Supervisor(pump, drug=config.drug, patient=config.profile.patient,
                            safety=config.profile.safety, syringe=SYRINGE, sink=sink)
    supervisor.start(5.0, clock.now_s())
    [contract] = [e for e in sink.events if isinstance(e, PumpContract)]
    assert contract.host_loss_after_s == 10.0
    assert "stops and alarms 10 s after the host goes quiet" in summary_line(contract)


def test_a_port_held_by_another_link_is_refused_and_free_again_once_closed() -> None:
    master, slave = os.openpty()
    device = os.ttyname(slave)
    first = SerialLink(device, baud=19200, timeout_s=0.1)
    second = SerialLink(device, baud=19200, timeout_s=0.1)
    try:
        first.open()
        with pytest.raises(PumpConnectionError, match="held by another process"):
            second.open()
        first.close()
        second.open()  # not a false refusal: the port is free once its holder lets go
    finally:
        first.close()
        second.close()
        os.close(master)
        os.close(slave)


def _on_ads1115(profile: Path, bus: int) -> None:
    text = profile.read_text()
    assert 'source = "sim"\n' in text and "fs_hz = 125.0\n" in text
    profile.write_text(text.replace('source = "sim"\n', f'source = "ads1115"\ni2c_bus = {bus}\n')
                       .replace("fs_hz = 125.0\n", "fs_hz = 250.0\n"))


def test_run_on_an_ads1115_without_i2c_is_one_line_that_names_the_way_out(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _on_ads1115(profile, 200)
    assert _run(profile, VirtualClock(), monkeypatch, "--minutes", "1") == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.endswith('no I2C bus 200: is this a Pi with I2C enabled? use source = "sim" or '
                         '"replay" to try the rig without a transducer')
    assert not (profile.parent / "journal.sqlite").exists()


def test_an_i2c_bus_the_user_may_not_open_names_the_group_and_lets_the_pump_go(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import smbus2

    import vasopilot.settings

    def forbidden(bus: int) -> None:
        raise PermissionError(13, "Permission denied", f"/dev/i2c-{bus}")

    closed: list[str] = []
    monkeypatch.setattr(smbus2, "SMBus", forbidden)
    monkeypatch.setattr(vasopilot.settings, "_exists", lambda path: True)
    monkeypatch.setattr(SimSyringePump, "close", lambda self: closed.append("pump"))
    _on_ads1115(profile, 1)
    assert _run(profile, VirtualClock(), monkeypatch, "--minutes", "1") == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == "vasopilot: I2C bus 1: permission denied: add this user to the i2c group"
    assert closed == ["pump"]


def test_a_second_run_on_a_journal_in_use_is_refused_before_it_journals(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    from vasopilot.local_control import socket_path

    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        live.bind(str(socket_path(profile.parent / "journal.sqlite")))
        live.listen()  # the first rig's control socket
        assert _run(profile, VirtualClock(), monkeypatch, "--minutes", "1") == 2
    finally:
        live.close()
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "another vasopilot run is using this journal" in line
    assert not (profile.parent / "journal.sqlite").exists()


def test_the_run_listens_for_the_bench_and_leaves_no_socket_behind(
    profile: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vasopilot.local_control import socket_path

    seen: list[bool] = []

    class Watching(VirtualClock):
        async def sleep_async(self, seconds: float) -> None:
            seen.append(socket_path(profile.parent / "journal.sqlite").exists())
            await super().sleep_async(seconds)

    assert _run(profile, Watching(), monkeypatch, "--minutes", "1", "--mode", "manual") == 0
    assert seen and all(seen)
    assert not socket_path(profile.parent / "journal.sqlite").exists()
