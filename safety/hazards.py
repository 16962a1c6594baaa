"""The hazard watches: line pressure (S8 occlusion, S9 infiltration) and the syringe (S10).

Each watch decides and returns a finding; the supervisor enacts it through the delivery part.
"""

from __future__ import annotations

from dataclasses import dataclass

from safety.extravasation import InfiltrationDetector
from safety.map_watch import AlarmOrder
from safety.occlusion import OcclusionDetector, OcclusionFinding
from vasopilot.core.events import AlarmCode, StopReason
from vasopilot.core.types import Priority, PumpStatus
from vasopilot.core.units import MINUTES_PER_HOUR

# The second pump takes over this long before the first runs dry: late enough to use the
# syringe, early enough that a slow tick cannot leave a gap.
CHANGEOVER_LEAD_S = 60.0


@dataclass(frozen=True)
class Hazard:
    """A reason to stop (S8, S9): which, why, and for an occlusion what the detector saw."""

    reason: StopReason
    message: str
    occlusion: OcclusionFinding | None = None


class LineWatch:
    """Occlusion and infiltration from line pressure, stall and the cannula-site sensor."""

    def __init__(self, threshold_mmhg: float, compliance_ul_per_mmhg: float, *,
                 rise_rate: bool = True) -> None:
        self._occlusion = OcclusionDetector(threshold_mmhg, compliance_ul_per_mmhg,
                                            rise_rate=rise_rate)
        self._infiltration = InfiltrationDetector(compliance_ul_per_mmhg)

    def reset(self) -> None:
        """A new start or a new pump: the baselines are learnt again."""
        self._occlusion.reset()
        self._infiltration.reset()

    def pressure(self, pressure_mmhg: float, rate_ml_h: float, t_s: float) -> Hazard | None:
        """One line-pressure sample taken while infusing at ``rate_ml_h``."""
        finding = self._occlusion.update(pressure_mmhg, rate_ml_h, t_s)
        if finding is not None:
            return occlusion(finding)
        infiltration = self._infiltration.update(pressure_mmhg, rate_ml_h, t_s)
        if infiltration is not None:
            return Hazard(StopReason.INFILTRATION, infiltration.message)
        return None

    def stall(self, pressure_mmhg: float | None, cause: str) -> Hazard:
        return occlusion(self._occlusion.stall(pressure_mmhg, cause))


def occlusion(finding: OcclusionFinding) -> Hazard:
    return Hazard(StopReason.OCCLUSION, finding.message, finding)


def extravasation(cause: str) -> Hazard:
    return Hazard(StopReason.EXTRAVASATION, cause)


def time_left_min(status: PumpStatus | None, now_s: float | None = None) -> float | None:
    """Minutes of infusion left at the last read-back rate; with ``now_s``, counted on from
    that reading to ``now_s`` (so the estimate stays live while the pump cannot be read)."""
    if status is None or status.rate_ml_h <= 0:
        return None
    elapsed_s = 0.0 if now_s is None else max(0.0, now_s - status.t_s)
    elapsed_ml = status.rate_ml_h * elapsed_s / 3600.0
    left_ml = max(0.0, status.syringe_remaining_ml - elapsed_ml)
    return left_ml / status.rate_ml_h * MINUTES_PER_HOUR


def empty(status: PumpStatus) -> bool:
    return status.end_of_travel or status.syringe_remaining_ml <= 0


@dataclass(frozen=True)
class SyringeOutlook:
    """What the syringe calls for now: a changeover to the spare, and the near-empty alarm."""

    change_over: bool
    alarm: AlarmOrder


def syringe_outlook(left_min: float | None, *, running: bool, spare: bool,
                    near_empty_min: float) -> SyringeOutlook:
    """S10: a medium alarm ``near_empty_min`` ahead; the spare takes over shortly before (the
    alarm stands in case the changeover fails)."""
    if not running or left_min is None:
        return SyringeOutlook(False, AlarmOrder(AlarmCode.SYRINGE_NEAR_EMPTY))
    change_over = spare and left_min * 60.0 <= CHANGEOVER_LEAD_S
    if left_min > near_empty_min:
        return SyringeOutlook(change_over, AlarmOrder(AlarmCode.SYRINGE_NEAR_EMPTY))
    plan = "the second pump takes over" if spare else "prepare a new syringe"
    return SyringeOutlook(change_over, AlarmOrder(
        AlarmCode.SYRINGE_NEAR_EMPTY, Priority.MEDIUM,
        f"syringe near empty: {left_min:.0f} min of infusion left; {plan}"))
