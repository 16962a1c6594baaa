"""The gravimetric bench rig: built from a profile, its pump reachable only through the
supervisor, and ``vasopilot emulate balance``."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

import pytest
from test_rig_assembly import reachable

from vasopilot.cli import main
from vasopilot.cli.emulate import run as emulate
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import ConfigError
from vasopilot.core.interfaces import Pump
from vasopilot.rig.bench import build_bench
from vasopilot.runtime import MemorySink
from vasopilot.settings import load_rig

SIM = Path(__file__).resolve().parents[1] / "config" / "sim.toml"


@pytest.mark.parametrize("emulated_pump", [None, "new-era", "harvard"])
def test_only_the_supervisor_holds_the_bench_pump(emulated_pump: str | None) -> None:
    bench = build_bench(load_rig(SIM), clock=VirtualClock(), sink=MemorySink(),
                        emulated_pump=emulated_pump)
    try:
        pump: Any = bench.supervisor._delivery._pump
        assert isinstance(pump, Pump)
        outside = list(reachable(bench, skip={id(bench.supervisor)}))
        assert all(obj is not pump for obj in outside)
        assert bench.emulator is not None
        assert bench.balance.weigh_now().mass_g == pytest.approx(
            bench.emulator.settings.beaker_g, abs=1e-3)
    finally:
        bench.close()


def test_a_hardware_profile_has_no_balance_unless_it_says(tmp_path: Path) -> None:
    hardware = load_rig(SIM.parent / "bench-newera.toml")
    assert hardware.profile.balance is None
    assert load_rig(SIM).profile.balance is not None
    bad = tmp_path / "bad.toml"
    bad.write_text('[pump]\ndriver = "new-era"\nport = "loop://"\n[balance]\nbaud = 12345\n')
    with pytest.raises(ConfigError, match=r"balance.*needs a port|baud 12345"):
        load_rig(bad)


def _args(**overrides: Any) -> argparse.Namespace:
    values = {"kind": "balance", "link": None, "address": 0, "baud": None,
              "syringe": "bd-plastipak-50", "rate": 1.0, "readability_mg": 0.01}
    values.update(overrides)
    return argparse.Namespace(**values)


def test_emulate_balance_prints_its_device_and_banner(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    stop.set()  # serve nothing: the port opens, prints and closes
    assert emulate(_args(link=tmp_path / "balance"), stop) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("/dev/")
    assert "MT-SICS balance emulator, 0.01 mg, weighing 1 mL/h" in out[1]
    assert "9600 baud 8N1" in out[1]


@pytest.mark.parametrize("argv", [["--readability-mg", "5"], ["--rate", "10000"]])
def test_emulate_balance_refuses_bad_levers_in_one_line(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "balance", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vasopilot: --")
