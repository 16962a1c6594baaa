"""``Supervisor``: the only door to the pump and the only path to a rate (docs/architecture.md,
invariant 1).

Behind the door: :mod:`safety.delivery` holds the pump and writes the delivery state,
:mod:`safety.rules` judges requests, :mod:`safety.map_watch` says which MAP can be trusted and
:mod:`safety.hazards` watches the line and the syringe. This class wires them: the watches and
the rules decide, the delivery part enacts. Every input arrives through a method that takes the
current time (``now_s``); nothing here reads a clock. Every decision is written to the event
sink *before* the pump is told to act (S14); a sink that cannot write holds every dose change
(``safety.record``) but never a stop or the running infusion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from safety.alarms import Alarm, AlarmCode, AlarmManager
from safety.delivery import Delivery, contract
from safety.guard_rails import GuardRails
from safety.hazards import (
    Hazard,
    LineWatch,
    ProbeContext,
    empty,
    extravasation,
    probe_refusal,
    syringe_outlook,
    time_left_min,
)
from safety.limits import DoseLimits
from safety.map_watch import AlarmOrder, MapWatch
from safety.occlusion import OcclusionFinding, ProbeRequest
from safety.record import EventSink, Recorder
from safety.resume import ResumeState
from safety.rules import RequestContext, Ruling, evaluate
from safety.view import AlarmSnapshot, SupervisorView
from safety.weaning import WeaningPolicy
from vasopilot.core.config import (
    SET_POINT_ABOVE_FLOOR_MMHG,
    DrugEntry,
    PatientSettings,
    SafetySettings,
    SyringeSpec,
    floor_below_usual,
)
from vasopilot.core.events import (
    DoseChange,
    DoseRefused,
    DoseRequested,
    Fault,
    FaultCode,
    OperatorAction,
    RefusalCode,
    StopReason,
)
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import (
    Beat,
    DoseRequest,
    LineSignals,
    PumpState,
    Requester,
    VolumeAnswer,
)

# S6: the floor an operator may set (higher for a previously hypertensive patient).
FLOOR_MIN_MMHG = 60.0
FLOOR_MAX_MMHG = 85.0

# An operator's start deals with the causes of these; they still latch until acknowledged.
STOP_ALARMS = (
    AlarmCode.OCCLUSION,
    AlarmCode.CANNULA_SITE,
    AlarmCode.EXTRAVASATION,
    AlarmCode.SYRINGE_EMPTY,
    AlarmCode.PUMP_FAULT,
    AlarmCode.PUMP_UNCOMMANDED,
    AlarmCode.HOST_TIMEOUT,
)

__all__ = ["AlarmSnapshot", "Decision", "EventSink", "StopReason", "Supervisor", "SupervisorView"]


@dataclass(frozen=True)
class Decision:
    """The outcome of a request: the dose now running, and why (``code`` set = refused)."""

    applied: bool
    dose_mcg_min: float
    reason: str
    code: RefusalCode | None = None


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
        self._limits = DoseLimits.from_entry(drug, patient.weight_kg)
        self._patient = patient
        self._safety = safety
        self._alarms = AlarmManager(safety.silence_max_s)
        self._rec = Recorder(sink, self._alarms)
        self._delivery = Delivery(pump, limits=self._limits, recorder=self._rec,
                                  standby=standby)
        self._line = LineWatch(safety.occlusion_thresholds_mmhg[safety.occlusion_level],
                               syringe.compliance_ul_per_mmhg, rise_rate=occlusion_rise_rate)
        self._map = MapWatch(safety.stale_after_s, safety.stale_high_after_s)
        self._weaning = WeaningPolicy(
            self._limits.wean_step, self._limits.wean_interval_s,
            patient.floor_mmhg, patient.lower_limit_mmhg,
        )
        self._rails = GuardRails(drug, patient, safety, self._limits)
        self._last_finding: OcclusionFinding | None = None
        self._readable = True
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
        state = self._delivery.state
        good = self._map.last_good
        last = self._map.last_beat
        return SupervisorView(
            t_s=t_s,
            running=state.running,
            dose_mcg_min=state.dose_mcg_min,
            rate_ml_h=state.status.rate_ml_h if state.status else 0.0,
            map_trusted=self._map.trusted(t_s),
            last_good_map_mmhg=good.map_mmhg if good else None,
            last_good_beat_t_s=good.t_s if good else None,
            last_beat_quality=last.quality if last else None,
            target_map_mmhg=self._patient.setpoint_mmhg,
            lower_limit_mmhg=self._patient.lower_limit_mmhg,
            floor_mmhg=self._patient.floor_mmhg,
            pump=state.status,
            alarms=tuple(
                AlarmSnapshot(a.code, a.priority, a.message, a.acknowledged, not a.audible(t_s))
                for a in self._alarms.active()
            ),
            stop_reason=state.stop_reason,
            needs_operator=state.needs_operator,
            time_left_min=self._time_left_min(t_s),
            limits=self._limits,
            weaning=self._weaning.active,
            journal_ok=self._rec.journal_ok,
            volume_check_open=self._rails.volume.open,
            line=self._rails.line,
        )

    def _now(self, now_s: float) -> None:
        self._t_s = now_s
        self._map.begin(now_s)

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
        self._now(now_s)
        self._rec.record([
            OperatorAction(t_s=now_s, action="start", by=by, detail=f"{dose_mcg_min:.2f} mcg/min"),
            self._delivery.contract("active", now_s),
        ])
        # What the pump is doing now is compared with what was commanded before anything new.
        stops = self._delivery.state.stops
        self._look(now_s)
        state = self._delivery.state
        if state.stops != stops and state.needs_operator:
            # Stopped for a hazard found by this very look: the start is not a decision
            # about it.
            return self._refuse(
                DoseRequest(dose_mcg_min, Requester.OPERATOR, "start", soft_limit_confirmed, by),
                now_s, Ruling(0.0, (f"stopped for {state.stop_reason} just now: check the line "
                                    "and start again",), RefusalCode.STOPPED))
        if state.running or state.uncertain:
            # Running: a dose change. Unconfirmed (the pump cannot be read): refused by the
            # rules, and the last stop is not released until the pump's state is known.
            return self.request(
                DoseRequest(dose_mcg_min, Requester.OPERATOR, "start while running"
                            if state.running else "start", soft_limit_confirmed, by),
                now_s,
            )
        for code in STOP_ALARMS:
            self._rec.clear(code, now_s)
        self._delivery.release()
        self._delivery.acknowledge_pump_alarm(now_s)
        self._line.reset()
        return self._decide(
            DoseRequest(dose_mcg_min, Requester.OPERATOR, "start", soft_limit_confirmed, by),
            now_s,
            starting=True,
        )

    def operator_stop(self, now_s: float, *, by: str = "operator", reason: str = "") -> None:
        """S10: an operator's stop is immediate and needs an operator to restart."""
        self._now(now_s)
        self._rec.record([OperatorAction(t_s=now_s, action="stop", by=by, detail=reason)])
        self._weaning.stop()
        self._delivery.stop(now_s, StopReason.OPERATOR, detail=reason,
                            requester=Requester.OPERATOR)

    def acknowledge(self, code: AlarmCode, now_s: float, *, by: str = "operator") -> None:
        self._now(now_s)
        self._rec.record(self._alarms.acknowledge(code, now_s, by))

    def silence(self, code: AlarmCode, now_s: float, *, by: str = "operator") -> None:
        """Pause an alarm's sound for at most ``silence_max_s`` (S11: never disable it)."""
        self._now(now_s)
        self._rec.record(self._alarms.silence(code, now_s, by=by))

    def set_floor(self, floor_mmhg: float, now_s: float, *, by: str = "operator",
                  confirmed: bool = False) -> Decision:
        """Change the MAP floor F (S6: 60-85 mmHg; not more than 40 mmHg in systolic terms
        below a usual SBP unless ``confirmed``); the set-point F + 5 and the lower limit F - 5
        follow. Journaled first, with the set-point as ``target_map_mmhg`` (what a restart
        restores)."""
        self._now(now_s)
        dose = self._delivery.state.dose_mcg_min
        refusal: tuple[str, RefusalCode] | None = None
        below_usual = floor_below_usual(floor_mmhg, self._patient.usual_sbp_mmhg)
        if not FLOOR_MIN_MMHG <= floor_mmhg <= FLOOR_MAX_MMHG:
            refusal = (f"a MAP floor of {floor_mmhg:g} mmHg is outside "
                       f"{FLOOR_MIN_MMHG:g}-{FLOOR_MAX_MMHG:g} mmHg (set-point "
                       f"{floor_mmhg + SET_POINT_ABOVE_FLOOR_MMHG:g})",
                       RefusalCode.TARGET_RANGE)
        elif below_usual is not None and not confirmed:
            refusal = f"{below_usual}: confirm it to set it", RefusalCode.TARGET_BELOW_USUAL
        if refusal is not None:
            reason, code = refusal
            self._rec.record([OperatorAction(t_s=now_s, action="set_target_refused", by=by,
                                             detail=reason)])
            return Decision(False, dose, reason, code)
        previous = self._patient.floor_mmhg
        setpoint = floor_mmhg + SET_POINT_ABOVE_FLOOR_MMHG
        self._rec.record([OperatorAction(
            t_s=now_s, action="set_target", by=by,
            detail=f"floor {previous:g} -> {floor_mmhg:g} mmHg (set-point {setpoint:g})",
            target_map_mmhg=setpoint)])
        self._refloor(floor_mmhg)
        return Decision(True, dose, f"MAP floor {floor_mmhg:g} mmHg, set-point {setpoint:g}")

    def set_target(self, target_map_mmhg: float, now_s: float, *, by: str = "operator",
                   confirmed: bool = False) -> Decision:
        """The older command: ``target_map_mmhg`` is the set-point, so the floor is 5 mmHg
        below it (:meth:`set_floor`)."""
        return self.set_floor(target_map_mmhg - SET_POINT_ABOVE_FLOOR_MMHG, now_s, by=by,
                              confirmed=confirmed)

    def _refloor(self, floor_mmhg: float) -> None:
        self._patient = self._patient.with_floor(floor_mmhg)
        self._weaning.refloor(floor_mmhg, self._patient.lower_limit_mmhg)

    def answer_volume_check(self, answer: VolumeAnswer, now_s: float, *,
                            by: str = "operator") -> None:
        """GR1: an operator says what was done about volume status (journaled first); the
        volume check closes, and escalation is measured from here on."""
        self._now(now_s)
        self._rec.record([OperatorAction(t_s=now_s, action="volume_assessed", by=by,
                                         detail=answer.value, volume_answer=answer)])
        self._order(self._rails.volume.answer(now_s, answer), now_s)

    def report_extravasation(self, now_s: float, *, by: str = "operator") -> None:
        """S9: an operator saw infiltration at the cannula."""
        self._now(now_s)
        self._rec.record([OperatorAction(t_s=now_s, action="extravasation", by=by)])
        self._enact(extravasation(f"reported by {by}"), now_s)

    def report_unreachable(self, message: str, now_s: float, *, by: str) -> None:
        """A control mode's evidence that even the hard maximum cannot hold the set-point:
        an alarm for an operator (issue 14), no dose change (S3 still paces the climb)."""
        self._now(now_s)
        self._rec.alarm(AlarmCode.TARGET_UNREACHABLE, f"target unreachable ({by}): {message}",
                        now_s)

    def reachable_again(self, now_s: float) -> None:
        """The mode's evidence is gone (MAP back at the set-point): the alarm's cause ends."""
        self._now(now_s)
        self._rec.clear(AlarmCode.TARGET_UNREACHABLE, now_s)

    def start_weaning(self, now_s: float, *, by: str = "operator") -> Decision:
        """S7: from now on the supervisor steps the dose down; automatic requests are refused."""
        self._now(now_s)
        state = self._delivery.state
        self._rec.record([OperatorAction(t_s=now_s, action="wean", by=by,
                                         detail=f"from {state.dose_mcg_min:.2f} mcg/min")])
        if not state.running:
            return Decision(False, 0.0, "nothing to wean: the infusion is not running",
                            RefusalCode.NOT_RUNNING)
        self._weaning.start(state.dose_mcg_min, now_s)
        return Decision(True, state.dose_mcg_min, "weaning started")

    def stop_weaning(self, now_s: float, *, by: str = "operator") -> None:
        self._now(now_s)
        self._rec.record([OperatorAction(t_s=now_s, action="stop_weaning", by=by)])
        self._weaning.stop()

    def set_standby(self, pump: Pump, now_s: float, *, by: str = "operator") -> None:
        """An operator loads a second pump (with a fresh syringe) to take over later (S10)."""
        self._now(now_s)
        self._rec.record([
            OperatorAction(t_s=now_s, action="standby", by=by, detail="spare pump loaded"),
            contract("standby", pump, now_s),
        ])
        self._delivery.set_standby(pump)
        self._rec.clear(AlarmCode.CHANGEOVER, now_s)

    def resume(self, state: ResumeState, now_s: float) -> None:
        """S13: take over after a restart from the journal's last dose, checked against the pump.

        Alarms left open by the previous run are restated as that run's (the checks of this
        run raise again what is still true); the operator's MAP target comes back; the pump's
        read-back settles the journal's last dose (see :mod:`safety.delivery`). The guard rails
        rebuild their history from the journal's doses: the line's infusion time, the time
        above the soft maximum, and an unanswered volume check, which stays open.
        """
        self._now(now_s)
        left_open = {alarm.code: alarm for alarm in state.open_alarms}
        volume_check = left_open.pop(AlarmCode.VOLUME_CHECK, None)
        self._rails.restore(
            now_s, state.dose_history, volume_answer_age_s=state.volume_answer_age_s,
            volume_check=None if volume_check is None else volume_check.message,
            high_dose_active=AlarmCode.PROLONGED_HIGH_DOSE in left_open)
        if volume_check is not None:
            self._order(self._rails.volume.ask(volume_check.message), now_s)
        for alarm in left_open.values():
            self._rec.record(self._alarms.carry_over(alarm.code, alarm.priority, alarm.message,
                                                     now_s))
        target = state.target_map_mmhg
        if target is not None and target != self._patient.setpoint_mmhg:
            floor = target - SET_POINT_ABOVE_FLOOR_MMHG
            self._rec.record([OperatorAction(
                t_s=now_s, action="set_target", by="resume",
                detail=f"floor {self._patient.floor_mmhg:g} -> {floor:g} mmHg (set-point "
                       f"{target:g}), the operator's before the restart",
                target_map_mmhg=target)])
            self._refloor(floor)
        detail = self._delivery.resume(state, now_s)
        delivery = self._delivery.state
        if state.weaning and delivery.running:
            self._weaning.start(delivery.dose_mcg_min, now_s)
        self._rec.alarm(AlarmCode.RESTARTED, f"supervisor restarted: {detail}", now_s,
                        momentary=True)

    # -- requests ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the pumps' connections at shutdown (each pump keeps its own state)."""
        self._delivery.close()

    def request(self, req: DoseRequest, now_s: float) -> Decision:
        """A dose change from the operator, a controller or a remote user."""
        self._now(now_s)
        return self._decide(req, now_s, starting=False)

    def context(self, req: DoseRequest, now_s: float, *, starting: bool) -> RequestContext:
        """The frozen picture the request rules judge ``req`` on."""
        state = self._delivery.state
        tachycardia = self._alarms.get(AlarmCode.TACHYCARDIA)
        return RequestContext(
            request=req,
            now_s=now_s,
            starting=starting,
            running=state.running,
            dose_mcg_min=state.dose_mcg_min,
            limits=self._limits,
            capabilities=self._delivery.capabilities,
            trusted_map_mmhg=self._map.trusted_map_mmhg(now_s),
            last_quality=self._map.last_quality(now_s),
            stale_after_s=self._safety.stale_after_s,
            floor_mmhg=self._patient.floor_mmhg,
            lower_limit_mmhg=self._patient.lower_limit_mmhg,
            map_high_margin_mmhg=self._safety.map_high_margin_mmhg,
            since_last_up_s=None if state.last_up_t_s is None else now_s - state.last_up_t_s,
            uncertain=state.uncertain,
            journal_ok=self._rec.journal_ok,
            needs_operator=state.needs_operator,
            stop_reason=state.stop_reason,
            weaning=self._weaning.active,
            volume_check_open=self._rails.volume.open,
            volume_checked_recently=self._rails.volume.answered_within_window(now_s),
            tachycardia_unacknowledged=tachycardia is not None and not tachycardia.acknowledged,
        )

    def _decide(self, req: DoseRequest, now_s: float, *, starting: bool) -> Decision:
        self._rec.record([DoseRequested(
            t_s=now_s, requester=req.requester, dose_mcg_min=req.dose_mcg_min,
            reason=req.reason, sender=req.sender, soft_limit_confirmed=req.soft_limit_confirmed,
        )])
        state = self._delivery.state
        if state.uncertain or (state.status is not None and state.status.delivery_uncertain):
            self._delivery.settle(now_s)
        ruling = evaluate(self.context(req, now_s, starting=starting))
        if ruling.refused:
            if ruling.code is RefusalCode.HARD_MAX:
                self._rec.alarm(AlarmCode.HARD_LIMIT_REFUSED, ruling.reason, now_s,
                                momentary=True)
            elif ruling.code is RefusalCode.VOLUME_CHECK:
                self._order(self._rails.volume.ask(
                    f"{req.dose_mcg_min:.1f} mcg/min was asked for, above the soft maximum of "
                    f"{self._limits.soft_max:.1f}"), now_s)
            return self._refuse(req, now_s, ruling)
        current = self._delivery.state.dose_mcg_min
        if not starting and ruling.dose_mcg_min == current:
            return Decision(True, current, "no change")
        if req.requester is Requester.OPERATOR and self._weaning.active:
            self._weaning.stop()
            self._rec.record([OperatorAction(t_s=now_s, action="stop_weaning",
                                             by=req.sender or "operator",
                                             detail="operator set a dose")])
        if ruling.dose_mcg_min == 0:
            # Only an operator gets here (the rules refuse automatic stops): S10.
            self._delivery.stop(now_s, StopReason.OPERATOR, detail=req.reason,
                                requester=req.requester)
            return Decision(True, 0.0, ruling.reason)
        taken = self._delivery.command(
            ruling.dose_mcg_min, req.requester, ruling.reason, now_s,
            change=DoseChange.START if starting else DoseChange.TITRATION,
            confirmed=req.soft_limit_confirmed)
        dose = self._delivery.state.dose_mcg_min
        if taken:
            return Decision(True, dose, ruling.reason)
        if not self._rec.journal_ok:
            return self._refuse(req, now_s, Ruling(dose, (
                "the journal could not record the change, so the pump was not told",),
                RefusalCode.JOURNAL_FAULT))
        return Decision(False, dose, "the pump did not take the dose", RefusalCode.PUMP_ERROR)

    def _refuse(self, req: DoseRequest, now_s: float, ruling: Ruling) -> Decision:
        code = ruling.code or RefusalCode.PUMP_ERROR
        self._rec.record([DoseRefused(
            t_s=now_s, requester=req.requester, requested_dose_mcg_min=req.dose_mcg_min,
            code=code, reason=ruling.reason, sender=req.sender,
        )])
        return Decision(False, self._delivery.state.dose_mcg_min, ruling.reason, code)

    # -- inputs --------------------------------------------------------------------------------

    def on_beat(self, beat: Beat, now_s: float) -> None:
        self._now(now_s)
        self._map.on_beat(beat)
        self._rails.on_beat(beat)

    def on_line_signals(self, signals: LineSignals, now_s: float) -> None:
        self._now(now_s)
        if signals.extravasation_sensor:
            self._enact(extravasation("extravasation sensor at the cannula"), now_s)
        elif signals.stall:
            self._enact(self._line.stall(signals.line_pressure_mmhg, "motor stall signal"),
                        now_s)
        elif signals.line_pressure_mmhg is not None:
            self._check_pressure(signals.line_pressure_mmhg, signals.t_s, now_s)

    def tick(self, now_s: float) -> None:
        """The fast supervision tick: the journal's backlog, the watchdogs, the pump's
        read-back, then the syringe, MAP and weaning checks, which run even when the pump
        cannot be read."""
        self._now(now_s)
        self._rec.catch_up(now_s)
        if self._delivery.state.running:
            # Before the read-back, so that the pump's state is the one the probe left.
            self._delivery.advance_probe(now_s)
            self._line.follow(self._delivery.state.paused, now_s)
        self._look(now_s)
        self._check_syringe(now_s)
        self._check_map(now_s)
        self._check_guard_rails(now_s)
        self._wean(now_s)

    def _look(self, now_s: float) -> None:
        """Read the pump and act on what it says (hazards first, then reconciliation)."""
        status = self._delivery.read(now_s)
        self._readable = status is not None
        if status is None:
            return
        running = self._delivery.state.running
        if running and status.stalled:
            self._enact(self._line.stall(status.line_pressure_mmhg,
                                         "the pump reports a stalled motor"), now_s)
        elif running and empty(status):
            if self._delivery.change_over(now_s):
                self._line.reset()
            else:
                self._rec.alarm(AlarmCode.SYRINGE_EMPTY, "syringe empty: infusion stopped",
                                now_s)
                self._delivery.stop(now_s, StopReason.EMPTY)
        else:
            self._delivery.reconcile(status, now_s)
            state = self._delivery.state
            if state.running and (status.state is PumpState.INFUSING or state.paused) \
                    and status.line_pressure_mmhg is not None:
                self._check_pressure(status.line_pressure_mmhg, status.t_s, now_s)

    # -- hazards -------------------------------------------------------------------------------

    def _check_pressure(self, pressure_mmhg: float, sample_t_s: float, now_s: float) -> None:
        state = self._delivery.state
        if not state.running:
            return
        self._line.follow(state.paused, now_s)
        verdict = self._line.pressure(pressure_mmhg, state.rate_ml_h, sample_t_s)
        if verdict.hazard is not None:
            self._enact(verdict.hazard, now_s)
            return
        for order in verdict.alarms:
            self._order(order, now_s)
        if verdict.probe is not None:
            self._probe(verdict.probe, now_s)

    def _probe(self, request: ProbeRequest, now_s: float) -> None:
        """S8, S9: the watch asks, :func:`probe_refusal` decides, the delivery part pauses."""
        state = self._delivery.state
        ctx = ProbeContext(
            # A pump that cannot be read is as uncertain as one whose command was lost.
            rate_ml_h=state.rate_ml_h, uncertain=state.uncertain or not self._readable,
            paused=state.paused,
            owed_ul=state.owed_ul(now_s),
            map_trend_mmhg=self._map.trend_mmhg if self._map.trusted(now_s) else None,
            floor_mmhg=self._patient.floor_mmhg)
        refusal = probe_refusal(request, ctx)
        if refusal is not None:
            if state.probe is None:
                for order in self._line.probe_declined(request, refusal, now_s):
                    self._order(order, now_s)
            return
        if self._delivery.pause(request, now_s):
            self._line.probe_started(request.cause, now_s)

    def _enact(self, hazard: Hazard, now_s: float) -> None:
        """S8: stop, release the stored bolus, latch; S9: stop (no back-off), latch."""
        running = self._delivery.state.running
        finding = hazard.occlusion
        if finding is not None:
            if not running:
                return
            self._last_finding = finding
            self._rec.record([Fault(
                t_s=now_s, code=FaultCode.OCCLUSION_DETECTED, message=finding.message,
                detail=f"detector={finding.detector} pressure_mmhg={finding.pressure_mmhg} "
                       f"baseline_mmhg={finding.baseline_mmhg:.1f} "
                       f"stored_ul={finding.stored_ul:.1f}",
            )])
            self._rec.alarm(AlarmCode.OCCLUSION,
                            f"occlusion ({finding.detector}): {finding.message}; infusion "
                            "stopped", now_s)
            self._weaning.stop()
            self._delivery.stop(now_s, StopReason.OCCLUSION)
            self._delivery.back_off(finding.stored_ul, now_s)
            return
        self._rec.alarm(AlarmCode.EXTRAVASATION,
                        f"{hazard.reason} suspected: {hazard.message}; infusion stopped, check "
                        "the cannula", now_s)
        if running:
            self._weaning.stop()
            self._delivery.stop(now_s, hazard.reason)
        else:
            self._delivery.latch(hazard.reason)

    def _time_left_min(self, now_s: float) -> float | None:
        status = self._delivery.state.status
        # While the pump cannot be read, the last reading is counted on at its rate.
        return time_left_min(status, now_s if not self._readable else None)

    def _check_syringe(self, now_s: float) -> None:
        outlook = syringe_outlook(self._time_left_min(now_s),
                                  running=self._delivery.state.running,
                                  spare=self._delivery.has_standby,
                                  near_empty_min=self._safety.near_empty_min)
        if outlook.change_over and self._delivery.change_over(now_s):
            self._line.reset()
            return
        self._order(outlook.alarm, now_s)

    def _check_map(self, now_s: float) -> None:
        for order in self._map.assess(now_s, self._delivery.state.dose_mcg_min,
                                      self._patient.floor_mmhg):
            self._order(order, now_s)

    def _check_guard_rails(self, now_s: float) -> None:
        state = self._delivery.state
        for order in self._rails.assess(now_s, dose_mcg_min=state.dose_mcg_min,
                                        running=state.running,
                                        floor_mmhg=self._patient.floor_mmhg):
            self._order(order, now_s)

    def _order(self, order: AlarmOrder, now_s: float) -> None:
        if order.priority is None:
            self._rec.clear(order.code, now_s)
        else:
            self._rec.alarm(order.code, order.message, now_s, priority=order.priority,
                            momentary=order.momentary)

    def _wean(self, now_s: float) -> None:
        state = self._delivery.state
        if not state.running:
            self._weaning.stop()
            return
        # Checked on every tick; a step waits while it could not be journaled or sent.
        hold = not self._rec.journal_ok or not self._readable or state.uncertain
        step = self._weaning.next_step(state.dose_mcg_min, self._map.median_map_mmhg(now_s),
                                       now_s, hold=hold)
        if step is None:
            return
        if step.dose_mcg_min == 0:
            self._weaning.taken(step, state.dose_mcg_min, now_s)
            self._delivery.stop(now_s, StopReason.WEANED, detail=step.reason)
        elif self._delivery.command(step.dose_mcg_min, Requester.SUPERVISOR, step.reason, now_s,
                                    change=DoseChange.WEAN):
            self._weaning.taken(step, state.dose_mcg_min, now_s)

