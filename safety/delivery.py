"""The delivery part: the only holder of the pump and the only writer of the delivery state.

:class:`DeliveryState` (dose, rate, running, the pump's last read-back, whether delivery is
uncertain, why it stopped) is frozen and replaced as a whole, here only. Commands, stops, the
changeover and the reconciliation of what the pump reports with what was commanded live here;
the supervisor decides *whether*, this part carries it out, journal first (S14).

Reconciliation (at start, at resume and at every status poll) trusts nothing it did not
command. A pump state vasopilot did not command raises a HIGH ``PUMP_UNCOMMANDED`` alarm and
is journaled as a decision with its reason:

- above the hard maximum, or above the soft maximum beyond what an operator confirmed, the pump
  is brought back to the last journaled safe dose (with none, the top of the drug's start
  range, and the alarm says so);
- within the limits, it is adopted as an operator's act at the pump (docs/safety.md says why);
  a stop at the pump without a pump alarm is adopted as an operator's stop;
- a pump that stopped itself on losing the host (safe-mode timeout) is restarted at the last
  safe dose with a HIGH ``HOST_TIMEOUT`` alarm, as a restart does; any other pump alarm is a
  ``pump-fault`` stop that needs an operator.

A running vasopressor is never stopped here except for a reason the caller names (S8-S10).

Flow probes (S8, S9) are enacted here too: a pause, then a make-up above the programmed rate
(never over the soft maximum unless the dose already is, never over the hard one) until the
paused volume is back, each step journaled before the pump is told; a dose change, a stop or a
changeover cuts a probe short and journals what it still owed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from safety.alarms import AlarmCode
from safety.hazards import PROBE_MAKE_UP_FRACTION
from safety.limits import DOSE_EPS_MCG_MIN, DoseLimits, dose_for_rate
from safety.occlusion import ProbeRequest
from safety.record import Recorder
from safety.resume import ResumeState
from vasopilot.core.errors import PumpError, PumpRefusedError
from vasopilot.core.events import (
    DoseApplied,
    DoseChange,
    Fault,
    FaultCode,
    FlowProbe,
    ProbeCause,
    PumpContract,
    StopReason,
)
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import (
    HostLossBehaviour,
    PumpAlarm,
    PumpCapabilities,
    PumpState,
    PumpStatus,
    Requester,
)
from vasopilot.core.units import UL_PER_ML, rate_ml_h_from_dose

# A read-back within 1 % (and a pump's last digit) of the command is the command.
RATE_READBACK_TOLERANCE = 0.01
RATE_READBACK_FLOOR_ML_H = 1e-3
# Volume the pump may report delivered beyond its commanded rate before it is an uncommanded
# bolus (a purge at its keys): counter resolution and a poll's timing stay well under this.
VOLUME_SLACK_ML = 0.05
VOLUME_SLACK_FRACTION = 0.5
# Stops that an operator must clear before anything restarts the infusion.
LATCHING = frozenset(StopReason) - {StopReason.WEANED}


def _ul(rate_ml_h: float, duration_s: float) -> float:
    return rate_ml_h * duration_s / 3600.0 * UL_PER_ML


@dataclass(frozen=True)
class Probe:
    """A flow probe being enacted: paused since ``started_s`` for ``pause_s`` (carrying what an
    interrupted probe still owed), then making up ``owed_ul`` at ``make_up_rate_ml_h`` until
    ``make_up_until_s``."""

    cause: ProbeCause
    started_s: float
    pause_s: float
    carried_ul: float = 0.0
    owed_ul: float = 0.0
    make_up_rate_ml_h: float = 0.0
    make_up_until_s: float | None = None

    @property
    def paused(self) -> bool:
        return self.make_up_until_s is None

    def owed_at(self, now_s: float, rate_ml_h: float) -> float:
        """The volume still owed at ``now_s`` with ``rate_ml_h`` programmed."""
        if self.make_up_until_s is None:
            return self.carried_ul + _ul(rate_ml_h, now_s - self.started_s)
        return _ul(self.make_up_rate_ml_h - rate_ml_h, max(0.0, self.make_up_until_s - now_s))


@dataclass(frozen=True)
class DeliveryState:
    """What the supervisor holds the pump to be doing. Doses in mcg/min, rates in mL/h.

    ``dose_mcg_min``/``rate_ml_h``/``running`` are the journaled dose and the rate commanded
    for it; ``status`` the pump's last read-back. While ``uncertain`` a command's outcome is
    unknown: the pump runs ``commanded_dose_mcg_min`` or ``prior_dose_mcg_min``, and only a
    read-back tells which. ``safe_dose_mcg_min`` is the last journaled running dose within the
    limits; ``confirmed_mcg_min`` the highest dose above the soft maximum an operator confirmed
    for this infusion; ``last_up_t_s`` the time of the last up-titration (an unconfirmed one
    counts until a read-back shows it did not happen: then ``prior_last_up_t_s`` is the last
    one again); ``stops`` counts
    the stops made; ``volume_mark`` the (time, delivered mL, commanded mL/h) of the last poll
    that found the pump at its commanded rate; ``probe`` the flow probe under way, if any.
    """

    dose_mcg_min: float = 0.0
    rate_ml_h: float = 0.0
    running: bool = False
    status: PumpStatus | None = None
    uncertain: bool = False
    commanded_dose_mcg_min: float = 0.0
    prior_dose_mcg_min: float = 0.0
    safe_dose_mcg_min: float = 0.0
    confirmed_mcg_min: float = 0.0
    last_up_t_s: float | None = None
    prior_last_up_t_s: float | None = None
    stop_reason: StopReason | None = None
    needs_operator: bool = False
    stops: int = 0
    volume_mark: tuple[float, float, float] | None = None
    probe: Probe | None = None

    @property
    def paused(self) -> bool:
        """A probe holds the running infusion paused."""
        return self.probe is not None and self.probe.paused

    @property
    def pump_rate_ml_h(self) -> float:
        """The rate the pump was last told: the programmed one, or a probe's pause or make-up."""
        probe = self.probe
        if probe is None:
            return self.rate_ml_h
        return 0.0 if probe.paused else probe.make_up_rate_ml_h

    def owed_ul(self, now_s: float) -> float:
        return 0.0 if self.probe is None else self.probe.owed_at(now_s, self.rate_ml_h)


def contract(role: Literal["active", "standby"], pump: Pump, now_s: float) -> PumpContract:
    """S12: what ``pump`` does if this process dies, as its driver states it."""
    capabilities = pump.capabilities
    return PumpContract(t_s=now_s, role=role, host_loss=capabilities.host_loss,
                        host_loss_after_s=capabilities.host_loss_after_s)


def infusing(status: PumpStatus) -> bool:
    return status.state is PumpState.INFUSING and status.rate_ml_h > 0


def same_rate(read_ml_h: float, commanded_ml_h: float) -> bool:
    return abs(read_ml_h - commanded_ml_h) <= max(RATE_READBACK_FLOOR_ML_H,
                                                   RATE_READBACK_TOLERANCE * commanded_ml_h)


class Delivery:
    """Holds ``pump`` (and a ``standby`` for the changeover) and the :class:`DeliveryState`."""

    def __init__(self, pump: Pump, *, limits: DoseLimits, recorder: Recorder,
                 standby: Pump | None = None) -> None:
        self._pump = pump
        self._standby = standby
        self._limits = limits
        self._rec = recorder
        self._state = DeliveryState()
        self._resuming = False

    @property
    def state(self) -> DeliveryState:
        return self._state

    @property
    def capabilities(self) -> PumpCapabilities:
        return self._pump.capabilities

    def contract(self, role: Literal["active", "standby"], now_s: float) -> PumpContract:
        return contract(role, self._pump, now_s)

    @property
    def has_standby(self) -> bool:
        return self._standby is not None

    def _set(self, **changes: object) -> None:
        # dataclasses.replace, without its per-call look at the fields (every tick sets status)
        self._state = DeliveryState(**{**vars(self._state), **changes})

    def _rate_for(self, dose_mcg_min: float) -> float:
        return self._pump.capabilities.deliverable_rate_ml_h(
            rate_ml_h_from_dose(dose_mcg_min, self._limits.conc_mcg_ml))

    # -- reading ------------------------------------------------------------------------------

    def read(self, now_s: float) -> PumpStatus | None:
        """Feed the watchdogs and read the pump; ``None`` (and an alarm) if it cannot be read."""
        try:
            self._pump.heartbeat()
            if self._standby is not None:
                self._standby.heartbeat()
            status = self._pump.status()
        except PumpError as exc:
            self._rec.alarm(AlarmCode.PUMP_DISCONNECTED, f"no answer from the pump: {exc}",
                            now_s)
            return None
        self._rec.clear(AlarmCode.PUMP_DISCONNECTED, now_s)
        self._set(status=status)
        return status

    def settle(self, now_s: float) -> None:
        """Before anything else, find out what an unconfirmed command did (invariant 1)."""
        try:
            status = self._pump.status()
        except PumpError:
            return
        self._set(status=status)
        self.reconcile(status, now_s)

    # -- commanding ---------------------------------------------------------------------------

    def command(self, dose_mcg_min: float, requester: Requester, reason: str, now_s: float, *,
                change: DoseChange, confirmed: bool = False, safety: bool = False,
                previous_mcg_min: float | None = None) -> bool:
        """Journal ``dose_mcg_min`` (> 0; a stop is :meth:`stop`), then command it; ``False``
        if the pump is not running it now.

        A change that cannot be journaled is not sent, unless it is a ``safety`` action (a
        restart or a restore that keeps the patient's delivery within the limits). ``confirmed``
        says an operator confirmed a dose above the soft maximum.
        """
        state = self._state
        previous = state.dose_mcg_min if previous_mcg_min is None else previous_mcg_min
        rate_ml_h = self._rate_for(dose_mcg_min)
        applied = DoseApplied(t_s=now_s, requester=requester, dose_mcg_min=dose_mcg_min,
                              previous_dose_mcg_min=previous, rate_ml_h=rate_ml_h,
                              reason=reason, change=change)
        if not self._rec.record([applied]) and not safety:
            self._rec.record([
                DoseApplied(t_s=now_s, requester=Requester.SUPERVISOR,
                            dose_mcg_min=state.dose_mcg_min, previous_dose_mcg_min=dose_mcg_min,
                            rate_ml_h=state.rate_ml_h if state.running else 0.0,
                            reason="not applied: the change above could not be journaled, so "
                                   "the pump was not told", change=DoseChange.NOT_APPLIED),
                Fault(t_s=now_s, code=FaultCode.NOT_JOURNALED,
                      message=f"{dose_mcg_min:.2f} mcg/min not applied: journal unavailable"),
            ])
            return False
        self._cancel_probe(now_s, "the dose changed")
        self._set(commanded_dose_mcg_min=dose_mcg_min, prior_dose_mcg_min=state.dose_mcg_min)
        try:
            status = self._pump.set_rate(rate_ml_h)
        except PumpRefusedError as exc:
            self._set(commanded_dose_mcg_min=state.dose_mcg_min)
            self._rec.record([Fault(t_s=now_s, code=FaultCode.PUMP_REFUSED, message=str(exc),
                                    detail=f"commanded {rate_ml_h:.3f} mL/h")])
            self._rec.alarm(AlarmCode.PUMP_FAULT, f"the pump refused: {exc}", now_s)
            return False
        except PumpError as exc:
            # Lost reply or broken link: the pump may or may not have acted (LoopKit's
            # "uncertain delivery"); believe only a read-back from now on.
            self._set(uncertain=True, prior_last_up_t_s=state.last_up_t_s)
            if change is DoseChange.TITRATION and dose_mcg_min > previous + DOSE_EPS_MCG_MIN:
                self._set(last_up_t_s=now_s)
            self._rec.record([Fault(t_s=now_s, code=FaultCode.DELIVERY_UNCERTAIN,
                                    message=str(exc), detail=f"commanded {rate_ml_h:.3f} mL/h")])
            self._rec.alarm(AlarmCode.DELIVERY_UNCERTAIN,
                            f"the pump did not confirm {dose_mcg_min:.2f} mcg/min: {exc}", now_s)
            self.settle(now_s)
            return False
        limits = self._limits
        confirmed_mcg_min = state.confirmed_mcg_min
        if confirmed and dose_mcg_min > limits.soft_max:
            confirmed_mcg_min = max(confirmed_mcg_min, dose_mcg_min)
        self._set(status=status, dose_mcg_min=dose_mcg_min, rate_ml_h=rate_ml_h, running=True,
                  safe_dose_mcg_min=dose_mcg_min, confirmed_mcg_min=confirmed_mcg_min,
                  stop_reason=None, needs_operator=False)
        self._note_up(previous, change, now_s)
        if not same_rate(status.rate_ml_h, rate_ml_h):
            self._rec.record([Fault(
                t_s=now_s, code=FaultCode.RATE_READBACK,
                message=f"the pump read back {status.rate_ml_h:.3f} mL/h for a command of "
                        f"{rate_ml_h:.3f} mL/h")])
            self._set(uncertain=True)
            self.reconcile(status, now_s)
        return True

    def _note_up(self, previous_mcg_min: float, change: DoseChange, now_s: float) -> None:
        if change in (DoseChange.TITRATION, DoseChange.ADOPTED) and \
                self._state.dose_mcg_min > previous_mcg_min + DOSE_EPS_MCG_MIN:
            self._set(last_up_t_s=now_s)

    def stop(self, now_s: float, reason: StopReason, *, detail: str = "",
             requester: Requester = Requester.SUPERVISOR) -> None:
        """Stop for ``reason`` (S8-S10, or the last weaning step); journaled even when the
        journal is down (the event stays pending), and never held back by it."""
        self._cancel_probe(now_s, f"stopped: {reason}")
        state = self._state
        self._rec.record([DoseApplied(
            t_s=now_s, requester=requester, dose_mcg_min=0.0,
            previous_dose_mcg_min=state.dose_mcg_min, rate_ml_h=0.0,
            reason=f"stopped: {reason}" + (f" ({detail})" if detail else ""),
            change=DoseChange.STOP, stop_reason=reason,
        )])
        self._set(dose_mcg_min=0.0, rate_ml_h=0.0, running=False, commanded_dose_mcg_min=0.0,
                  prior_dose_mcg_min=state.dose_mcg_min, confirmed_mcg_min=0.0,
                  stop_reason=reason, needs_operator=reason in LATCHING,
                  stops=state.stops + 1)
        if not self._stop_confirmed(self._pump, now_s):
            # Retried by the reconciliation once the pump answers again.
            self._set(uncertain=True)
            self._rec.alarm(AlarmCode.PUMP_FAULT,
                            "the pump did not confirm the stop and cannot be read", now_s)

    def latch(self, reason: StopReason) -> None:
        """A stop reason found while already stopped: an operator must still restart."""
        self._set(stop_reason=reason, needs_operator=True)

    def release(self) -> None:
        """An operator starting again has dealt with the last stop's cause."""
        self._set(stop_reason=None, needs_operator=False)

    def back_off(self, volume_ul: float, now_s: float) -> None:
        """S8: withdraw ``volume_ul`` to release the bolus an occlusion stored in the line."""
        if volume_ul <= 0 or not self._pump.capabilities.can_back_off:
            return
        try:
            self._set(status=self._pump.back_off(volume_ul))
        except PumpError as exc:
            self._rec.record([Fault(t_s=now_s, code=FaultCode.BACK_OFF_FAILED, message=str(exc))])

    def acknowledge_pump_alarm(self, now_s: float) -> None:
        """A pump's own alarm (stall cleared, host timeout) blocks a start until a stop."""
        status = self.read(now_s)
        if status is not None and status.alarm is not None and not status.stalled:
            self._stop_confirmed(self._pump, now_s)

    def _stop_confirmed(self, pump: Pump, now_s: float) -> bool:
        """Stop ``pump``; a lost reply is settled by reading the pump back once."""
        try:
            status = pump.stop()
            if pump is self._pump:
                self._set(status=status)
            return True
        except PumpError as exc:
            self._rec.record([Fault(t_s=now_s, code=FaultCode.STOP_FAILED, message=str(exc))])
        try:
            return pump.status().state is not PumpState.INFUSING
        except PumpError:
            return False

    # -- flow probes (S8, S9) -----------------------------------------------------------------

    def pause(self, request: ProbeRequest, now_s: float) -> bool:
        """Pause the running infusion for ``request`` (the caller judged it allowed): journaled
        first, and not made if it cannot be journaled. ``True`` once the pump paused."""
        state = self._state
        carried_ul = state.owed_ul(now_s)
        volume_ul = _ul(state.rate_ml_h, request.pause_s)
        share = volume_ul / (state.rate_ml_h * UL_PER_ML) * 100.0
        carried = (f", with {carried_ul:.1f} µL the last probe still owed" if carried_ul
                   else "")
        if not self._rec.record([FlowProbe(
                t_s=now_s, phase="pause", cause=request.cause, rate_ml_h=0.0,
                volume_ul=volume_ul,
                reason=f"{request.message}; pause {request.pause_s:.0f} s ({share:.2f} % of the "
                       f"hourly dose, made up afterwards{carried})")]):
            return False
        self._set(probe=Probe(request.cause, now_s, request.pause_s, carried_ul))
        try:
            self._set(status=self._pump.stop())
        except PumpError as exc:
            self._probe_failed(now_s, exc)
            return False
        return True

    def advance_probe(self, now_s: float) -> None:
        """End the pause when it is due (make-up begins), and the make-up once it is done."""
        state = self._state
        probe = state.probe
        if probe is None:
            return
        if probe.make_up_until_s is None:
            if now_s >= probe.started_s + probe.pause_s:
                self._make_up(probe, now_s)
        elif now_s >= probe.make_up_until_s:
            self._set(probe=None)
            # The return to the running dose goes ahead even with the journal down.
            self._rec.record([FlowProbe(
                t_s=now_s, phase="made-up", cause=probe.cause, rate_ml_h=state.rate_ml_h,
                volume_ul=probe.owed_ul, reason="the paused volume is made up")])
            self._probe_rate(state.rate_ml_h, now_s)

    def _make_up(self, probe: Probe, now_s: float) -> None:
        """Run again above the programmed rate until the paused volume is made up: within the
        limits an operator programmed (the soft maximum, or the dose itself above it)."""
        state, limits = self._state, self._limits
        owed_ul = probe.owed_at(now_s, state.rate_ml_h)
        ceiling_mcg_min = min(limits.hard_max, max(limits.soft_max, state.dose_mcg_min))
        capabilities = self._pump.capabilities
        rate_ml_h = capabilities.deliverable_rate_ml_h(min(
            state.rate_ml_h * (1 + PROBE_MAKE_UP_FRACTION),
            rate_ml_h_from_dose(ceiling_mcg_min, limits.conc_mcg_ml),
            capabilities.max_rate_ml_h))
        extra_ml_h = rate_ml_h - state.rate_ml_h
        if extra_ml_h <= 0:
            # At the limit already: nothing above the programmed rate may make it up.
            rate_ml_h, make_up_s = state.rate_ml_h, 0.0
            reason = f"pause over: {owed_ul:.1f} µL not made up (the dose is at its limit)"
        else:
            make_up_s = owed_ul * 3.6 / extra_ml_h
            reason = f"pause over: making up {owed_ul:.1f} µL in {make_up_s:.0f} s"
        self._set(probe=replace(probe, owed_ul=owed_ul, make_up_rate_ml_h=rate_ml_h,
                                make_up_until_s=now_s + make_up_s))
        self._rec.record([FlowProbe(t_s=now_s, phase="make-up", cause=probe.cause,
                                    rate_ml_h=rate_ml_h, volume_ul=owed_ul, reason=reason)])
        self._probe_rate(rate_ml_h, now_s)

    def _probe_rate(self, rate_ml_h: float, now_s: float) -> None:
        try:
            self._set(status=self._pump.set_rate(rate_ml_h))
        except PumpError as exc:
            self._probe_failed(now_s, exc)

    def _probe_failed(self, now_s: float, exc: PumpError) -> None:
        """A probe's command the pump did not confirm: back to the running dose."""
        self._rec.record([Fault(t_s=now_s, code=FaultCode.PROBE_FAILED, message=str(exc))])
        self._cancel_probe(now_s, "the pump did not confirm the probe's command")
        self.command(self._state.dose_mcg_min, Requester.SUPERVISOR,
                     "flow probe failed: back to the running dose", now_s,
                     change=DoseChange.RESUMED, safety=True)

    def _cancel_probe(self, now_s: float, why: str) -> None:
        state = self._state
        probe = state.probe
        if probe is None:
            return
        owed_ul = state.owed_ul(now_s)
        self._set(probe=None)
        self._rec.record([FlowProbe(
            t_s=now_s, phase="cancelled", cause=probe.cause, rate_ml_h=state.rate_ml_h,
            volume_ul=owed_ul, reason=f"{why}: {owed_ul:.1f} µL not made up")])

    # -- the second pump ----------------------------------------------------------------------

    def set_standby(self, pump: Pump) -> None:
        self._standby = pump

    def change_over(self, now_s: float) -> bool:
        """S10: hand the running dose to the standby pump in one step (no gap, no overlap)."""
        standby = self._standby
        state = self._state
        if standby is None:
            return False
        self._cancel_probe(now_s, "changeover to the second pump")
        rate_ml_h = standby.capabilities.deliverable_rate_ml_h(
            rate_ml_h_from_dose(state.dose_mcg_min, self._limits.conc_mcg_ml))
        # Continuity of the running dose: carried out even when the journal is down.
        self._rec.record([DoseApplied(
            t_s=now_s, requester=Requester.SUPERVISOR, dose_mcg_min=state.dose_mcg_min,
            previous_dose_mcg_min=state.dose_mcg_min, rate_ml_h=rate_ml_h,
            reason="changeover: the second pump takes over the running dose",
            change=DoseChange.CHANGEOVER,
        )])
        try:
            status = standby.set_rate(rate_ml_h)
        except PumpError as exc:
            self._rec.record([Fault(t_s=now_s, code=FaultCode.CHANGEOVER_FAILED,
                                    message=str(exc))])
            self._standby = None
            return False
        if not self._stop_confirmed(self._pump, now_s):
            self._rec.alarm(AlarmCode.PUMP_FAULT,
                            "the emptied pump did not confirm its stop after the changeover: both "
                            "pumps may be infusing", now_s)
        self._pump, self._standby = standby, None
        self._set(status=status, rate_ml_h=rate_ml_h)
        self._rec.clear(AlarmCode.SYRINGE_NEAR_EMPTY, now_s)
        self._rec.alarm(AlarmCode.CHANGEOVER,
                        "the second pump took over; replace the empty syringe (no spare pump now)",
                        now_s, momentary=True)
        return True

    def close(self) -> None:
        self._pump.close()
        if self._standby is not None:
            self._standby.close()

    # -- reconciliation -----------------------------------------------------------------------

    def resume(self, journal: ResumeState, now_s: float) -> str:
        """S13: take the journal's last dose as commanded but unconfirmed, then let the pump's
        read-back settle it. Returns what was found, for the restart alarm."""
        dose = journal.dose_mcg_min
        prior = dose if journal.previous_dose_mcg_min is None else journal.previous_dose_mcg_min
        limits = self._limits
        self._set(dose_mcg_min=dose, rate_ml_h=self._rate_for(dose), running=dose > 0,
                  uncertain=True, commanded_dose_mcg_min=dose, prior_dose_mcg_min=prior,
                  safe_dose_mcg_min=dose if 0 < dose <= limits.hard_max else 0.0,
                  # A journaled dose passed the rules: over the soft maximum it was confirmed.
                  confirmed_mcg_min=dose if dose > limits.soft_max else 0.0,
                  # No up-titration right after a restart: the old interval's clock is gone.
                  last_up_t_s=now_s, stop_reason=journal.stop_reason,
                  needs_operator=journal.stop_reason in LATCHING)
        status = self.read(now_s)
        if status is None:
            return (f"the pump cannot be read: holding the journal's {dose:.2f} mcg/min until "
                    "it answers")
        self._resuming = True
        try:
            self.reconcile(status, now_s)
        finally:
            self._resuming = False
        state = self._state
        if state.running:
            return f"resumed at {state.dose_mcg_min:.2f} mcg/min"
        return f"resumed stopped ({state.stop_reason or 'never started'})"

    def reconcile(self, status: PumpStatus, now_s: float) -> None:
        """Compare the pump's read-back with what was commanded and with the drug library."""
        if status.delivery_uncertain:
            return  # the pump itself does not know yet; ask again next time
        if self._state.uncertain:
            self._set(uncertain=False)
            self._rec.clear(AlarmCode.DELIVERY_UNCERTAIN, now_s)
            if self._settled(status, now_s):
                return
        else:
            self._rec.clear(AlarmCode.DELIVERY_UNCERTAIN, now_s)
        state = self._state
        if state.paused and status.state is PumpState.STOPPED and status.alarm is None:
            return  # a probe's pause, as commanded
        if state.running and not infusing(status):
            if status.state is PumpState.BACKING_OFF:
                self._uncommanded(status, now_s, "the pump is withdrawing")
            else:
                self._stopped_by_itself(status, now_s)
        elif infusing(status) and (not state.running
                                   or not same_rate(status.rate_ml_h, state.pump_rate_ml_h)):
            self._uncommanded(status, now_s, "")
        elif state.running:
            self._check_volume(status, now_s)

    def _check_volume(self, status: PumpStatus, now_s: float) -> None:
        """The volume the pump says it delivered since the last poll, against its rate: more
        is a bolus nobody commanded (a purge at its keys). Alarmed; what is in is in."""
        mark = self._state.volume_mark
        rate_now_ml_h = self._state.pump_rate_ml_h
        self._set(volume_mark=(status.t_s, status.delivered_ml, rate_now_ml_h))
        if mark is None or mark[2] != rate_now_ml_h:
            return
        t0_s, delivered0_ml, rate_ml_h = mark
        moved_ml = status.delivered_ml - delivered0_ml
        expected_ml = rate_ml_h * max(0.0, status.t_s - t0_s) / 3600.0
        excess_ml = moved_ml - expected_ml
        if excess_ml <= max(VOLUME_SLACK_ML, VOLUME_SLACK_FRACTION * expected_ml):
            return
        message = (f"the pump delivered {moved_ml:.2f} mL in {status.t_s - t0_s:.0f} s, "
                   f"{excess_ml:.2f} mL more than its rate of {rate_ml_h:.3f} mL/h: a bolus "
                   "not commanded by vasopilot")
        self._rec.alarm(AlarmCode.PUMP_UNCOMMANDED, message, now_s, momentary=True)
        self._rec.record([Fault(t_s=now_s, code=FaultCode.UNCOMMANDED_STATE, message=message,
                                detail=f"delivered_ml={status.delivered_ml:.3f}")])

    def _settled(self, status: PumpStatus, now_s: float) -> bool:
        """After an unconfirmed command: a stop the pump has not made is sent again (the
        decision to stop stands); otherwise the pump runs the command, or the dose before it
        (believed, journaled even when unchanged so the journal's last dose is the pump's real
        one). Anything else is not settled here."""
        state = self._state
        running = infusing(status)
        if state.commanded_dose_mcg_min == 0 and running and state.stop_reason is not None:
            self._rec.record([Fault(
                t_s=now_s, code=FaultCode.STOP_RESENT,
                message=f"the pump still infuses after a stop for {state.stop_reason}: "
                        "stopping it again")])
            if not self._stop_confirmed(self._pump, now_s):
                self._set(uncertain=True)
            return True
        candidates = [state.commanded_dose_mcg_min]
        if state.prior_dose_mcg_min != state.commanded_dose_mcg_min:
            candidates.append(state.prior_dose_mcg_min)
        for dose in candidates:
            if dose > self._limits.hard_max:
                continue
            if dose > 0 and running and same_rate(status.rate_ml_h, self._rate_for(dose)):
                self._believe(dose, status.rate_ml_h, now_s)
                return True
            # A stopped pump shows a stop only without an alarm of its own: with one, it
            # stopped itself (and a restart, not belief, is due).
            # At a restart a journaled dose > 0 against a silent stop is a host loss, not a
            # start that never happened.
            if dose == 0 and not running and status.alarm is None \
                    and status.state is not PumpState.BACKING_OFF \
                    and not (self._resuming and state.commanded_dose_mcg_min > 0):
                self._believe(0.0, 0.0, now_s)
                return True
        return False

    def _believe(self, dose_mcg_min: float, rate_ml_h: float, now_s: float) -> None:
        state = self._state
        self._rec.record([DoseApplied(
            t_s=now_s, requester=Requester.SUPERVISOR, dose_mcg_min=dose_mcg_min,
            previous_dose_mcg_min=state.dose_mcg_min, rate_ml_h=rate_ml_h,
            reason="reconciled with the pump's read-back after an unconfirmed command",
            change=DoseChange.RECONCILED,
        )])
        running = dose_mcg_min > 0
        # The command never happened: neither did its up-step.
        last_up_t_s = state.last_up_t_s if dose_mcg_min == state.commanded_dose_mcg_min \
            else state.prior_last_up_t_s
        self._set(dose_mcg_min=dose_mcg_min, rate_ml_h=rate_ml_h, running=running,
                  commanded_dose_mcg_min=dose_mcg_min, prior_dose_mcg_min=dose_mcg_min,
                  safe_dose_mcg_min=dose_mcg_min if running else state.safe_dose_mcg_min,
                  last_up_t_s=last_up_t_s)

    def _stopped_by_itself(self, status: PumpStatus, now_s: float) -> None:
        state = self._state
        silent_host_loss = status.alarm is None and (
            self._resuming or self._pump.capabilities.host_loss is HostLossBehaviour.STOPS_SILENTLY)
        if status.alarm is PumpAlarm.HOST_TIMEOUT or silent_host_loss:
            # A restart after a host loss, exactly as a process restart does (S12, S13).
            self._rec.alarm(
                AlarmCode.HOST_TIMEOUT,
                f"the pump stopped itself while it had no host ({status.state}, alarm "
                f"{status.alarm or 'none'}); restarted at the last safe dose of "
                f"{state.dose_mcg_min:.2f} mcg/min", now_s, momentary=True)
            self.acknowledge_pump_alarm(now_s)
            self.command(state.dose_mcg_min, Requester.SUPERVISOR,
                         "restarted at the last safe dose: the pump had stopped itself without "
                         "its host", now_s, change=DoseChange.RESUMED, safety=True)
            return
        if status.alarm is None:
            message = (f"the pump was stopped at the pump, not by vasopilot (it ran "
                       f"{state.dose_mcg_min:.2f} mcg/min): taken as an operator's stop; an "
                       "operator restarts it")
            self._rec.alarm(AlarmCode.PUMP_UNCOMMANDED, message, now_s, momentary=True)
            self._rec.record([Fault(t_s=now_s, code=FaultCode.UNCOMMANDED_STATE,
                                    message=message, detail=f"state={status.state}")])
            self.stop(now_s, StopReason.OPERATOR, detail="at the pump",
                      requester=Requester.OPERATOR)
            return
        self._rec.alarm(AlarmCode.PUMP_FAULT,
                        f"the pump stopped by itself ({status.state}, alarm {status.alarm})",
                        now_s)
        self.stop(now_s, StopReason.PUMP_FAULT, detail=f"pump alarm {status.alarm}")

    def _uncommanded(self, status: PumpStatus, now_s: float, what: str) -> None:
        state, limits = self._state, self._limits
        pump_dose = dose_for_rate(status.rate_ml_h, limits) if infusing(status) else 0.0
        held = (f"vasopilot holds {state.dose_mcg_min:.2f} mcg/min" if state.running
                else "vasopilot had it stopped")
        seen = what or (f"the pump runs {status.rate_ml_h:.3f} mL/h "
                        f"({pump_dose:.2f} mcg/min)")
        detail = (f"state={status.state} rate_ml_h={status.rate_ml_h:.3f} "
                  f"commanded_ml_h={state.rate_ml_h if state.running else 0.0:.3f}")
        if what or limits.above_limits(pump_dose, state.confirmed_mcg_min):
            bound = "hard" if pump_dose > limits.hard_max else "soft"
            if state.safe_dose_mcg_min > 0:
                target, whence = state.safe_dose_mcg_min, "the last journaled safe dose"
            else:
                target, whence = limits.start_max, (
                    "no safe dose journaled: the top of the drug's start range")
            why = what or f"above the {bound} maximum"
            message = (f"{seen}, not commanded ({held}): {why}; brought back to "
                       f"{target:.2f} mcg/min ({whence})")
            self._rec.alarm(AlarmCode.PUMP_UNCOMMANDED, message, now_s, momentary=True)
            self._rec.record([Fault(t_s=now_s, code=FaultCode.UNCOMMANDED_STATE,
                                    message=message, detail=detail)])
            self.command(target, Requester.SUPERVISOR, message, now_s,
                         change=DoseChange.RESTORED, safety=True, previous_mcg_min=pump_dose)
            return
        message = (f"{seen}, not commanded ({held}): within the limits, taken as an operator's "
                   "change at the pump")
        self._rec.alarm(AlarmCode.PUMP_UNCOMMANDED, message, now_s, momentary=True)
        self._rec.record([
            Fault(t_s=now_s, code=FaultCode.UNCOMMANDED_STATE, message=message, detail=detail),
            DoseApplied(t_s=now_s, requester=Requester.OPERATOR, dose_mcg_min=pump_dose,
                        previous_dose_mcg_min=state.dose_mcg_min, rate_ml_h=status.rate_ml_h,
                        reason=message, change=DoseChange.ADOPTED),
        ])
        self._set(dose_mcg_min=pump_dose, rate_ml_h=status.rate_ml_h, running=True,
                  commanded_dose_mcg_min=pump_dose, prior_dose_mcg_min=pump_dose,
                  safe_dose_mcg_min=pump_dose, stop_reason=None, needs_operator=False)
        self._note_up(state.dose_mcg_min, DoseChange.ADOPTED, now_s)
