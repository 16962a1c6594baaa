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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from safety.alarms import AlarmCode
from safety.limits import DOSE_EPS_MCG_MIN, DoseLimits, dose_for_rate
from safety.record import Recorder
from safety.resume import ResumeState
from vasopilot.core.errors import PumpError, PumpRefusedError
from vasopilot.core.events import (
    DoseApplied,
    DoseChange,
    Fault,
    FaultCode,
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
from vasopilot.core.units import rate_ml_h_from_dose

# A read-back within 1 % (and a pump's last digit) of the command is the command.
RATE_READBACK_TOLERANCE = 0.01
RATE_READBACK_FLOOR_ML_H = 1e-3
# Volume the pump may report delivered beyond its commanded rate before it is an uncommanded
# bolus (a purge at its keys): counter resolution and a poll's timing stay well under this.
VOLUME_SLACK_ML = 0.05
VOLUME_SLACK_FRACTION = 0.5
# Stops that an operator must clear before anything restarts the infusion.
LATCHING = frozenset(StopReason) - {StopReason.WEANED}


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
    that found the pump at its commanded rate.
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
        self._state = replace(self._state, **changes)  # type: ignore[arg-type]

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

    # -- the second pump ----------------------------------------------------------------------

    def set_standby(self, pump: Pump) -> None:
        self._standby = pump

    def change_over(self, now_s: float) -> bool:
        """S10: hand the running dose to the standby pump in one step (no gap, no overlap)."""
        standby = self._standby
        state = self._state
        if standby is None:
            return False
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
        if state.running and not infusing(status):
            if status.state is PumpState.BACKING_OFF:
                self._uncommanded(status, now_s, "the pump is withdrawing")
            else:
                self._stopped_by_itself(status, now_s)
        elif infusing(status) and (not state.running
                                   or not same_rate(status.rate_ml_h, state.rate_ml_h)):
            self._uncommanded(status, now_s, "")
        elif state.running:
            self._check_volume(status, now_s)

    def _check_volume(self, status: PumpStatus, now_s: float) -> None:
        """The volume the pump says it delivered since the last poll, against its rate: more
        is a bolus nobody commanded (a purge at its keys). Alarmed; what is in is in."""
        mark = self._state.volume_mark
        self._set(volume_mark=(status.t_s, status.delivered_ml, self._state.rate_ml_h))
        if mark is None or mark[2] != self._state.rate_ml_h:
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
