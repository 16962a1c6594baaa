"""The bridge's PIO programs, run cycle by cycle in rp2040-pio-emulator.

They prove the period arithmetic the firmware and its emulator rely on: a pushed delay count
``y`` makes a period of exactly ``y + OVERHEAD_CYCLES`` cycles, STEP's raising instruction
starts ``EDGE_BEFORE_END`` cycles before the end, the pulse lasts ``PULSE_CYCLES``, an empty
FIFO repeats the last period, and the counting program counts every pulse.

(No ``from __future__ import annotations``: the emulator reads ``input_source``'s annotation.)
"""

from collections import deque
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from pioemu import State, emulate

from firmware_bridge.emulator import SimPio
from firmware_bridge.firmware import step_pio


def _step_edges(pushed: list[int], cycles: int) -> tuple[list[int], list[int]]:
    """Clocks at which STEP's raising instruction starts, and at which STEP is low again."""
    run = emulate(list(step_pio.STEP_PROGRAM), stop_when=lambda _op, s: s.clock >= cycles,
                  initial_state=State(transmit_fifo=deque(pushed)), set_base=0, set_count=1,
                  wrap_target=0, wrap_top=len(step_pio.STEP_PROGRAM) - 1)
    rises, falls = [], []
    for before, after in run:
        was, now = before.pin_values & 1, after.pin_values & 1
        if now and not was:
            # the emulator stamps a state after the instruction's delay cycles
            rises.append(after.clock - step_pio.PULSE_CYCLES)
        elif was and not now:
            falls.append(after.clock)
    return rises, falls


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=6))
def test_each_period_is_the_pushed_count_plus_the_overhead(pushed: list[int]) -> None:
    periods = [step_pio.period_cycles(y) for y in pushed]
    total = sum(periods)
    rises, falls = _step_edges(pushed, total)
    ends = [sum(periods[: i + 1]) for i in range(len(periods))]
    assert falls == ends
    assert rises == [end - step_pio.EDGE_BEFORE_END for end in ends]
    assert all(f - r - 1 == step_pio.PULSE_CYCLES for r, f in zip(rises, falls, strict=True))


def test_an_empty_fifo_repeats_the_last_period() -> None:
    rises, _ = _step_edges([10, 30], 8 * 40 + 18)
    gaps = [b - a for a, b in pairwise(rises)]
    assert gaps[0] == 38
    assert set(gaps[1:]) == {38}
    assert len(rises) >= 8


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=5), st.integers(0, 3))
def test_the_emulators_pio_steps_exactly_where_the_program_does(pushed: list[int],
                                                                 repeats: int) -> None:
    periods = [step_pio.period_cycles(y) for y in pushed]
    cycles = sum(periods) + repeats * periods[-1]
    rises, _ = _step_edges(pushed, cycles)
    sim = SimPio()
    sim.edges_us = []
    for y in pushed:
        sim.push(y)
    sim.start(0)
    sim.advance(cycles)
    assert sim.edges_us == rises
    assert sim.count == len(rises)


def test_the_counting_program_counts_every_pulse() -> None:
    # Four pulses fill the 4-word RX FIFO (the firmware drains it every pass).
    pulses = [(10, 13), (40, 43), (90, 93), (150, 160)]

    def step_pin(clock: int) -> int:
        return 1 if any(a <= clock < b for a, b in pulses) else 0

    run = emulate(list(step_pio.COUNT_PROGRAM), stop_when=lambda _op, s: s.clock >= 200,
                  input_source=step_pin, wrap_target=0,
                  wrap_top=len(step_pio.COUNT_PROGRAM) - 1)
    pushed: list[int] = []
    for _before, after in run:
        pushed = list(after.receive_fifo) or pushed
    assert pushed == [1, 2, 3, 4]
