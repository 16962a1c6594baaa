"""Guided weaning (mode ``wean``): titrate down as the patient recovers, S7 takes the last step.

The operator asks for weaning by choosing this mode on an infusion that has been running (the
mode assumes it is in steady state on its dose, :meth:`MpcController.assume_steady`). Every
judgement is made on S7's trusted MAP, the median of the last minute's good beats, never on
untrusted data; the supervisor's rules bound every move.

* **Titration down the recovery** (:data:`Phase.TITRATE`): the model-predictive controller of
  mode ``closed-loop`` keeps MAP in the band [F, F + 10] and comes down while MAP stands over
  it, one step at a time: each decrease once the last dose change has had ``drop_settle_s``
  to show its effect, at most S3's relative part or one wean step (S3's own pace, 2 mcg/min
  every 2 min, outran the drug's lag and landed under the floor). Inside the band its
  objective (time in band) gives it no reason to come down, so the mode **probes**: one wean
  step (S7's 1 mcg/min) once the median has stood the probe margin over the floor for a whole
  wean interval (S7's 15 min) on the running dose. The margin is what the patient has shown:
  the mean MAP drop per wean step the last steps down (probes and the titration's) caused
  (from the wean interval before a step to the lower dose's beats once its effect settled;
  a larger step's drop scaled to one wean step; a prior of 3 mmHg until then, which with the
  2 mmHg of noise allowance is the set-point's margin) plus that allowance; so the next step
  is predicted to keep MAP at or over the floor, not at the set-point. The titration's raises
  are taken as a wean takes them: none while the median holds the margin (a raise towards
  the middle of the band would undo the last probe and never let the next come); between the
  floor and the margin back to the dose before the last step down at most (probe and hold, as
  S7 goes back to the last dose that held the floor); under the floor the titration's own
  raise, one per ``drop_settle_s`` down to the lower limit F - 5 (a dip there after hours on
  a falling dose needs little: S3's pace overshot), S3's pace under it. A patient whose need
  stops falling (unweanable, or not yet) is so held on the dose that holds the floor with the
  margin, and nothing ends his infusion.
* **The last dose** (:data:`Phase.LAST`): on the final step's dose (at most one wean step),
  once it holds the margin, the dose is held until MAP has shown that the patient holds the
  floor without it: the median of every good beat on this dose, over at least
  ``off_judged_after_s``, less what the dose is expected to be worth (the steps' drop per
  wean step), stands ``off_margin_mmhg`` over the floor. The last 1 mcg/min is
  worth a few mmHg and MAP0's wander lasts 5-30 min: a patient whose recovery fell short is
  not stopped on a passing high of it. The median under the floor for ``takeback_after_s``
  gives the dose back to the titration.
* **The final step by S7** (:data:`Phase.S7`): the mode then hands the infusion to the
  supervisor's weaning policy (:meth:`WeanController.hands_over`, acted on by
  :class:`~vasopilot.runtime.RigLoop` on every rig), which takes the final step to zero after
  its interval with MAP at the floor. The median under the floor for ``takeback_after_s`` (a
  pause S7 would sit out) takes it back (:meth:`WeanController.takes_back`).

While S7 or the last dose holds, the model-predictive controller still looks, so its filter
and line model stay current; its requests are not sent. Once S7 has taken its final step, or
an operator stopped weaning, the mode proposes nothing: the operator leads.
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
    TITRATE = "titrate"  # the model-predictive controller both ways, and the probe steps
    LAST = "last"  # the final step's dose, held until MAP has shown it holds the floor
    S7 = "s7"  # the supervisor's weaning policy takes the final step
    DONE = "done"  # weaning ended or an operator stopped it: the operator leads


@dataclass(frozen=True)
class WeanTuning:
    """Pressures in mmHg over the floor F, times in s.

    ``step_drop_prior_mmhg`` + ``drop_noise_mmhg``: the probe margin before a step has been
    seen, the set-point's 5 mmHg of the previous mode (with a fixed 3 mmHg, seed 1's first 12
    patients had a median of 1.5 rebound episodes under the floor, with 5 mmHg 1.0).
    ``drops_kept``: the steps the drop is averaged over (one step's drop is MAP0's wander as
    much as the drug's). ``drop_settle_s``: a step's effect through the patient model's
    slowest plasma and effect-site lags (t1/2 up to 7.7 min, ke0 down to 0.2/min) mostly
    shown. ``median_window_s`` and ``median_beats``: S7's trusted MAP, as the supervisor
    judges it. ``off_judged_after_s``: twice the longest wander time constant.
    Otherwise set from S7's own numbers, the band and the patient model's ranges.
    """

    step_drop_prior_mmhg: float = 3.0
    drop_noise_mmhg: float = 2.0
    drops_kept: int = 3
    drop_settle_s: float = 600.0
    takeback_after_s: float = 60.0
    off_margin_mmhg: float = 3.0
    off_judged_after_s: float = 3600.0
    median_window_s: float = 60.0
    median_beats: int = 20


class WeanController:
    """Titrates down with the model-predictive controller and probe steps, hands the final
    step to S7 (module docstring); pure: time from ``view.t_s``."""

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
        self._raised_last = False
        # last time the median was missing, disturbed or under F + probe margin on this dose
        self._unproven_s = 0.0
        # the dose before the last step down
        self._held_dose: float | None = None
        # the MAP drops the last steps down caused per wean step (mmHg), the prior until seen
        self._drops: deque[float] = deque([self.tuning.step_drop_prior_mmhg],
                                          maxlen=self.tuning.drops_kept)
        # the last step down, until the dose it landed on is left: (t s, the median MAP of
        # the wean interval before it, its share of one wean step)
        self._stepped: tuple[float, float | None, float] | None = None
        # good beats (t s, MAP) since the running dose began
        self._on_dose: deque[tuple[float, float]] = deque()

    @property
    def look_again_s(self) -> float | None:
        """The titration's wish to be asked again soon (a climb held for a fresh beat)."""
        return self.mpc.look_again_s

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
        if self.phase in (Phase.S7, Phase.DONE, Phase.LAST):
            return None
        median = self.median_map_mmhg(view.t_s)
        # judged as S7 judges: the minute's median of good beats, which an artefact's beats
        # do not enter (the controller itself never raises around one)
        settled = (view.running and view.map_trusted and median is not None
                   and median >= view.floor_mmhg + self.probe_margin_mmhg())
        if not settled:
            self._unproven_s = view.t_s
        elif self._on_last_dose(view):
            self.phase = Phase.LAST  # the final step's dose holds the margin: judge it
            return None
        if request is not None and request.dose_mcg_min > view.dose_mcg_min:
            request = self._raise(view, request, settled)
        elif request is not None and request.dose_mcg_min < view.dose_mcg_min:
            request = self._lower(view, request, median)
        if request is not None or not settled:
            return request
        return self._probe(view)

    def _raise(self, view: SupervisorView, request: DoseRequest,
               settled: bool) -> DoseRequest | None:
        """The titration's raise as the wean takes it. The wean keeps a margin over the floor,
        not the set-point: over the margin no raise (one towards the middle of the band would
        undo the last probe and never let the next come); between the floor and the margin
        back to the dose before the last step down at most (probe and hold, as S7 goes back
        to the last dose that held the floor); under the floor the titration's own raise,
        one per ``drop_settle_s`` down to the lower limit, as S3 lets it under it."""
        if settled:
            return None
        median = self.median_map_mmhg(view.t_s)
        if median is None or median < view.lower_limit_mmhg:
            return request
        if median < view.floor_mmhg:
            # a dip under the floor after hours on a falling dose needs little: S3's pace
            # (a step per 2 min, ahead of the drug's lag) climbed 0.4 -> 6.4 mcg/min on seed
            # 1's patients for a need of about 1, and the overshoot came down too fast again
            recent = view.t_s - self._dose_since_s < self.tuning.drop_settle_s
            return None if recent and self._raised_last else request
        if self._held_dose is None:
            return request  # nothing weaned yet: the titration finds the dose
        dose = min(request.dose_mcg_min, self._held_dose)
        if dose <= view.dose_mcg_min + 1e-9:
            return None
        return DoseRequest(round(dose, 2), self.requester,
                           f"{self.mode}: MAP (1 min median) {median:.1f} mmHg, under the "
                           f"floor + {self.probe_margin_mmhg():.1f}: back to "
                           f"{dose:.2f} mcg/min, the dose before the last step down")

    def _lower(self, view: SupervisorView, request: DoseRequest,
               median: float | None) -> DoseRequest | None:
        """The titration's decrease as the wean takes it: one at a time, each once the last
        dose change has had ``drop_settle_s`` to show its effect, and at most S3's relative
        part or one wean step, whichever is more. Coming down at S3's own pace (2 mcg/min
        every 2 min) outran the drug's lag: seed 1's patients went 12 -> 5 and 2.8 -> 0.8
        mcg/min before MAP had answered the first step, then under the floor, and the climb
        back overshot."""
        if view.t_s - self._dose_since_s < self.tuning.drop_settle_s:
            return None
        limits, dose = view.limits, view.dose_mcg_min
        lowest = dose - max(limits.wean_step, limits.down_step_ratio * dose)
        if request.dose_mcg_min >= lowest - 1e-9:
            return request
        return DoseRequest(round(lowest, 2), self.requester,
                           f"{self.mode}: {request.reason}; one step at a time in a wean: "
                           f"{dose:.2f} -> {lowest:.2f} mcg/min")

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
        """True when, on the last dose, MAP has shown on trusted data that the patient holds
        the floor without it (module docstring): S7 then takes the final step."""
        if self.phase is not Phase.LAST or not view.running or view.weaning \
                or not view.map_trusted:
            return False
        self._note_dose(view)
        if not self._holds_without_it(view):
            return False
        self.phase = Phase.S7
        self._low_since_s = None
        return True

    def takes_back(self, view: SupervisorView) -> bool:
        """True when, under S7, the minute's median has stayed under the floor for
        ``takeback_after_s``: the patient needs more drug, the titration again."""
        if self.phase is not Phase.S7 or not view.weaning:
            return False
        self._note_dose(view)
        if not self._low_for(view):
            return False
        self.phase = Phase.TITRATE
        self._restart_dose(view.t_s)  # the probes' interval is timed afresh
        return True

    def _probe(self, view: SupervisorView) -> DoseRequest | None:
        """One wean step down once the median has stood the probe margin over the floor for a
        whole wean interval on the running dose."""
        limits = view.limits
        now_s, dose = view.t_s, view.dose_mcg_min
        if now_s - max(self._dose_since_s, self._unproven_s) < limits.wean_interval_s:
            return None
        lower = max(limits.wean_step, dose - limits.wean_step)
        return DoseRequest(round(lower, 2), self.requester,
                           f"{self.mode}: probe step, MAP (1 min median) held "
                           f"{self.probe_margin_mmhg():.1f} mmHg over the floor (the last "
                           f"steps' drop {self.step_drop_mmhg():.1f} + "
                           f"{self.tuning.drop_noise_mmhg:.0f}) for "
                           f"{limits.wean_interval_s:.0f} s: {dose:.2f} -> {lower:.2f} mcg/min")

    def _low_for(self, view: SupervisorView) -> bool:
        """The minute's median has stayed under the floor for ``takeback_after_s``."""
        median = self.median_map_mmhg(view.t_s)
        if median is None or median >= view.floor_mmhg:
            self._low_since_s = None
            return False
        if self._low_since_s is None:
            self._low_since_s = view.t_s
        return view.t_s - self._low_since_s >= self.tuning.takeback_after_s

    def step_drop_mmhg(self) -> float:
        """The MAP drop one wean step is expected to cause: the mean of the drops per wean step
        the last steps down caused (the prior until they are seen)."""
        return statistics.fmean(self._drops)

    def probe_margin_mmhg(self) -> float:
        """How far over the floor the median must stand for a probe step: the step's expected
        drop plus a margin for the noise of that estimate and the wander."""
        return self.step_drop_mmhg() + self.tuning.drop_noise_mmhg

    def _on_dose_median(self, since_s: float) -> float | None:
        beats = [m for t, m in self._on_dose if t >= since_s]
        return statistics.median(beats) if beats else None

    def _judge_step(self, now_s: float) -> None:
        """Leaving the dose a step down landed on: the drop the step caused, from the median of
        the wean interval before it to the good beats on the lower dose once its effect has
        settled (or, left sooner, the last minute's median: a fall that needed a raise before
        the effect settled is the step's too), per wean step (a larger step of the titration
        scaled down; a smaller one counts whole). A rise counts as no drop (the recovery's or
        the wander's, not the step's)."""
        if self._stepped is None:
            return
        t_step_s, before, per_step = self._stepped
        self._stepped = None
        settled_s = t_step_s + self.tuning.drop_settle_s
        after = self._on_dose_median(settled_s) if now_s >= settled_s else None
        if after is None:
            after = self.median_map_mmhg(now_s)
        if before is not None and after is not None:
            self._drops.append(max(0.0, before - after) * per_step)

    def _note_dose(self, view: SupervisorView) -> None:
        if view.dose_mcg_min == self._dose:
            return
        self._judge_step(view.t_s)
        if self._dose is not None and view.dose_mcg_min < self._dose:
            # every step down, a probe's or the titration's, shows what the drug is worth
            size = self._dose - view.dose_mcg_min
            self._stepped = (view.t_s,
                             self._on_dose_median(view.t_s - view.limits.wean_interval_s),
                             min(1.0, view.limits.wean_step / size))
            self._held_dose = self._dose
        self._raised_last = self._dose is not None and view.dose_mcg_min > self._dose
        self._dose = view.dose_mcg_min
        self._restart_dose(view.t_s)

    def _restart_dose(self, now_s: float) -> None:
        self._dose_since_s = self._unproven_s = now_s
        self._on_dose.clear()

    @staticmethod
    def _on_last_dose(view: SupervisorView) -> bool:
        return view.running and view.dose_mcg_min <= view.limits.wean_step + 1e-9

    def _holds_without_it(self, view: SupervisorView) -> bool:
        """MAP off the drug, the last dose's median less the drop that dose is expected to be
        worth (the last steps' drop per wean step), stands the margin over the floor."""
        on_dose = self.on_dose_map_mmhg(view.t_s)
        if on_dose is None:
            return False
        worth = self.step_drop_mmhg() * view.dose_mcg_min / view.limits.wean_step
        return on_dose - worth >= view.floor_mmhg + self.tuning.off_margin_mmhg
