"""The guard rails of issue 19 together: what the supervisor feeds them and what they order.

GR1 volume before escalation (:class:`~safety.clinical.VolumeWatch`), GR2 heart rate and rhythm
and GR4 systolic pressure (:class:`~safety.vitals.VitalsWatch`), GR3 the line the drug runs in
(:class:`~safety.clinical.LineTimeWatch`; the start-up refusal is a settings rule), GR5
prolonged high doses (:class:`~safety.clinical.HighDoseWatch`). Pure, like its parts.
"""

from __future__ import annotations

from safety.clinical import HighDoseWatch, LineTimeWatch, VolumeRule, VolumeWatch
from safety.limits import DoseLimits
from safety.map_watch import AlarmOrder
from safety.vitals import VitalsLimits, VitalsWatch
from vasopilot.core.config import DrugEntry, PatientSettings, SafetySettings
from vasopilot.core.types import Beat

S_PER_MIN = 60.0
S_PER_H = 3600.0


class GuardRails:
    def __init__(self, drug: DrugEntry, patient: PatientSettings, safety: SafetySettings,
                 limits: DoseLimits) -> None:
        self.volume = VolumeWatch(VolumeRule(
            ratio=drug.volume_check_ratio, rise_mcg_min=drug.volume_check_rise_mcg_min,
            window_s=drug.volume_check_window_s, soft_max_mcg_min=limits.soft_max,
            start_max_mcg_min=limits.start_max))
        self.vitals = VitalsWatch(VitalsLimits(
            tachycardia_bpm=safety.tachycardia_bpm, bradycardia_bpm=safety.bradycardia_bpm,
            heart_rate_sustain_s=safety.heart_rate_sustain_s,
            rhythm_irregularity=safety.rhythm_irregularity,
            sbp_alarm_mmhg=patient.sbp_alarm_mmhg(safety.sbp_low_mmhg),
            sbp_sustain_s=safety.sbp_sustain_s, stale_after_s=safety.stale_after_s))
        self.line = patient.line
        self.line_time = LineTimeWatch(peripheral=patient.line == "peripheral",
                                       check_s=safety.cannula_check_min * S_PER_MIN,
                                       max_s=drug.peripheral_max_hours * S_PER_H)
        self.high_dose = HighDoseWatch(limits.soft_max, safety.high_dose_window_h * S_PER_H,
                                       safety.high_dose_limit_h * S_PER_H)

    def on_beat(self, beat: Beat) -> None:
        self.vitals.on_beat(beat)

    def assess(self, now_s: float, *, dose_mcg_min: float, running: bool,
               trusted_map_mmhg: float | None, floor_mmhg: float) -> list[AlarmOrder]:
        """Every order of every watch at ``now_s`` (the running dose in mcg/min, MAP in mmHg)."""
        self.volume.on_dose(now_s, dose_mcg_min if running else 0.0)
        volume = self.volume.assess(now_s, trusted_map_mmhg, floor_mmhg) if running else None
        return [
            *([] if volume is None else [volume]),
            *self.vitals.assess(now_s),
            *self.line_time.assess(now_s, running=running),
            self.high_dose.assess(now_s, dose_mcg_min, running=running),
        ]
