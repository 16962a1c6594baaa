"""The MT-SICS driver against scripted replies and against the balance emulator on a pty."""

from __future__ import annotations

from pathlib import Path

import pytest
from balance_fixtures import QUIET, Beaker, emulated_balance, scripted

from drivers.balance.mt_sics import Stability
from drivers.sim.balance_emulator import BalanceEmulator
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import BalanceEmulatorSettings
from vasopilot.core.errors import (
    BalanceBusyError,
    BalanceConnectionError,
    BalanceLogicalError,
    BalanceRangeError,
    BalanceSyntaxError,
    BalanceTransmissionError,
)

SERIAL = b'I4 A "B021002593"\r\n'
CONNECT = [(b"@\r\n", SERIAL), (b"I0\r\n", b'I0 B 0 "I0"\r\nI0 B 0 "SI"\r\nI0 A 0 "@"\r\n')]


def test_connecting_resets_and_lists_the_commands(clock: VirtualClock) -> None:
    with scripted(CONNECT, clock) as (balance, device):
        assert balance.serial_number == "B021002593"
        assert balance.commands is not None
        assert set(balance.commands.levels) == {"I0", "SI", "@"}
    assert device.script == [] and device.unexpected == []


def test_a_balance_without_i0_or_reset_still_connects(clock: VirtualClock) -> None:
    pairs = [(b"@\r\n", b"ES\r\n"), (b"I4\r\n", SERIAL), (b"I0\r\n", b"ES\r\n")]
    with scripted(pairs, clock) as (balance, device):
        assert balance.serial_number == "B021002593"
        assert balance.commands is None
    assert device.script == [] and device.unexpected == []


def test_a_timed_sample_is_si_stamped_on_the_clock(clock: VirtualClock) -> None:
    pairs = [*CONNECT, (b"SI\r\n", b"S D     129.07 g\r\n"), (b"SI\r\n", b"S S     129.08 g\r\n")]
    with scripted(pairs, clock) as (balance, device):
        clock.advance(30.0)
        first = balance.weigh_now()
        second = balance.weigh_now()
    assert (first.t_s, first.mass_g, first.stability) == (30.0, 129.07, Stability.DYNAMIC)
    assert second.stable and second.mass_g == 129.08
    assert device.script == [] and device.unexpected == []


def test_identification_of_the_emulator(clock: VirtualClock) -> None:
    with emulated_balance(clock) as (balance, emulator):
        assert balance.serial_number == emulator.serial_number
        assert balance.read_serial_number() == emulator.serial_number
        assert balance.commands is not None and "SI" in balance.commands
        assert emulator.received == ["@", "I0", "I4"]


def test_mass_follows_the_delivered_volume(clock: VirtualClock) -> None:
    with emulated_balance(clock, rate_ml_h=6.0) as (balance, _):
        start = balance.weigh_now()
        clock.advance(600.0)
        after = balance.weigh_now()
    # 6 mL/h for 10 min of water at 1 g/mL: 1 g, to the 0.01 mg digit
    assert after.mass_g - start.mass_g == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize(("readability_mg", "decimals"), [(0.1, 4), (0.01, 5)])
def test_readings_are_rounded_to_the_readability(clock: VirtualClock, readability_mg: float,
                                                 decimals: int) -> None:
    settings = QUIET.model_copy(update={"readability_mg": readability_mg})
    with emulated_balance(clock, rate_ml_h=1.0, settings=settings) as (balance, emulator):
        clock.advance(7.0)  # 1.9444 mg of water
        weight = balance.weigh_now()
    step = readability_mg / 1000.0
    assert weight.mass_g == pytest.approx(round(emulator.true_load_g() / step) * step, abs=1e-9)
    assert round(weight.mass_g, decimals) == weight.mass_g


def test_evaporation_takes_mass_away(clock: VirtualClock) -> None:
    settings = QUIET.model_copy(update={"evaporation_mg_min": 0.5})
    with emulated_balance(clock, settings=settings) as (balance, _):
        start = balance.weigh_now()
        clock.advance(600.0)
        assert start.mass_g - balance.weigh_now().mass_g == pytest.approx(0.005, abs=1e-8)


def test_the_cell_settles_and_flags_a_moving_load_dynamic(clock: VirtualClock) -> None:
    settings = QUIET.model_copy(update={"settling_s": 2.0})
    with emulated_balance(clock, rate_ml_h=3.6, settings=settings) as (balance, emulator):
        clock.advance(60.0)
        moving = balance.weigh_now()
        # a ramp of 1 mg/s read through a 2 s lag reads 2 mg behind
        assert moving.stability is Stability.DYNAMIC
        assert emulator.true_load_g() - moving.mass_g == pytest.approx(0.002, abs=2e-5)
        with pytest.raises(BalanceBusyError):
            balance.weigh_stable()


def test_a_still_load_reads_stable(clock: VirtualClock) -> None:
    with emulated_balance(clock, settings=QUIET.model_copy(update={"settling_s": 2.0})) as \
            (balance, _):
        clock.advance(30.0)
        assert balance.weigh_now().stable
        assert balance.weigh_stable().stable


def test_noise_is_seeded(clock: VirtualClock) -> None:
    noisy = BalanceEmulatorSettings(noise_mg=0.05, evaporation_mg_min=0.0, settling_s=0.0)

    def readings() -> list[float]:
        with emulated_balance(VirtualClock(), settings=noisy) as (balance, _):
            return [balance.weigh_now().mass_g for _ in range(5)]

    first = readings()
    assert first == readings()
    assert len(set(first)) > 1


@pytest.mark.parametrize(("code", "error"), [("ET", BalanceTransmissionError),
                                              ("EL", BalanceLogicalError),
                                              ("ES", BalanceSyntaxError)])
def test_an_error_reply_raises_its_type_and_the_next_sample_works(
        clock: VirtualClock, code: str, error: type[Exception]) -> None:
    with emulated_balance(clock) as (balance, emulator):
        emulator.faults.error_next = code
        with pytest.raises(error):
            balance.weigh_now()
        assert balance.weigh_now().mass_g == pytest.approx(60.0)


def test_busy_overload_and_underload(clock: VirtualClock) -> None:
    with emulated_balance(clock) as (balance, emulator):
        emulator.faults.busy_next = 1
        with pytest.raises(BalanceBusyError):
            balance.weigh_now()
        emulator.faults.overload = True
        with pytest.raises(BalanceRangeError, match="overloaded"):
            balance.weigh_now()
        emulator.faults.overload, emulator.faults.underload = False, True
        with pytest.raises(BalanceRangeError, match="underloaded"):
            balance.weigh_now()


def test_a_beaker_over_capacity_overloads(clock: VirtualClock) -> None:
    settings = QUIET.model_copy(update={"beaker_g": 219.0})
    with emulated_balance(clock, rate_ml_h=36.0, settings=settings) as (balance, _):
        clock.advance(200.0)  # 2 g more: 221 g on a 220 g balance
        with pytest.raises(BalanceRangeError, match="overloaded"):
            balance.weigh_now()


def test_a_dropped_reply_times_out_and_the_link_resyncs(clock: VirtualClock) -> None:
    with emulated_balance(clock, rate_ml_h=3.6) as (balance, emulator):
        emulator.faults.drop_next = 1
        with pytest.raises(BalanceConnectionError, match="no reply"):
            balance.weigh_now()
        clock.advance(10.0)
        assert balance.weigh_now().mass_g == pytest.approx(60.01)
        assert emulator.received[-3:] == ["SI", "@", "SI"]


def test_a_late_reply_is_never_taken_for_the_next_one(clock: VirtualClock) -> None:
    settings = QUIET.model_copy(update={"readability_mg": 0.01})
    with emulated_balance(clock, rate_ml_h=36.0, settings=settings) as (balance, emulator):
        emulator.faults.late_next_s = 5.0
        with pytest.raises(BalanceConnectionError):
            balance.weigh_now()
        clock.advance(10.0)  # the held reply goes out now, stale
        weight = balance.weigh_now()
        assert weight.mass_g == pytest.approx(emulator.true_load_g(), abs=1e-8)


def test_a_late_reply_goes_out_when_the_emulators_clock_reaches_it() -> None:
    clock = VirtualClock()
    emulator = BalanceEmulator(clock, Beaker(clock, 0.0), QUIET)
    emulator.faults.late_next_s = 2.0
    assert emulator.on_bytes(b"SI\r\n") == b""
    clock.advance(1.9)
    assert emulator.poll() == b""
    assert emulator.on_bytes(b"SI\r\n") == b"S S   60.00000 g\r\n"
    assert emulator.overlapped == 1  # a second command while the first was unanswered
    clock.advance(0.1)
    assert emulator.poll() == b"S S   60.00000 g\r\n"


def test_unknown_commands_answer_es() -> None:
    clock = VirtualClock()
    emulator = BalanceEmulator(clock, Beaker(clock, 0.0), QUIET)
    assert emulator.on_bytes(b"XYZ\r\n") == b"ES\r\n"
    assert emulator.on_bytes(b"I2\r\n").startswith(b'I2 A "')


def test_a_port_that_cannot_open_is_a_connection_error(clock: VirtualClock) -> None:
    from drivers.balance.mt_sics_balance import MtSicsBalance

    with pytest.raises(BalanceConnectionError, match="cannot open balance port"):
        MtSicsBalance("/dev/nonexistent-balance", clock=clock)


def test_a_pulled_cable_is_a_connection_error_and_the_port_is_found_again(
        clock: VirtualClock, tmp_path: Path) -> None:
    from drivers.balance.mt_sics_balance import MtSicsBalance
    from drivers.sim.pty_port import PtyPort

    emulator = BalanceEmulator(clock, Beaker(clock, 0.0), QUIET)
    with PtyPort(emulator, link=tmp_path / "balance") as port:
        balance = MtSicsBalance(port.path, clock=clock, timeout_s=0.3)
        try:
            port.unplug()
            with pytest.raises(BalanceConnectionError):
                balance.weigh_now()
            port.replug()
            assert balance.weigh_now().mass_g == pytest.approx(60.0)
        finally:
            balance.close()


def test_a_balance_port_held_by_another_process_is_refused_and_free_once_closed(
        clock: VirtualClock, tmp_path: Path) -> None:
    from drivers.balance.mt_sics_balance import MtSicsBalance
    from drivers.sim.pty_port import PtyPort

    emulator = BalanceEmulator(clock, Beaker(clock, 0.0), QUIET)
    with PtyPort(emulator, link=tmp_path / "balance") as port:
        first = MtSicsBalance(port.path, clock=clock, timeout_s=0.3)
        try:
            with pytest.raises(BalanceConnectionError, match="held by another process"):
                MtSicsBalance(port.path, clock=clock, timeout_s=0.3)
        finally:
            first.close()
        second = MtSicsBalance(port.path, clock=clock, timeout_s=0.3)  # no false refusal
        try:
            assert second.weigh_now().mass_g == pytest.approx(60.0)
        finally:
            second.close()
