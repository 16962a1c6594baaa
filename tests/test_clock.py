import asyncio

import pytest

from vasopilot.core.clock import Clock, MonotonicClock, VirtualClock


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock()
    assert clock.now_s() == 0.0
    clock.advance(1.5)
    clock.sleep(2.0)
    assert clock.now_s() == pytest.approx(3.5)


def test_virtual_clock_refuses_to_run_backwards() -> None:
    clock = VirtualClock(start_s=10.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_to(5.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1.0)


def test_virtual_day_passes_without_wall_time() -> None:
    clock = VirtualClock()
    asyncio.run(clock.sleep_async(86_400.0))
    assert clock.now_s() == 86_400.0
    assert clock.wall_label().startswith("2026-01-02T00:00:00")


def test_monotonic_clock_never_goes_back() -> None:
    clock = MonotonicClock()
    readings = [clock.now_s() for _ in range(1000)]
    assert readings == sorted(readings)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(VirtualClock(), Clock)
    assert isinstance(MonotonicClock(), Clock)
