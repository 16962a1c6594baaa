"""Guided weaning (mode ``wean``): titrate down as the patient recovers, S7 takes the last steps.

The operator asks for weaning by choosing this mode on an infusion that has been running (the
mode assumes it is in steady state on its dose, :meth:`MpcController.assume_steady`). Two
parts, and the supervisor's rules over both:

* **Titration down the recovery** (:data:`Phase.TITRATE`): the model-predictive controller of
  mode ``closed-loop`` keeps MAP in the band [F, F + 10] (S3 and S6 bound every move), so the
  dose follows the patient's own falling need as fast as the recovery allows, never faster
  than S3's down-step, and rises again if the patient needs it. A patient who does not recover
  (unweanable) is held on the dose that holds the floor: nothing ends his infusion.
* **Steps by S7** (:data:`Phase.S7`): when S7's trusted MAP (the median of the last minute's
  good beats) stands ``handover_margin_mmhg`` over the floor and either the dose is down to
  ``tail_mcg_min`` or the titration has held one dose for ``stall_s`` (the model-predictive
  controller keeps a margin under its chance constraint, so on a slow recovery it may hold a
  dose the floor no longer needs), the mode hands the infusion to the supervisor's weaning
  policy (:meth:`WeanController.hands_over`, acted on by :class:`~vasopilot.runtime.RigLoop`
  on every rig): one wean step per interval while MAP holds the floor, a final step to zero.
* **Taking back** (:meth:`WeanController.takes_back`): when the median stays under the floor
  for ``takeback_after_s`` (a pause S7 would sit out: the patient needs more drug: the
  titration again), and as soon as S7's next step would be the final one, unless MAP has held
  ``off_margin_mmhg`` over the floor on that last dose (the median of every good beat since
  it began, over at least ``off_judged_after_s``): the last 1 mcg/min is worth a few mmHg,
  MAP0's wander lasts 5-30 min, and a patient whose recovery fell short is not weaned off on
  a passing high of it. The dose is then held (:data:`Phase.LAST`; the median under the floor
  for ``takeback_after_s`` brings the titration back) and S7 gets the final step once MAP has
  held. The dose is at the final step already: only the stop waits.

While S7 holds the dose the model-predictive controller still looks, so its filter and line
model stay current; its requests are not sent. Once S7 has taken its final step, or an
operator stopped weaning, the mode proposes nothing: the operator leads.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from enum import Enum

from safety.view import SupervisorView
from vasopilot.control.closed_loop import MapEstimator
from vasopilot.control.mpc import LineModel, MpcController
from vasopilot.core.types import Beat, DoseRequest, Requester


class Phase(Enum):
    TITRATE = "titrate"  # the model-predictive controller, both ways
    S7 = "s7"  # the supervisor's weaning policy holds the dose
    LAST = "last"  # the final step's dose, held until MAP has shown it holds the floor
    DONE = "done"  # weaning ended or an operator stopped it: the operator leads


@dataclass(frozen=True)
class WeanTuning:
    """Doses in mcg/min, pressures in mmHg over the floor F, times in s.

    ``tail_mcg_min``: the dose from which S7 takes over at once (its steps of 1 mcg/min every
    15 min then take (tail - 1) × 15 min to the final step). ``median_window_s`` and
    ``median_beats``: S7's trusted MAP, as the supervisor judges it. Set from S7's own numbers
    and the band, not swept on a cohort.
    """

    tail_mcg_min: float = 3.0
    stall_s: float = 900.0
    handover_margin_mmhg: float = 3.0
    takeback_after_s: float = 60.0
    off_margin_mmhg: float = 3.0
    off_judged_after_s: float = 3600.0
    median_window_s: float = 60.0
    median_beats: int = 20


class WeanController:
    """Titrates down with the model-predictive controller, hands the steps to S7 (module
    docstring); pure: time from ``view.t_s``."""

    mode = "wean"
    requester = Requester.CONTROLLER

    def __init__(self, line: LineModel | None = None, tuning: WeanTuning | None = None) -> None:
        self.tuning = tuning or WeanTuning()
        self.mpc = MpcController(line)
        self.phase = Phase.TITRATE
        self._median = MapEstimator(window_s=self.tuning.median_window_s,
                                    trend_window_s=self.tuning.median_window_s,
                                    min_beats=self.tuning.median_beats)
        self._taken_over = False
        self._low_since_s: float | None = None
        self._dose: float | None = None
        self._dose_since_s = 0.0
        # good beats (t s, MAP) since the running dose began
        self._on_dose: deque[tuple[float, float]] = deque()

    def on_beat(self, beat: Beat) -> None:
        self.mpc.on_beat(beat)
        self._median.add(beat)
        if beat.is_good:
            self._on_dose.append((beat.t_s, beat.map_mmhg))

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        if not self._taken_over and view.running:
            self.mpc.assume_steady(view.dose_mcg_min)
            self._taken_over = True
        if self.phase is Phase.S7 and not view.weaning:
            self.phase = Phase.DONE  # S7 took the final step, or an operator stopped it
        self._note_dose(view)
        request = self.mpc.propose(view)
        if self.phase is Phase.LAST and self._low_for(view):
            self.phase = Phase.TITRATE  # the patient needs more than the last dose
        return request if self.phase is Phase.TITRATE else None

    def median_map_mmhg(self, now_s: float) -> float | None:
        """S7's trusted MAP as this mode sees it: the last minute's median of good beats."""
        est = self._median.estimate(now_s)
        return None if est is None else est.map_mmhg

    def on_dose_map_mmhg(self, now_s: float) -> float | None:
        """The median of the good beats since the running dose began (``None`` before
        ``off_judged_after_s`` of it)."""
        if now_s - self._dose_since_s < self.tuning.off_judged_after_s or not self._on_dose:
            return None
        return statistics.median(m for _, m in self._on_dose)

    def hands_over(self, view: SupervisorView) -> bool:
        """True when MAP holds the floor with a margin on trusted data and the dose is down to
        the tail or has been held for ``stall_s``; the final step only once MAP has held the
        floor on the last dose (module docstring)."""
        t = self.tuning
        if self.phase not in (Phase.TITRATE, Phase.LAST) or not view.running or view.weaning \
                or not view.map_trusted:
            return False
        self._note_dose(view)
        if self.phase is Phase.LAST:
            return self._hand_over() if self._holds_without_it(view) else False
        held_s = view.t_s - self._dose_since_s
        if view.dose_mcg_min > t.tail_mcg_min + 1e-9 and held_s < t.stall_s:
            return False
        est = self._median.estimate(view.t_s)
        if est is None or est.disturbed \
                or est.map_mmhg < view.floor_mmhg + t.handover_margin_mmhg:
            return False
        if self._final_next(view) and not self._holds_without_it(view):
            self.phase = Phase.LAST
            return False
        return self._hand_over()

    def takes_back(self, view: SupervisorView) -> bool:
        """True when, under S7, the minute's median has stayed under the floor for
        ``takeback_after_s`` (titration again), or S7's next step is the final one and MAP
        has not held ``off_margin_mmhg`` over the floor on this dose (the dose is held)."""
        if self.phase is not Phase.S7 or not view.weaning:
            return False
        self._note_dose(view)
        if self._final_next(view) and not self._holds_without_it(view):
            self.phase = Phase.LAST
            return True
        if not self._low_for(view):
            return False
        return self._take_back(view)

    def _hand_over(self) -> bool:
        self.phase = Phase.S7
        self._low_since_s = None
        return True

    def _low_for(self, view: SupervisorView) -> bool:
        """The minute's median has stayed under the floor for ``takeback_after_s``."""
        median = self.median_map_mmhg(view.t_s)
        if median is None or median >= view.floor_mmhg:
            self._low_since_s = None
            return False
        if self._low_since_s is None:
            self._low_since_s = view.t_s
        return view.t_s - self._low_since_s >= self.tuning.takeback_after_s

    def _take_back(self, view: SupervisorView) -> bool:
        self.phase = Phase.TITRATE
        self._dose_since_s = view.t_s  # the titration's hold is timed afresh
        self._on_dose.clear()
        return True

    def _note_dose(self, view: SupervisorView) -> None:
        if view.dose_mcg_min != self._dose:
            self._dose, self._dose_since_s = view.dose_mcg_min, view.t_s
            self._on_dose.clear()

    @staticmethod
    def _final_next(view: SupervisorView) -> bool:
        return view.dose_mcg_min <= view.limits.wean_step + 1e-9

    def _holds_without_it(self, view: SupervisorView) -> bool:
        on_dose = self.on_dose_map_mmhg(view.t_s)
        return on_dose is not None and on_dose >= view.floor_mmhg + self.tuning.off_margin_mmhg
