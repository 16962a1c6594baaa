"""``Supervisor``: the only holder of the pump and the only path to a rate (docs/architecture.md,
invariant 1).

Every input arrives through a method that takes the current time (``now_s``) as an argument;
nothing here reads a clock. Every decision is written to the event sink (the journal, which
commits dose changes and alarms synchronously) *before* the pump is told to act (S14).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

from safety.alarms import ALARM_PRIORITY, Alarm, AlarmCode, AlarmManager
from safety.extravasation import InfiltrationDetector
from safety.limits import (
    DoseLimits,
    Verdict,
    check_deliverable,
    check_hard_and_soft,
    dose_for_rate,
    slew_limit,
)
from safety.occlusion import OcclusionDetector, OcclusionFinding
from safety.resume import STOPPED_PREFIX, ResumeState
from safety.view import AlarmSnapshot, SupervisorView
from safety.weaning import WeaningPolicy, WeanStep
from vasopilot.core.config import DrugEntry, PatientSettings, SafetySettings, SyringeSpec
from vasopilot.core.errors import PumpError, PumpRefusedError
from vasopilot.core.events import (
    DoseApplied,
    DoseRefused,
    DoseRequested,
    Event,
    Fault,
    OperatorAction,
    PumpContract,
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
from vasopilot.core.units import MINUTES_PER_HOUR, rate_ml_h_from_dose

# The second pump takes over this long before the first runs dry: late enough to use the
# syringe, early enough that a slow tick cannot leave a gap.
CHANGEOVER_LEAD_S = 60.0
RATE_READBACK_TOLERANCE = 0.01
# MAP_LOW looks at a trend of good beats and clears a little above the limit.
MAP_LOW_AVERAGING_S = 10.0
MAP_LOW_HYSTERESIS_MMHG = 2.0
# A higher target for a previously hypertensive patient is allowed within this range.
TARGET_MIN_MMHG = 60.0
TARGET_MAX_MMHG = 85.0


STOP_ALARMS = (
    AlarmCode.OCCLUSION,
    AlarmCode.EXTRAVASATION,
    AlarmCode.SYRINGE_EMPTY,
    AlarmCode.PUMP_FAULT,
    AlarmCode.HOST_TIMEOUT,
)


class StopReason(StrEnum):
    """The only reasons the supervisor stops an infusion (docs/safety-requirements.md, the safe
    reaction table)."""

    OPERATOR = "operator stop"
    OCCLUSION = "occlusion"
    EXTRAVASATION = "extravasation"
    EMPTY = "empty syringe"
    PUMP_FAULT = "pump fault"
    WEANED = "weaned off"


class EventSink(Protocol):
    """Where the supervisor records what it decides; ``append`` returns once it is durable.

    ``append`` raises ``JournalUnavailable`` when the event could not be made durable (it is
    then kept pending); ``flush_pending`` writes what is pending and says whether all of it is.
    """

    def append(self, event: Event) -> Event: ...

    def flush_pending(self) -> bool: ...


@dataclass(frozen=True)
class Decision:
    """The outcome of a request: the dose now running, and why."""

    applied: bool
    dose_mcg_min: float
    reason: str
    code: str | None = None


class Supervisor:
    """Enforces the drug library, slew limits, stale-data hold, weaning, stops and alarms.

    ``drug`` and ``patient`` give the limits (converted to mcg/min once), ``syringe`` the
    compliance the occlusion detector and back-off use, ``sink`` the durable journal. A
    ``standby`` pump, loaded with the same drug and syringe model, takes over when the running
    one is about to run empty (S10).
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
        standby: Pump | None = None,
        occlusion_rise_rate: bool = True,
    ) -> None:
        self._pump = pump
        self._standby = standby
        self._limits = DoseLimits.from_entry(drug, patient.weight_kg)
        self._patient = patient
        self._safety = safety
        self._sink = sink
        self._alarms = AlarmManager(safety.silence_max_s)
        self._occlusion = OcclusionDetector(
            safety.occlusion_thresholds_mmhg[safety.occlusion_level],
            syringe.compliance_ul_per_mmhg,
            rise_rate=occlusion_rise_rate,
        )
        self._infiltration = InfiltrationDetector(syringe.compliance_ul_per_mmhg)
        self._weaning = WeaningPolicy(
            self._limits.wean_step, self._limits.wean_interval_s,
            patient.target_map_mmhg, patient.lower_limit_mmhg,
        )
        self._dose_mcg_min = 0.0
        self._rate_ml_h = 0.0
        self._running = False
        self._last_up_t_s: float | None = None
        self._stop_reason: StopReason | None = None
        self._needs_operator = False
        self._last_good_beat: Beat | None = None
        self._map_trend_mmhg: float | None = None
        self._last_beat: Beat | None = None
        self._status: PumpStatus | None = None
        self._last_finding: OcclusionFinding | None = None
        self._uncertain = False
        self._commanded_dose_mcg_min = 0.0
        self._t_s = 0.0

    # -- read-only picture -------------------------------------------------------------------

    @property
    def limits(self) -> DoseLimits:
        return self._limits

    @property
    def alarms(self) -> Sequence[Alarm]:
        return self._alarms.active()

    @property
    def last_occlusion(self) -> OcclusionFinding | None:
        """What the occlusion detector saw last time it stopped the infusion."""
        return self._last_finding

    def view(self, now_s: float | None = None) -> SupervisorView:
        t_s = self._t_s if now_s is None else now_s
        good = self._last_good_beat
        return SupervisorView(
            t_s=t_s,
            running=self._running,
            dose_mcg_min=self._dose_mcg_min,
            rate_ml_h=self._status.rate_ml_h if self._status else 0.0,
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
            limits=self._limits,
            weaning=self._weaning.active,
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
        self._record([
            OperatorAction(t_s=now_s, action="start", by=by, detail=f"{dose_mcg_min:.2f} mcg/min"),
            _contract("active", self._pump, now_s),
        ])
        if self._running:
            return self.request(
                DoseRequest(dose_mcg_min, Requester.OPERATOR, "start while running",
                            soft_limit_confirmed, by),
                now_s,
            )
        # An operator restarting has dealt with the cause of the last stop; those alarms still
        # latch until acknowledged.
        for code in STOP_ALARMS:
            self._record(self._alarms.cause_gone(code, now_s))
        self._needs_operator = False
        self._stop_reason = None
        self._acknowledge_pump_alarm(now_s)
        self._occlusion.reset()
        self._infiltration.reset()
        return self._decide(
            DoseRequest(dose_mcg_min, Requester.OPERATOR, "start", soft_limit_confirmed, by),
            now_s,
            starting=True,
        )

    def operator_stop(self, now_s: float, *, by: str = "operator", reason: str = "") -> None:
        """S10: an operator's stop is immediate and needs an operator to restart."""
        self._t_s = now_s
        self._record([OperatorAction(t_s=now_s, action="stop", by=by, detail=reason)])
        self._stop_pump(now_s, StopReason.OPERATOR)

    def acknowledge(self, code: str, now_s: float, *, by: str = "operator") -> None:
        self._t_s = now_s
        self._record(self._alarms.acknowledge(code, now_s, by))

    def silence(self, code: str, now_s: float, *, by: str = "operator") -> None:
        """Pause an alarm's sound for at most ``silence_max_s`` (S11: never disable it)."""
        self._t_s = now_s
        self._record(self._alarms.silence(code, now_s, by=by))

    def set_target(self, target_map_mmhg: float, now_s: float, *, by: str = "operator") -> Decision:
        """Change the MAP target (60-85 mmHg, not below the lower limit); journaled first."""
        self._t_s = now_s
        lower = self._patient.lower_limit_mmhg
        if not (TARGET_MIN_MMHG <= target_map_mmhg <= TARGET_MAX_MMHG) or target_map_mmhg < lower:
            reason = (f"a MAP target of {target_map_mmhg:g} mmHg is outside "
                      f"{max(TARGET_MIN_MMHG, lower):g}-{TARGET_MAX_MMHG:g} mmHg")
            self._record([OperatorAction(t_s=now_s, action="set_target_refused", by=by,
                                         detail=reason)])
            return Decision(False, self._dose_mcg_min, reason, "TARGET_RANGE")
        previous = self._patient.target_map_mmhg
        self._record([OperatorAction(t_s=now_s, action="set_target", by=by,
                                     detail=f"{previous:g} -> {target_map_mmhg:g} mmHg",
                                     target_map_mmhg=target_map_mmhg)])
        self._patient = self._patient.model_copy(update={"target_map_mmhg": target_map_mmhg})
        return Decision(True, self._dose_mcg_min, f"MAP target {target_map_mmhg:g} mmHg")

    def report_extravasation(self, now_s: float, *, by: str = "operator") -> None:
        """S9: an operator saw infiltration at the cannula."""
        self._t_s = now_s
        self._record([OperatorAction(t_s=now_s, action="extravasation", by=by)])
        self._extravasation(now_s, f"reported by {by}")

    def start_weaning(self, now_s: float, *, by: str = "operator") -> Decision:
        """S7: from now on the supervisor steps the dose down; automatic requests are refused."""
        self._t_s = now_s
        self._record([OperatorAction(t_s=now_s, action="wean", by=by,
                                     detail=f"from {self._dose_mcg_min:.2f} mcg/min")])
        if not self._running:
            return Decision(False, 0.0, "nothing to wean: the infusion is not running",
                            "NOT_RUNNING")
        self._weaning.start(self._dose_mcg_min, now_s)
        return Decision(True, self._dose_mcg_min, "weaning started")

    def stop_weaning(self, now_s: float, *, by: str = "operator") -> None:
        self._t_s = now_s
        self._record([OperatorAction(t_s=now_s, action="stop_weaning", by=by)])
        self._weaning.stop()

    def set_standby(self, pump: Pump, now_s: float, *, by: str = "operator") -> None:
        """An operator loads a second pump (with a fresh syringe) to take over later (S10)."""
        self._t_s = now_s
        self._record([
            OperatorAction(t_s=now_s, action="standby", by=by, detail="spare pump loaded"),
            _contract("standby", pump, now_s),
        ])
        self._standby = pump
        self._record(self._alarms.cause_gone(AlarmCode.CHANGEOVER, now_s))

    def resume(self, state: ResumeState, now_s: float) -> None:
        """S13: take over after a restart, adopting what the pump is doing without a gap.

        A running pump is believed (it holds the dose the patient is getting); a pump that
        stopped while the host was away is restarted at the journal's dose unless it stopped
        for an alarm of its own; a pump running against a journaled stop is stopped.
        """
        self._t_s = now_s
        for alarm in state.open_alarms:
            self._record(self._alarms.raise_alarm(alarm.code, alarm.priority, alarm.message,
                                                  now_s))
        status = self._read_status(now_s)
        if status is None:
            return
        pump_dose = dose_for_rate(status.rate_ml_h, self._limits)
        pump_running = status.state is PumpState.INFUSING and status.rate_ml_h > 0
        # No up-titration right after a restart: the old interval's clock is gone.
        self._last_up_t_s = now_s
        if state.dose_mcg_min <= 0:
            self._stop_reason = _stop_reason(state.stop_reason)
            self._needs_operator = self._stop_reason not in (None, StopReason.WEANED)
            if pump_running:
                self._stop_pump(now_s, self._stop_reason or StopReason.OPERATOR)
            detail = "resumed stopped"
        elif pump_running:
            self._adopt(pump_dose, status.rate_ml_h, now_s,
                        f"resumed: pump read back {status.rate_ml_h:.3f} mL/h")
            detail = f"resumed at {pump_dose:.2f} mcg/min (pump kept running)"
        elif status.stalled or (status.alarm is not None and not _is_host_timeout(status.alarm)):
            self._record(self._alarms.raise_alarm(
                AlarmCode.PUMP_FAULT, Priority.HIGH,
                f"after the restart the pump is stopped with alarm {status.alarm!r}: "
                "an operator must check the line and restart", now_s))
            self._stop_reason = StopReason.PUMP_FAULT
            self._needs_operator = True
            detail = "pump stopped with its own alarm"
        else:
            self._record(self._alarms.raise_alarm(
                AlarmCode.HOST_TIMEOUT, Priority.HIGH,
                "the pump stopped while the controlling process was down; restarted at "
                f"{state.dose_mcg_min:.2f} mcg/min", now_s))
            self._acknowledge_pump_alarm(now_s)
            self._set_dose(state.dose_mcg_min, Requester.SUPERVISOR,
                           "resumed: restarting the journaled dose", now_s)
            detail = f"restarted the pump at {state.dose_mcg_min:.2f} mcg/min"
        if state.weaning and self._running:
            self._weaning.start(self._dose_mcg_min, now_s)
        self._record(self._alarms.raise_alarm(
            AlarmCode.RESTARTED, Priority.LOW, f"supervisor restarted: {detail}", now_s,
            momentary=True))

    # -- requests ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the pumps' connections at shutdown (each pump keeps its own state)."""
        self._pump.close()
        if self._standby is not None:
            self._standby.close()

    def request(self, req: DoseRequest, now_s: float) -> Decision:
        """A dose change from the operator, a controller or a remote user."""
        self._t_s = now_s
        return self._decide(req, now_s, starting=False)

    def _decide(self, req: DoseRequest, now_s: float, *, starting: bool) -> Decision:
        self._record([DoseRequested(
            t_s=now_s, requester=req.requester, dose_mcg_min=req.dose_mcg_min,
            reason=req.reason, sender=req.sender, soft_limit_confirmed=req.soft_limit_confirmed,
        )])
        if self._uncertain or (self._status is not None and self._status.delivery_uncertain):
            self._reconcile(now_s)
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
        if req.requester is Requester.OPERATOR and self._weaning.active:
            self._weaning.stop()
            self._record([OperatorAction(t_s=now_s, action="stop_weaning", by=req.sender or
                                         "operator", detail="operator set a dose")])
        previous = self._dose_mcg_min
        taken = self._set_dose(verdict.dose_mcg_min, req.requester, verdict.reason, now_s)
        # Judged on the dose now running, so an increase the pump made without confirming it
        # still counts towards the up-titration interval.
        if self._dose_mcg_min > previous and not starting:
            self._last_up_t_s = now_s
        if not taken:
            return Decision(False, self._dose_mcg_min, "the pump did not take the dose",
                            "PUMP_ERROR")
        return Decision(True, self._dose_mcg_min, verdict.reason)

    def _refusal(self, req: DoseRequest, now_s: float, starting: bool) -> Verdict | None:
        if self._uncertain:
            return Verdict(self._dose_mcg_min,
                           "the pump has not confirmed the last command and cannot be read: "
                           "no change until its state is known", "UNCERTAIN")
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
                    AlarmCode.HARD_LIMIT_REFUSED, Priority.LOW, limit.reason, now_s,
                    momentary=True))
            return limit
        automatic = req.requester is not Requester.OPERATOR
        if automatic and req.dose_mcg_min == 0:
            return Verdict(self._dose_mcg_min,
                           "only an operator, a detected hazard or weaning may stop the infusion",
                           "STOP_NOT_ALLOWED")
        if automatic and self._weaning.active:
            return Verdict(self._dose_mcg_min,
                           "weaning in progress: only the weaning policy or an operator changes "
                           "the dose", "WEANING")
        trusted = self._map_trusted(now_s)
        if automatic and not trusted:
            quality = self._last_beat.quality if self._last_beat else "no beats"
            return Verdict(self._dose_mcg_min,
                           f"no trusted MAP in the last {self._safety.stale_after_s:.0f} s "
                           f"(last beat: {quality}): dose held", "MAP_UNTRUSTED")
        if trusted and self._last_good_beat is not None and not starting:
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

    def _set_dose(self, dose: float, requester: Requester, reason: str, now_s: float) -> bool:
        """Journal, then command; ``False`` if the pump did not take it (alarm raised)."""
        previous = self._dose_mcg_min
        rate_ml_h = self._pump.capabilities.deliverable_rate_ml_h(
            rate_ml_h_from_dose(dose, self._limits.conc_mcg_ml))
        self._record([DoseApplied(
            t_s=now_s, requester=requester, dose_mcg_min=dose,
            previous_dose_mcg_min=previous, rate_ml_h=rate_ml_h, reason=reason,
        )])
        self._commanded_dose_mcg_min = dose
        try:
            status = self._pump.set_rate(rate_ml_h) if dose > 0 else self._pump.stop()
        except PumpRefusedError as exc:
            self._record([Fault(t_s=now_s, code="PUMP_REFUSED", message=str(exc),
                                detail=f"commanded {rate_ml_h:.3f} mL/h")])
            self._record(self._alarms.raise_alarm(
                AlarmCode.PUMP_FAULT, Priority.HIGH, f"the pump refused: {exc}", now_s))
            return False
        except PumpError as exc:
            # Lost reply or broken link: the pump may or may not have acted (LoopKit's
            # "uncertain delivery"); believe only a read-back from now on.
            self._uncertain = True
            self._record([Fault(t_s=now_s, code="DELIVERY_UNCERTAIN", message=str(exc),
                                detail=f"commanded {rate_ml_h:.3f} mL/h")])
            self._record(self._alarms.raise_alarm(
                AlarmCode.DELIVERY_UNCERTAIN, Priority.MEDIUM,
                f"the pump did not confirm {dose:.2f} mcg/min: {exc}", now_s))
            self._reconcile(now_s)
            return False
        self._status = status
        self._dose_mcg_min = dose
        self._rate_ml_h = rate_ml_h
        self._running = dose > 0
        if abs(status.rate_ml_h - rate_ml_h) > RATE_READBACK_TOLERANCE * rate_ml_h:
            self._record([Fault(
                t_s=now_s, code="RATE_READBACK",
                message=f"the pump read back {status.rate_ml_h:.3f} mL/h for a command of "
                        f"{rate_ml_h:.3f} mL/h")])
            self._reconcile(now_s)
        return True

    def _adopt(self, dose: float, rate_ml_h: float, now_s: float, reason: str) -> None:
        """Take the pump's running rate as ours, journaled, without commanding anything."""
        self._record([DoseApplied(
            t_s=now_s, requester=Requester.SUPERVISOR, dose_mcg_min=dose,
            previous_dose_mcg_min=self._dose_mcg_min, rate_ml_h=rate_ml_h, reason=reason,
        )])
        self._dose_mcg_min = dose
        self._rate_ml_h = rate_ml_h
        self._running = dose > 0

    # -- inputs --------------------------------------------------------------------------------

    def on_beat(self, beat: Beat, now_s: float) -> None:
        self._t_s = now_s
        self._last_beat = beat
        newest = self._last_good_beat
        if beat.is_good and (newest is None or beat.t_s >= newest.t_s):
            if newest is None or self._map_trend_mmhg is None:
                self._map_trend_mmhg = beat.map_mmhg
            else:
                weight = 1.0 - math.exp(-(beat.t_s - newest.t_s) / MAP_LOW_AVERAGING_S)
                self._map_trend_mmhg += weight * (beat.map_mmhg - self._map_trend_mmhg)
            self._last_good_beat = beat

    def on_line_signals(self, signals: LineSignals, now_s: float) -> None:
        self._t_s = now_s
        if signals.extravasation_sensor:
            self._extravasation(now_s, "extravasation sensor at the cannula")
        elif signals.stall:
            self._stop_for_occlusion(now_s, self._occlusion.stall(
                signals.line_pressure_mmhg, "motor stall signal"))
        elif signals.line_pressure_mmhg is not None:
            self._check_pressure(signals.line_pressure_mmhg, signals.t_s, now_s)

    def tick(self, now_s: float) -> None:
        """The fast supervision tick: feed the watchdogs, read the pump, check the data."""
        self._t_s = now_s
        status = self._read_status(now_s)
        if status is None:
            return
        if status.delivery_uncertain or self._uncertain:
            self._reconcile(now_s)
        else:
            self._record(self._alarms.cause_gone(AlarmCode.DELIVERY_UNCERTAIN, now_s))
        if self._running:
            self._check_pump(status, now_s)
        self._check_syringe(now_s)
        self._check_map(now_s)
        self._wean(now_s)

    def _read_status(self, now_s: float) -> PumpStatus | None:
        try:
            self._pump.heartbeat()
            if self._standby is not None:
                self._standby.heartbeat()
            status = self._pump.status()
        except PumpError as exc:
            self._record(self._alarms.raise_alarm(
                AlarmCode.PUMP_DISCONNECTED, Priority.HIGH, f"no answer from the pump: {exc}",
                now_s))
            return None
        self._record(self._alarms.cause_gone(AlarmCode.PUMP_DISCONNECTED, now_s))
        self._status = status
        return status

    def _check_pump(self, status: PumpStatus, now_s: float) -> None:
        if status.stalled:
            self._stop_for_occlusion(now_s, self._occlusion.stall(
                status.line_pressure_mmhg, "the pump reports a stalled motor"))
        elif status.end_of_travel or status.syringe_remaining_ml <= 0:
            if not self._change_over(now_s):
                self._record(self._alarms.raise_alarm(
                    AlarmCode.SYRINGE_EMPTY, Priority.HIGH, "syringe empty: infusion stopped",
                    now_s))
                self._stop_pump(now_s, StopReason.EMPTY)
        elif status.state is not PumpState.INFUSING and not status.delivery_uncertain:
            self._stopped_by_itself(status, now_s)
        elif status.line_pressure_mmhg is not None:
            self._check_pressure(status.line_pressure_mmhg, status.t_s, now_s)

    def _stopped_by_itself(self, status: PumpStatus, now_s: float) -> None:
        code = AlarmCode.HOST_TIMEOUT if _is_host_timeout(status.alarm) else AlarmCode.PUMP_FAULT
        self._record(self._alarms.raise_alarm(
            code, ALARM_PRIORITY[code],
            f"the pump stopped by itself ({status.state}, alarm {status.alarm!r})", now_s))
        self._stop_pump(now_s, StopReason.PUMP_FAULT)

    # -- detectors and stops -------------------------------------------------------------------

    def _map_trusted(self, now_s: float) -> bool:
        good = self._last_good_beat
        return good is not None and now_s - good.t_s < self._safety.stale_after_s

    def _check_map(self, now_s: float) -> None:
        good = self._last_good_beat
        if self._map_trusted(now_s) and good is not None:
            self._record(self._alarms.cause_gone(AlarmCode.MAP_STALE, now_s))
            self._check_map_low(now_s)
            return
        age_s = None if good is None else now_s - good.t_s
        last = self._last_beat
        recent = last is not None and now_s - last.t_s < self._safety.stale_after_s
        quality = last.quality if last is not None and recent else "no beats"
        if age_s is None or age_s >= self._safety.stale_high_after_s:
            priority = Priority.HIGH
        else:
            priority = Priority.MEDIUM
        age = "ever" if age_s is None else f"{age_s:.0f} s"
        self._record(self._alarms.raise_alarm(
            AlarmCode.MAP_STALE, priority,
            f"no trusted MAP for {age} (last beat: {quality}); dose held at "
            f"{self._dose_mcg_min:.1f} mcg/min", now_s))

    def _check_map_low(self, now_s: float) -> None:
        """MAP_LOW on a 10-second trend of good beats, with hysteresis: single beats and
        respiratory swings around the limit must not make the alarm chatter."""
        trend = self._map_trend_mmhg
        limit = self._patient.lower_limit_mmhg
        if trend is None:
            return
        if trend < limit:
            self._record(self._alarms.raise_alarm(
                AlarmCode.MAP_LOW, Priority.MEDIUM,
                f"MAP {trend:.1f} mmHg (10 s trend) is below the lower limit of {limit:.0f} mmHg",
                now_s))
        elif trend >= limit + MAP_LOW_HYSTERESIS_MMHG:
            self._record(self._alarms.cause_gone(AlarmCode.MAP_LOW, now_s))

    def _check_pressure(self, pressure_mmhg: float, sample_t_s: float, now_s: float) -> None:
        if not self._running:
            return
        finding = self._occlusion.update(pressure_mmhg, self._rate_ml_h, sample_t_s)
        if finding is not None:
            self._stop_for_occlusion(now_s, finding)
            return
        infiltration = self._infiltration.update(pressure_mmhg, self._rate_ml_h, sample_t_s)
        if infiltration is not None:
            self._extravasation(now_s, infiltration.message)

    def _stop_for_occlusion(self, now_s: float, finding: OcclusionFinding) -> None:
        """S8: stop, release the stored bolus by backing off, latch a high alarm."""
        if not self._running:
            return
        self._last_finding = finding
        self._record([Fault(
            t_s=now_s, code="OCCLUSION_DETECTED", message=finding.message,
            detail=f"detector={finding.detector} pressure_mmhg={finding.pressure_mmhg} "
                   f"baseline_mmhg={finding.baseline_mmhg:.1f} stored_ul={finding.stored_ul:.1f}",
        )])
        self._record(self._alarms.raise_alarm(
            AlarmCode.OCCLUSION, Priority.HIGH,
            f"occlusion ({finding.detector}): {finding.message}; infusion stopped", now_s))
        self._stop_pump(now_s, StopReason.OCCLUSION)
        if finding.stored_ul > 0 and self._pump.capabilities.can_back_off:
            try:
                self._status = self._pump.back_off(finding.stored_ul)
            except PumpError as exc:
                self._record([Fault(t_s=now_s, code="BACK_OFF_FAILED", message=str(exc))])

    def _extravasation(self, now_s: float, cause: str) -> None:
        """S9: stop, latch a high alarm; no back-off and no flush into the tissue."""
        self._record(self._alarms.raise_alarm(
            AlarmCode.EXTRAVASATION, Priority.HIGH,
            f"extravasation suspected: {cause}; infusion stopped, check the cannula", now_s))
        if self._running:
            self._stop_pump(now_s, StopReason.EXTRAVASATION)
        else:
            self._needs_operator = True

    def _check_syringe(self, now_s: float) -> None:
        left_min = self._time_left_min()
        if not self._running or left_min is None:
            self._record(self._alarms.cause_gone(AlarmCode.SYRINGE_NEAR_EMPTY, now_s))
            return
        if left_min * 60.0 <= CHANGEOVER_LEAD_S and self._change_over(now_s):
            return
        if left_min <= self._safety.near_empty_min:
            plan = ("the second pump takes over" if self._standby is not None
                    else "prepare a new syringe")
            self._record(self._alarms.raise_alarm(
                AlarmCode.SYRINGE_NEAR_EMPTY, Priority.MEDIUM,
                f"syringe near empty: {left_min:.0f} min of infusion left; {plan}", now_s))
        else:
            self._record(self._alarms.cause_gone(AlarmCode.SYRINGE_NEAR_EMPTY, now_s))

    def _change_over(self, now_s: float) -> bool:
        """S10: hand the running dose to the standby pump in one step (no gap, no overlap)."""
        standby = self._standby
        if standby is None:
            return False
        rate_ml_h = standby.capabilities.deliverable_rate_ml_h(
            rate_ml_h_from_dose(self._dose_mcg_min, self._limits.conc_mcg_ml))
        self._record([DoseApplied(
            t_s=now_s, requester=Requester.SUPERVISOR, dose_mcg_min=self._dose_mcg_min,
            previous_dose_mcg_min=self._dose_mcg_min, rate_ml_h=rate_ml_h,
            reason="changeover: the second pump takes over the running dose",
        )])
        try:
            status = standby.set_rate(rate_ml_h)
        except PumpError as exc:
            self._record([Fault(t_s=now_s, code="CHANGEOVER_FAILED", message=str(exc))])
            self._standby = None
            return False
        if not self._stop_confirmed(self._pump, now_s):
            self._record(self._alarms.raise_alarm(
                AlarmCode.PUMP_FAULT, Priority.HIGH,
                "the emptied pump did not confirm its stop after the changeover: both pumps "
                "may be infusing", now_s))
        self._pump, self._standby = standby, None
        self._status = status
        self._rate_ml_h = rate_ml_h
        self._occlusion.reset()
        self._infiltration.reset()
        self._record(self._alarms.cause_gone(AlarmCode.SYRINGE_NEAR_EMPTY, now_s))
        self._record(self._alarms.raise_alarm(
            AlarmCode.CHANGEOVER, Priority.LOW,
            "the second pump took over; replace the empty syringe (no spare pump now)", now_s,
            momentary=True))
        return True

    def _stop_confirmed(self, pump: Pump, now_s: float) -> bool:
        """Stop ``pump``; a lost reply is settled by reading the pump back once."""
        try:
            pump.stop()
            return True
        except PumpError as exc:
            self._record([Fault(t_s=now_s, code="STOP_FAILED", message=str(exc))])
        try:
            return pump.status().state is not PumpState.INFUSING
        except PumpError:
            return False

    def _acknowledge_pump_alarm(self, now_s: float) -> None:
        """A pump's own alarm (stall cleared, host timeout) blocks a start until a stop."""
        status = self._read_status(now_s)
        if status is not None and status.alarm is not None and not status.stalled:
            self._stop_confirmed(self._pump, now_s)

    def _time_left_min(self) -> float | None:
        status = self._status
        if status is None or status.rate_ml_h <= 0:
            return None
        return status.syringe_remaining_ml / status.rate_ml_h * MINUTES_PER_HOUR

    def _wean(self, now_s: float) -> None:
        if not self._running:
            self._weaning.stop()
            return
        trusted_map = self._last_good_beat.map_mmhg if (
            self._map_trusted(now_s) and self._last_good_beat is not None) else None
        step: WeanStep | None = self._weaning.next_step(self._dose_mcg_min, trusted_map, now_s)
        if step is None:
            return
        if step.dose_mcg_min == 0:
            self._stop_pump(now_s, StopReason.WEANED, detail=step.reason)
        else:
            self._set_dose(step.dose_mcg_min, Requester.SUPERVISOR, step.reason, now_s)

    def _stop_pump(self, now_s: float, reason: StopReason, *, detail: str = "") -> None:
        previous = self._dose_mcg_min
        self._running = False
        self._dose_mcg_min = 0.0
        self._rate_ml_h = 0.0
        self._stop_reason = reason
        self._needs_operator = reason is not StopReason.WEANED
        self._weaning.stop()
        self._record([DoseApplied(
            t_s=now_s, requester=Requester.SUPERVISOR, dose_mcg_min=0.0,
            previous_dose_mcg_min=previous, rate_ml_h=0.0,
            reason=f"{STOPPED_PREFIX}{reason}" + (f" ({detail})" if detail else ""),
        )])
        self._commanded_dose_mcg_min = 0.0
        if not self._stop_confirmed(self._pump, now_s):
            # Retried by the reconciliation once the pump answers again.
            self._uncertain = True
            self._record(self._alarms.raise_alarm(
                AlarmCode.PUMP_FAULT, Priority.HIGH,
                "the pump did not confirm the stop and cannot be read", now_s))

    def _reconcile(self, now_s: float) -> None:
        """After a lost acknowledgement, believe the pump's read-back over our own wish."""
        try:
            status = self._pump.status()
        except PumpError:
            return
        self._status = status
        if status.delivery_uncertain:
            return
        was_uncertain, self._uncertain = self._uncertain, False
        self._record(self._alarms.cause_gone(AlarmCode.DELIVERY_UNCERTAIN, now_s))
        running = status.state is PumpState.INFUSING and status.rate_ml_h > 0
        if self._running and not running and self._commanded_dose_mcg_min > 0:
            self._stopped_by_itself(status, now_s)
            return
        if running and not self._running and self._commanded_dose_mcg_min == 0:
            self._record([Fault(t_s=now_s, code="STOP_RESENT",
                                message="the pump still infuses after a stop: stopping it again")])
            try:
                self._status = self._pump.stop()
            except PumpError:
                self._uncertain = True
            return
        dose = dose_for_rate(status.rate_ml_h, self._limits) if running else 0.0
        # Journaled even when unchanged, so the journal's last dose is the pump's real one.
        if was_uncertain or dose != self._dose_mcg_min:
            self._adopt(dose, status.rate_ml_h if running else 0.0, now_s,
                        "reconciled with the pump's read-back after an uncertain delivery")

    def _record(self, events: Iterable[Event]) -> None:
        for event in events:
            self._sink.append(event)


def _contract(role: Literal["active", "standby"], pump: Pump, now_s: float) -> PumpContract:
    """S12: what ``pump`` does if this process dies, as its driver states it."""
    capabilities = pump.capabilities
    return PumpContract(t_s=now_s, role=role, host_loss=capabilities.host_loss,
                        host_loss_after_s=capabilities.host_loss_after_s)


def _is_host_timeout(alarm: str | None) -> bool:
    return alarm is not None and "timeout" in alarm.lower()


def _stop_reason(text: str | None) -> StopReason | None:
    """Parse a journaled stop reason back (detail in brackets after it is ignored)."""
    if text is None:
        return None
    for reason in StopReason:
        if text.startswith(reason.value):
            return reason
    return None
