"""``Supervisor``: the only holder of the pump and the only path to a rate (DESIGN invariant 1).

Every input arrives through a method that takes the current time (``now_s``) as an argument;
nothing here reads a clock. Every decision is written to the event sink (the journal, which
commits dose changes and alarms synchronously) *before* the pump is told to act (S14).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from safety.alarms import Alarm, AlarmCode, AlarmManager
from safety.limits import (
    DoseLimits,
    Verdict,
    check_deliverable,
    check_hard_and_soft,
    dose_for_rate,
    slew_limit,
)
from vasopilot.core.config import DrugEntry, PatientSettings, SafetySettings, SyringeSpec
from vasopilot.core.errors import PumpError, UncertainDeliveryError
from vasopilot.core.events import (
    DoseApplied,
    DoseRefused,
    DoseRequested,
    Event,
    Fault,
    OperatorAction,
)
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import (
    Beat,
    DoseRequest,
    LineSignals,
    Priority,
    PumpState,
    PumpStatus,
    Requester,
)
from vasopilot.core.units import rate_ml_h_from_dose


class EventSink(Protocol):
    """Where the supervisor records what it decides; ``append`` returns once it is durable."""

    def append(self, event: Event) -> Event: ...


@dataclass(frozen=True)
class Decision:
    """The outcome of a request: the dose now running, and why."""

    applied: bool
    dose_mcg_min: float
    reason: str
    code: str | None = None


@dataclass(frozen=True)
class AlarmSnapshot:
    code: str
    priority: Priority
    message: str
    acknowledged: bool
    silenced: bool


@dataclass(frozen=True)
class SupervisorView:
    """A read-only picture of the supervisor, for controllers, telemetry and the CLI."""

    t_s: float
    running: bool
    dose_mcg_min: float
    rate_ml_h: float
    map_trusted: bool
    last_good_map_mmhg: float | None
    last_good_beat_t_s: float | None
    last_beat_quality: str | None
    target_map_mmhg: float
    lower_limit_mmhg: float
    pump: PumpStatus | None
    alarms: tuple[AlarmSnapshot, ...]
    stop_reason: str | None
    needs_operator: bool
    time_left_min: float | None


class Supervisor:
    """Enforces the drug library, slew limits, stale-data hold, stops and alarms.

    ``drug`` and ``patient`` give the limits (converted to mcg/min once), ``syringe`` the
    compliance used to size the occlusion back-off, ``sink`` the durable journal.
    """

    def __init__(
        self,
        pump: Pump,
        *,
        drug: DrugEntry,
        patient: PatientSettings,
        safety: SafetySettings,
        syringe: SyringeSpec,
        sink: EventSink,
    ) -> None:
        self._pump = pump
        self._limits = DoseLimits.from_entry(drug, patient.weight_kg)
        self._patient = patient
        self._safety = safety
        self._syringe = syringe
        self._sink = sink
        self._alarms = AlarmManager(safety.silence_max_s)
        self._dose_mcg_min = 0.0
        self._running = False
        self._last_up_t_s: float | None = None
        self._stop_reason: str | None = None
        self._needs_operator = False
        self._last_good_beat: Beat | None = None
        self._last_beat: Beat | None = None
        self._status: PumpStatus | None = None
        self._t_s = 0.0

    # -- read-only picture -------------------------------------------------------------------

    @property
    def limits(self) -> DoseLimits:
        return self._limits

    @property
    def alarms(self) -> Sequence[Alarm]:
        return self._alarms.active()

    def view(self, now_s: float | None = None) -> SupervisorView:
        t_s = self._t_s if now_s is None else now_s
        good = self._last_good_beat
        rate_ml_h = self._status.rate_ml_h if self._status else 0.0
        return SupervisorView(
            t_s=t_s,
            running=self._running,
            dose_mcg_min=self._dose_mcg_min,
            rate_ml_h=rate_ml_h,
            map_trusted=self._map_trusted(t_s),
            last_good_map_mmhg=good.map_mmhg if good else None,
            last_good_beat_t_s=good.t_s if good else None,
            last_beat_quality=self._last_beat.quality if self._last_beat else None,
            target_map_mmhg=self._patient.target_map_mmhg,
            lower_limit_mmhg=self._patient.lower_limit_mmhg,
            pump=self._status,
            alarms=tuple(
                AlarmSnapshot(a.code, a.priority, a.message, a.acknowledged, not a.audible(t_s))
                for a in self._alarms.active()
            ),
            stop_reason=self._stop_reason,
            needs_operator=self._needs_operator,
            time_left_min=self._time_left_min(),
        )

    # -- operator actions --------------------------------------------------------------------

    def start(
        self,
        dose_mcg_min: float,
        now_s: float,
        *,
        by: str = "operator",
        soft_limit_confirmed: bool = False,
    ) -> Decision:
        """Start (or restart after a latched stop) at a starting dose: an operator's act."""
        self._t_s = now_s
        self._record([OperatorAction(t_s=now_s, action="start", by=by,
                                     detail=f"{dose_mcg_min:.2f} mcg/min")])
        if self._running:
            return self.request(
                DoseRequest(dose_mcg_min, Requester.OPERATOR, "start while running",
                            soft_limit_confirmed, by),
                now_s,
            )
        self._needs_operator = False
        self._stop_reason = None
        return self._decide(
            DoseRequest(dose_mcg_min, Requester.OPERATOR, "start", soft_limit_confirmed, by),
            now_s,
            starting=True,
        )

    def operator_stop(self, now_s: float, *, by: str = "operator", reason: str = "") -> None:
        """S10: an operator's stop is immediate and needs an operator to restart."""
        self._t_s = now_s
        self._record([OperatorAction(t_s=now_s, action="stop", by=by, detail=reason)])
        self._stop_pump(now_s, "operator stop", needs_operator=True)

    def acknowledge(self, code: str, now_s: float, *, by: str = "operator") -> None:
        self._t_s = now_s
        self._record(self._alarms.acknowledge(code, now_s, by))

    def silence(self, code: str, now_s: float, *, by: str = "operator") -> None:
        self._t_s = now_s
        self._record(self._alarms.silence(code, now_s, by=by))

    # -- requests ------------------------------------------------------------------------------

    def request(self, req: DoseRequest, now_s: float) -> Decision:
        """A dose change from the operator, a controller or a remote user."""
        self._t_s = now_s
        return self._decide(req, now_s, starting=False)

    def _decide(self, req: DoseRequest, now_s: float, *, starting: bool) -> Decision:
        self._record([DoseRequested(
            t_s=now_s, requester=req.requester, dose_mcg_min=req.dose_mcg_min,
            reason=req.reason, sender=req.sender, soft_limit_confirmed=req.soft_limit_confirmed,
        )])
        refusal = self._refusal(req, now_s, starting)
        if refusal is not None:
            return self._refuse(req, now_s, refusal)
        verdict = slew_limit(
            req.dose_mcg_min,
            self._dose_mcg_min,
            self._limits,
            starting=starting,
            since_last_up_s=None if self._last_up_t_s is None else now_s - self._last_up_t_s,
            confirmed=req.soft_limit_confirmed,
        )
        if verdict.refused:
            return self._refuse(req, now_s, verdict)
        undeliverable = check_deliverable(verdict.dose_mcg_min, self._limits,
                                          self._pump.capabilities)
        if undeliverable is not None:
            return self._refuse(req, now_s, undeliverable)
        if not starting and verdict.dose_mcg_min == self._dose_mcg_min:
            return Decision(True, self._dose_mcg_min, "no change")
        return self._apply(req, verdict, now_s, starting)

    def _refusal(self, req: DoseRequest, now_s: float, starting: bool) -> Verdict | None:
        if self._needs_operator and not (starting and req.requester is Requester.OPERATOR):
            return Verdict(self._dose_mcg_min,
                           f"stopped for {self._stop_reason}: only an operator may restart",
                           "STOPPED")
        if not starting and not self._running:
            return Verdict(0.0, "the infusion is not running: an operator must start it",
                           "NOT_RUNNING")
        limit = check_hard_and_soft(req.dose_mcg_min, self._limits, req.soft_limit_confirmed)
        if limit is not None:
            if limit.code == "HARD_MAX":
                self._record(self._alarms.raise_alarm(
                    AlarmCode.HARD_LIMIT_REFUSED, Priority.LOW, limit.reason, now_s))
            return limit
        automatic = req.requester is not Requester.OPERATOR
        trusted = self._map_trusted(now_s)
        if automatic and not trusted:
            quality = self._last_beat.quality if self._last_beat else "no beats"
            return Verdict(self._dose_mcg_min,
                           f"no trusted MAP in the last {self._safety.stale_after_s:.0f} s "
                           f"(last beat: {quality}): dose held", "MAP_UNTRUSTED")
        if trusted and self._last_good_beat is not None:
            map_mmhg = self._last_good_beat.map_mmhg
            high = self._patient.target_map_mmhg + self._safety.map_high_margin_mmhg
            if req.dose_mcg_min > self._dose_mcg_min and map_mmhg >= high:
                return Verdict(self._dose_mcg_min,
                               f"MAP {map_mmhg:.0f} mmHg is at or above {high:.0f} mmHg: "
                               "no increase", "MAP_HIGH")
            if req.dose_mcg_min < self._dose_mcg_min and map_mmhg < self._patient.lower_limit_mmhg:
                return Verdict(self._dose_mcg_min,
                               f"MAP {map_mmhg:.0f} mmHg is below the lower limit of "
                               f"{self._patient.lower_limit_mmhg:.0f} mmHg: no decrease",
                               "MAP_LOW")
        return None

    def _refuse(self, req: DoseRequest, now_s: float, verdict: Verdict) -> Decision:
        code = verdict.code or "REFUSED"
        self._record([DoseRefused(
            t_s=now_s, requester=req.requester, requested_dose_mcg_min=req.dose_mcg_min,
            code=code, reason=verdict.reason, sender=req.sender,
        )])
        return Decision(False, self._dose_mcg_min, verdict.reason, code)

    def _apply(self, req: DoseRequest, verdict: Verdict, now_s: float, starting: bool) -> Decision:
        previous = self._dose_mcg_min
        dose = verdict.dose_mcg_min
        rate_ml_h = self._pump.capabilities.deliverable_rate_ml_h(
            rate_ml_h_from_dose(dose, self._limits.conc_mcg_ml))
        try:
            status = self._pump.set_rate(rate_ml_h) if dose > 0 else self._pump.stop()
        except UncertainDeliveryError as exc:
            self._record(self._alarms.raise_alarm(
                AlarmCode.DELIVERY_UNCERTAIN, Priority.MEDIUM,
                f"the pump did not confirm {dose:.2f} mcg/min: {exc}", now_s))
            self._reconcile(now_s)
            return Decision(False, self._dose_mcg_min, f"delivery uncertain: {exc}",
                            "UNCERTAIN")
        except PumpError as exc:
            self._record([Fault(t_s=now_s, code="PUMP_ERROR", message=str(exc))])
            self._record(self._alarms.raise_alarm(
                AlarmCode.PUMP_FAULT, Priority.HIGH, f"pump refused or failed: {exc}", now_s))
            return Decision(False, self._dose_mcg_min, f"pump error: {exc}", "PUMP_ERROR")
        self._status = status
        self._dose_mcg_min = dose
        self._running = dose > 0
        if dose > previous and not starting:
            self._last_up_t_s = now_s
        self._record([DoseApplied(
            t_s=now_s, requester=req.requester, dose_mcg_min=dose,
            previous_dose_mcg_min=previous, rate_ml_h=status.rate_ml_h, reason=verdict.reason,
        )])
        return Decision(True, dose, verdict.reason)

    # -- inputs --------------------------------------------------------------------------------

    def on_beat(self, beat: Beat, now_s: float) -> None:
        self._t_s = now_s
        self._last_beat = beat
        if beat.is_good:
            self._last_good_beat = beat

    def on_line_signals(self, signals: LineSignals, now_s: float) -> None:
        self._t_s = now_s
        if signals.stall:
            self._occlusion(now_s, "motor stall signal", signals.line_pressure_mmhg)
        elif signals.line_pressure_mmhg is not None:
            self._check_pressure(signals.line_pressure_mmhg, now_s)

    def tick(self, now_s: float) -> None:
        """The fast supervision tick: feed the pump's watchdog, read its status, check data."""
        self._t_s = now_s
        try:
            self._pump.heartbeat()
            status = self._pump.status()
        except PumpError as exc:
            self._record(self._alarms.raise_alarm(
                AlarmCode.PUMP_DISCONNECTED, Priority.HIGH, f"no answer from the pump: {exc}",
                now_s))
            return
        self._record(self._alarms.cause_gone(AlarmCode.PUMP_DISCONNECTED, now_s))
        self._status = status
        if status.delivery_uncertain:
            self._reconcile(now_s)
        if self._running:
            if status.stalled:
                self._occlusion(now_s, "pump reports a stalled motor", status.line_pressure_mmhg)
            elif status.end_of_travel or status.syringe_remaining_ml <= 0:
                self._syringe_empty(now_s)
            elif status.line_pressure_mmhg is not None:
                self._check_pressure(status.line_pressure_mmhg, now_s)
        self._check_near_empty(now_s)
        self._check_map_freshness(now_s)

    # -- detectors and stops -------------------------------------------------------------------

    def _map_trusted(self, now_s: float) -> bool:
        good = self._last_good_beat
        return good is not None and now_s - good.t_s < self._safety.stale_after_s

    def _check_map_freshness(self, now_s: float) -> None:
        if self._map_trusted(now_s):
            self._record(self._alarms.cause_gone(AlarmCode.MAP_STALE, now_s))
            return
        since = self._last_good_beat.t_s if self._last_good_beat else None
        age_s = None if since is None else now_s - since
        quality = self._last_beat.quality if self._last_beat else "no beats"
        if age_s is None or age_s >= self._safety.stale_high_after_s:
            priority = Priority.HIGH
        else:
            priority = Priority.MEDIUM
        age = "ever" if age_s is None else f"{age_s:.0f} s"
        self._record(self._alarms.raise_alarm(
            AlarmCode.MAP_STALE, priority,
            f"no trusted MAP for {age} (last beat: {quality}); dose held at "
            f"{self._dose_mcg_min:.1f} mcg/min", now_s))

    def _check_pressure(self, pressure_mmhg: float, now_s: float) -> None:
        level = self._safety.occlusion_level
        threshold = self._safety.occlusion_thresholds_mmhg[level]
        if self._running and pressure_mmhg >= threshold:
            self._occlusion(now_s, f"line pressure {pressure_mmhg:.0f} mmHg over the {level} "
                            f"threshold of {threshold:.0f} mmHg", pressure_mmhg)

    def _occlusion(self, now_s: float, cause: str, pressure_mmhg: float | None) -> None:
        """S8: stop, release the stored bolus by backing off, latch a high alarm."""
        if not self._running:
            return
        self._record(self._alarms.raise_alarm(
            AlarmCode.OCCLUSION, Priority.HIGH, f"occlusion: {cause}; infusion stopped", now_s))
        self._stop_pump(now_s, "occlusion", needs_operator=True)
        stored_ul = self._syringe.compliance_ul_per_mmhg * max(0.0, (pressure_mmhg or 0.0))
        if stored_ul > 0 and self._pump.capabilities.can_back_off:
            try:
                self._status = self._pump.back_off(stored_ul)
            except PumpError as exc:
                self._record([Fault(t_s=now_s, code="BACK_OFF_FAILED", message=str(exc))])

    def _syringe_empty(self, now_s: float) -> None:
        self._record(self._alarms.raise_alarm(
            AlarmCode.SYRINGE_EMPTY, Priority.HIGH, "syringe empty: infusion stopped", now_s))
        self._stop_pump(now_s, "empty syringe", needs_operator=True)

    def _check_near_empty(self, now_s: float) -> None:
        left_min = self._time_left_min()
        if self._running and left_min is not None and left_min <= self._safety.near_empty_min:
            self._record(self._alarms.raise_alarm(
                AlarmCode.SYRINGE_NEAR_EMPTY, Priority.MEDIUM,
                f"syringe near empty: {left_min:.0f} min of infusion left", now_s))
        else:
            self._record(self._alarms.cause_gone(AlarmCode.SYRINGE_NEAR_EMPTY, now_s))

    def _time_left_min(self) -> float | None:
        status = self._status
        if status is None or status.rate_ml_h <= 0:
            return None
        return status.syringe_remaining_ml / status.rate_ml_h * 60.0

    def _stop_pump(self, now_s: float, reason: str, *, needs_operator: bool) -> None:
        previous = self._dose_mcg_min
        self._running = False
        self._dose_mcg_min = 0.0
        self._stop_reason = reason
        self._needs_operator = needs_operator
        self._record([DoseApplied(
            t_s=now_s, requester=Requester.SUPERVISOR, dose_mcg_min=0.0,
            previous_dose_mcg_min=previous, rate_ml_h=0.0, reason=f"stopped: {reason}",
        )])
        try:
            self._status = self._pump.stop()
        except PumpError as exc:
            self._record([Fault(t_s=now_s, code="STOP_FAILED", message=str(exc))])
            self._record(self._alarms.raise_alarm(
                AlarmCode.PUMP_FAULT, Priority.HIGH, f"the pump did not confirm the stop: {exc}",
                now_s))

    def _reconcile(self, now_s: float) -> None:
        """After a lost acknowledgement, believe the pump's read-back over our own wish."""
        try:
            status = self._pump.status()
        except PumpError:
            return
        self._status = status
        if status.delivery_uncertain:
            return
        self._running = status.state is PumpState.INFUSING and status.rate_ml_h > 0
        self._dose_mcg_min = dose_for_rate(status.rate_ml_h, self._limits) if self._running else 0.0
        self._record(self._alarms.cause_gone(AlarmCode.DELIVERY_UNCERTAIN, now_s))

    def _record(self, events: Iterable[Event]) -> None:
        for event in events:
            self._sink.append(event)
