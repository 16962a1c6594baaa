"""The bridge firmware's logic in its emulator: exact step counts, refusals, host loss, local
stops, the watchdog and resume after it, power-on. Virtual clock, no port."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as p
from firmware_bridge.emulator import BOOT_S
from firmware_bridge.firmware import logic
from tests.bridge_fixtures import Bench, assert_within_one_step, infusion_integral_steps

Q = p.Q16
RATE = 15 * Q  # 15 steps/s: about 7.5 mL/h with a 50 mL syringe


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(logic.MIN_RATE_Q16, 300 * Q) | st.just(0),
                          st.floats(0.0, 120.0)), min_size=1, max_size=8),
       st.floats(0.0, 3600.0))
def test_steps_follow_the_integral_of_the_commanded_rate(changes: list[tuple[int, float]],
                                                          tail_s: float) -> None:
    bench = Bench()
    for generation, (rate_q16, dwell_s) in enumerate(changes, start=1):
        reply = bench.set_rate(generation, rate_q16)
        assert isinstance(reply, p.Status) and reply.rate_q16 == rate_q16
        bench.clock.advance(dwell_s)
        assert_within_one_step(bench.emu, bench.clock.now_s())
    bench.clock.advance(tail_s)
    assert_within_one_step(bench.emu, bench.clock.now_s())
    assert len(bench.emu.boots) == 1


def test_an_hour_at_a_rate_is_exact_to_the_step() -> None:
    bench = Bench()
    rate_q16 = p.q16_from_hz(14.8763)
    bench.set_rate(1, rate_q16)
    bench.clock.advance(3600.0)
    expected = rate_q16 / Q * 3600.0
    assert int(expected) == bench.status().infused_steps


def test_out_of_range_rates_are_refused_never_clamped() -> None:
    bench = Bench()
    bench.set_rate(1, RATE)
    for rate_q16, limit in ((logic.MIN_RATE_Q16 - 1, logic.MIN_RATE_Q16),
                            (logic.MAX_RATE_Q16 + 1, logic.MAX_RATE_Q16)):
        assert bench.set_rate(2, rate_q16) == p.Error(p.ERR_OUT_OF_RANGE, limit)
    status = bench.status()
    assert (status.rate_q16, status.generation) == (RATE, 1)
    assert bench.ask(p.SetRate(3, 7, RATE)) == p.Error(p.ERR_BAD_DIRECTION, 7)


def test_a_silent_host_keeps_the_rate_and_latches_the_alarm_until_acknowledged() -> None:
    bench = Bench()
    bench.set_rate(1, RATE)
    bench.clock.advance(logic.DEFAULT_HOST_LOSS_MS / 1000 - 0.01)
    assert not bench.emu.alarm_output
    bench.clock.advance(0.02)
    assert bench.emu.alarm_output  # latched within the loop, before any status is asked
    bench.clock.advance(600.0)
    status = bench.status()
    assert status.rate_q16 == RATE
    assert status.flags & p.FLAG_ALARM
    # A host that only reads has not taken charge: still unattended.
    assert status.flags & p.FLAG_HOST_LOST
    policy = bench.ask(p.SetPolicy(2000, p.POLICY_KEEP_RATE, 0))
    assert isinstance(policy, p.Status) and not policy.flags & p.FLAG_HOST_LOST
    # Back in charge; the alarm stays until a person acknowledges it.
    assert policy.flags & p.FLAG_ALARM
    acked = bench.ask(p.AckAlarm())
    assert isinstance(acked, p.Status) and not acked.flags & p.FLAG_ALARM
    assert not bench.emu.alarm_output
    assert acked.rate_q16 == RATE
    assert_within_one_step(bench.emu, bench.clock.now_s())


def test_a_host_that_talks_in_time_never_raises_the_host_loss_alarm() -> None:
    bench = Bench()
    bench.set_rate(1, RATE)
    for _ in range(600):
        bench.clock.advance(logic.DEFAULT_HOST_LOSS_MS / 1000 * 0.9)
        assert bench.ask(p.Ping(1)) == p.Pong(1, bench.emu.firmware_status().mcu_time_us)
    assert not bench.status().flags & (p.FLAG_ALARM | p.FLAG_HOST_LOST)
    assert not bench.emu.alarm_output


def test_the_stop_policy_stops_on_host_loss() -> None:
    bench = Bench()
    bench.ask(p.SetPolicy(500, p.POLICY_STOP, 0))
    bench.set_rate(1, RATE)
    bench.clock.advance(0.6)
    status = bench.emu.firmware_status()
    assert status is not None and status.rate_q16 == 0
    assert status.stop_cause == p.STOP_HOST_LOST and status.flags & p.FLAG_ALARM
    assert bench.ask(p.SetPolicy(50, p.POLICY_STOP, 0)) == p.Error(p.ERR_OUT_OF_RANGE, 50)


def test_the_unattended_cap_stops_the_motor() -> None:
    bench = Bench()
    bench.ask(p.SetPolicy(1000, p.POLICY_KEEP_RATE, 300))
    bench.set_rate(1, RATE)
    bench.clock.advance(60.0)
    status = bench.emu.firmware_status()
    assert status is not None and status.rate_q16 == 0
    assert status.stop_cause == p.STOP_UNATTENDED_CAP
    # 1 s before the host counted as lost, then the cap (a step or so of loop latency).
    assert 15 + 300 <= status.infused_steps <= 15 + 302


def test_a_stall_stops_the_motor_by_itself_and_blocks_a_start() -> None:
    bench = Bench()
    bench.set_rate(1, RATE)
    bench.clock.advance(10.0)
    bench.physics.faults.stall()
    bench.clock.advance(1.0)
    status = bench.status()
    assert status.rate_q16 == 0 and status.stop_cause == p.STOP_STALL
    assert status.inputs & p.INPUT_STALL and status.flags & p.FLAG_ALARM
    assert bench.set_rate(2, RATE) == p.Error(p.ERR_INPUT_BLOCKS, status.inputs)
    # Backing off is what relieves a stall against line pressure: allowed.
    backed = bench.ask(p.BackOff(9, 20, 100 * Q))
    assert isinstance(backed, p.Status) and backed.flags & p.FLAG_BACKING_OFF


def test_a_missing_plunger_stops_the_motor() -> None:
    bench = Bench()
    bench.set_rate(1, RATE)
    bench.clock.advance(5.0)
    bench.emu.remove_plunger()
    bench.clock.advance(0.5)
    status = bench.status()
    assert status.rate_q16 == 0 and status.stop_cause == p.STOP_NO_PLUNGER


def test_a_back_off_runs_its_steps_once() -> None:
    bench = Bench()
    bench.set_rate(1, RATE)
    bench.clock.advance(30.0)
    backed = bench.ask(p.BackOff(77, 500, 200 * Q))
    assert isinstance(backed, p.Status) and backed.flags & p.FLAG_BACKING_OFF
    bench.clock.advance(10.0)
    again = bench.ask(p.BackOff(77, 500, 200 * Q))  # the same id, sent anew
    assert isinstance(again, p.Status) and again.withdrawn_steps == 500
    bench.clock.advance(10.0)
    status = bench.status()
    assert status.withdrawn_steps == 500 and status.rate_q16 == 0
    assert not status.flags & p.FLAG_BACKING_OFF


def test_a_hung_main_loop_is_reset_by_the_watchdog_and_the_infusion_resumes() -> None:
    bench = Bench()
    bench.set_rate(4, RATE)
    bench.clock.advance(100.0)
    bench.emu.hang_main_loop()
    bench.clock.advance(5.0)
    first, second = bench.emu.boots
    assert second.cause == p.RESET_WATCHDOG
    assert first.down_s is not None
    # The PIO ran on at the rate while the loop hung, until the watchdog fired.
    assert abs(first.down_s - (100.0 + logic.WATCHDOG_TIMEOUT_MS / 1000)) < 0.2
    assert second.up_s - first.down_s == pytest.approx(BOOT_S)
    status = bench.status()
    assert (status.rate_q16, status.generation) == (RATE, 4)
    assert status.reset_cause == p.RESET_WATCHDOG and status.flags & p.FLAG_RESUMED
    assert_within_one_step(bench.emu, bench.clock.now_s())


def test_a_stuck_pio_starves_the_watchdog_and_the_reset_resumes_stepping() -> None:
    bench = Bench()
    bench.set_rate(1, RATE)
    bench.clock.advance(20.0)
    bench.emu.hang_pio()
    bench.clock.advance(3.0)
    assert [b.cause for b in bench.emu.boots] == [p.RESET_POWER_ON, p.RESET_WATCHDOG]
    bench.clock.advance(10.0)
    assert bench.status().infused_steps >= 15 * 10 - 1


def test_a_loop_late_by_less_than_the_watchdog_costs_no_steps() -> None:
    bench = Bench()
    bench.set_rate(1, 120 * Q)
    bench.clock.advance(5.0)
    bench.emu.hang_main_loop()
    bench.clock.advance(1.5)  # the FIFO runs dry: the PIO repeats its last period
    bench.emu.hang_main_loop(False)
    bench.clock.advance(5.0)
    assert len(bench.emu.boots) == 1
    assert_within_one_step(bench.emu, bench.clock.now_s())


def test_after_power_on_the_motor_is_stopped_whatever_the_scratch_held() -> None:
    bench = Bench()
    bench.set_rate(1, RATE)
    bench.clock.advance(50.0)
    saved = list(bench.emu.scratch)
    bench.emu.power_cycle()
    bench.emu.scratch = saved  # even a valid copy is not trusted after power-on
    bench.clock.advance(2.0)
    status = bench.status()
    assert status.rate_q16 == 0 and status.reset_cause == p.RESET_POWER_ON
    assert not status.flags & p.FLAG_RESUMED
    assert bench.emu.boots[0].steps == int(infusion_integral_steps(bench.emu.boots[0], 0.0))


def test_a_corrupted_scratch_copy_is_not_resumed() -> None:
    words = logic.scratch_words(p.INFUSE, RATE, 3, False)
    assert logic.scratch_run(words) == (RATE, 3, False)
    for i in range(4):
        bad = list(words)
        bad[i] ^= 0x10
        assert logic.scratch_run(bad) is None
    assert logic.scratch_run(logic.scratch_words(p.INFUSE, logic.MAX_RATE_Q16 + 1, 3,
                                                 False)) is None
