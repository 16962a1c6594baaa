"""The gravimetric run on the simulated bench: samples on the clock, and the balance's faults."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.sim.balance_emulator import BalanceFaults
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import BalanceRangeError
from vasopilot.gravimetric import GravimetricError, RunOptions, run_test
from vasopilot.rig.bench import BenchRig, build_bench
from vasopilot.runtime import MemorySink
from vasopilot.settings import load_rig

SIM = Path(__file__).resolve().parents[1] / "config" / "sim.toml"


@pytest.fixture
def bench() -> Iterator[BenchRig]:
    rig = build_bench(load_rig(SIM), clock=VirtualClock(), sink=MemorySink())
    yield rig
    rig.close()


def at_sample(bench: BenchRig, k: int, arm: Callable[[BalanceFaults], None],
              count: int) -> Callable[[float], None]:
    """A progress callback that arms a balance fault after sample ``k`` of ``count``."""
    assert bench.emulator is not None
    faults = bench.emulator.faults

    def progress(done: float) -> None:
        if round(done * count) == k:
            arm(faults)

    return progress


def test_samples_every_30_s_on_the_clock_and_stops_the_pump(bench: BenchRig) -> None:
    samples = run_test(bench, RunOptions(rate_ml_h=2.0, hours=0.5))
    assert [s.t_s for s in samples] == [30.0 * k for k in range(61)]
    assert not bench.supervisor.view().running
    assert bench.emulator is not None
    assert "Z" not in bench.emulator.received and "T" not in bench.emulator.received
    assert bench.emulator.overlapped == 0


@pytest.mark.parametrize("arm", [
    lambda f: setattr(f, "error_next", "ET"),
    lambda f: setattr(f, "busy_next", 2),
    lambda f: setattr(f, "drop_next", 1),
], ids=["ET", "S I twice", "dropped reply"])
def test_a_transient_balance_fault_is_asked_again(bench: BenchRig,
                                                  arm: Callable[[BalanceFaults], None]) -> None:
    samples = run_test(bench, RunOptions(rate_ml_h=2.0, hours=0.5),
                       progress=at_sample(bench, 20, arm, 60))
    assert len(samples) == 61
    flows = [3600 * (b.mass_g - a.mass_g) / 30.0 / 0.998
             for a, b in itertools.pairwise(samples[20:])]
    assert all(q == pytest.approx(2.0, rel=0.05) for q in flows)


def test_an_overloaded_balance_ends_the_run_and_stops_the_pump(bench: BenchRig) -> None:
    with pytest.raises(BalanceRangeError, match="overloaded"):
        run_test(bench, RunOptions(rate_ml_h=2.0, hours=0.5),
                 progress=at_sample(bench, 10, lambda f: setattr(f, "overload", True), 60))
    assert not bench.supervisor.view().running


def test_a_rate_over_the_hard_maximum_is_refused_by_the_supervisor(bench: BenchRig) -> None:
    with pytest.raises(GravimetricError, match="refused"):
        run_test(bench, RunOptions(rate_ml_h=100.0, hours=0.5))
