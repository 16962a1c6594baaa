"""Pure builders of the retained payloads from the supervisor's read-only view."""

from __future__ import annotations

from safety.view import SupervisorView
from vasopilot.core.events import BeatSummary
from vasopilot.core.types import Beat
from vasopilot.core.units import mcg_kg_min_from_mcg_min
from vasopilot.telemetry.payloads import AlarmsPayload, AlarmState, StatePayload, Vitals


def vitals_from(beat: Beat | BeatSummary | None) -> Vitals | None:
    if beat is None:
        return None
    return Vitals(t_s=beat.t_s, map_mmhg=beat.map_mmhg, sbp_mmhg=beat.sbp_mmhg,
                  dbp_mmhg=beat.dbp_mmhg, hr_bpm=beat.hr_bpm, quality=beat.quality)


def alarm_states(view: SupervisorView) -> tuple[AlarmState, ...]:
    return tuple(AlarmState(code=a.code, priority=a.priority, message=a.message,
                            acknowledged=a.acknowledged, silenced=a.silenced)
                 for a in view.alarms)


def state_payload(
    view: SupervisorView,
    *,
    rig_id: str,
    wall: str,
    mode: str,
    weight_kg: float | None,
    last_beat: Beat | BeatSummary | None,
    remote_commands: bool,
    last_seq: int,
) -> StatePayload:
    """The ``state`` payload; ``weight_kg`` (kg) gives the dose in mcg/kg/min when known."""
    pump = view.pump
    vitals = vitals_from(last_beat)
    good_t_s = view.last_good_beat_t_s
    if view.last_good_map_mmhg is not None and good_t_s is not None and (
            vitals is None or vitals.t_s < good_t_s):
        # Beat summaries come every 15 s; the supervisor's last good MAP is fresher.
        vitals = Vitals(t_s=good_t_s, map_mmhg=view.last_good_map_mmhg, quality="good")
    return StatePayload(
        rig_id=rig_id, t_s=view.t_s, wall=wall, mode=mode, running=view.running,
        weaning=view.weaning, stop_reason=view.stop_reason,
        dose_mcg_min=view.dose_mcg_min,
        dose_mcg_kg_min=(mcg_kg_min_from_mcg_min(view.dose_mcg_min, weight_kg)
                         if weight_kg else None),
        rate_ml_h=view.rate_ml_h,
        volume_infused_ml=pump.delivered_ml if pump else None,
        syringe_remaining_ml=pump.syringe_remaining_ml if pump else None,
        time_left_min=view.time_left_min, map_trusted=view.map_trusted,
        vitals=vitals, target_map_mmhg=view.target_map_mmhg,
        lower_limit_mmhg=view.lower_limit_mmhg, alarms=alarm_states(view),
        remote_commands=remote_commands, last_seq=last_seq,
        volume_check_open=view.volume_check_open, line=view.line,
    )


def alarms_payload(state: StatePayload) -> AlarmsPayload:
    return AlarmsPayload(rig_id=state.rig_id, t_s=state.t_s, alarms=state.alarms)
