"""Weaning policy (S7), run by the supervisor so that no controller can hurry it.

Judged on the trusted MAP of S7: the median of the good beats of the last minute (not single
beats: a respiratory dip is not hypotension), against the floor F. Steps down by
``step_mcg_min`` only when that MAP has stayed at or above F, on trusted data, for a whole
``interval_s`` since the last step; a MAP below F (or none to judge on) restarts that interval
(a pause); a MAP below the lower limit F - 5 returns to the last dose that held the floor. The
last step lands on zero from at most one step above it.
"""

from __future__ import annotations

from dataclasses import dataclass

_EPS_MCG_MIN = 1e-9


@dataclass(frozen=True)
class WeanStep:
    """A step to take: ``down`` steps count as weaning (a return to a held dose does not)."""

    dose_mcg_min: float
    reason: str
    down: bool = False


class WeaningPolicy:
    def __init__(
        self,
        step_mcg_min: float,
        interval_s: float,
        floor_mmhg: float,
        lower_limit_mmhg: float,
    ) -> None:
        self._step_mcg_min = step_mcg_min
        self._interval_s = interval_s
        self._floor_mmhg = floor_mmhg
        self._lower_mmhg = lower_limit_mmhg
        self.active = False
        self._last_step_t_s = 0.0
        self._unproven_t_s: float | None = None
        self._held_dose_mcg_min = 0.0

    def start(self, dose_mcg_min: float, now_s: float) -> None:
        self.active = True
        self._last_step_t_s = now_s
        self._unproven_t_s = None
        self._held_dose_mcg_min = dose_mcg_min

    def stop(self) -> None:
        self.active = False

    def refloor(self, floor_mmhg: float, lower_limit_mmhg: float) -> None:
        """An operator's new floor is what a weaning step must hold from now on."""
        self._floor_mmhg = floor_mmhg
        self._lower_mmhg = lower_limit_mmhg

    def next_step(
        self, dose_mcg_min: float, map_mmhg: float | None, now_s: float, *, hold: bool = False
    ) -> WeanStep | None:
        """The step due at ``now_s``; ``map_mmhg`` is S7's trusted MAP (the minute's median of
        good beats) or ``None`` when there is none to judge on.

        With ``hold`` (the step could not be carried out now) the MAP still counts towards
        the interval, but no step is offered. A step counts once :meth:`taken` says so.
        """
        if not self.active:
            return None
        if map_mmhg is None or map_mmhg < self._floor_mmhg:
            self._unproven_t_s = now_s
        if hold:
            return None
        if map_mmhg is not None and map_mmhg < self._lower_mmhg:
            held = self._held_dose_mcg_min
            if held > dose_mcg_min + _EPS_MCG_MIN:
                return WeanStep(held, f"weaning: MAP {map_mmhg:.0f} mmHg (1 min median) is "
                                      f"below the lower limit of {self._lower_mmhg:.0f} mmHg: "
                                      f"back to {held:.2f} mcg/min, the last dose that held "
                                      "the floor")
            return None
        quiet_since_s = max(self._last_step_t_s, self._unproven_t_s or self._last_step_t_s)
        if now_s - quiet_since_s < self._interval_s:
            return None
        lower = dose_mcg_min - self._step_mcg_min
        if lower <= _EPS_MCG_MIN:
            return WeanStep(0.0, f"weaning: final step from {dose_mcg_min:.2f} mcg/min to zero",
                            down=True)
        return WeanStep(lower, f"weaning: MAP held the floor of {self._floor_mmhg:.0f} mmHg "
                               f"(1 min median) for {self._interval_s:.0f} s: "
                               f"{dose_mcg_min:.2f} -> {lower:.2f} mcg/min", down=True)

    def taken(self, step: WeanStep, from_dose_mcg_min: float, now_s: float) -> None:
        """``step`` was carried out at ``now_s`` from ``from_dose_mcg_min``."""
        if not step.down:
            return
        self._held_dose_mcg_min = from_dose_mcg_min
        self._last_step_t_s = now_s
        if step.dose_mcg_min == 0:
            self.active = False
