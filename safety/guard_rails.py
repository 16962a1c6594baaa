"""The guard rails of issue 19 together: what the supervisor feeds them and what they order.

GR1 volume before escalation (:class:`~safety.clinical.VolumeWatch`), GR2 heart rate and rhythm
and GR4 systolic pressure (:class:`~safety.vitals.VitalsWatch`), GR3 the line the drug runs in
(:class:`~safety.clinical.LineTimeWatch`; the start-up refusal is a settings rule), GR5
prolonged high doses (:class:`~safety.clinical.HighDoseWatch`). Pure, like its parts.

GR4 is the older rule (SBP > 90 mmHg) beside the MAP floor the rig titrates to, so it is
raised where it says something the MAP alarms do not (docs/safety.md, GR4):

- not during *induction* (:class:`Induction`: from the start of an infusion until the MAP has
  held the floor for a minute): there the hypotension is the reason the drug is being
  escalated, MAP_LOW already reports it, and every patient started under the floor would be
  told twice. Induction ends at :data:`INDUCTION_MAX_S` at the latest: hypotension that
  persists beyond it is news, and SBP_LOW comes.
- without a usual SBP, only while the MAP is also under the floor: between the lower limit
  (where MAP_LOW starts) and the floor it is the only alarm about a pressure under target; at
  or above the floor the titration target is met and SBP < 90 means only a pulse pressure
  under 37.5 mmHg (SBP ≈ MAP + 2/3 of it), which at an adequate MAP is no reason to act.
- with a usual SBP (a previously hypertensive patient), at any MAP: max(90, usual - 40) is that
  patient's own target, which a floor set too low would not protect.
"""

from __future__ import annotations

from collections.abc import Sequence

from safety.clinical import (
    FLOOR_HOLD_S,
    HighDoseWatch,
    LineTimeWatch,
    VolumeRule,
    VolumeWatch,
)
from safety.limits import DoseLimits
from safety.map_watch import AlarmOrder
from safety.vitals import VitalsLimits, VitalsWatch
from vasopilot.core.config import DrugEntry, PatientSettings, SafetySettings
from vasopilot.core.types import Beat

S_PER_MIN = 60.0
S_PER_H = 3600.0
# S3's pace takes the start range to the soft maximum in about 15 min (+max(2, 20 %) every
# 2 min from 10: 12, 14.4, ... 29.9); with the drug's onset, a patient still under the floor
# after twice that is not in the planned induction any more.
INDUCTION_MAX_S = 1800.0


class Induction:
    """From the start of an infusion until the MAP has held the floor for
    :data:`~safety.clinical.FLOOR_HOLD_S`, or for :data:`INDUCTION_MAX_S` at most."""

    def __init__(self) -> None:
        self._start_s: float | None = None
        self._at_floor_since_s: float | None = None
        self._over = False

    def update(self, now_s: float, *, running: bool, map_mmhg: float | None,
               floor_mmhg: float) -> bool:
        """Whether the infusion is in its induction at ``now_s``; a stop ends its history."""
        if not running:
            self._start_s, self._at_floor_since_s, self._over = None, None, False
            return False
        if self._start_s is None:
            self._start_s = now_s
        if self._over:
            return False
        if map_mmhg is None or map_mmhg < floor_mmhg:
            self._at_floor_since_s = None
        elif self._at_floor_since_s is None:
            self._at_floor_since_s = now_s
        held = self._at_floor_since_s is not None \
            and now_s - self._at_floor_since_s >= FLOOR_HOLD_S
        self._over = held or now_s - self._start_s >= INDUCTION_MAX_S
        return not self._over

    def restore(self, *, running: bool, now_s: float) -> None:
        """After a restart with the infusion running: its induction is taken as over (the
        journal keeps no MAP), so every alarm is watched."""
        self._start_s = now_s if running else None
        self._over = running


class GuardRails:
    def __init__(self, drug: DrugEntry, patient: PatientSettings, safety: SafetySettings,
                 limits: DoseLimits) -> None:
        self.volume = VolumeWatch(VolumeRule(
            ratio=drug.volume_check_ratio, rise_mcg_min=drug.volume_check_rise_mcg_min,
            window_s=drug.volume_check_window_s, soft_max_mcg_min=limits.soft_max,
            start_min_mcg_min=drug.mcg_min(drug.start_min, patient.weight_kg)))
        self.vitals = VitalsWatch(VitalsLimits(
            tachycardia_bpm=safety.tachycardia_bpm, bradycardia_bpm=safety.bradycardia_bpm,
            heart_rate_sustain_s=safety.heart_rate_sustain_s,
            rhythm_irregularity=safety.rhythm_irregularity,
            sbp_alarm_mmhg=patient.sbp_alarm_mmhg(safety.sbp_low_mmhg),
            sbp_sustain_s=safety.sbp_sustain_s, stale_after_s=safety.stale_after_s))
        self._sbp_at_any_map = patient.usual_sbp_mmhg is not None
        self.induction = Induction()
        self.line = patient.line
        self.line_time = LineTimeWatch(peripheral=patient.line == "peripheral",
                                       check_s=safety.cannula_check_min * S_PER_MIN,
                                       max_s=drug.peripheral_max_hours * S_PER_H)
        self.high_dose = HighDoseWatch(limits.soft_max, safety.high_dose_window_h * S_PER_H,
                                       safety.high_dose_limit_h * S_PER_H)

    def on_beat(self, beat: Beat) -> None:
        self.vitals.on_beat(beat)

    def assess(self, now_s: float, *, dose_mcg_min: float, running: bool,
               floor_mmhg: float) -> list[AlarmOrder]:
        """Every order of every watch at ``now_s`` (the running dose in mcg/min, the MAP floor
        in mmHg); the MAP is the 10 s median of the trusted beats."""
        map_mmhg = self.vitals.map_mmhg(now_s)
        inducing = self.induction.update(now_s, running=running, map_mmhg=map_mmhg,
                                         floor_mmhg=floor_mmhg)
        self.volume.on_dose(now_s, dose_mcg_min if running else 0.0)
        self.volume.on_map(now_s, map_mmhg, floor_mmhg)
        volume = self.volume.assess(now_s, map_mmhg, floor_mmhg) if running else None
        return [
            *([] if volume is None else [volume]),
            *self.vitals.assess(now_s, sbp_watched=not inducing,
                                sbp_floor_mmhg=None if self._sbp_at_any_map else floor_mmhg),
            *self.line_time.assess(now_s, running=running),
            self.high_dose.assess(now_s, dose_mcg_min, running=running),
        ]

    def restore(self, now_s: float, doses: Sequence[tuple[float, float]], *,
                volume_answer_age_s: float | None, volume_check: str | None,
                high_dose_active: bool) -> None:
        """After a restart (S13): the journal's doses as (age in s, mcg/min), oldest first,
        the age of the last volume answer, the volume check left open (its message) and
        whether the high-dose advisory was raised. The line's infusion time, the time above
        the soft maximum and the volume check's history are rebuilt from them."""
        timeline = [(now_s - age_s, dose) for age_s, dose in doses]
        ends = [t for t, _ in timeline[1:]] + [now_s][:len(timeline)]
        infused_s = sum(end - t for (t, dose), end in zip(timeline, ends, strict=True)
                        if dose > 0)
        self.line_time.restore(infused_s)
        self.high_dose.restore(timeline, now_s, active=high_dose_active)
        answered_s = None if volume_answer_age_s is None else now_s - volume_answer_age_s
        self.volume.restore(timeline, answered_s=answered_s, open_message=volume_check)
        running = bool(timeline) and timeline[-1][1] > 0
        self.induction.restore(running=running, now_s=now_s)
