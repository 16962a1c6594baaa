"""The bridge in the application: ``vasopilot emulate bridge``, ``vasopilot pump status`` for
every driver, ``vasopilot run --rig config/bench-bridge.toml`` against the emulator's link, and
``vasopilot sim --pump bridge``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pump_fixtures import emulate_process

from drivers.pump.bridge import BridgePump
from drivers.sim.harvard_emulator import HarvardEmulator
from drivers.sim.new_era_emulator import NewEraEmulator
from drivers.sim.pty_port import ByteDevice, PtyPort
from drivers.sim.syringe_pump import SimSyringePump
from firmware_bridge.emulator import BridgeEmulator
from vasopilot.cli import main
from vasopilot.control.protocol import NurseProtocol
from vasopilot.core.clock import MonotonicClock, VirtualClock
from vasopilot.core.events import DoseApplied, PumpContract, RunStarted
from vasopilot.core.types import HostLossBehaviour, PumpState
from vasopilot.journal import Journal
from vasopilot.serve import ServeOptions, open_rig, serve
from vasopilot.service import SystemdNotifier
from vasopilot.settings import load_rig
from vasopilot.simulate import SimOptions, run_sim

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
REPORT_KEYS = {"running", "rate_ml_h", "volume_ml", "alarm"}


def _profile(tmp_path: Path, source: str, port: Path | str, extra: str = "") -> Path:
    """``source`` (a profile in config/) pointed at ``port``, with a simulated patient."""
    text = (CONFIG / source).read_text()
    text = text.replace('drug-library.toml', str(CONFIG / "drug-library.toml"))
    text = text.replace('syringes.toml', str(CONFIG / "syringes.toml"))
    replaced = {"port =": f'port = "{port}"',
                "journal =": f'journal = "{tmp_path / "journal.sqlite"}"'}
    text = "\n".join(next((new for key, new in replaced.items() if line.startswith(key)), line)
                     for line in text.splitlines())
    text = text.split("[pressure]")[0] + extra + "\n[pressure]\nsource = \"sim\"\n"
    path = tmp_path / source
    path.write_text(text)
    return path


@contextmanager
def _served(device: ByteDevice) -> Iterator[PtyPort]:
    with PtyPort(device) as port:
        yield port


@contextmanager
def _bridge_on_a_pty(clock: VirtualClock) -> Iterator[tuple[BridgeEmulator, PtyPort]]:
    """The bench-bridge profile's Pico, emulated on ``clock``, served on a pty."""
    config = load_rig(CONFIG / "bench-bridge.toml")
    physics = SimSyringePump(clock, config.syringe, config.profile.pump.mechanics)
    emulator = BridgeEmulator(clock, physics, microstep_ul=physics.microstep_ul)
    with _served(emulator) as port:
        yield emulator, port


def test_vasopilot_emulate_bridge_serves_the_driver(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "pico"
    with emulate_process("bridge", link) as device:
        assert os.path.realpath(link) == device
        syringe = load_rig(None).syringe
        pump = BridgePump(str(link), clock=MonotonicClock(), syringe=syringe,
                          mechanics=load_rig(None).profile.pump.mechanics)
        try:
            assert pump.set_rate(7.5).state is PumpState.INFUSING
        finally:
            pump.close()
        profile = _profile(tmp_path, "bench-bridge.toml", link)
        assert main(["pump", "status", "--rig", str(profile), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert set(report) == REPORT_KEYS | {"host_lost", "boot_id"}
        assert report["running"] is True
        assert report["rate_ml_h"] == pytest.approx(7.5, abs=1e-3)


@pytest.mark.parametrize("source", ["bench-newera.toml", "bench-harvard.toml",
                                    "bench-bridge.toml"])
def test_pump_status_reads_a_running_pump_without_changing_it(
        source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = MonotonicClock()
    config = load_rig(CONFIG / source)
    physics = SimSyringePump(clock, config.syringe, config.profile.pump.mechanics)
    driver = config.profile.pump.driver
    device: ByteDevice = (NewEraEmulator(clock, {0: physics}) if driver == "new-era"
                          else HarvardEmulator(clock, {0: physics}) if driver == "harvard"
                          else BridgeEmulator(clock, physics, microstep_ul=physics.microstep_ul))
    with _served(device) as port:
        profile = _profile(tmp_path, source, port.path)
        from vasopilot.rig import open_pump

        pump = open_pump(load_rig(profile), clock)
        pump.set_rate(6.0)
        pump.close()  # the process that ran the pump is gone
        before = physics.status()
        assert main(["pump", "status", "--rig", str(profile), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        after = physics.status()
    expected = REPORT_KEYS | ({"host_lost", "boot_id"} if driver == "bridge" else set())
    assert set(report) == expected
    assert report["running"] is True
    assert report["alarm"] is None
    assert report["rate_ml_h"] == pytest.approx(6.0, abs=1e-3)
    assert report["volume_ml"] >= 0
    assert (after.state, after.rate_ml_h) == (before.state, before.rate_ml_h)


def test_pump_status_of_a_bridge_left_alone_says_host_lost(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = VirtualClock()
    config = load_rig(CONFIG / "bench-bridge.toml")
    with _bridge_on_a_pty(clock) as (_emulator, port):
        profile = _profile(tmp_path, "bench-bridge.toml", port.path)
        pump = BridgePump(port.path, clock=clock, syringe=config.syringe,
                          mechanics=config.profile.pump.mechanics)
        pump.set_rate(7.5)
        pump.close()
        clock.advance(600)  # the host died ten minutes ago
        for _ in range(2):  # a person may look twice: reading does not take charge
            assert main(["pump", "status", "--rig", str(profile), "--json"]) == 0
            report = json.loads(capsys.readouterr().out)
            assert report["host_lost"] is True and report["running"] is True
            assert report["alarm"] == "host-lost"
            assert report["volume_ml"] == pytest.approx(7.5 / 6, abs=0.001)


def test_pump_status_of_the_sim_and_gpio_profiles(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    stepper = tmp_path / "stepper.toml"
    stepper.write_text('[pump]\ndriver = "gpio-stepper"\n[pump.gpio]\npin_factory = "mock"\n')
    for profile in (CONFIG / "sim.toml", stepper):
        assert main(["pump", "status", "--rig", str(profile), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report == {"running": False, "rate_ml_h": 0.0, "volume_ml": 0.0, "alarm": None}


def test_pump_status_without_a_pump_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = _profile(tmp_path, "bench-bridge.toml", tmp_path / "absent")
    assert main(["pump", "status", "--rig", str(profile)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open" in err


def _serve(profile: Path, clock: VirtualClock, options: ServeOptions) -> list[object]:
    config = load_rig(profile)
    with Journal(config.journal_path, clock) as journal:
        rig = open_rig(config, journal, clock, NurseProtocol(), options)
        try:
            asyncio.run(serve(rig, clock, journal, options, SystemdNotifier({})))
        finally:
            rig.close()
        return list(journal.iter_events())


def test_vasopilot_run_with_the_bench_bridge_profile_against_the_emulator(
        tmp_path: Path) -> None:
    clock = VirtualClock()
    with _bridge_on_a_pty(clock) as (emulator, port):
        profile = _profile(tmp_path, "bench-bridge.toml", port.path)
        first = _serve(profile, clock, ServeOptions(mode="protocol", start_dose_mcg_min=10.0,
                                                    minutes=5.0))
        contracts = [e for e in first if isinstance(e, PumpContract)]
        assert [c.host_loss for c in contracts] == [HostLossBehaviour.KEEPS_RATE]
        last_dose = [e for e in first if isinstance(e, DoseApplied)][-1].dose_mcg_min
        rate_before = emulator.firmware_status()
        clock.advance(30)  # the process is gone for 30 s: the Pico keeps the rate, alarms
        assert emulator.alarm_output
        second = _serve(profile, clock, ServeOptions(mode="protocol", minutes=1.0))
    new = second[len(first):]
    assert isinstance(new[0], RunStarted) and new[0].restarted
    resumed = [e for e in new if isinstance(e, DoseApplied)]
    assert resumed and resumed[0].dose_mcg_min == last_dose
    assert rate_before is not None
    boot = emulator.boots[-1]
    rates = {seg.rate_q16 for seg in boot.segments}
    assert rate_before.rate_q16 in rates and len(emulator.boots) == 1


def test_sim_with_the_bridge_delivers_like_the_physics_twin() -> None:
    config = load_rig(None)
    bridge = run_sim(config, SimOptions(hours=0.25, seed=2, pump="bridge"))
    twin = run_sim(config, SimOptions(hours=0.25, seed=2, pump="sim"))
    assert bridge.summary.dose_changes == twin.summary.dose_changes
    assert bridge.summary.total_drug_mcg == pytest.approx(twin.summary.total_drug_mcg, rel=0.01)


def _deployed_imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("firmware_bridge"):
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_the_flashed_files_are_the_firmware_and_all_it_imports() -> None:
    from vasopilot.cli.firmware import FIRMWARE_FILES

    remote = {r for _local, r in FIRMWARE_FILES}
    assert "main.py" in remote
    assert not any("emulator" in r for r in remote)
    on_board = {r.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
                for r in remote}
    for local, _remote in FIRMWARE_FILES:
        assert (REPO / local).is_file(), local
        for name in _deployed_imports(REPO / local):
            assert name in on_board, f"{local} imports {name}, which is not flashed"


def test_firmware_flash_dry_run_prints_one_mpremote_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "flash", "--port", "/dev/ttyACM7", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "-m mpremote connect /dev/ttyACM7 exec" in out
    assert out.count(" + fs cp ") == 7 and out.rstrip().endswith("+ reset")


def test_firmware_flash_without_a_pico_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "flash", "--port", str(tmp_path / "no-pico")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vasopilot: mpremote failed")
