"""A gravimetric flow test on a bench rig: run the pump at a set rate and weigh every 30 s.

The rate goes through the supervisor like any other (an operator's start, confirmed, at the
dose that gives the rate with the profile's drug), and the supervisor is ticked between samples so a
pump's watchdog stays fed and an occlusion or an empty syringe still stops the run. Samples are
taken with ``SI`` at ``t0 + k·Δt`` on the rig's one clock and stamped with the time the reply
came; a balance that was busy, garbled a reply or dropped one is asked again at once (the
sample is then late, and flagged so by the calculator). Overload, underload and weighing-cell
errors end the run.

Slack take-up (``take_up``): before the test the pump runs at the drug's highest starting dose
until the balance has gained ``take_up_gain_mg``, then stops; the lead-screw backlash and the
stopper's break-loose travel are then already crossed when the timed run starts, as after a
pump's own purge on a real bench.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.balance.mt_sics_balance import Weighing
from vasopilot.accuracy import SAMPLE_INTERVAL_S, MassSample
from vasopilot.core.errors import (
    BalanceBusyError,
    BalanceCommunicationError,
    BalanceConnectionError,
    VasopilotError,
)
from vasopilot.core.units import dose_from_rate_ml_h
from vasopilot.rig.bench import BenchRig

# A balance's transient refusals: asked again at once.
RETRYABLE = (BalanceBusyError, BalanceCommunicationError, BalanceConnectionError)
MAX_ATTEMPTS = 3
MG_PER_G = 1000.0


class GravimetricError(VasopilotError):
    """The test could not run to its end (the supervisor refused or stopped the pump)."""


@dataclass(frozen=True)
class RunOptions:
    """Set rate in mL/h, length in hours, sample interval and supervisor tick in s."""

    rate_ml_h: float
    hours: float = 2.0
    interval_s: float = SAMPLE_INTERVAL_S
    tick_s: float = 5.0
    take_up: bool = False
    take_up_gain_mg: float = 5.0
    take_up_timeout_s: float = 900.0


def weigh(bench: BenchRig) -> Weighing:
    """One ``SI`` sample, asked again up to ``MAX_ATTEMPTS`` times on a transient error."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return bench.balance.weigh_now()
        except RETRYABLE:
            if attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def run_test(bench: BenchRig, options: RunOptions,
             progress: Callable[[float], None] | None = None) -> list[Weighing]:
    """The samples of one run (the first taken as the pump starts); the pump is stopped at
    the end, or when the run fails."""
    if options.rate_ml_h <= 0 or options.hours <= 0:
        raise GravimetricError("the rate and the length of the run must be positive")
    clock, supervisor = bench.clock, bench.supervisor
    conc = bench.config.drug.conc_mcg_ml
    try:
        if options.take_up:
            _take_up(bench, options)
        samples = [weigh(bench)]
        t0_s = samples[0].t_s
        _start(bench, dose_from_rate_ml_h(options.rate_ml_h, conc), "gravimetric test")
        count = round(options.hours * 3600.0 / options.interval_s)
        for k in range(1, count + 1):
            _wait_until(bench, t0_s + k * options.interval_s, options.tick_s)
            samples.append(weigh(bench))
            if progress is not None:
                progress(k / count)
        return samples
    finally:
        supervisor.operator_stop(clock.now_s(), by="gravimetric test", reason="end of run")


def _start(bench: BenchRig, dose_mcg_min: float, by: str) -> None:
    # The set rate is the operator's deliberate choice, so it is confirmed above the start
    # range and the soft maximum; the hard maximum still refuses.
    decision = bench.supervisor.start(dose_mcg_min, bench.clock.now_s(), by=by,
                                      soft_limit_confirmed=True)
    if not decision.applied:
        raise GravimetricError(f"the supervisor refused {dose_mcg_min:.3f} mcg/min: "
                               f"{decision.reason}")


def _wait_until(bench: BenchRig, t_s: float, tick_s: float, *, running: bool = True) -> None:
    """Tick the supervisor every ``tick_s`` until ``t_s``; the pump must still be running
    (unless ``running`` is false)."""
    clock, supervisor = bench.clock, bench.supervisor
    while (now_s := clock.now_s()) < t_s:
        clock.sleep(min(tick_s, t_s - now_s))
        supervisor.tick(clock.now_s())
        view = supervisor.view(clock.now_s())
        if running and not view.running:
            raise GravimetricError(f"the infusion stopped during the test "
                                   f"({view.stop_reason or 'no reason given'})")


def _take_up(bench: BenchRig, options: RunOptions) -> None:
    clock = bench.clock
    start = weigh(bench)
    _start(bench, bench.supervisor.limits.start_max, "slack take-up")
    deadline_s = start.t_s + options.take_up_timeout_s
    while (now := weigh(bench)).mass_g - start.mass_g < options.take_up_gain_mg / MG_PER_G:
        if now.t_s >= deadline_s:
            raise GravimetricError(f"no flow reached the balance within "
                                   f"{options.take_up_timeout_s:.0f} s of slack take-up")
        _wait_until(bench, now.t_s + 1.0, options.tick_s)
    bench.supervisor.operator_stop(clock.now_s(), by="slack take-up", reason="taken up")
    # what the line's compliance stored drains before the timed run begins
    _wait_until(bench, clock.now_s() + 30.0, options.tick_s, running=False)


def mass_samples(weighings: list[Weighing]) -> list[MassSample]:
    return [MassSample(w.t_s, w.mass_g) for w in weighings]
